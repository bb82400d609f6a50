// Copies host data into device buffers through two host-visible staging buffers: while the
// device copies one, the CPU fills (and converts into) the other. Copies go to the transfer
// queue, which on a discrete GPU is a DMA engine that runs beside the compute queue.
#pragma once

#include <vulkan/vulkan.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "compute.hpp"

namespace floatllm::vulkan {

class Uploader {
 public:
  static constexpr uint64_t kStagingBytes = uint64_t{16} << 20;

  explicit Uploader(Context& context);
  ~Uploader();
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  // Writes `rows` rows of `row_bytes` into `dst` from offset 0; produce(first, count, out) fills
  // `out` with rows first .. first + count - 1. Returns once the CPU side is done; the last copies
  // may still run until finish().
  using RowProducer = std::function<void(uint64_t first, uint64_t count, std::byte* out)>;
  void upload(const Buffer& dst, uint64_t rows, uint64_t row_bytes, const RowProducer& produce);
  // Copies raw bytes.
  void upload(const Buffer& dst, const std::byte* data, uint64_t bytes);

  // Waits for every copy issued so far.
  void finish();

 private:
  struct Slot {
    Buffer staging;
    VkCommandBuffer commands = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    bool busy = false;
  };
  Slot& next_slot();
  void submit(Slot& slot, const Buffer& dst, uint64_t dst_offset, uint64_t bytes);
  void wait(Slot& slot);

  Context& context_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  std::array<Slot, 2> slots_;
  std::size_t next_ = 0;
};

}  // namespace floatllm::vulkan
