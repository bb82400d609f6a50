// floatllm devices: the Vulkan devices that --device can choose (docs/vulkan.md).
#include <cstdio>

#include "commands.hpp"

#if defined(FLOATLLM_HAVE_VULKAN)
#include <floatllm/backend/vulkan/vulkan_backend.hpp>
#endif

namespace floatllm::cli {
namespace {

Command add_devices(CLI::App& app) {
  app.add_subcommand("devices", "List the Vulkan devices that can run layers (--gpu-layers)");
  return [] {
#if defined(FLOATLLM_HAVE_VULKAN)
    const auto devices = vulkan::list_devices();
    if (devices.empty()) {
      std::printf("no Vulkan device (install a driver, e.g. Debian's mesa-vulkan-drivers)\n");
      return 1;
    }
    for (const vulkan::DeviceInfo& d : devices) {
      std::printf("%d: %s (%s, %.0f MiB)\n", d.index, d.name.c_str(), d.type.c_str(),
                  static_cast<double>(d.memory_bytes) / (1 << 20));
    }
    return 0;
#else
    std::printf("this floatllm was built without the Vulkan backend (-DFLOATLLM_VULKAN=ON)\n");
    return 1;
#endif
  };
}

const CommandRegistration registration("devices", add_devices);

}  // namespace
}  // namespace floatllm::cli
