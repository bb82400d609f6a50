// GPT-2's byte-level alphabet: every byte is written as one printable character, so byte-level
// BPE vocabularies (GPT-2, Llama 3, Qwen, ...) store raw bytes as text. Printable Latin-1 bytes
// stand for themselves; the other 68 bytes take the code points 256, 257, ... in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm::byte_level {

namespace detail {

constexpr bool stands_for_itself(unsigned byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
}

constexpr std::array<char32_t, 256> make_byte_to_char() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (unsigned byte = 0; byte < 256; ++byte) {
    table[byte] = stands_for_itself(byte) ? char32_t(byte) : next++;
  }
  return table;
}

// The bytes behind code points 256, 257, ...: the ones that do not stand for themselves.
constexpr std::array<uint8_t, 68> make_remapped_bytes() {
  std::array<uint8_t, 68> table{};
  std::size_t next = 0;
  for (unsigned byte = 0; byte < 256; ++byte) {
    if (!stands_for_itself(byte)) table[next++] = static_cast<uint8_t>(byte);
  }
  return table;
}

inline constexpr std::array<uint8_t, 68> kRemappedBytes = make_remapped_bytes();

}  // namespace detail

inline constexpr std::array<char32_t, 256> kByteToChar = detail::make_byte_to_char();

// The byte a character of the alphabet stands for.
constexpr std::optional<uint8_t> char_to_byte(char32_t code) {
  if (code < 256) {
    if (detail::stands_for_itself(code)) return static_cast<uint8_t>(code);
    return std::nullopt;
  }
  if (code >= 256 + detail::kRemappedBytes.size()) return std::nullopt;
  return detail::kRemappedBytes[code - 256];
}

// Raw bytes written as the alphabet's characters.
inline std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes)
    utf8::append(out, kByteToChar[static_cast<unsigned char>(c)]);
  return out;
}

// The raw bytes a vocabulary string stands for, or nothing when it holds a character outside
// the alphabet (added tokens such as "<｜end▁of▁sentence｜>" are stored literally).
inline std::optional<std::string> decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    if (utf8::valid_sequence_at(text, at) == 0) return std::nullopt;
    const auto byte = char_to_byte(utf8::decode(text, at));
    if (!byte) return std::nullopt;
    out += static_cast<char>(*byte);
  }
  return out;
}

}  // namespace floatllm::byte_level
