// Splits a Jinja template into text and the tokens inside its {{ }}, {% %} tags, applying the
// whitespace rules on the way: `-` markers, and HF's trim_blocks / lstrip_blocks.
#pragma once

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm::jinja {

struct Location {
  int line = 1;
  int column = 1;
};

// An error in a template, located. Everything the interpreter reports is one of these.
class TemplateError : public Error {
 public:
  TemplateError(const std::string& message, Location where)
      : Error(concat("template line ", where.line, ", column ", where.column, ": ", message)),
        where_(where) {}
  Location where() const { return where_; }

 private:
  Location where_;
};

template <class... Parts>
[[noreturn]] void fail_at(Location where, Parts&&... parts) {
  throw TemplateError(concat(std::forward<Parts>(parts)...), where);
}

enum class TokenKind {
  Text,
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,
  String,
  Integer,
  Float,
  Operator,
  End,
};

struct Token {
  TokenKind kind;
  std::string text;  // text, name, decoded string literal or operator
  Location where;
  int64_t integer = 0;
  double number = 0;
};

struct LexerOptions {
  bool trim_blocks = true;    // drop the first newline after a block tag (HF's setting)
  bool lstrip_blocks = true;  // drop spaces and tabs before a block tag at the start of a line
  bool keep_trailing_newline = false;  // Jinja drops one newline at the very end by default
};

class Lexer {
 public:
  Lexer(std::string_view source, LexerOptions options) : source_(source), options_(options) {
    if (!options.keep_trailing_newline) {
      if (source_.ends_with("\r\n")) {
        source_.remove_suffix(2);
      } else if (source_.ends_with('\n')) {
        source_.remove_suffix(1);
      }
    }
    line_starts_.push_back(0);
    for (size_t i = 0; i < source_.size(); ++i)
      if (source_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> tokenize() {
    size_t pos = 0;
    bool strip_next_text = false;
    while (pos <= source_.size()) {
      const size_t tag = find_tag(pos);
      std::string_view text = source_.substr(pos, tag - pos);
      if (strip_next_text) text = trim_left(text);
      strip_next_text = false;
      if (tag < source_.size()) {
        const char kind = source_[tag + 1];
        const char marker = tag + 2 < source_.size() ? source_[tag + 2] : '\0';
        if (marker == '-') {
          text = trim_right(text);
        } else if (kind != '{' && marker != '+' && options_.lstrip_blocks) {
          size_t start = tag;
          while (start > pos && (source_[start - 1] == ' ' || source_[start - 1] == '\t'))
            --start;
          if (start == 0 || source_[start - 1] == '\n') text = text.substr(0, start - pos);
        }
      }
      if (!text.empty()) tokens_.push_back({TokenKind::Text, std::string(text), location_of(pos)});
      if (tag >= source_.size()) break;
      pos = lex_tag(tag, strip_next_text);
    }
    tokens_.push_back({TokenKind::End, "", location_of(source_.size())});
    return std::move(tokens_);
  }

 private:
  static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }
  static std::string_view trim_left(std::string_view s) {
    while (!s.empty() && is_space(s.front()))
      s.remove_prefix(1);
    return s;
  }
  static std::string_view trim_right(std::string_view s) {
    while (!s.empty() && is_space(s.back()))
      s.remove_suffix(1);
    return s;
  }

  Location location_of(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const auto line = static_cast<size_t>(it - line_starts_.begin());
    return {static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
  }

  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < source_.size(); ++i) {
      if (source_[i] == '{' &&
          (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#'))
        return i;
    }
    return source_.size();
  }

  size_t skip_newline_after_block(size_t pos) const {
    if (!options_.trim_blocks) return pos;
    if (source_.compare(pos, 1, "\n") == 0) return pos + 1;
    if (source_.compare(pos, 2, "\r\n") == 0) return pos + 2;
    return pos;
  }

  // Lexes the tag starting at `start`; returns the offset after it.
  size_t lex_tag(size_t start, bool& strip_next_text) {
    const char kind = source_[start + 1];
    size_t pos = start + 2;
    if (pos < source_.size() && (source_[pos] == '-' || source_[pos] == '+')) ++pos;
    if (kind == '#') {
      const size_t close = source_.find("#}", pos);
      if (close == std::string_view::npos) fail_at(location_of(start), "unterminated comment");
      strip_next_text = close > pos && source_[close - 1] == '-';
      return strip_next_text ? close + 2 : skip_newline_after_block(close + 2);
    }
    const bool block = kind == '%';
    const char closer = block ? '%' : '}';
    tokens_.push_back(
        {block ? TokenKind::BlockBegin : TokenKind::VariableBegin, "", location_of(start)});
    int depth = 0;
    for (;;) {
      while (pos < source_.size() && is_space(source_[pos]))
        ++pos;
      if (pos >= source_.size())
        fail_at(location_of(start), "unterminated '", block ? "{%" : "{{", "'");
      if (depth == 0) {
        const bool minus = source_[pos] == '-';
        const size_t at = minus ? pos + 1 : pos;
        if (at + 1 < source_.size() && source_[at] == closer && source_[at + 1] == '}') {
          tokens_.push_back(
              {block ? TokenKind::BlockEnd : TokenKind::VariableEnd, "", location_of(pos)});
          strip_next_text = minus;
          const size_t after = at + 2;
          return block && !minus ? skip_newline_after_block(after) : after;
        }
      }
      pos = lex_token(pos, depth);
    }
  }

  size_t lex_token(size_t pos, int& depth) {
    const Location where = location_of(pos);
    const char c = source_[pos];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos;
      while (end < source_.size() &&
             (std::isalnum(static_cast<unsigned char>(source_[end])) || source_[end] == '_'))
        ++end;
      tokens_.push_back({TokenKind::Name, std::string(source_.substr(pos, end - pos)), where});
      return end;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(pos, where);
    if (c == '\'' || c == '"') return lex_string(pos, where);
    static constexpr std::string_view two_char[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : two_char) {
      if (source_.compare(pos, 2, op) == 0) {
        tokens_.push_back({TokenKind::Operator, std::string(op), where});
        return pos + 2;
      }
    }
    if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) != std::string_view::npos) {
      if (c == '(' || c == '[' || c == '{') ++depth;
      if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
      tokens_.push_back({TokenKind::Operator, std::string(1, c), where});
      return pos + 1;
    }
    fail_at(where, "unexpected character '", std::string(1, c), "' in a tag");
  }

  size_t lex_number(size_t pos, Location where) {
    size_t end = pos;
    std::string digits;
    bool is_float = false;
    const auto take_digits = [&] {
      while (end < source_.size() &&
             (std::isdigit(static_cast<unsigned char>(source_[end])) || source_[end] == '_')) {
        if (source_[end] != '_') digits += source_[end];
        ++end;
      }
    };
    take_digits();
    if (end + 1 < source_.size() && source_[end] == '.' &&
        std::isdigit(static_cast<unsigned char>(source_[end + 1]))) {
      is_float = true;
      digits += '.';
      ++end;
      take_digits();
    }
    if (end < source_.size() && (source_[end] == 'e' || source_[end] == 'E')) {
      size_t exponent = end + 1;
      if (exponent < source_.size() && (source_[exponent] == '+' || source_[exponent] == '-'))
        ++exponent;
      if (exponent < source_.size() &&
          std::isdigit(static_cast<unsigned char>(source_[exponent]))) {
        is_float = true;
        digits += source_.substr(end, exponent - end);
        end = exponent;
        take_digits();
      }
    }
    Token token{is_float ? TokenKind::Float : TokenKind::Integer, digits, where};
    const char* first = digits.data();
    const char* last = digits.data() + digits.size();
    if (is_float) {
      const auto result = std::from_chars(first, last, token.number);
      if (result.ec != std::errc() || result.ptr != last)
        fail_at(where, "float literal '", digits, "' is out of range");
    } else {
      const auto result = std::from_chars(first, last, token.integer);
      if (result.ec != std::errc() || result.ptr != last)
        fail_at(where, "integer literal '", digits, "' does not fit in 64 bits");
    }
    tokens_.push_back(std::move(token));
    return end;
  }

  // Python string literal escapes; an unknown escape keeps its backslash, as Python does.
  size_t lex_string(size_t pos, Location where) {
    const char quote = source_[pos];
    std::string value;
    size_t i = pos + 1;
    const auto hex_value = [&](size_t at, size_t count) -> char32_t {
      if (at + count > source_.size()) fail_at(where, "truncated escape in a string literal");
      char32_t code = 0;
      for (size_t k = 0; k < count; ++k) {
        const char h = source_[at + k];
        int digit = -1;
        if (h >= '0' && h <= '9') digit = h - '0';
        if (h >= 'a' && h <= 'f') digit = h - 'a' + 10;
        if (h >= 'A' && h <= 'F') digit = h - 'A' + 10;
        if (digit < 0) fail_at(where, "bad hex digit in a string literal escape");
        code = code * 16 + static_cast<char32_t>(digit);
      }
      if (code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
        fail_at(where, "escape names no Unicode scalar value");
      return code;
    };
    for (;;) {
      if (i >= source_.size()) fail_at(where, "unterminated string literal");
      const char c = source_[i];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++i;
        continue;
      }
      if (i + 1 >= source_.size()) fail_at(where, "unterminated string literal");
      const char e = source_[i + 1];
      i += 2;
      switch (e) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case '0':
          value += '\0';
          break;
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case '\n':
          break;
        case 'x':
          utf8::append(value, hex_value(i, 2));
          i += 2;
          break;
        case 'u':
          utf8::append(value, hex_value(i, 4));
          i += 4;
          break;
        case 'U':
          utf8::append(value, hex_value(i, 8));
          i += 8;
          break;
        default:
          value += '\\';
          value += e;
      }
    }
    tokens_.push_back({TokenKind::String, std::move(value), where});
    return i + 1;
  }

  std::string_view source_;
  LexerOptions options_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace floatllm::jinja
