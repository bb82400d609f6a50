// Text normalization applied to each stretch of input between added tokens, before splitting:
// the Hugging Face normalizers that BPE models use (Prepend, Replace, Unicode normal forms,
// Lowercase, Strip). Unicode data comes from utf8proc.
#pragma once

#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/tokenizer/regex.hpp"
#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm {

enum class UnicodeForm { NFC, NFD, NFKC, NFKD };

namespace normalizer_detail {

inline std::string normalize_all(std::string_view text, UnicodeForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case UnicodeForm::NFC:
      options |= UTF8PROC_COMPOSE;
      break;
    case UnicodeForm::NFD:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case UnicodeForm::NFKC:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case UnicodeForm::NFKD:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* result = nullptr;
  const utf8proc_ssize_t length = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
      static_cast<utf8proc_ssize_t>(text.size()), &result, static_cast<utf8proc_option_t>(options));
  if (length < 0) fail("Unicode normalization failed: ", utf8proc_errmsg(length));
  std::string out(reinterpret_cast<const char*>(result), static_cast<std::size_t>(length));
  std::free(result);
  return out;
}

// Whether `code` is a starter that every normal form leaves alone and that cannot join the
// character before it: no combining class, no decomposition, not the second half of a
// composition (utf8proc marks those with comb_index >= 0x8000), and not a Hangul vowel or
// final consonant (composed algorithmically). Normalization never acts across such a character.
inline bool is_inert_starter(char32_t code, UnicodeForm form) {
  if (code < 0x80) return true;
  // Below U+0300 nothing joins a preceding character and NFC keeps every letter as it is.
  if (form == UnicodeForm::NFC && code < 0x300) return true;
  const bool decompose = form == UnicodeForm::NFD || form == UnicodeForm::NFKD;
  if ((code >= 0x1161 && code <= 0x1175) || (code >= 0x11A8 && code <= 0x11C2)) return false;
  if (decompose && code >= 0xAC00 && code <= 0xD7A3) return false;  // Hangul syllables
  const utf8proc_property_t* property = utf8proc_get_property(static_cast<utf8proc_int32_t>(code));
  return property->combining_class == 0 && property->decomp_seqindex == UINT16_MAX &&
         (property->comb_index == UINT16_MAX || property->comb_index < 0x8000);
}

}  // namespace normalizer_detail

// `text` in a Unicode normal form. Only the stretches around characters that normalization can
// change go through utf8proc; the rest (most text) is copied as is.
inline std::string unicode_normalize(std::string_view text, UnicodeForm form) {
  std::string out;
  out.reserve(text.size());
  std::size_t chunk = 0;
  bool dirty = false;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t start = at;
    const char32_t code = utf8::decode(text, at);
    if (!normalizer_detail::is_inert_starter(code, form)) {
      dirty = true;
      continue;
    }
    if (dirty) {
      out += normalizer_detail::normalize_all(text.substr(chunk, start - chunk), form);
      dirty = false;
    } else {
      out.append(text.substr(chunk, start - chunk));
    }
    chunk = start;
  }
  if (dirty) {
    out += normalizer_detail::normalize_all(text.substr(chunk), form);
  } else {
    out.append(text.substr(chunk));
  }
  return out;
}

inline std::string unicode_lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const char32_t code = utf8::decode(text, at);
    utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(code))));
  }
  return out;
}

inline bool unicode_is_whitespace(char32_t code) {
  if (code == ' ' || (code >= 0x09 && code <= 0x0D)) return true;
  const auto category = utf8proc_category(static_cast<utf8proc_int32_t>(code));
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL ||
         category == UTF8PROC_CATEGORY_ZP || code == 0x85;
}

struct NormalizerStep {
  enum class Kind { Prepend, Replace, ReplaceRegex, Unicode, Lowercase, Strip };
  Kind kind = Kind::Prepend;
  std::string text;     // Prepend: what to prepend; Replace: the literal to find
  std::string content;  // Replace: the replacement
  std::shared_ptr<const Regex> regex;
  UnicodeForm form = UnicodeForm::NFC;
  bool strip_left = false;
  bool strip_right = false;
};

class Normalizer {
 public:
  void add(NormalizerStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }

  std::string apply(std::string_view input) const {
    std::string text(input);
    for (const NormalizerStep& step : steps_) {
      switch (step.kind) {
        case NormalizerStep::Kind::Prepend:
          if (!text.empty()) text.insert(0, step.text);
          break;
        case NormalizerStep::Kind::Replace:
          text = replace_all(text, step.text, step.content);
          break;
        case NormalizerStep::Kind::ReplaceRegex:
          text = replace_regex(text, *step.regex, step.content);
          break;
        case NormalizerStep::Kind::Unicode:
          text = unicode_normalize(text, step.form);
          break;
        case NormalizerStep::Kind::Lowercase:
          text = unicode_lowercase(text);
          break;
        case NormalizerStep::Kind::Strip:
          text = strip(text, step.strip_left, step.strip_right);
          break;
      }
    }
    return text;
  }

  static std::string replace_all(std::string_view text, std::string_view from,
                                 std::string_view to) {
    if (from.empty()) return std::string(text);
    std::string out;
    out.reserve(text.size());
    std::size_t at = 0;
    for (std::size_t found; (found = text.find(from, at)) != std::string_view::npos;
         at = found + from.size()) {
      out.append(text.substr(at, found - at));
      out.append(to);
    }
    out.append(text.substr(at));
    return out;
  }

 private:
  static std::string replace_regex(std::string_view text, const Regex& regex, std::string_view to) {
    std::string out;
    std::size_t at = 0;
    regex.for_each_match(text, [&](std::size_t begin, std::size_t end) {
      out.append(text.substr(at, begin - at));
      out.append(to);
      at = end;
    });
    out.append(text.substr(at));
    return out;
  }

  static std::string strip(std::string_view text, bool left, bool right) {
    std::size_t begin = 0;
    std::size_t end = text.size();
    if (left) {
      while (begin < end) {
        std::size_t next = begin;
        if (!unicode_is_whitespace(utf8::decode(text, next))) break;
        begin = next;
      }
    }
    if (right) {
      while (end > begin) {
        std::size_t start = end - 1;
        while (start > begin && utf8::is_continuation(static_cast<unsigned char>(text[start])))
          --start;
        std::size_t next = start;
        if (!unicode_is_whitespace(utf8::decode(text, next))) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

  std::vector<NormalizerStep> steps_;
};

}  // namespace floatllm
