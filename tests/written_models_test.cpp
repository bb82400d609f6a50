// Models written by floatllm run in floatllm: stories260K quantized to Q8_0 still tells llama2.c's
// story, and synthetic models of each architecture load and give finite logits.
#include <gtest/gtest.h>
#include <floatllm/floatllm.hpp>

#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "floatllm-written-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::vector<int32_t> greedy_from_bos(const fs::path& path, int64_t steps) {
  const std::unique_ptr<Model> model = Model::open(path);
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  Session session(*model, tokenizer, {.context = 256, .kv_type = GgmlType::F32, .threads = 2});
  GenerationParams params;
  params.max_tokens = steps;
  params.sampling.temperature = 0.0f;
  return session.generate_tokens({1}, params, {}).tokens;
}

// Q8_0 perturbs each weight by at most 1/254 of its block's largest value; greedy decoding of
// this tiny trained model keeps the reference story for many tokens. The F32 run is the control.
TEST(WrittenModels, Stories260KInQ8_0StillTellsTheStory) {
  std::istringstream in(
      test::read_text(test::model_path("gguf/stories260K.greedy-from-bos-200steps.ids.txt")));
  std::vector<int32_t> expected;
  for (int32_t id; in >> id;)
    expected.push_back(id);
  ASSERT_EQ(expected.size(), 200u);

  TempDir dir;
  const GgufFile source(test::model_path("gguf/stories260K.gguf"));
  make_quantized_model(source, QuantMix::Q8_0).write(dir / "q8.gguf");
  const std::vector<int32_t> q8 = greedy_from_bos(dir / "q8.gguf", 200);
  std::size_t same = 0;
  while (same < q8.size() && same < expected.size() && q8[same] == expected[same])
    ++same;
  std::cout << "Q8_0 stories260K: first " << same << " of 200 greedy tokens match\n";
  EXPECT_GE(same, 40u);

  make_quantized_model(source, QuantMix::F32).write(dir / "f32.gguf");
  EXPECT_EQ(greedy_from_bos(dir / "f32.gguf", 200), expected);
}

// A small model of each synthetic family: the engine must accept its names, shapes and metadata.
TEST(WrittenModels, SyntheticModelsRun) {
  TempDir dir;
  for (const char* name : {"llama-3.2-1b", "qwen3-0.6b", "gemma-2-2b", "mixtral-8x7b"}) {
    SCOPED_TRACE(name);
    SyntheticModelSpec spec = synthetic_model(name);
    spec.block_count = 2;
    spec.embedding_length = 256;
    spec.head_count = 4;
    spec.head_count_kv = 2;
    spec.feed_forward_length = 256;
    const GgufFile vocab(test::model_path(std::string(default_vocab_file(spec.vocab))));
    const fs::path path = dir / (std::string(name) + ".gguf");
    make_synthetic_model(spec, QuantMix::Q8_0, vocab, {3, 2}).write(path);

    const std::unique_ptr<Model> model = Model::open(path);
    EXPECT_EQ(model->config().vocab_size, static_cast<int64_t>(spec.vocab_size));
    const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
    Session session(*model, tokenizer, {.context = 64, .threads = 2});
    const std::vector<int32_t> prompt{1, 2, 3, 4};
    const std::span<const float> logits = session.eval(prompt);
    ASSERT_EQ(logits.size(), spec.vocab_size);
    // Random weights of deviation 1/sqrt(fan_in) keep activations of order one: the logits are
    // finite and not all equal.
    float low = logits[0], high = logits[0];
    for (const float value : logits) {
      ASSERT_TRUE(std::isfinite(value));
      low = std::min(low, value);
      high = std::max(high, value);
    }
    EXPECT_GT(high - low, 1e-3f);
  }
}

}  // namespace
}  // namespace floatllm
