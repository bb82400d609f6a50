// Device memory in large chunks, handed out as buffers at aligned offsets and taken back when a
// buffer dies (first fit, neighbours merged), so a model makes a few allocations, not thousands.
#pragma once

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "device.hpp"

namespace floatllm::vulkan {

enum class MemoryKind {
  kDevice,  // device-local: weights, KV cache, activations
  kHost,    // host-visible, coherent and mapped: staging and read-back
};

class MemoryPool;

// A storage buffer (also a copy source and destination) in a pool's memory.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  ~Buffer() { reset(); }

  VkBuffer handle() const { return buffer_; }
  uint64_t size() const { return size_; }
  // The mapped bytes of a kHost buffer; nullptr for device memory.
  std::byte* mapped() const { return mapped_; }
  explicit operator bool() const { return buffer_ != VK_NULL_HANDLE; }
  void reset();

 private:
  friend class MemoryPool;
  MemoryPool* pool_ = nullptr;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  std::size_t chunk_ = 0;
  uint64_t offset_ = 0;
  uint64_t reserved_ = 0;
  uint64_t size_ = 0;
  std::byte* mapped_ = nullptr;
};

class MemoryPool {
 public:
  static constexpr uint64_t kChunkBytes = uint64_t{64} << 20;

  MemoryPool(Device& device, MemoryKind kind);
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  // `what` names the buffer in the error when memory runs out. Thread-safe.
  Buffer allocate(uint64_t bytes, std::string_view what);

  uint64_t allocated_bytes() const { return allocated_; }
  uint64_t heap_bytes() const { return heap_bytes_; }

 private:
  friend class Buffer;
  struct Range {
    uint64_t offset;
    uint64_t size;
  };
  struct Chunk {
    VkDeviceMemory memory = VK_NULL_HANDLE;
    uint64_t size = 0;
    std::byte* mapped = nullptr;
    std::vector<Range> free;  // sorted by offset
  };

  void release(std::size_t chunk, uint64_t offset, uint64_t size);
  std::size_t add_chunk(uint64_t bytes, std::string_view what);

  Device& device_;
  MemoryKind kind_;
  uint32_t memory_type_ = 0;
  uint64_t heap_bytes_ = 0;
  uint64_t allocated_ = 0;
  std::vector<Chunk> chunks_;
  std::mutex mutex_;
};

}  // namespace floatllm::vulkan
