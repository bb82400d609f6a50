// A compiled PCRE2 pattern in UTF + UCP mode (so \p{L}, \s and case-insensitive groups follow
// Unicode, as the Rust regex crate behind Hugging Face tokenizers does), JIT-compiled when the
// library supports it. Subjects must be valid UTF-8: the tokenizer checks its input once.
#pragma once

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "floatllm/core/error.hpp"

namespace floatllm {

class Regex {
 public:
  // `what` names the pattern's origin in error messages (a file and field).
  Regex(std::string_view pattern, std::string_view what) : pattern_(pattern) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    // DOLLAR_ENDONLY: `$` means the end of the piece, never "before a final newline".
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      fail(what, ": regex '", pattern, "' does not compile at offset ", error_offset, ": ",
           reinterpret_cast<const char*>(message));
    }
    code_ = std::shared_ptr<pcre2_code>(code, CodeDeleter{});
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }

  const std::string& pattern() const { return pattern_; }

  // Calls on_match(begin, end) for each successive non-overlapping match in `subject`, as
  // offsets into it. An empty match advances by one character, as other regex engines do.
  template <class OnMatch>
  void for_each_match(std::string_view subject, OnMatch&& on_match) const {
    MatchData data(pcre2_match_data_create_from_pattern(code_.get(), nullptr));
    if (!data) fail("out of memory allocating PCRE2 match data");
    const auto* bytes = reinterpret_cast<PCRE2_SPTR>(subject.data());
    std::size_t at = 0;
    while (at <= subject.size()) {
      const int result = jit_ ? pcre2_jit_match(code_.get(), bytes, subject.size(), at,
                                                PCRE2_NO_UTF_CHECK, data.get(), nullptr)
                              : pcre2_match(code_.get(), bytes, subject.size(), at,
                                            PCRE2_NO_UTF_CHECK, data.get(), nullptr);
      if (result == PCRE2_ERROR_NOMATCH) return;
      if (result < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(result, message, sizeof message);
        fail("regex '", pattern_, "' failed to match: ", reinterpret_cast<const char*>(message));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
      const std::size_t begin = ovector[0];
      const std::size_t end = ovector[1];
      if (end > begin) {
        on_match(begin, end);
        at = end;
      } else {
        if (end >= subject.size()) return;
        at = end + utf8_step(subject, end);
      }
    }
  }

 private:
  static std::size_t utf8_step(std::string_view text, std::size_t at) {
    std::size_t step = 1;
    while (at + step < text.size() && (static_cast<unsigned char>(text[at + step]) & 0xC0) == 0x80)
      ++step;
    return step;
  }

  struct CodeDeleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  };
  struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
  };
  using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

  std::string pattern_;
  std::shared_ptr<pcre2_code> code_;
  bool jit_ = false;
};

}  // namespace floatllm
