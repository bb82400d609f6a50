// Tokenizers from Hugging Face tokenizer.json files, round trips on multilingual text, special
// tokens, streaming decode, and clear errors for malformed or unsupported files.
#include <gtest/gtest.h>
#include <floatllm/io/gguf.hpp>
#include <floatllm/tokenizer/tokenizer.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "gguf_builder.hpp"
#include "test_support.hpp"
#include "vocab_vectors.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::read_expected_ids;
using test::split_cases;

const Tokenizer& llama3() {
  static const Tokenizer tokenizer =
      Tokenizer::from_json(test::model_path("tokenizers/llama3/tokenizer.json"),
                           test::model_path("tokenizers/llama3/tokenizer_config.json"));
  return tokenizer;
}

const Tokenizer& qwen3() {
  static const Tokenizer tokenizer =
      Tokenizer::from_json(test::model_path("tokenizers/qwen3/tokenizer.json"),
                           test::model_path("tokenizers/qwen3/tokenizer_config.json"));
  return tokenizer;
}

const Tokenizer& mistral() {
  static const Tokenizer tokenizer =
      Tokenizer::from_json(test::model_path("tokenizers/mistral-v0.1/tokenizer.json"),
                           test::model_path("tokenizers/mistral-v0.1/tokenizer_config.json"));
  return tokenizer;
}

void expect_vocab_vectors(const Tokenizer& tokenizer, const std::string& vocab_name) {
  const auto inputs = split_cases(
      test::read_text(test::model_path("llama.cpp-vocab/ggml-vocab-" + vocab_name + ".gguf.inp")));
  const auto expected =
      read_expected_ids(test::model_path("llama.cpp-vocab/ggml-vocab-" + vocab_name + ".gguf.out"));
  ASSERT_EQ(inputs.size(), 46u);
  ASSERT_EQ(expected.size(), 46u);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(tokenizer.encode(inputs[i], {.add_special = false, .parse_special = false}),
              expected[i])
        << vocab_name << " case " << i << " '" << inputs[i] << "'";
  }
}

// The MANIFEST checked these pairs with a port of transformers.js: 46/46 each.
TEST(TokenizerJson, Llama3ReproducesLlamaBpeVectors) {
  expect_vocab_vectors(llama3(), "llama-bpe");
}
TEST(TokenizerJson, Qwen3ReproducesQwen2Vectors) {
  expect_vocab_vectors(qwen3(), "qwen2");
}

TEST(TokenizerJson, Llama3SpecialTokensAndConfig) {
  const Tokenizer& t = llama3();
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_EQ(t.eos_id(), 128001);
  EXPECT_EQ(t.eot_id(), 128009);
  EXPECT_TRUE(t.is_end_of_generation(128001));
  EXPECT_TRUE(t.is_end_of_generation(128009));
  EXPECT_FALSE(t.is_end_of_generation(128000));
  EXPECT_TRUE(t.is_control(128000));
  ASSERT_TRUE(t.chat_template().has_value());
  EXPECT_NE(t.chat_template()->find("start_header_id"), std::string::npos);
  // Its post-processor is ByteLevel only and the config does not ask for BOS.
  EXPECT_FALSE(t.add_bos());

  const std::string text = "<|begin_of_text|>Hello<|eot_id|>";
  EXPECT_EQ(t.encode(text), (std::vector<int32_t>{128000, 9906, 128009}));
  const auto literal = t.encode(text, {.add_special = false, .parse_special = false});
  EXPECT_GT(literal.size(), 5u);
  EXPECT_EQ(std::count(literal.begin(), literal.end(), 128000), 0);
  EXPECT_EQ(t.decode(literal), text);
  EXPECT_EQ(t.decode(t.encode(text)), "Hello");
  EXPECT_EQ(t.decode(t.encode(text), /*render_special=*/true), text);
}

TEST(TokenizerJson, Qwen3SpecialTokensAndConfig) {
  const Tokenizer& t = qwen3();
  EXPECT_EQ(t.vocab_size(), 151669);
  EXPECT_FALSE(t.bos_id().has_value());
  EXPECT_EQ(t.eos_id(), 151645);
  EXPECT_EQ(t.pad_id(), 151643);
  EXPECT_TRUE(t.is_end_of_generation(151645));
  EXPECT_TRUE(t.is_end_of_generation(151643));
  EXPECT_EQ(t.encode("<|im_start|>user\nhi<|im_end|>"),
            (std::vector<int32_t>{151644, 872, 198, 6023, 151645}));
  ASSERT_TRUE(t.chat_template().has_value());
}

// SentencePiece BPE written as tokenizer.json: Prepend/Replace normalizers, byte fallback, a
// TemplateProcessing post-processor that adds <s>, and a decoder that strips the dummy prefix.
TEST(TokenizerJson, MistralSentencePieceStyle) {
  const Tokenizer& t = mistral();
  EXPECT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_TRUE(t.add_bos());
  // The MANIFEST's check that this vocab is Mistral's: "[INST]" -> 733 16289 28793.
  EXPECT_EQ(t.encode("[INST]", {.add_special = false}), (std::vector<int32_t>{733, 16289, 28793}));
  EXPECT_EQ(t.encode("[INST]").front(), 1);
  // A character outside the vocabulary falls back to its UTF-8 bytes (<0xF0> ... tokens).
  const auto ids = t.encode("\xF0\x9F\xA6\x99", {.add_special = false});
  ASSERT_EQ(ids.size(), 5u);  // "▁" then four byte tokens
  for (std::size_t i = 1; i < 5; ++i)
    EXPECT_EQ(t.type(ids[i]), TokenType::Byte);
}

const std::string kMultilingual =
    "Hello, world! The quick brown fox — naïve café, Straße, Ελληνικά, Русский текст.\n"
    "日本語のテキストと中文文本，한국어 텍스트。 العربية עברית हिन्दी ภาษาไทย\n"
    "Emoji: 😀👍🏽👨‍👩‍👧‍👦 🦙 ✓ ∑ ∞ ≠ "
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢\n"
    "Code:\tint main() { return x->y[3] != 0 && s == \"a\\tb\"; }  // comment\n"
    "    indented\n\n\n  \t  trailing spaces   \r\n"
    "Numbers 1234567890 3.14159 1e-9 0x1F; contractions: I'm, you're, it's, we'll, they'd.\n"
    "   ";

TEST(TokenizerJson, MultilingualRoundTrip) {
  for (const Tokenizer* t : {&llama3(), &qwen3(), &mistral()}) {
    SCOPED_TRACE(t->source());
    EXPECT_EQ(t->decode(t->encode(kMultilingual)), kMultilingual);
  }
  for (const Tokenizer* t : {&llama3(), &qwen3()}) {
    EXPECT_EQ(t->decode(t->encode(kMultilingual, {.add_special = false})), kMultilingual);
  }
  // Without BOS the ids are a continuation, so SentencePiece's prefix space stays (as in the
  // pieces llama.cpp prints while generating).
  EXPECT_EQ(mistral().decode(mistral().encode(kMultilingual, {.add_special = false})),
            " " + kMultilingual);
}

TEST(GgufTokenizer, MultilingualRoundTrip) {
  for (const char* file :
       {"llama.cpp-vocab/ggml-vocab-llama-spm.gguf", "llama.cpp-vocab/ggml-vocab-gpt-2.gguf",
        "llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf", "llama.cpp-vocab/ggml-vocab-falcon.gguf",
        "synthetic/tiny-qwen2-f32.gguf", "synthetic/tiny-llama-f32.gguf"}) {
    SCOPED_TRACE(file);
    const GgufFile gguf(test::model_path(file));
    const Tokenizer t = Tokenizer::from_gguf(gguf);
    EXPECT_EQ(t.decode(t.encode(kMultilingual)), kMultilingual);
  }
}

// The fast path (copying stretches no normal form changes) agrees with utf8proc on everything.
TEST(UnicodeNormalize, AgreesWithWholeTextNormalization) {
  const std::vector<std::string> texts = {
      kMultilingual,
      "e\xCC\x81 cafe\xCC\x81 A\xCC\x8A \xE2\x84\xAB \xEF\xAC\x81 \xE2\x84\xA6",  // e+acute, Å, ﬁ,
                                                                                  // Ω
      "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8 \xEA\xB0\x80\xE1\x86\xA8 \xED\x95\x9C",  // jamo, LV+T
      "\xD0\xB8\xCC\x86 \xE0\xA6\x95\xE0\xA7\x87\xE0\xA6\xBE q\xCC\xA3\xCC\x87 x\xCC\x87\xCC\xA3",
      "\xE3\x81\x8B\xE3\x82\x99 \xEF\xBD\xB6\xEF\xBE\x9E \xE2\x91\xA0 \xC2\xB2 \xEF\xBC\xA1",
      "\xCC\x81 leading mark, then \xE1\xBF\xBB and \xCD\xB4 \xE2\x80\xA6"};
  for (const std::string& text : texts) {
    for (UnicodeForm form :
         {UnicodeForm::NFC, UnicodeForm::NFD, UnicodeForm::NFKC, UnicodeForm::NFKD}) {
      EXPECT_EQ(unicode_normalize(text, form), normalizer_detail::normalize_all(text, form))
          << text << " form " << static_cast<int>(form);
    }
  }
}

TEST(StreamingDecoder, HoldsBackSplitCharacters) {
  const GgufFile gguf(test::model_path("llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
  const Tokenizer t = Tokenizer::from_gguf(gguf);
  // U+1F999 is not in the Llama 2 vocabulary: it becomes four byte tokens.
  const std::string text = "a \xF0\x9F\xA6\x99 b";
  const auto ids = t.encode(text);
  StreamingDecoder stream(t);
  std::string streamed;
  std::vector<std::string> emitted;
  for (int32_t id : ids) {
    emitted.push_back(stream.push(id));
    EXPECT_FALSE(utf8::first_invalid(emitted.back()).has_value()) << "split UTF-8 emitted";
    streamed += emitted.back();
  }
  streamed += stream.flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(std::count(emitted.begin(), emitted.end(), std::string()), 4)
      << "BOS and three held-back bytes emit nothing";
}

TEST(StreamingDecoder, FlushReturnsAnIncompleteTail) {
  const GgufFile gguf(test::model_path("llama.cpp-vocab/ggml-vocab-llama-spm.gguf"));
  const Tokenizer t = Tokenizer::from_gguf(gguf);
  StreamingDecoder stream(t);
  EXPECT_EQ(stream.push(3 + 0xE6), "");  // <0xE6>: the first of three bytes
  EXPECT_EQ(stream.flush(), "\xE6");
  EXPECT_EQ(stream.push(3 + 0x41), "A");
}

// --- errors ---------------------------------------------------------------------------------

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string json_error(const std::string& tokenizer_json, const std::string& config = "") {
  return error_of([&] { (void)tokenizer_spec_from_json_text(tokenizer_json, config, "t.json"); });
}

const std::string kModelOk =
    R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";

TEST(TokenizerJsonErrors, MalformedFilesNameTheProblem) {
  EXPECT_NE(json_error("{").find("t.json: not valid JSON"), std::string::npos);
  EXPECT_NE(json_error("[]").find("top level: is array, not an object"), std::string::npos);
  EXPECT_NE(json_error("{}").find("top level: has no 'model'"), std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "WordPiece", "vocab": {}}})")
                .find("unsupported tokenizer model 'WordPiece'"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}})")
                .find("model.vocab[\"a\"]: is string, not an integer"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": -4}, "merges": []}})")
                .find("token id -4 is out of range"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 99999999}, "merges": []}})")
                .find("out of range"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 5000}, "merges": []}})")
                .find("token id 5000 is far beyond the 1 tokens the file names"),
            std::string::npos);
  std::string nested = R"({"type": "NFC"})";
  for (int i = 0; i < 100; ++i)
    nested = R"({"type": "Sequence", "normalizers": [)" + nested + "]}";
  EXPECT_NE(json_error("{" + kModelOk + R"(, "normalizer": )" + nested + "}")
                .find("sequences nest deeper than 32"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})")
                .find("token id 0 is used twice"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["ab"]}})")
                .find("model.merges[0]: 'ab' is not two tokens"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}})")
                .find("model.merges[0]: is neither"),
            std::string::npos);
  EXPECT_NE(json_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}})")
                .find("model.vocab: is empty"),
            std::string::npos);
  EXPECT_NE(
      json_error(
          "{" + kModelOk +
          R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}})")
          .find("does not compile"),
      std::string::npos);
  EXPECT_NE(
      json_error(
          "{" + kModelOk +
          R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}})")
          .find("pre_tokenizer.behavior: unknown split behavior 'Sideways'"),
      std::string::npos);
  EXPECT_NE(json_error("{" + kModelOk + R"(, "normalizer": {"type": "BertNormalizer"}})")
                .find("normalizer: unsupported normalizer type 'BertNormalizer'"),
            std::string::npos);
  EXPECT_NE(json_error("{" + kModelOk + R"(, "decoder": {"type": "WordPiece"}})")
                .find("decoder: unsupported decoder type 'WordPiece'"),
            std::string::npos);
  EXPECT_NE(json_error("{" + kModelOk +
                       R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{}]}})")
                .find("pre_tokenizer.pretokenizers[0]: has no 'type'"),
            std::string::npos);
  EXPECT_NE(json_error("{" + kModelOk + R"(, "added_tokens": [{"id": 0, "content": "zz"}]})")
                .find("token id 0 is 'zz' but the vocabulary has 'a'"),
            std::string::npos);
  EXPECT_NE(json_error("{" + kModelOk + "}", R"({"bos_token": "<nope>"})")
                .find("bos_token: names unknown token '<nope>'"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              (void)Tokenizer::from_json("/nonexistent/tokenizer.json");
            }).find("cannot open '/nonexistent/tokenizer.json'"),
            std::string::npos);
}

TEST(TokenizerJsonErrors, AMinimalFileWorks) {
  const Tokenizer t(tokenizer_spec_from_json_text("{" + kModelOk + "}", "", "t.json"));
  EXPECT_EQ(t.encode("abab"), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(t.decode(std::vector<int32_t>{2, 0}), "aba");
  EXPECT_NE(error_of([&] {
              (void)t.decode(std::vector<int32_t>{3});
            }).find("token id 3 is outside the vocabulary of 3 tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { (void)t.encode("a\xFF"); }).find("not valid UTF-8 (byte 1 of 2)"),
            std::string::npos);
}

// The error from loading a tokenizer from a GGUF whose `kvs` metadata entries `write` puts.
std::string gguf_error(const std::function<void(test::GgufBuilder&)>& write, uint64_t kvs) {
  test::GgufBuilder b;
  b.header(0, kvs);
  write(b);
  return error_of([&] {
    const GgufFile gguf(std::span<const std::byte>(b.bytes()), "mem.gguf");
    (void)Tokenizer::from_gguf(gguf);
  });
}

constexpr uint32_t kString = 8, kArray = 9, kInt32 = 5, kFloat32 = 6;

void string_key(test::GgufBuilder& b, std::string_view key, std::string_view value) {
  b.key(key, kString).str(value);
}

void tokens_key(test::GgufBuilder& b, const std::vector<std::string>& tokens) {
  b.key("tokenizer.ggml.tokens", kArray).put<uint32_t>(kString).put<uint64_t>(tokens.size());
  for (const auto& token : tokens)
    b.str(token);
}

TEST(GgufTokenizerErrors, MalformedMetadataNamesTheKey) {
  EXPECT_NE(
      gguf_error([](test::GgufBuilder&) {}, 0).find("missing metadata key 'tokenizer.ggml.model'"),
      std::string::npos);
  EXPECT_NE(gguf_error([](test::GgufBuilder& b) { string_key(b, "tokenizer.ggml.model", "t5"); }, 1)
                .find("unsupported tokenizer model 't5'"),
            std::string::npos);
  EXPECT_NE(
      gguf_error([](test::GgufBuilder& b) { string_key(b, "tokenizer.ggml.model", "llama"); }, 1)
          .find("missing metadata key 'tokenizer.ggml.tokens'"),
      std::string::npos);
  EXPECT_NE(gguf_error(
                [](test::GgufBuilder& b) {
                  string_key(b, "tokenizer.ggml.model", "llama");
                  tokens_key(b, {"a", "b"});
                  b.key("tokenizer.ggml.scores", kArray).put<uint32_t>(kFloat32).put<uint64_t>(1);
                  b.put<float>(0.0f);
                },
                3)
                .find("'tokenizer.ggml.scores' has 1 entries for 2 tokens"),
            std::string::npos);
  EXPECT_NE(gguf_error(
                [](test::GgufBuilder& b) {
                  string_key(b, "tokenizer.ggml.model", "llama");
                  b.key("tokenizer.ggml.tokens", kArray).put<uint32_t>(kInt32).put<uint64_t>(1);
                  b.put<int32_t>(7);
                },
                2)
                .find("'tokenizer.ggml.tokens' is an array of int32, not of strings"),
            std::string::npos);
  EXPECT_NE(gguf_error(
                [](test::GgufBuilder& b) {
                  string_key(b, "tokenizer.ggml.model", "gpt2");
                  string_key(b, "tokenizer.ggml.pre", "klingon");
                  tokens_key(b, {"a", "b"});
                },
                3)
                .find("unsupported pre-tokenizer 'klingon'"),
            std::string::npos);
  EXPECT_NE(gguf_error(
                [](test::GgufBuilder& b) {
                  string_key(b, "tokenizer.ggml.model", "gpt2");
                  string_key(b, "tokenizer.ggml.pre", "gpt-2");
                  tokens_key(b, {"a", "b"});
                },
                3)
                .find("missing metadata key 'tokenizer.ggml.merges'"),
            std::string::npos);
  EXPECT_NE(gguf_error(
                [](test::GgufBuilder& b) {
                  string_key(b, "tokenizer.ggml.model", "gpt2");
                  string_key(b, "tokenizer.ggml.pre", "gpt-2");
                  tokens_key(b, {"a", "b"});
                  b.key("tokenizer.ggml.merges", kArray).put<uint32_t>(kString).put<uint64_t>(1);
                  b.str("ab");
                },
                4)
                .find("'tokenizer.ggml.merges' entry 0 ('ab') is not two tokens"),
            std::string::npos);
  EXPECT_NE(gguf_error(
                [](test::GgufBuilder& b) {
                  string_key(b, "tokenizer.ggml.model", "llama");
                  tokens_key(b, {"a"});
                  b.key("tokenizer.ggml.bos_token_id", kString).str("one");
                },
                3)
                .find("'tokenizer.ggml.bos_token_id' is string, not an integer token id"),
            std::string::npos);
}

TEST(GgufTokenizerErrors, BertIsUnsupported) {
  const GgufFile gguf(test::model_path("llama.cpp-vocab/ggml-vocab-bert-bge.gguf"));
  EXPECT_NE(error_of([&] {
              (void)Tokenizer::from_gguf(gguf);
            }).find("unsupported tokenizer model 'bert'"),
            std::string::npos);
}

// Llama 2's SentencePiece model is the vocabulary of ggml-vocab-llama-spm.gguf (converted from
// it by llama.cpp): it must reproduce the same vectors.
TEST(SentencePieceModel, Llama2ReproducesLlamaSpmVectors) {
  const Tokenizer t =
      Tokenizer::from_file(test::model_path("tokenizers/llama2-sentencepiece/tokenizer.model"));
  EXPECT_EQ(t.vocab_size(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.unk_id(), 0);
  EXPECT_TRUE(t.add_bos());
  expect_vocab_vectors(t, "llama-spm");
  EXPECT_EQ(t.decode(t.encode(kMultilingual)), kMultilingual);
}

TEST(SentencePieceModel, MalformedProtobufNamesTheProblem) {
  EXPECT_NE(error_of([] {
              (void)tokenizer_spec_from_sentencepiece(
                  "\x0A\x05"
                  "ab",
                  "m");
            })
                .find("m: SentencePiece model ModelProto at byte 2: length-delimited field runs "
                      "past the end"),
            std::string::npos);
  EXPECT_NE(
      error_of([] { (void)tokenizer_spec_from_sentencepiece("", "m"); }).find("holds no pieces"),
      std::string::npos);
  // One piece, trainer_spec with model_type 1 (unigram).
  EXPECT_NE(error_of([] {
              (void)tokenizer_spec_from_sentencepiece(std::string("\x0A\x03\x0A\x01"
                                                                  "a\x12\x02\x18\x01",
                                                                  9),
                                                      "m");
            }).find("unsupported SentencePiece model type 1"),
            std::string::npos);
}

}  // namespace
}  // namespace floatllm
