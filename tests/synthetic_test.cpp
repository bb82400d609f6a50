// Synthetic models: the shapes of the real models they imitate (parameter counts as published),
// files that GgufFile reads back with the planned types, reproducible weights with the intended
// statistics, and tokenizer sections padded or cut to the model's vocabulary.
#include <gtest/gtest.h>
#include <floatllm/model/synthetic.hpp>
#include <floatllm/quant/dequantize.hpp>

#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

uint64_t parameters(const GgufWriter& writer) {
  uint64_t total = 0;
  for (const auto& tensor : writer.tensors()) {
    if (tensor.name == "rope_freqs.weight") continue;  // a GGUF-only table, not a parameter
    uint64_t elements = 1;
    for (uint32_t d = 0; d < tensor.n_dims; ++d)
      elements *= tensor.ne[d];
    total += elements;
  }
  return total;
}

GgufFile vocab_for(const SyntheticModelSpec& spec) {
  return GgufFile(test::model_path(std::string(default_vocab_file(spec.vocab))));
}

// Published parameter counts of the real checkpoints (Hugging Face model cards / safetensors).
TEST(Synthetic, ShapesGiveThePublishedParameterCounts) {
  const std::map<std::string, uint64_t> published{
      {"llama-3.2-1b", 1'235'814'400}, {"llama-1b-bench", 1'235'814'400},
      {"llama-3.1-8b", 8'030'261'248}, {"qwen3-0.6b", 596'049'920},
      {"gemma-2-2b", 2'614'341'888},   {"mixtral-8x7b", 46'702'792'704},
  };
  for (const auto& [name, count] : published) {
    const SyntheticModelSpec spec = synthetic_model(name);
    const GgufWriter writer = make_synthetic_model(spec, QuantMix::Q4_K_M, vocab_for(spec), {});
    EXPECT_EQ(parameters(writer), count) << name;
  }
  for (const SyntheticModelSpec& spec : synthetic_models()) {
    if (!spec.name.ends_with("-mini")) continue;
    const SyntheticModelSpec full = synthetic_model(spec.name.substr(0, spec.name.size() - 5));
    const GgufWriter mini = make_synthetic_model(spec, QuantMix::F16, vocab_for(spec), {});
    const GgufWriter big = make_synthetic_model(full, QuantMix::F16, vocab_for(full), {});
    // Every layer weight is a quarter; embeddings halve (the vocabulary stays).
    const double ratio =
        static_cast<double>(parameters(big)) / static_cast<double>(parameters(mini));
    EXPECT_GT(ratio, 2.9) << spec.name;
    EXPECT_LT(ratio, 4.01) << spec.name;
  }
  EXPECT_THROW(synthetic_model("llama-9000"), Error);
}

TEST(Synthetic, TensorNamesFollowLlamaCpp) {
  const SyntheticModelSpec gemma = synthetic_model("gemma-2-2b");
  const auto tensors = synthetic_tensors(gemma);
  EXPECT_EQ(tensors.size(), 1u + 26u * 11u + 1u);  // 11 per layer with the extra norms
  std::unordered_set<std::string> names;
  for (const auto& tensor : tensors)
    names.insert(tensor.name);
  for (const char* name : {"token_embd.weight", "output_norm.weight", "blk.25.post_ffw_norm.weight",
                           "blk.0.post_attention_norm.weight", "blk.3.attn_output.weight"}) {
    EXPECT_TRUE(names.contains(name)) << name;
  }
  EXPECT_FALSE(names.contains("output.weight"));

  const auto qwen = synthetic_tensors(synthetic_model("qwen3-0.6b"));
  const auto q_norm = std::find_if(
      qwen.begin(), qwen.end(), [](const auto& t) { return t.name == "blk.7.attn_q_norm.weight"; });
  ASSERT_NE(q_norm, qwen.end());
  EXPECT_EQ(q_norm->ne, std::vector<uint64_t>{128});
  const auto q = std::find_if(qwen.begin(), qwen.end(),
                              [](const auto& t) { return t.name == "blk.7.attn_q.weight"; });
  EXPECT_EQ(q->ne, (std::vector<uint64_t>{1024, 2048}));

  const auto mixtral = synthetic_tensors(synthetic_model("mixtral-8x7b"));
  const auto down = std::find_if(mixtral.begin(), mixtral.end(), [](const auto& t) {
    return t.name == "blk.31.ffn_down_exps.weight";
  });
  ASSERT_NE(down, mixtral.end());
  EXPECT_EQ(down->ne, (std::vector<uint64_t>{14336, 4096, 8}));
}

TEST(Synthetic, Llama3RopeFactors) {
  const auto factors = llama3_rope_factors(synthetic_model("llama-3.2-1b"));
  ASSERT_EQ(factors.size(), 32u);
  EXPECT_EQ(factors.front(), 1.0f);  // wavelength 2*pi, far below 8192/4
  EXPECT_EQ(factors.back(), 32.0f);  // wavelength ~ 2*pi*500000^(62/64) > 8192
  for (std::size_t i = 1; i < factors.size(); ++i)
    EXPECT_GE(factors[i], factors[i - 1]);
  // In the band between 2048 and 8192 the factor interpolates: 1 < f < 32 somewhere.
  EXPECT_TRUE(std::any_of(factors.begin(), factors.end(), [](float f) { return f > 1 && f < 32; }));
}

// A small model with the real Llama 3 vocabulary cut to 1000 tokens.
SyntheticModelSpec small_llama() {
  SyntheticModelSpec spec = synthetic_model("llama-3.2-1b");
  spec.name = "small";
  spec.vocab_size = 1000;
  spec.embedding_length = 256;
  spec.block_count = 3;
  spec.head_count = 4;
  spec.head_count_kv = 2;
  spec.feed_forward_length = 512;
  return spec;
}

TEST(Synthetic, WrittenModelReadsBackAsPlanned) {
  TempDir dir;
  const SyntheticModelSpec spec = small_llama();
  const GgufFile vocab = vocab_for(spec);
  const GgufWriter writer = make_synthetic_model(spec, QuantMix::Q4_K_M, vocab, {7, 2});
  writer.write(dir / "small.gguf");
  const GgufFile gguf(dir / "small.gguf");

  EXPECT_EQ(gguf.get<std::string_view>("general.architecture"), "llama");
  EXPECT_EQ(gguf.get<uint32_t>("general.file_type"), 15u);
  EXPECT_EQ(gguf.get<uint32_t>("llama.block_count"), 3u);
  EXPECT_EQ(gguf.get<uint32_t>("llama.embedding_length"), 256u);
  EXPECT_EQ(gguf.get<uint32_t>("llama.vocab_size"), 1000u);
  EXPECT_EQ(gguf.get<uint32_t>("llama.attention.head_count_kv"), 2u);
  EXPECT_EQ(gguf.get<float>("llama.rope.freq_base"), 500000.0f);
  ASSERT_EQ(gguf.tensors().size(), writer.tensors().size());
  for (std::size_t i = 0; i < writer.tensors().size(); ++i) {
    EXPECT_EQ(gguf.tensors()[i].name, writer.tensors()[i].name);
    EXPECT_EQ(gguf.tensors()[i].type, writer.tensors()[i].type) << writer.tensors()[i].name;
  }
  EXPECT_EQ(gguf.tensor("token_embd.weight").type, GgmlType::Q6_K);  // tied: the output
  EXPECT_EQ(gguf.tensor("blk.0.attn_q.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(gguf.tensor("blk.0.ffn_down.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(gguf.tensor("blk.2.ffn_down.weight").type, GgmlType::Q6_K);  // the last eighth
  EXPECT_EQ(gguf.find_tensor("output.weight"), nullptr);

  // Cut vocabulary: 1000 tokens, merges only among them, special ids beyond it dropped.
  const auto tokens = gguf.get_array("tokenizer.ggml.tokens").strings();
  ASSERT_EQ(tokens.size(), 1000u);
  const auto source_tokens = vocab.get_array("tokenizer.ggml.tokens").strings();
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), source_tokens.begin()));
  EXPECT_EQ(gguf.get_array("tokenizer.ggml.token_type").size(), 1000u);
  const std::unordered_set<std::string_view> known(tokens.begin(), tokens.end());
  const auto merges = gguf.get_array("tokenizer.ggml.merges").strings();
  EXPECT_GT(merges.size(), 100u);
  EXPECT_LT(merges.size(), vocab.get_array("tokenizer.ggml.merges").size());
  for (const std::string_view merge : merges) {
    const auto space = merge.find(' ');
    ASSERT_NE(space, std::string_view::npos);
    EXPECT_TRUE(known.contains(merge.substr(0, space))) << merge;
    EXPECT_TRUE(
        known.contains(std::string(merge.substr(0, space)) + std::string(merge.substr(space + 1))))
        << merge;
  }
  EXPECT_FALSE(gguf.contains("tokenizer.ggml.bos_token_id"));  // 128000 >= 1000
  EXPECT_EQ(gguf.get<std::string_view>("tokenizer.ggml.pre"), "llama-bpe");
}

// Mean and standard deviation of a dequantized tensor.
std::pair<double, double> moments(const GgufTensor& tensor) {
  std::vector<float> values(tensor.element_count);
  dequantize_row(tensor.type, tensor.data.data(), values.data(),
                 static_cast<int64_t>(tensor.element_count));
  double sum = 0, squares = 0;
  for (float v : values) {
    sum += v;
    squares += double{v} * v;
  }
  const double n = static_cast<double>(values.size());
  const double mean = sum / n;
  return {mean, std::sqrt(squares / n - mean * mean)};
}

TEST(Synthetic, WeightsHaveTheIntendedStatistics) {
  TempDir dir;
  const SyntheticModelSpec spec = small_llama();
  for (const QuantMix mix : {QuantMix::F32, QuantMix::BF16, QuantMix::Q8_0, QuantMix::Q4_K_M}) {
    SCOPED_TRACE(std::string(quant_mix_info(mix).name));
    make_synthetic_model(spec, mix, vocab_for(spec), {1, 2}).write(dir / "m.gguf");
    const GgufFile gguf(dir / "m.gguf");
    // 256 x 512 values of N(0, 1/256): the sample deviation is within 1% of 1/16; quantization
    // adds at most a few percent (4-bit K-quants) of error power.
    const auto [mean, sigma] = moments(gguf.tensor("blk.1.ffn_up.weight"));
    EXPECT_NEAR(mean, 0.0, 0.002);
    EXPECT_NEAR(sigma, 1.0 / 16.0, 0.05 / 16.0);
    const auto [down_mean, down_sigma] = moments(gguf.tensor("blk.1.ffn_down.weight"));
    EXPECT_NEAR(down_sigma, 1.0 / std::sqrt(512.0), 0.05 / std::sqrt(512.0));
    (void)down_mean;
    const auto [norm_mean, norm_sigma] = moments(gguf.tensor("blk.2.attn_norm.weight"));
    EXPECT_NEAR(norm_mean, 1.0, 0.01);
    EXPECT_NEAR(norm_sigma, 0.02, 0.005);
    const auto rope = gguf.tensor("rope_freqs.weight").as<float>();
    const auto expected = llama3_rope_factors(spec);
    EXPECT_TRUE(std::equal(rope.begin(), rope.end(), expected.begin(), expected.end()));
  }
}

TEST(Synthetic, SameSeedSameBytesWhateverTheThreads) {
  TempDir dir;
  const SyntheticModelSpec spec = small_llama();
  const GgufFile vocab = vocab_for(spec);
  make_synthetic_model(spec, QuantMix::Q4_0, vocab, {42, 1}).write(dir / "a.gguf");
  make_synthetic_model(spec, QuantMix::Q4_0, vocab, {42, 3}).write(dir / "b.gguf");
  make_synthetic_model(spec, QuantMix::Q4_0, vocab, {43, 2}).write(dir / "c.gguf");
  const auto a = test::read_bytes(dir / "a.gguf");
  EXPECT_EQ(a, test::read_bytes(dir / "b.gguf"));
  const auto c = test::read_bytes(dir / "c.gguf");
  ASSERT_EQ(a.size(), c.size());
  EXPECT_NE(a, c);
  // The same rows do not repeat within a tensor.
  const GgufFile gguf(dir / "a.gguf");
  const GgufTensor& up = gguf.tensor("blk.0.ffn_up.weight");
  EXPECT_NE(std::memcmp(up.data.data(), up.data.data() + up.row_bytes(), up.row_bytes()), 0);
}

TEST(Synthetic, SmallVocabulariesArePadded) {
  TempDir dir;
  SyntheticModelSpec spec = synthetic_model("gemma-2-2b-mini");
  spec.vocab_size = 600;  // the shared Gemma-style vocabulary has 500 tokens
  spec.block_count = 1;
  spec.embedding_length = 256;
  spec.feed_forward_length = 256;
  const GgufFile vocab = vocab_for(spec);
  ASSERT_EQ(vocab.get_array("tokenizer.ggml.tokens").size(), 500u);
  make_synthetic_model(spec, QuantMix::F16, vocab, {}).write(dir / "g.gguf");
  const GgufFile gguf(dir / "g.gguf");
  EXPECT_EQ(gguf.get<std::string_view>("general.architecture"), "gemma2");
  EXPECT_EQ(gguf.get<uint32_t>("gemma2.attention.sliding_window"), 4096u);
  EXPECT_EQ(gguf.get<float>("gemma2.final_logit_softcapping"), 30.0f);
  EXPECT_EQ(gguf.get<uint32_t>("gemma2.attention.key_length"), 256u);
  const auto tokens = gguf.get_array("tokenizer.ggml.tokens").strings();
  ASSERT_EQ(tokens.size(), 600u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[599], "[PAD599]");
  const auto scores = gguf.get_array("tokenizer.ggml.scores").to_vector<float>();
  ASSERT_EQ(scores.size(), 600u);
  EXPECT_EQ(scores[550], -1000.0f);
  const auto types = gguf.get_array("tokenizer.ggml.token_type").to_vector<int32_t>();
  EXPECT_EQ(types[550], 5);
  EXPECT_EQ(gguf.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(gguf.tensor("token_embd.weight").ne[1], 600u);
  EXPECT_EQ(gguf.tensor("blk.0.post_ffw_norm.weight").type, GgmlType::F32);
  EXPECT_EQ(gguf.tensor("blk.0.attn_q.weight").type, GgmlType::F16);
}

}  // namespace
}  // namespace floatllm
