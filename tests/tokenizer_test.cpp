// Tokenizers against vectors made by other engines: llama.cpp's test-tokenizer-0 inputs and
// expected ids (made with Hugging Face tokenizers), llama.cpp's prompt tokens and greedy text in
// the reference files, and the stories260K vocabulary.
#include <gtest/gtest.h>
#include <floatllm/io/gguf.hpp>
#include <floatllm/tokenizer/tokenizer.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "vocab_vectors.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::read_expected_ids;
using test::split_cases;

std::string describe(const std::vector<int32_t>& ids) {
  std::string out;
  for (int32_t id : ids)
    out += std::to_string(id) + " ";
  return out;
}

// Checks every .inp case of `vocab_name` against its .out with `tokenizer`, without special
// tokens (as llama.cpp's test-tokenizer-0 and Hugging Face's add_special_tokens=False do).
void expect_vocab_vectors(const Tokenizer& tokenizer, const std::string& vocab_name) {
  const auto inputs = split_cases(
      test::read_text(test::model_path("llama.cpp-vocab/ggml-vocab-" + vocab_name + ".gguf.inp")));
  const auto expected =
      read_expected_ids(test::model_path("llama.cpp-vocab/ggml-vocab-" + vocab_name + ".gguf.out"));
  ASSERT_EQ(inputs.size(), expected.size()) << vocab_name;
  ASSERT_EQ(inputs.size(), 46u) << vocab_name;
  int failures = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const auto ids = tokenizer.encode(inputs[i], {.add_special = false, .parse_special = false});
    EXPECT_EQ(ids, expected[i]) << vocab_name << " case " << i << " '" << inputs[i]
                                << "'\n got:      " << describe(ids)
                                << "\n expected: " << describe(expected[i]);
    failures += ids != expected[i];
  }
  EXPECT_EQ(failures, 0) << vocab_name;
}

class GgufVocabTest : public testing::TestWithParam<std::string> {};

TEST_P(GgufVocabTest, MatchesExpectedIds) {
  const GgufFile gguf(test::model_path("llama.cpp-vocab/ggml-vocab-" + GetParam() + ".gguf"));
  expect_vocab_vectors(Tokenizer::from_gguf(gguf), GetParam());
}

// Every vocabulary in llama.cpp-vocab with both a GGUF and .inp/.out, except bert-bge (WordPiece,
// unsupported: see UnsupportedModels).
INSTANTIATE_TEST_SUITE_P(LlamaCppVocab, GgufVocabTest,
                         testing::Values("llama-spm", "phi-3", "deepseek-coder", "deepseek-llm",
                                         "falcon", "gpt-2", "mpt", "refact", "starcoder"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

TEST(GgufVocab, LlamaBpeAgainstTheLlama3VocabOfTinyLlama3) {
  const GgufFile gguf(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  expect_vocab_vectors(Tokenizer::from_gguf(gguf), "llama-bpe");
}

std::string unhex(const std::string& hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

// One tokenizer per model file: many reference files share a model.
const Tokenizer& tokenizer_for(const fs::path& gguf_path) {
  static std::map<fs::path, std::unique_ptr<Tokenizer>> cache;
  auto& slot = cache[gguf_path];
  if (!slot) {
    const GgufFile gguf(gguf_path);
    slot = std::make_unique<Tokenizer>(Tokenizer::from_gguf(gguf));
  }
  return *slot;
}

std::vector<fs::path> reference_files() {
  std::vector<fs::path> files;
  for (const char* folder : {"synthetic", "gguf"}) {
    for (const auto& entry : fs::directory_iterator(test::models_dir() / folder)) {
      if (entry.path().string().ends_with(".ref.json")) files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// llama.cpp's prompt tokens (add_special and parse_special on), their pieces as llama.cpp prints
// them (control tokens as their text), and llama.cpp's text of the greedy continuation.
TEST(ReferenceFiles, PromptTokensPiecesAndGreedyTextMatchLlamaCpp) {
  const auto files = reference_files();
  ASSERT_EQ(files.size(), 74u);
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    const auto ref = nlohmann::json::parse(test::read_text(file));
    const auto& tokenizer = tokenizer_for(file.parent_path() / ref.at("model").get<std::string>());
    ASSERT_TRUE(ref.at("add_special").get<bool>());
    ASSERT_TRUE(ref.at("parse_special").get<bool>());
    const auto prompt = ref.at("prompt").get<std::string>();
    const auto expected = ref.at("tokens").get<std::vector<int32_t>>();
    const auto ids = tokenizer.encode(prompt);
    EXPECT_EQ(ids, expected) << "got " << describe(ids) << "\nexpected " << describe(expected);
    EXPECT_EQ(ref.at("n_vocab").get<int32_t>(), tokenizer.vocab_size());

    const auto pieces = ref.at("pieces").get<std::vector<std::string>>();
    ASSERT_EQ(pieces.size(), expected.size());
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const int32_t id = expected[i];
      const std::string piece = tokenizer.is_control(id) ? std::string(tokenizer.token_to_piece(id))
                                                         : tokenizer.token_text(id);
      EXPECT_EQ(piece, pieces[i]) << "token " << id;
    }

    const auto& greedy = ref.at("greedy");
    const auto greedy_ids = greedy.at("tokens").get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer.decode(greedy_ids), unhex(greedy.at("text_hex").get<std::string>()));
  }
}

// llama2.c's expected greedy output of stories260K, decoded from the ids of the same run: the
// text starts after BOS, whose following piece loses its leading space.
TEST(Stories260K, GreedyIdsDecodeToLlama2cExpectedText) {
  const auto& tokenizer = tokenizer_for(test::model_path("gguf/stories260K.gguf"));
  std::vector<int32_t> ids{*tokenizer.bos_id()};
  std::istringstream in(
      test::read_text(test::model_path("gguf/stories260K.greedy-from-bos-200steps.ids.txt")));
  for (int32_t id; in >> id;)
    ids.push_back(id);
  ASSERT_EQ(ids.size(), 201u);
  const std::string expected =
      test::read_text(test::model_path("gguf/stories260K.greedy-from-bos-200steps.expected.txt"));
  EXPECT_EQ(tokenizer.decode(ids), expected);

  StreamingDecoder stream(tokenizer);
  std::string streamed;
  for (int32_t id : ids)
    streamed += stream.push(id);
  streamed += stream.flush();
  EXPECT_EQ(streamed, expected);
}

TEST(Stories260K, VocabularyRoundTrip) {
  const auto& tokenizer = tokenizer_for(test::model_path("gguf/stories260K.gguf"));
  ASSERT_EQ(tokenizer.vocab_size(), 512);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  EXPECT_EQ(tokenizer.eos_id(), 2);
  EXPECT_EQ(tokenizer.unk_id(), 0);
  EXPECT_TRUE(tokenizer.add_bos());
  EXPECT_FALSE(tokenizer.add_eos());
  EXPECT_TRUE(tokenizer.is_end_of_generation(2));
  EXPECT_FALSE(tokenizer.is_end_of_generation(1));
  std::string all;
  int normal = 0;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    const TokenType type = tokenizer.type(id);
    const std::string text = tokenizer.token_text(id);
    const std::string_view piece = tokenizer.token_to_piece(id);
    if (type == TokenType::Byte) {
      // "<0xAB>" stands for the byte 0xAB.
      ASSERT_EQ(text.size(), 1u);
      EXPECT_EQ(static_cast<unsigned char>(text[0]),
                std::stoi(std::string(piece.substr(3, 2)), nullptr, 16));
      continue;
    }
    if (type != TokenType::Normal) {
      EXPECT_TRUE(text.empty()) << id;
      continue;
    }
    ++normal;
    all += text;
    // A word-initial piece ("▁Once") is what the text after BOS encodes to.
    if (piece.starts_with("\xE2\x96\x81") && piece.size() > 3) {
      const std::string word = text.substr(1);
      EXPECT_EQ(tokenizer.encode(word), (std::vector<int32_t>{1, id})) << "'" << word << "'";
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(word)), word);
    }
  }
  EXPECT_EQ(normal, 253);
  // The whole vocabulary's text, concatenated, survives encode + decode.
  const auto ids = tokenizer.encode(all);
  EXPECT_EQ(tokenizer.decode(ids), all);
}

// encode is const and shares a word cache: threads encoding at once get what one thread gets.
TEST(Concurrency, ThreadsEncodingTogetherAgree) {
  const auto& tokenizer = tokenizer_for(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  std::vector<std::string> texts;
  for (int i = 0; i < 8; ++i) {
    std::string text;
    for (int k = 0; k < 400; ++k)
      text += " word" + std::to_string((k * 7 + i) % 97) + " тест 日本";
    texts.push_back(std::move(text));
  }
  std::vector<std::vector<int32_t>> expected;
  for (const auto& text : texts)
    expected.push_back(tokenizer.encode(text));
  std::vector<std::vector<std::vector<int32_t>>> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round) {
        for (const auto& text : texts)
          got[t].push_back(tokenizer.encode(text));
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  for (const auto& results : got) {
    ASSERT_EQ(results.size(), 3 * texts.size());
    for (std::size_t i = 0; i < results.size(); ++i)
      EXPECT_EQ(results[i], expected[i % texts.size()]);
  }
}

}  // namespace
}  // namespace floatllm
