// Bounds-checked little-endian reads from an untrusted byte span.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "floatllm/core/error.hpp"

namespace floatllm {

static_assert(std::endian::native == std::endian::little,
              "floatllm reads little-endian files with plain loads");

// Reads fields in order and reports, on any overrun, which field and at which byte offset it
// started. Every read goes through memcpy, so unaligned fields are fine.
class ByteReader {
 public:
  ByteReader(std::span<const std::byte> bytes, std::string source)
      : bytes_(bytes), source_(std::move(source)) {}

  template <class T>
  T read(std::string_view field) {
    static_assert(std::is_trivially_copyable_v<T>);
    require(sizeof(T), field);
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  // A length-prefixed string (uint64 length, then bytes); returns a view into the bytes.
  std::string_view read_string(std::string_view field) {
    const std::size_t start = pos_;
    const uint64_t length = read<uint64_t>(field);
    if (length > remaining()) {
      fail_at(start, field, ": string length ", length, " exceeds the ", remaining(),
              " bytes left in the file");
    }
    std::string_view text(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return text;
  }

  void skip(uint64_t count, std::string_view field) {
    require(count, field);
    pos_ += count;
  }

  void require(uint64_t count, std::string_view field) const {
    if (count > remaining()) {
      fail_at(pos_, field, ": needs ", count, " bytes but only ", remaining(),
              " remain (file truncated?)");
    }
  }

  template <class... Parts>
  [[noreturn]] void fail_at(std::size_t offset, std::string_view field, Parts&&... parts) const {
    fail(source_, ": ", field, " at byte offset ", offset, std::forward<Parts>(parts)...);
  }

  std::size_t position() const { return pos_; }
  void seek(std::size_t position) { pos_ = position; }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  std::size_t size() const { return bytes_.size(); }
  std::span<const std::byte> bytes() const { return bytes_; }
  const std::string& source() const { return source_; }

 private:
  std::span<const std::byte> bytes_;
  std::string source_;
  std::size_t pos_ = 0;
};

}  // namespace floatllm
