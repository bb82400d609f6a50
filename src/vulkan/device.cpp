#include "device.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "floatllm/core/error.hpp"

namespace floatllm::vulkan {

const char* result_name(VkResult result) {
  switch (result) {
    case VK_SUCCESS:
      return "VK_SUCCESS";
    case VK_NOT_READY:
      return "VK_NOT_READY";
    case VK_TIMEOUT:
      return "VK_TIMEOUT";
    case VK_INCOMPLETE:
      return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED:
      return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT:
      return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS:
      return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FRAGMENTED_POOL:
      return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY:
      return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default:
      return "an unnamed VkResult";
  }
}

void check(VkResult result, const char* what) {
  if (result != VK_SUCCESS) {
    fail("Vulkan: ", what, " failed with ", result_name(result), " (", static_cast<int>(result),
         ")");
  }
}

namespace {

// Owns an instance until the Device takes it, so that a failure half way releases it.
struct Instance {
  VkInstance handle = VK_NULL_HANDLE;

  Instance() {
    VkApplicationInfo app{};
    app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
    app.pApplicationName = "floatllm";
    app.pEngineName = "floatllm";
    app.apiVersion = VK_API_VERSION_1_0;
    VkInstanceCreateInfo info{};
    info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
    info.pApplicationInfo = &app;
    const VkResult result = vkCreateInstance(&info, nullptr, &handle);
    if (result == VK_ERROR_INCOMPATIBLE_DRIVER || result == VK_ERROR_INITIALIZATION_FAILED) {
      handle = VK_NULL_HANDLE;
      fail("Vulkan: no driver is installed (", result_name(result),
           "); install one, e.g. Mesa's CPU driver lavapipe (Debian: mesa-vulkan-drivers)");
    }
    check(result, "vkCreateInstance");
  }
  ~Instance() {
    if (handle != VK_NULL_HANDLE) vkDestroyInstance(handle, nullptr);
  }
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;

  VkInstance release() { return std::exchange(handle, VK_NULL_HANDLE); }

  std::vector<VkPhysicalDevice> devices() const {
    uint32_t count = 0;
    check(vkEnumeratePhysicalDevices(handle, &count, nullptr), "vkEnumeratePhysicalDevices");
    std::vector<VkPhysicalDevice> list(count);
    check(vkEnumeratePhysicalDevices(handle, &count, list.data()), "vkEnumeratePhysicalDevices");
    list.resize(count);
    return list;
  }
};

const char* type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return "cpu";
    default:
      return "other";
  }
}

int type_rank(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return 1;
    default:
      return 0;
  }
}

DeviceInfo describe(VkPhysicalDevice device, int index) {
  VkPhysicalDeviceProperties properties;
  vkGetPhysicalDeviceProperties(device, &properties);
  VkPhysicalDeviceMemoryProperties memory;
  vkGetPhysicalDeviceMemoryProperties(device, &memory);
  DeviceInfo info;
  info.index = index;
  info.name = properties.deviceName;
  info.type = type_name(properties.deviceType);
  for (uint32_t h = 0; h < memory.memoryHeapCount; ++h) {
    if (memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) {
      info.memory_bytes = std::max<uint64_t>(info.memory_bytes, memory.memoryHeaps[h].size);
    }
  }
  return info;
}

bool has_compute_queue(VkPhysicalDevice device) {
  uint32_t count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(device, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vkGetPhysicalDeviceQueueFamilyProperties(device, &count, families.data());
  return std::any_of(families.begin(), families.end(), [](const VkQueueFamilyProperties& f) {
    return (f.queueFlags & VK_QUEUE_COMPUTE_BIT) != 0 && f.queueCount > 0;
  });
}

}  // namespace

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> list;
  try {
    const Instance instance;
    const auto devices = instance.devices();
    for (std::size_t i = 0; i < devices.size(); ++i)
      list.push_back(describe(devices[i], static_cast<int>(i)));
  } catch (const Error&) {
    return {};  // no driver: no devices
  }
  return list;
}

Device::Device(int index) {
  Instance instance;
  const auto devices = instance.devices();
  if (devices.empty()) {
    fail(
        "Vulkan: no device found; install a driver, e.g. Mesa's CPU driver lavapipe (Debian: "
        "mesa-vulkan-drivers)");
  }
  if (index >= static_cast<int>(devices.size())) {
    fail("Vulkan: device ", index, " does not exist; there are ", devices.size(),
         " (see floatllm devices)");
  }
  if (index < 0) {
    int best_rank = -1;
    uint64_t best_memory = 0;
    for (std::size_t i = 0; i < devices.size(); ++i) {
      if (!has_compute_queue(devices[i])) continue;
      VkPhysicalDeviceProperties properties;
      vkGetPhysicalDeviceProperties(devices[i], &properties);
      const int rank = type_rank(properties.deviceType);
      const uint64_t memory = describe(devices[i], 0).memory_bytes;
      if (rank > best_rank || (rank == best_rank && memory > best_memory)) {
        best_rank = rank;
        best_memory = memory;
        index = static_cast<int>(i);
      }
    }
    if (index < 0) fail("Vulkan: none of the ", devices.size(), " devices can run compute shaders");
  }
  physical_ = devices[static_cast<std::size_t>(index)];
  info_ = describe(physical_, index);
  vkGetPhysicalDeviceProperties(physical_, &properties_);
  vkGetPhysicalDeviceMemoryProperties(physical_, &memory_);

  uint32_t count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &count, nullptr);
  std::vector<VkQueueFamilyProperties> families(count);
  vkGetPhysicalDeviceQueueFamilyProperties(physical_, &count, families.data());
  constexpr uint32_t kNone = ~0u;
  uint32_t compute = kNone;
  uint32_t transfer = kNone;
  for (uint32_t f = 0; f < count; ++f) {
    const VkQueueFlags flags = families[f].queueFlags;
    if (families[f].queueCount == 0) continue;
    if (compute == kNone && (flags & VK_QUEUE_COMPUTE_BIT)) compute = f;
    // A transfer-only family is the DMA engine of a discrete GPU: copies there overlap compute.
    if (transfer == kNone && (flags & VK_QUEUE_TRANSFER_BIT) &&
        !(flags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT))) {
      transfer = f;
    }
  }
  if (compute == kNone) fail("Vulkan: device '", info_.name, "' has no compute queue");
  if (transfer == kNone) transfer = compute;
  compute_family_ = compute;
  transfer_family_ = transfer;
  families_ = {compute};
  if (transfer != compute) families_.push_back(transfer);

  const float priority = 1.0f;
  std::array<VkDeviceQueueCreateInfo, 2> queues{};
  for (std::size_t i = 0; i < families_.size(); ++i) {
    queues[i].sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
    queues[i].queueFamilyIndex = families_[i];
    queues[i].queueCount = 1;
    queues[i].pQueuePriorities = &priority;
  }
  VkDeviceCreateInfo info{};
  info.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  info.queueCreateInfoCount = static_cast<uint32_t>(families_.size());
  info.pQueueCreateInfos = queues.data();
  check(vkCreateDevice(physical_, &info, nullptr, &device_), "vkCreateDevice");
  vkGetDeviceQueue(device_, compute_family_, 0, &compute_queue_);
  vkGetDeviceQueue(device_, transfer_family_, 0, &transfer_queue_);
  instance_ = instance.release();
}

Device::~Device() {
  vkDeviceWaitIdle(device_);
  vkDestroyDevice(device_, nullptr);
  vkDestroyInstance(instance_, nullptr);
}

void Device::submit(VkQueue queue, std::mutex& lock, VkCommandBuffer commands, VkFence fence) {
  VkSubmitInfo info{};
  info.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  info.commandBufferCount = 1;
  info.pCommandBuffers = &commands;
  const std::lock_guard guard(lock);
  check(vkQueueSubmit(queue, 1, &info, fence), "vkQueueSubmit");
}

void Device::submit_compute(VkCommandBuffer commands, VkFence fence) {
  submit(compute_queue_, compute_lock_, commands, fence);
}

void Device::submit_transfer(VkCommandBuffer commands, VkFence fence) {
  // With one family both names refer to one queue, which one lock must guard.
  if (transfer_queue_ == compute_queue_) return submit_compute(commands, fence);
  submit(transfer_queue_, transfer_lock_, commands, fence);
}

uint32_t Device::memory_type(uint32_t type_bits, VkMemoryPropertyFlags required,
                             VkMemoryPropertyFlags preferred) const {
  constexpr uint32_t kNone = ~0u;
  uint32_t fallback = kNone;
  for (uint32_t i = 0; i < memory_.memoryTypeCount; ++i) {
    const VkMemoryPropertyFlags flags = memory_.memoryTypes[i].propertyFlags;
    if (!(type_bits & (1u << i)) || (flags & required) != required) continue;
    if ((flags & preferred) == preferred) return i;
    if (fallback == kNone) fallback = i;
  }
  if (fallback == kNone) {
    fail("Vulkan: device '", info_.name, "' has no memory type with properties 0x", std::hex,
         required);
  }
  return fallback;
}

}  // namespace floatllm::vulkan
