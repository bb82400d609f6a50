// Quantizing whole models: the same bytes as llama-quantize for every tensor of the shared -kq
// files, metadata carried over, and per-value error bounds for stories260K in Q8_0.
#include <gtest/gtest.h>
#include <floatllm/model/quantize_model.hpp>

#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

std::vector<float> dequantized(const GgufTensor& tensor) {
  std::vector<float> values(tensor.element_count);
  dequantize_row(tensor.type, tensor.data.data(), values.data(),
                 static_cast<int64_t>(tensor.element_count));
  return values;
}

// llama-quantize made the shared tiny-*-kq-<type>.gguf files from the -f32 ones; every tensor
// we write must have the same type and the same bytes.
void expect_like_llama_quantize(const std::string& model, const std::string& type, int threads) {
  SCOPED_TRACE(model + " " + type);
  TempDir dir;
  const GgufFile source(test::model_path("synthetic/" + model + "-f32.gguf"));
  const GgufFile reference(test::model_path("synthetic/" + model + "-" + type + ".gguf"));
  make_quantized_model(source, *quant_mix_from_name(type), {threads}).write(dir / "out.gguf");
  const GgufFile out(dir / "out.gguf");

  EXPECT_EQ(out.get<uint32_t>("general.file_type"), reference.get<uint32_t>("general.file_type"));
  EXPECT_EQ(out.get<uint32_t>("general.quantization_version"), 2u);
  for (const auto& entry : source.metadata()) {
    if (entry.key == "general.file_type") continue;
    const auto copied = out.find(entry.key);
    ASSERT_TRUE(copied.has_value()) << entry.key;
    EXPECT_EQ(copied->byte_size(), entry.value.byte_size()) << entry.key;
    EXPECT_EQ(std::memcmp(GgufMetadataValue::copy_of(*copied).encoded().data(),
                          GgufMetadataValue::copy_of(entry.value).encoded().data(),
                          entry.value.byte_size()),
              0)
        << entry.key;
  }
  ASSERT_EQ(out.tensors().size(), reference.tensors().size());
  for (const GgufTensor& tensor : out.tensors()) {
    const GgufTensor& expected = reference.tensor(tensor.name);
    ASSERT_EQ(ggml_type_name(tensor.type), ggml_type_name(expected.type)) << tensor.name;
    EXPECT_EQ(tensor.ne, expected.ne) << tensor.name;
    ASSERT_EQ(tensor.byte_size(), expected.byte_size()) << tensor.name;
    EXPECT_EQ(std::memcmp(tensor.data.data(), expected.data.data(), tensor.byte_size()), 0)
        << tensor.name;
  }
}

TEST(QuantizeModel, SameBytesAsLlamaQuantize) {
  // tiny-llama-kq is the one shared model whose f32 source is shared too.
  for (const char* type : {"q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "bf16"})
    expect_like_llama_quantize("tiny-llama-kq", type, 2);
  expect_like_llama_quantize("tiny-llama-kq", "q4_k_m", 1);
}

// Q8_0 stores x as d * q with d = absmax / 127 in f16 and q = round(x / d): the error of a value
// is at most d / 2 from rounding plus 127 * |d - d_f16| <= absmax * 2^-11 from storing d in f16.
// stories260K's FFN rows (172 values) are not whole blocks and fall back to F16 (error <= 2^-11
// relative).
TEST(QuantizeModel, Stories260KInQ8_0StaysWithinTheBlockBounds) {
  TempDir dir;
  const GgufFile source(test::model_path("gguf/stories260K.gguf"));
  make_quantized_model(source, QuantMix::Q8_0).write(dir / "q8.gguf");
  const GgufFile out(dir / "q8.gguf");
  EXPECT_EQ(out.get<uint32_t>("general.file_type"), 7u);
  EXPECT_EQ(out.get<uint32_t>("llama.block_count"), 5u);
  int q8_tensors = 0;
  for (const GgufTensor& original : source.tensors()) {
    SCOPED_TRACE(std::string(original.name));
    const GgufTensor& quantized = out.tensor(original.name);
    const auto x = original.as<float>();
    const std::vector<float> y = dequantized(quantized);
    ASSERT_EQ(y.size(), x.size());
    if (original.n_dims == 1) {
      EXPECT_EQ(quantized.type, GgmlType::F32);
      EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin()));
      continue;
    }
    if (quantized.type == GgmlType::F16) {
      EXPECT_NE(original.ne[0] % 32, 0u);
      for (std::size_t i = 0; i < x.size(); ++i)
        ASSERT_LE(std::fabs(x[i] - y[i]), std::fabs(x[i]) * 0x1p-11f + 0x1p-24f) << i;
      continue;
    }
    ASSERT_EQ(quantized.type, GgmlType::Q8_0);
    ++q8_tensors;
    double error_power = 0, signal_power = 0;
    for (std::size_t block = 0; block < x.size() / 32; ++block) {
      float absmax = 0;
      for (std::size_t i = block * 32; i < block * 32 + 32; ++i)
        absmax = std::max(absmax, std::fabs(x[i]));
      const float bound = absmax / 254.0f + absmax * 0x1p-11f + 1e-7f;
      for (std::size_t i = block * 32; i < block * 32 + 32; ++i) {
        ASSERT_LE(std::fabs(x[i] - y[i]), bound) << "value " << i;
        error_power += double(x[i] - y[i]) * (x[i] - y[i]);
        signal_power += double{x[i]} * x[i];
      }
    }
    // 8-bit rounding of roughly Gaussian blocks: the error is ~45 dB below the signal.
    EXPECT_LT(error_power / signal_power, 1e-4);
  }
  EXPECT_EQ(q8_tensors, 1 + 5 * 6 + 1);  // embeddings, q/k/v/o/gate/up per layer, output
}

TEST(QuantizeModel, RequantizesQuantizedInputs) {
  TempDir dir;
  const GgufFile q8(test::model_path("synthetic/tiny-llama-kq-q8_0.gguf"));
  make_quantized_model(q8, QuantMix::F16, {2}).write(dir / "f16.gguf");
  const GgufFile f16(dir / "f16.gguf");
  EXPECT_EQ(f16.get<uint32_t>("general.file_type"), 1u);
  // Q8_0 values are d * q with 8-bit q: f16 holds them to 11 significant bits.
  const GgufTensor& a = q8.tensor("blk.0.ffn_up.weight");
  const GgufTensor& b = f16.tensor("blk.0.ffn_up.weight");
  EXPECT_EQ(b.type, GgmlType::F16);
  const auto x = dequantized(a);
  const auto y = dequantized(b);
  for (std::size_t i = 0; i < x.size(); ++i)
    ASSERT_LE(std::fabs(x[i] - y[i]), std::fabs(x[i]) * 0x1p-11f + 0x1p-24f) << i;
}

}  // namespace
}  // namespace floatllm
