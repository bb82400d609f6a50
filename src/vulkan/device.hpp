// A Vulkan instance and logical device with its compute queue (and a transfer queue when the
// device has a separate one), chosen by index or as the best device of the system.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "floatllm/backend/vulkan/vulkan_backend.hpp"

namespace floatllm::vulkan {

// Fails with `what` and the result's name unless `result` is VK_SUCCESS.
void check(VkResult result, const char* what);
const char* result_name(VkResult result);

class Device {
 public:
  // index -1: the best device (discrete, then integrated, virtual, CPU; more memory first).
  explicit Device(int index = -1);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  VkDevice handle() const { return device_; }
  VkPhysicalDevice physical() const { return physical_; }
  const DeviceInfo& info() const { return info_; }
  const VkPhysicalDeviceLimits& limits() const { return properties_.limits; }
  const VkPhysicalDeviceMemoryProperties& memory() const { return memory_; }

  uint32_t compute_family() const { return compute_family_; }
  uint32_t transfer_family() const { return transfer_family_; }
  // Both families, for buffers shared between them (one entry when they are the same).
  const std::vector<uint32_t>& queue_families() const { return families_; }

  // Queues must not be used by two threads at once; these take the queue's lock.
  void submit_compute(VkCommandBuffer commands, VkFence fence);
  void submit_transfer(VkCommandBuffer commands, VkFence fence);

  // A memory type allowed by `type_bits` with all `required` flags, preferring `preferred` ones.
  uint32_t memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                       VkMemoryPropertyFlags preferred) const;

 private:
  void submit(VkQueue queue, std::mutex& lock, VkCommandBuffer commands, VkFence fence);

  VkInstance instance_ = VK_NULL_HANDLE;
  VkPhysicalDevice physical_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkPhysicalDeviceProperties properties_{};
  VkPhysicalDeviceMemoryProperties memory_{};
  DeviceInfo info_;
  uint32_t compute_family_ = 0;
  uint32_t transfer_family_ = 0;
  std::vector<uint32_t> families_;
  VkQueue compute_queue_ = VK_NULL_HANDLE;
  VkQueue transfer_queue_ = VK_NULL_HANDLE;
  std::mutex compute_lock_;
  std::mutex transfer_lock_;
};

}  // namespace floatllm::vulkan
