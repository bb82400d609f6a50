#include "memory.hpp"

#include <algorithm>
#include <utility>

#include "floatllm/core/error.hpp"

namespace floatllm::vulkan {

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

VkBuffer create_buffer(const Device& device, uint64_t bytes) {
  VkBufferCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  const auto& families = device.queue_families();
  info.sharingMode = families.size() > 1 ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE;
  info.queueFamilyIndexCount = static_cast<uint32_t>(families.size());
  info.pQueueFamilyIndices = families.data();
  VkBuffer buffer = VK_NULL_HANDLE;
  check(vkCreateBuffer(device.handle(), &info, nullptr, &buffer), "vkCreateBuffer");
  return buffer;
}

}  // namespace

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    buffer_ = std::exchange(other.buffer_, VK_NULL_HANDLE);
    chunk_ = other.chunk_;
    offset_ = other.offset_;
    reserved_ = std::exchange(other.reserved_, 0);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, nullptr);
  }
  return *this;
}

void Buffer::reset() {
  if (buffer_ == VK_NULL_HANDLE) return;
  vkDestroyBuffer(pool_->device_.handle(), buffer_, nullptr);
  if (reserved_ > 0) pool_->release(chunk_, offset_, reserved_);
  buffer_ = VK_NULL_HANDLE;
  pool_ = nullptr;
  mapped_ = nullptr;
  reserved_ = 0;
  size_ = 0;
}

MemoryPool::MemoryPool(Device& device, MemoryKind kind) : device_(device), kind_(kind) {
  // Every storage buffer of this device accepts the same memory types; a probe buffer asks.
  const VkBuffer probe = create_buffer(device, 256);
  VkMemoryRequirements requirements;
  vkGetBufferMemoryRequirements(device.handle(), probe, &requirements);
  vkDestroyBuffer(device.handle(), probe, nullptr);
  if (kind == MemoryKind::kDevice) {
    memory_type_ =
        device.memory_type(requirements.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
  } else {
    memory_type_ = device.memory_type(
        requirements.memoryTypeBits,
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
        VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
  }
  const uint32_t heap = device.memory().memoryTypes[memory_type_].heapIndex;
  heap_bytes_ = device.memory().memoryHeaps[heap].size;
}

MemoryPool::~MemoryPool() {
  for (Chunk& chunk : chunks_) {
    if (chunk.mapped != nullptr) vkUnmapMemory(device_.handle(), chunk.memory);
    vkFreeMemory(device_.handle(), chunk.memory, nullptr);
  }
}

Buffer MemoryPool::allocate(uint64_t bytes, std::string_view what) {
  bytes = std::max<uint64_t>(bytes, 4);
  Buffer buffer;
  buffer.buffer_ = create_buffer(device_, bytes);
  buffer.pool_ = this;
  buffer.size_ = bytes;
  VkMemoryRequirements requirements;
  vkGetBufferMemoryRequirements(device_.handle(), buffer.buffer_, &requirements);

  const std::lock_guard guard(mutex_);
  const auto place = [&](std::size_t c) {
    Chunk& chunk = chunks_[c];
    for (std::size_t i = 0; i < chunk.free.size(); ++i) {
      Range& range = chunk.free[i];
      const uint64_t start = align_up(range.offset, requirements.alignment);
      const uint64_t end = range.offset + range.size;
      if (start + requirements.size > end) continue;
      // The alignment gap stays with the buffer and returns with it.
      buffer.chunk_ = c;
      buffer.offset_ = range.offset;
      buffer.reserved_ = start + requirements.size - range.offset;
      range.offset += buffer.reserved_;
      range.size -= buffer.reserved_;
      if (range.size == 0) chunk.free.erase(chunk.free.begin() + static_cast<std::ptrdiff_t>(i));
      check(vkBindBufferMemory(device_.handle(), buffer.buffer_, chunk.memory, start),
            "vkBindBufferMemory");
      if (chunk.mapped != nullptr) buffer.mapped_ = chunk.mapped + start;
      return true;
    }
    return false;
  };
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    if (place(c)) return buffer;
  }
  const std::size_t c =
      add_chunk(std::max(kChunkBytes, requirements.size + requirements.alignment), what);
  if (!place(c)) fail("Vulkan: a fresh memory chunk could not hold ", what);
  return buffer;
}

std::size_t MemoryPool::add_chunk(uint64_t bytes, std::string_view what) {
  const char* kind = kind_ == MemoryKind::kDevice ? "device" : "host-visible";
  if (allocated_ + bytes > heap_bytes_) {
    fail("Vulkan: too little ", kind, " memory on '", device_.info().name, "' for ", what, ": ",
         (allocated_ + bytes) / kMiB, " MiB needed, the heap has ", heap_bytes_ / kMiB,
         " MiB (put fewer layers on the device)");
  }
  VkMemoryAllocateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  info.allocationSize = bytes;
  info.memoryTypeIndex = memory_type_;
  Chunk chunk;
  chunk.size = bytes;
  const VkResult result = vkAllocateMemory(device_.handle(), &info, nullptr, &chunk.memory);
  if (result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY) {
    fail("Vulkan: out of ", kind, " memory on '", device_.info().name, "' allocating ",
         bytes / kMiB, " MiB for ", what, " (", allocated_ / kMiB,
         " MiB in use; put fewer layers on the device)");
  }
  check(result, "vkAllocateMemory");
  if (kind_ == MemoryKind::kHost) {
    void* mapped = nullptr;
    const VkResult map = vkMapMemory(device_.handle(), chunk.memory, 0, bytes, 0, &mapped);
    if (map != VK_SUCCESS) {
      vkFreeMemory(device_.handle(), chunk.memory, nullptr);
      check(map, "vkMapMemory");
    }
    chunk.mapped = static_cast<std::byte*>(mapped);
  }
  chunk.free.push_back({0, bytes});
  allocated_ += bytes;
  chunks_.push_back(std::move(chunk));
  return chunks_.size() - 1;
}

void MemoryPool::release(std::size_t c, uint64_t offset, uint64_t size) {
  const std::lock_guard guard(mutex_);
  std::vector<Range>& free = chunks_[c].free;
  auto next = std::lower_bound(free.begin(), free.end(), offset,
                               [](const Range& r, uint64_t o) { return r.offset < o; });
  next = free.insert(next, Range{offset, size});
  if (next + 1 != free.end() && next->offset + next->size == (next + 1)->offset) {
    next->size += (next + 1)->size;
    free.erase(next + 1);
  }
  if (next != free.begin() && (next - 1)->offset + (next - 1)->size == next->offset) {
    (next - 1)->size += next->size;
    free.erase(next);
  }
}

}  // namespace floatllm::vulkan
