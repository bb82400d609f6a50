// Models written by floatllm run in floatllm: stories260K quantized to Q8_0 still tells llama2.c's
// story, and synthetic models of each architecture load and give finite logits.
#include <gtest/gtest.h>
#include <floatllm/floatllm.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

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

// Teacher-forced on llama2.c's story, the Q4_K_M file floatllm writes (Q5_0/Q8_0 fallbacks
// here: stories260K's rows of 64 are not whole super-blocks) predicts nearly the same next tokens
// as the F32 original, and its perplexity on the story is close. (llama2.c's story is F32's own
// greedy output, so F32's perplexity on it is low by construction.)
TEST(WrittenModels, Stories260KInQ4_K_MStaysCloseToF32) {
  std::istringstream in(
      test::read_text(test::model_path("gguf/stories260K.greedy-from-bos-200steps.ids.txt")));
  std::vector<int32_t> story{1};
  for (int32_t id; in >> id;)
    story.push_back(id);

  TempDir dir;
  const GgufFile source(test::model_path("gguf/stories260K.gguf"));
  make_quantized_model(source, QuantMix::Q4_K_M).write(dir / "q4.gguf");
  const auto run = [&](const fs::path& path) {
    const std::unique_ptr<Model> model = Model::open(path);
    const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
    Session session(*model, tokenizer, {.context = 256, .kv_type = GgmlType::F32, .threads = 2});
    std::vector<std::vector<float>> all;
    for (std::size_t i = 0; i + 1 < story.size(); ++i) {
      const auto logits = session.eval(std::span<const int32_t>(&story[i], 1));
      all.emplace_back(logits.begin(), logits.end());
    }
    return all;
  };
  const auto reference = run(test::model_path("gguf/stories260K.gguf"));
  const auto quantized = run(dir / "q4.gguf");
  int agree = 0;
  double nll_reference = 0, nll_quantized = 0;
  const auto log_softmax_at = [](const std::vector<float>& logits, int32_t id) {
    const float top = *std::max_element(logits.begin(), logits.end());
    double sum = 0;
    for (float v : logits)
      sum += std::exp(double{v} - top);
    return double{logits[static_cast<std::size_t>(id)]} - top - std::log(sum);
  };
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const auto argmax = [](const std::vector<float>& v) {
      return std::max_element(v.begin(), v.end()) - v.begin();
    };
    agree += argmax(reference[i]) == argmax(quantized[i]);
    nll_reference -= log_softmax_at(reference[i], story[i + 1]);
    nll_quantized -= log_softmax_at(quantized[i], story[i + 1]);
  }
  const double n = static_cast<double>(reference.size());
  const double ppl_reference = std::exp(nll_reference / n);
  const double ppl_quantized = std::exp(nll_quantized / n);
  std::cout << "stories260K Q4_K_M vs F32 on the reference story: top-1 agreement " << agree << "/"
            << reference.size() << ", perplexity " << ppl_quantized << " vs " << ppl_reference
            << "\n";
  // Measured: 194/200 and 1.616 vs 1.605 (+0.7%). Bounds leave room for kernel changes while
  // still catching a broken type choice or block layout, which costs far more.
  EXPECT_GE(agree, 180);
  EXPECT_LT(ppl_quantized, ppl_reference * 1.05);
  EXPECT_LT(ppl_reference, 2.0);  // the control: F32 predicts its own greedy story well
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
