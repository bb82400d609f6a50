// The per-tensor type choices of each file type, checked against files made by llama-quantize.
#include <gtest/gtest.h>
#include <floatllm/io/gguf.hpp>
#include <floatllm/model/quant_mix.hpp>

#include <string>

#include "test_support.hpp"

namespace floatllm {
namespace {

// Every tensor of a llama-quantize output must get the type our rules choose for that mix.
void expect_same_choices(const std::string& file, QuantMix mix) {
  SCOPED_TRACE(file);
  const GgufFile gguf(test::model_path(file));
  const std::string arch = gguf.get<std::string>("general.architecture");
  const auto layers = gguf.get<uint32_t>(arch + ".block_count");
  const auto experts = gguf.get_or<uint32_t>(arch + ".expert_count", 0);
  const bool has_output = gguf.find_tensor("output.weight") != nullptr;
  EXPECT_EQ(gguf.get<uint32_t>("general.file_type"), quant_mix_info(mix).file_type);
  for (const GgufTensor& tensor : gguf.tensors()) {
    const TensorTypeQuery query{tensor.name, std::span(tensor.ne.data(), tensor.n_dims), layers,
                                experts, has_output};
    EXPECT_EQ(ggml_type_name(choose_tensor_type(mix, query)), ggml_type_name(tensor.type))
        << tensor.name;
  }
}

TEST(QuantMix, MatchesLlamaQuantizeOnTheSharedFiles) {
  expect_same_choices("synthetic/tiny-llama-kq-q4_k_m.gguf", QuantMix::Q4_K_M);
  expect_same_choices("synthetic/tiny-llama-kq-q5_k_m.gguf", QuantMix::Q5_K_M);
  expect_same_choices("synthetic/tiny-llama-kq-q6_k.gguf", QuantMix::Q6_K);
  expect_same_choices("synthetic/tiny-llama-kq-q8_0.gguf", QuantMix::Q8_0);
  expect_same_choices("synthetic/tiny-llama-kq-q4_0.gguf", QuantMix::Q4_0);
  expect_same_choices("synthetic/tiny-llama-kq-bf16.gguf", QuantMix::BF16);
  expect_same_choices("synthetic/tiny-qwen3-kq-q4_k_m.gguf", QuantMix::Q4_K_M);
  expect_same_choices("synthetic/tiny-qwen3-kq-q6_k.gguf", QuantMix::Q6_K);
  expect_same_choices("synthetic/tiny-qwen3-kq-q8_0.gguf", QuantMix::Q8_0);
}

GgmlType choose(QuantMix mix, std::string_view name, std::vector<uint64_t> ne, uint32_t layers = 32,
                uint32_t experts = 0, bool has_output = true) {
  return choose_tensor_type(mix, {name, ne, layers, experts, has_output});
}

TEST(QuantMix, LayerRulesOfTheKMixes) {
  // use_more_bits for 32 layers: 0-3, 28-31 and 4 + 3k + 2 = 6, 9, ..., 27.
  for (uint32_t layer = 0; layer < 32; ++layer) {
    const bool more = layer < 4 || layer >= 28 || (layer - 4) % 3 == 2;
    const std::string v = "blk." + std::to_string(layer) + ".attn_v.weight";
    const std::string down = "blk." + std::to_string(layer) + ".ffn_down.weight";
    EXPECT_EQ(choose(QuantMix::Q4_K_M, v, {4096, 1024}), more ? GgmlType::Q6_K : GgmlType::Q4_K)
        << layer;
    EXPECT_EQ(choose(QuantMix::Q5_K_M, down, {14336, 4096}), more ? GgmlType::Q6_K : GgmlType::Q5_K)
        << layer;
    EXPECT_EQ(choose(QuantMix::Q4_K_S, v, {4096, 1024}),
              layer < 4 ? GgmlType::Q5_K : GgmlType::Q4_K);
    EXPECT_EQ(choose(QuantMix::Q4_K_S, down, {14336, 4096}),
              layer < 4 ? GgmlType::Q5_K : GgmlType::Q4_K);
  }
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.5.attn_q.weight", {4096, 4096}), GgmlType::Q4_K);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "output.weight", {4096, 32000}), GgmlType::Q6_K);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "token_embd.weight", {4096, 32000}), GgmlType::Q4_K);
  // A tied embedding is the output projection too.
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "token_embd.weight", {2048, 128256}, 16, 0, false),
            GgmlType::Q6_K);
  EXPECT_EQ(choose(QuantMix::Q8_0, "output.weight", {4096, 32000}), GgmlType::Q8_0);
  EXPECT_EQ(choose(QuantMix::Q4_0, "output.weight", {4096, 32000}), GgmlType::Q6_K);
  EXPECT_EQ(choose(QuantMix::F16, "output.weight", {4096, 32000}), GgmlType::F16);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.0.attn_norm.weight", {4096}), GgmlType::F32);
  EXPECT_EQ(choose(QuantMix::BF16, "blk.0.attn_norm.weight", {4096}), GgmlType::F32);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "rope_freqs.weight", {64}), GgmlType::F32);
}

TEST(QuantMix, EightExpertModelsAndFallbacks) {
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.3.attn_v.weight", {4096, 1024}, 32, 8), GgmlType::Q8_0);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.3.attn_k.weight", {4096, 1024}, 32, 8), GgmlType::Q8_0);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.3.attn_output.weight", {4096, 4096}, 32, 8),
            GgmlType::Q5_K);
  EXPECT_EQ(choose(QuantMix::Q5_K_M, "blk.3.attn_output.weight", {4096, 4096}, 32, 8),
            GgmlType::Q5_K);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.3.ffn_gate_inp.weight", {4096, 8}, 32, 8), GgmlType::F32);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.0.ffn_down_exps.weight", {14336, 4096, 8}, 32, 8),
            GgmlType::Q6_K);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.5.ffn_down_exps.weight", {14336, 4096, 8}, 32, 8),
            GgmlType::Q4_K);
  // Rows that are not whole super-blocks: Gemma 2's 2304 / 2 = 1152 columns.
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.5.attn_q.weight", {1152, 1024}), GgmlType::Q5_0);
  EXPECT_EQ(choose(QuantMix::Q5_K_M, "blk.5.attn_q.weight", {1152, 1024}), GgmlType::Q5_1);
  EXPECT_EQ(choose(QuantMix::Q6_K, "blk.5.attn_q.weight", {1152, 1024}), GgmlType::Q8_0);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "output.weight", {1152, 1000}), GgmlType::Q8_0);
  EXPECT_EQ(choose(QuantMix::Q4_K_M, "blk.5.attn_q.weight", {100, 64}), GgmlType::F16);
  EXPECT_EQ(choose(QuantMix::Q8_0, "blk.5.attn_q.weight", {100, 64}), GgmlType::F16);
}

TEST(QuantMix, Names) {
  EXPECT_EQ(quant_mix_from_name("Q4_K_M"), QuantMix::Q4_K_M);
  EXPECT_EQ(quant_mix_from_name("q4_k"), QuantMix::Q4_K_S);
  EXPECT_EQ(quant_mix_from_name("bf16"), QuantMix::BF16);
  EXPECT_FALSE(quant_mix_from_name("q3_k_m").has_value());
  EXPECT_FALSE(quant_mix_from_name("").has_value());
  for (const auto& info : kQuantMixes)
    EXPECT_EQ(quant_mix_from_name(info.name), info.mix);
}

}  // namespace
}  // namespace floatllm
