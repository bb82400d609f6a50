// libFuzzer target for the safetensors header parser: any input must either open or raise
// floatllm::Error, and an opened file must be safe to read in full.
#include <floatllm/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const floatllm::SafetensorsFile file({reinterpret_cast<const std::byte*>(data), size}, "fuzz");
    std::vector<float> first(1);
    for (const floatllm::SafetensorsTensor& tensor : file.tensors()) {
      if (tensor.byte_size() > 0) (void)tensor.data.back();
      if (tensor.element_count > 0 && (tensor.dtype == floatllm::SafetensorsDtype::F16 ||
                                       tensor.dtype == floatllm::SafetensorsDtype::F32)) {
        tensor.read_f32(tensor.element_count - 1, first);
      }
    }
    for (const auto& [key, value] : file.metadata())
      (void)(key.size() + value.size());
  } catch (const floatllm::Error&) {
  }
  return 0;
}
