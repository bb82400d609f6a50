// UTF-8 helpers the tokenizers share: validation with a byte offset for error messages, decoding
// one code point, and finding where a byte stream can be cut without splitting a character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace floatllm::utf8 {

// Length of the sequence a lead byte starts (1 to 4), or 0 for a continuation or invalid byte.
constexpr std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

constexpr bool is_continuation(unsigned char byte) {
  return (byte & 0xC0) == 0x80;
}

// Length of the well-formed sequence at `at` (Unicode's table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 when the bytes there are not one.
constexpr std::size_t valid_sequence_at(std::string_view text, std::size_t at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  const std::size_t length = sequence_length(lead);
  if (length == 0 || at + length > text.size()) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if (!is_continuation(static_cast<unsigned char>(text[at + i]))) return 0;
  }
  if (length >= 3) {
    const auto second = static_cast<unsigned char>(text[at + 1]);
    if (lead == 0xE0 && second < 0xA0) return 0;
    if (lead == 0xED && second >= 0xA0) return 0;
    if (lead == 0xF0 && second < 0x90) return 0;
    if (lead == 0xF4 && second >= 0x90) return 0;
  }
  return length;
}

// Offset of the first byte that does not begin a well-formed sequence, if any.
constexpr std::optional<std::size_t> first_invalid(std::string_view text) {
  std::size_t at = 0;
  while (at < text.size()) {
    if (static_cast<unsigned char>(text[at]) < 0x80) {
      ++at;
      continue;
    }
    const std::size_t length = valid_sequence_at(text, at);
    if (length == 0) return at;
    at += length;
  }
  return std::nullopt;
}

// Decodes the code point at `at` of valid UTF-8 and advances `at` past it.
constexpr char32_t decode(std::string_view text, std::size_t& at) {
  const auto lead = static_cast<unsigned char>(text[at]);
  const std::size_t length = sequence_length(lead);
  if (length <= 1) {
    ++at;
    return lead;
  }
  char32_t code = lead & (0x7F >> length);
  for (std::size_t i = 1; i < length && at + i < text.size(); ++i) {
    code = (code << 6) | (static_cast<unsigned char>(text[at + i]) & 0x3F);
  }
  at += length;
  return code;
}

inline void append(std::string& out, char32_t code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

inline std::string encode(char32_t code) {
  std::string out;
  append(out, code);
  return out;
}

// Bytes of one character starting at `at` (1 for invalid bytes, so callers always progress).
constexpr std::size_t char_length(std::string_view text, std::size_t at) {
  const std::size_t length = sequence_length(static_cast<unsigned char>(text[at]));
  if (length == 0 || at + length > text.size()) return 1;
  return length;
}

// How many leading bytes of `bytes` can be emitted now: everything except a trailing sequence
// that is still incomplete (a lead byte followed by fewer continuation bytes than it needs).
// Invalid bytes are not held back, so a stream never stalls on them.
constexpr std::size_t complete_prefix_length(std::string_view bytes) {
  const std::size_t size = bytes.size();
  const std::size_t lookback = size < 3 ? size : 3;
  for (std::size_t back = 1; back <= lookback; ++back) {
    const auto byte = static_cast<unsigned char>(bytes[size - back]);
    if (is_continuation(byte)) continue;
    const std::size_t needed = sequence_length(byte);
    return needed > back ? size - back : size;
  }
  return size;
}

}  // namespace floatllm::utf8
