// Writes GGUF bytes field by field, so tests can build valid files and precisely broken ones.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace floatllm::test {

class GgufBuilder {
 public:
  template <class T>
  GgufBuilder& put(T value) {
    const auto at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
    return *this;
  }
  GgufBuilder& str(std::string_view text) {
    put<uint64_t>(text.size());
    for (char c : text)
      bytes_.push_back(static_cast<std::byte>(c));
    return *this;
  }
  GgufBuilder& header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    return put<std::array<char, 4>>({'G', 'G', 'U', 'F'})
        .put<uint32_t>(version)
        .put<uint64_t>(tensors)
        .put<uint64_t>(kvs);
  }
  // A key with a value type id; the caller then puts the value.
  GgufBuilder& key(std::string_view name, uint32_t type) { return str(name).put<uint32_t>(type); }
  GgufBuilder& tensor_info(std::string_view name, std::vector<uint64_t> ne, uint32_t type,
                           uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
    for (uint64_t n : ne)
      put<uint64_t>(n);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  GgufBuilder& pad_to(std::size_t alignment) {
    while (bytes_.size() % alignment != 0)
      bytes_.push_back(std::byte{0});
    return *this;
  }
  GgufBuilder& zeros(std::size_t count) {
    bytes_.resize(bytes_.size() + count);
    return *this;
  }
  std::vector<std::byte>& bytes() { return bytes_; }
  std::size_t size() const { return bytes_.size(); }

 private:
  std::vector<std::byte> bytes_;
};

}  // namespace floatllm::test
