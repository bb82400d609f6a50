// A program of a floatllm user: include the umbrella header, open a GGUF, print a fact of it, and,
// when it links floatllm::vulkan, list the Vulkan devices through the backend's library.
#include <floatllm/floatllm.hpp>

#if defined(FLOATLLM_HAVE_VULKAN)
#include <floatllm/backend/vulkan/vulkan_backend.hpp>
#endif

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer MODEL.gguf\n";
    return 2;
  }
  try {
    const floatllm::GgufFile gguf(argv[1]);
    std::cout << gguf.get<std::string_view>("general.architecture") << ": " << gguf.tensors().size()
              << " tensors\n";
#if defined(FLOATLLM_HAVE_VULKAN)
    const auto devices = floatllm::vulkan::list_devices();
    std::cout << devices.size() << " Vulkan device(s)\n";
    for (const auto& device : devices)
      std::cout << "  " << device.index << ": " << device.name << " (" << device.type << ")\n";
#endif
    return gguf.tensors().empty() ? 1 : 0;
  } catch (const floatllm::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
