// libFuzzer target for the tokenizers. The first byte picks what the rest is:
//  - even: a tokenizer.json, which must load or raise floatllm::Error; a loaded one must encode
//    and decode sample text without crashing;
//  - odd: text for a fixed byte-level tokenizer (with a pre-tokenizer regex, a normalizer and
//    added tokens that strip whitespace), which must encode valid UTF-8, reject anything else
//    with floatllm::Error, decode what it encoded back to the text, and normalize it as utf8proc
//    does on the whole text.
#include <floatllm/tokenizer/tokenizer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

// A byte-level vocabulary of the 256 byte characters plus a few merges and added tokens.
std::string fixed_tokenizer_json() {
  std::string vocab;
  for (unsigned byte = 0; byte < 256; ++byte) {
    const std::string spelled =
        floatllm::byte_level::encode(std::string(1, static_cast<char>(byte)));
    std::string escaped;
    for (char c : spelled) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    vocab += "\"" + escaped + "\": " + std::to_string(byte) + ", ";
  }
  vocab += "\"ab\": 256, \"Ġa\": 257, \"Ġab\": 258";
  return R"({"model": {"type": "BPE", "vocab": {)" + vocab +
         R"(}, "merges": ["a b", "Ġ a", "Ġa b"]},
  "added_tokens": [
    {"id": 259, "content": "<|end|>", "special": true, "lstrip": true, "rstrip": true},
    {"id": 260, "content": "<tool>", "special": false, "single_word": true}],
  "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}]},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "(?i:'s|'t)|\\p{L}+|\\p{N}{1,3}|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated"},
    {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
  "decoder": {"type": "ByteLevel"}})";
}

const floatllm::Tokenizer& fixed_tokenizer() {
  static const floatllm::Tokenizer tokenizer(
      floatllm::tokenizer_spec_from_json_text(fixed_tokenizer_json(), "", "fixed"));
  return tokenizer;
}

void exercise(const floatllm::Tokenizer& tokenizer, std::string_view text) {
  const auto ids = tokenizer.encode(text);
  (void)tokenizer.decode(ids, true);
  floatllm::StreamingDecoder stream(tokenizer);
  for (int32_t id : ids)
    (void)stream.push(id);
  (void)stream.flush();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    try {
      const floatllm::Tokenizer tokenizer(
          floatllm::tokenizer_spec_from_json_text(input, "", "fuzz.json"));
      exercise(tokenizer, "Hello, world! 123 \xE6\x97\xA5\xE6\x9C\xAC <s> \xF0\x9F\x98\x80\n");
    } catch (const floatllm::Error&) {
    }
    return 0;
  }
  const floatllm::Tokenizer& tokenizer = fixed_tokenizer();
  const bool valid = !floatllm::utf8::first_invalid(input).has_value();
  try {
    const auto ids = tokenizer.encode(input, {.add_special = true, .parse_special = false});
    if (!valid) std::abort();  // invalid UTF-8 must be rejected
    // Without special-token parsing, and NFC-stable input, the byte-level vocabulary is lossless.
    if (floatllm::unicode_normalize(input, floatllm::UnicodeForm::NFC) == input &&
        tokenizer.decode(ids) != input) {
      std::abort();
    }
    exercise(tokenizer, input);
    // The normalizer's fast path must agree with normalizing the whole text.
    for (auto form : {floatllm::UnicodeForm::NFC, floatllm::UnicodeForm::NFD,
                      floatllm::UnicodeForm::NFKC, floatllm::UnicodeForm::NFKD}) {
      if (floatllm::unicode_normalize(input, form) !=
          floatllm::normalizer_detail::normalize_all(input, form)) {
        std::abort();
      }
    }
  } catch (const floatllm::Error&) {
    if (valid) std::abort();
  }
  return 0;
}
