#include "uploader.hpp"

#include <algorithm>
#include <cstring>

#include "floatllm/core/error.hpp"

namespace floatllm::vulkan {

Uploader::Uploader(Context& context) : context_(context) {
  VkDevice device = context.device.handle();
  VkCommandPoolCreateInfo pool_info{};
  pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = context.device.transfer_family();
  check(vkCreateCommandPool(device, &pool_info, nullptr, &pool_), "vkCreateCommandPool");
  for (Slot& slot : slots_) {
    slot.staging = context.host_memory.allocate(kStagingBytes, "a staging buffer");
    VkCommandBufferAllocateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    info.commandPool = pool_;
    info.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    info.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(device, &info, &slot.commands), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fence_info{};
    fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    check(vkCreateFence(device, &fence_info, nullptr, &slot.fence), "vkCreateFence");
  }
}

Uploader::~Uploader() {
  VkDevice device = context_.device.handle();
  for (Slot& slot : slots_) {
    if (slot.busy) vkWaitForFences(device, 1, &slot.fence, VK_TRUE, UINT64_MAX);
    vkDestroyFence(device, slot.fence, nullptr);
  }
  vkDestroyCommandPool(device, pool_, nullptr);
}

void Uploader::wait(Slot& slot) {
  if (!slot.busy) return;
  VkDevice device = context_.device.handle();
  check(vkWaitForFences(device, 1, &slot.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  check(vkResetFences(device, 1, &slot.fence), "vkResetFences");
  slot.busy = false;
}

Uploader::Slot& Uploader::next_slot() {
  Slot& slot = slots_[next_];
  next_ = (next_ + 1) % slots_.size();
  wait(slot);
  return slot;
}

void Uploader::submit(Slot& slot, const Buffer& dst, uint64_t dst_offset, uint64_t bytes) {
  check(vkResetCommandBuffer(slot.commands, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo begin{};
  begin.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(slot.commands, &begin), "vkBeginCommandBuffer");
  const VkBufferCopy region{0, dst_offset, bytes};
  vkCmdCopyBuffer(slot.commands, slot.staging.handle(), dst.handle(), 1, &region);
  // Make the copy available to the compute work submitted after this fence is seen.
  VkMemoryBarrier done{};
  done.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  done.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  done.dstAccessMask = VK_ACCESS_MEMORY_READ_BIT;
  vkCmdPipelineBarrier(slot.commands, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 1, &done, 0, nullptr, 0, nullptr);
  check(vkEndCommandBuffer(slot.commands), "vkEndCommandBuffer");
  context_.device.submit_transfer(slot.commands, slot.fence);
  slot.busy = true;
}

void Uploader::upload(const Buffer& dst, uint64_t rows, uint64_t row_bytes,
                      const RowProducer& produce) {
  if (rows * row_bytes > dst.size())
    fail("Vulkan upload: ", rows * row_bytes, " bytes do not fit a buffer of ", dst.size());
  const uint64_t rows_per_chunk =
      std::max<uint64_t>(1, kStagingBytes / std::max<uint64_t>(row_bytes, 1));
  if (row_bytes > kStagingBytes) {
    fail("Vulkan upload: a row of ", row_bytes, " bytes exceeds the ", kStagingBytes,
         "-byte staging buffer");
  }
  for (uint64_t first = 0; first < rows; first += rows_per_chunk) {
    const uint64_t count = std::min(rows_per_chunk, rows - first);
    Slot& slot = next_slot();
    produce(first, count, slot.staging.mapped());
    submit(slot, dst, first * row_bytes, count * row_bytes);
  }
}

void Uploader::upload(const Buffer& dst, const std::byte* data, uint64_t bytes) {
  // Raw bytes as rows of up to one staging buffer each; the last row may be shorter.
  for (uint64_t offset = 0; offset < bytes; offset += kStagingBytes) {
    const uint64_t count = std::min(kStagingBytes, bytes - offset);
    Slot& slot = next_slot();
    std::memcpy(slot.staging.mapped(), data + offset, count);
    submit(slot, dst, offset, count);
  }
}

void Uploader::finish() {
  for (Slot& slot : slots_)
    wait(slot);
}

}  // namespace floatllm::vulkan
