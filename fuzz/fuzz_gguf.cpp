// libFuzzer target for the GGUF parser: any input must either open or raise floatllm::Error, and
// an opened file must be safe to walk in full.
#include <floatllm/io/gguf.hpp>

#include <cstddef>
#include <cstdint>

namespace {

void walk(const floatllm::GgufValue& value) {
  if (value.type() == floatllm::GgufType::ARRAY) {
    for (const floatllm::GgufValue element : value.as_array())
      walk(element);
  } else if (value.type() == floatllm::GgufType::STRING) {
    (void)value.as_string().size();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const floatllm::GgufFile gguf({reinterpret_cast<const std::byte*>(data), size}, "fuzz");
    for (const auto& entry : gguf.metadata())
      walk(entry.value);
    for (const floatllm::GgufTensor& tensor : gguf.tensors()) {
      if (tensor.byte_size() > 0) (void)tensor.data.back();
    }
  } catch (const floatllm::Error&) {
  }
  return 0;
}
