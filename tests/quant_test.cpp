// The GGML formats: f16/bf16 conversion, dequantization against llama.cpp's own values, and
// quantization quality and determinism.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "floatllm/io/gguf.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"
#include "floatllm/quant/quantize.hpp"
#include "test_support.hpp"

namespace floatllm {
namespace {

// ---------------------------------------------------------------------------------------------
// f16 / bf16

// The correctly rounded f16 of x, computed in double by brute force over the finite f16 values
// bracketing it, ties to the even bit pattern: an oracle independent of the bit tricks in half.hpp.
uint16_t reference_f32_to_fp16(float value) {
  if (std::isnan(value)) return 0;  // NaN is checked separately
  const double x = value;
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  const double magnitude = std::fabs(x);
  if (magnitude >= 65520.0) return sign | 0x7c00;
  uint16_t best = 0;
  double best_error = std::numeric_limits<double>::infinity();
  // Magnitudes are monotonic in the bit pattern: binary search the bracketing pair.
  uint16_t low = 0, high = 0x7bff;
  while (high - low > 1) {
    const auto mid = static_cast<uint16_t>((low + high) / 2);
    if (static_cast<double>(fp16_to_f32(mid)) <= magnitude) {
      low = mid;
    } else {
      high = mid;
    }
  }
  for (const uint16_t candidate : {low, high}) {
    const double error = std::fabs(static_cast<double>(fp16_to_f32(candidate)) - magnitude);
    if (error < best_error || (error == best_error && (candidate & 1) == 0)) {
      best = candidate;
      best_error = error;
    }
  }
  return sign | best;
}

TEST(Half, AllF16PatternsRoundTrip) {
  int nan_patterns = 0;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float value = fp16_to_f32(h);
    const bool is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    if (is_nan) {
      ++nan_patterns;
      ASSERT_TRUE(std::isnan(value)) << std::hex << bits;
      // Conversion quiets NaN (bit 9) and keeps sign and payload.
      EXPECT_EQ(f32_to_fp16(value), h | 0x200) << std::hex << bits;
    } else {
      ASSERT_EQ(f32_to_fp16(value), h) << std::hex << bits;
    }
  }
  EXPECT_EQ(nan_patterns, 2 * 1023);
}

TEST(Half, F16DecodesKnownValues) {
  EXPECT_EQ(fp16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(fp16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_f32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(fp16_to_f32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_f32(0x8000)), 0x80000000u);
}

TEST(Half, F32ToF16RoundsToNearestEven) {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               65504.0f,
                               65519.99f,
                               65520.0f,
                               -65520.0f,
                               1e10f,
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity(),
                               std::numeric_limits<float>::denorm_min(),
                               std::numeric_limits<float>::min(),
                               std::ldexp(1.0f, -24),
                               std::ldexp(1.0f, -25),               // tie to 0
                               std::ldexp(1.0f, -25) * 1.0000001f,  // just above: rounds up
                               std::ldexp(3.0f, -25),               // tie 1 vs 2 -> 2
                               std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25),  // tie to normal
                               1.0f + std::ldexp(1.0f, -11),                   // tie -> 1.0
                               1.0f + 3 * std::ldexp(1.0f, -11),               // tie -> up
                               2049.0f,
                               2051.0f};
  // Every tie and near-tie between consecutive f16 values, over the whole range.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const float low = fp16_to_f32(static_cast<uint16_t>(h));
    const float high = fp16_to_f32(static_cast<uint16_t>(h + 1));
    const float middle = static_cast<float>((static_cast<double>(low) + high) / 2);  // exact
    values.push_back(middle);
    values.push_back(std::nextafter(middle, 0.0f));
    values.push_back(std::nextafter(middle, 1e9f));
  }
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i)
    values.push_back(std::bit_cast<float>(any_bits(rng)));
  std::normal_distribution<float> gaussian(0.0f, 1.0f);
  for (int i = 0; i < 200000; ++i)
    values.push_back(gaussian(rng) * std::ldexp(1.0f, static_cast<int>(i % 40) - 30));

  int checked = 0;
  for (const float value : values) {
    if (std::isnan(value)) continue;
    ASSERT_EQ(f32_to_fp16(value), reference_f32_to_fp16(value))
        << "value " << value << " bits " << std::hex << std::bit_cast<uint32_t>(value);
    ++checked;
  }
  EXPECT_GT(checked, 450000);  // random bit patterns that are NaN are skipped
}

TEST(Half, F32ToF16KeepsNaN) {
  const float quiet = std::numeric_limits<float>::quiet_NaN();
  const float signalling = std::bit_cast<float>(0xff800001u);
  EXPECT_TRUE(std::isnan(fp16_to_f32(f32_to_fp16(quiet))));
  EXPECT_EQ(f32_to_fp16(signalling) & 0xfe00, 0xfe00);  // negative, quiet NaN
}

TEST(Half, Bf16) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const auto b = static_cast<uint16_t>(bits);
    const float value = bf16_to_f32(b);
    ASSERT_EQ(std::bit_cast<uint32_t>(value), bits << 16);
    if (!std::isnan(value)) {
      ASSERT_EQ(f32_to_bf16(value), b);
    }
  }
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie to even: down
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie to even: up
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7f800001u)), 0x7fc0);  // signalling -> quiet
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0xffc12345u)), 0xffc1);
}

// ---------------------------------------------------------------------------------------------
// Dequantization against llama.cpp

struct ReferenceTensor {
  std::string file;
  std::string name;
  std::string type;
  uint64_t count;
  uint64_t offset_bytes;
};

std::vector<ReferenceTensor> reference_tensors() {
  std::vector<ReferenceTensor> found;
  const auto dir = test::models_dir() / "synthetic";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    const std::string suffix = ".dequant.json";
    if (file.size() <= suffix.size() || !file.ends_with(suffix)) continue;
    const auto stem = file.substr(0, file.size() - suffix.size());
    const auto json = nlohmann::json::parse(test::read_text(entry.path()));
    for (const auto& tensor : json.at("tensors")) {
      found.push_back({stem, tensor.at("name"), tensor.at("type"), tensor.at("count"),
                       tensor.at("offset_bytes")});
    }
  }
  return found;
}

TEST(Dequantize, MatchesLlamaCppBitForBit) {
  const auto references = reference_tensors();
  std::set<std::string> types_seen;
  for (const auto& reference : references) {
    SCOPED_TRACE(reference.file + " " + reference.name + " " + reference.type);
    const auto dir = test::models_dir() / "synthetic";
    const GgufFile gguf(dir / (reference.file + ".gguf"));
    const GgufTensor& tensor = gguf.tensor(reference.name);
    ASSERT_EQ(ggml_type_name(tensor.type), reference.type);
    ASSERT_EQ(tensor.element_count, reference.count);

    const auto expected_bytes = test::read_bytes(dir / (reference.file + ".dequant.f32"));
    ASSERT_LE(reference.offset_bytes + reference.count * 4, expected_bytes.size());
    std::vector<float> expected(reference.count);
    std::memcpy(expected.data(), expected_bytes.data() + reference.offset_bytes,
                reference.count * 4);

    std::vector<float> actual(reference.count);
    dequantize_row(tensor.type, tensor.data.data(), actual.data(),
                   static_cast<int64_t>(reference.count));
    uint64_t mismatches = 0;
    for (uint64_t i = 0; i < reference.count; ++i) {
      if (std::bit_cast<uint32_t>(actual[i]) != std::bit_cast<uint32_t>(expected[i])) {
        if (mismatches++ < 5) {
          ADD_FAILURE() << "value " << i << ": " << actual[i] << " vs llama.cpp " << expected[i];
        }
      }
    }
    EXPECT_EQ(mismatches, 0u);
    types_seen.insert(reference.type);
  }
  const std::set<std::string> required = {"F16",  "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                          "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
  for (const auto& type : required)
    EXPECT_TRUE(types_seen.contains(type)) << "no reference for " << type;
}

TEST(Dequantize, RejectsUnsupportedTypesByName) {
  const std::vector<std::byte> bytes(1024);
  std::vector<float> out(256);
  for (const GgmlType type : {GgmlType::IQ2_XXS, GgmlType::TQ1_0, GgmlType::MXFP4}) {
    EXPECT_FALSE(can_dequantize(type));
    try {
      dequantize_row(type, bytes.data(), out.data(), traits_of(type).block_elements);
      ADD_FAILURE() << "no error for " << ggml_type_name(type);
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(ggml_type_name(type)), std::string::npos)
          << error.what();
    }
  }
  EXPECT_THROW(dequantize_row(GgmlType::Q4_K, bytes.data(), out.data(), 100), Error);
  EXPECT_THROW(dequantize_row(GgmlType::Q8_0, bytes.data(), out.data(), -32), Error);
}

// ---------------------------------------------------------------------------------------------
// Quantization

std::vector<std::byte> quantize(GgmlType type, const std::vector<float>& values) {
  std::vector<std::byte> bytes(ggml_row_bytes(type, values.size()));
  quantize_row(type, values.data(), bytes.data(), static_cast<int64_t>(values.size()));
  return bytes;
}

std::vector<float> dequantize(GgmlType type, const std::vector<std::byte>& bytes,
                              std::size_t count) {
  std::vector<float> values(count);
  dequantize_row(type, bytes.data(), values.data(), static_cast<int64_t>(count));
  return values;
}

uint64_t differing_blocks(GgmlType type, const std::byte* a, const std::byte* b, uint64_t bytes) {
  const uint64_t block_bytes = traits_of(type).block_bytes;
  uint64_t differing = 0;
  for (uint64_t offset = 0; offset < bytes; offset += block_bytes)
    differing += std::memcmp(a + offset, b + offset, block_bytes) != 0 ? 1 : 0;
  return differing;
}

// The shared -kq files were made by llama-quantize (no importance matrix) from
// tiny-llama-kq-f32.gguf: quantizing the same f32 tensors must give the same bytes, block for
// block, for every type the files contain.
TEST(Quantize, ReproducesLlamaQuantizeByteForByte) {
  const auto dir = test::models_dir() / "synthetic";
  const GgufFile source(dir / "tiny-llama-kq-f32.gguf");
  std::map<std::string, uint64_t> blocks_checked;
  for (const char* variant : {"q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k", "q5_1", "q5_0",
                              "q4_1", "q4_0", "bf16"}) {
    const GgufFile quantized(dir / (std::string("tiny-llama-kq-") + variant + ".gguf"));
    for (const GgufTensor& tensor : quantized.tensors()) {
      if (tensor.type == GgmlType::F32) continue;
      SCOPED_TRACE(std::string(variant) + " " + std::string(tensor.name));
      const auto values = source.tensor(tensor.name).as<float>();
      ASSERT_EQ(values.size(), tensor.element_count);
      std::vector<std::byte> ours(tensor.byte_size());
      quantize_row(tensor.type, values.data(), ours.data(), static_cast<int64_t>(values.size()));
      EXPECT_EQ(differing_blocks(tensor.type, ours.data(), tensor.data.data(), ours.size()), 0u);
      blocks_checked[std::string(ggml_type_name(tensor.type))] +=
          ours.size() / traits_of(tensor.type).block_bytes;
    }
  }
  for (const char* type :
       {"Q8_0", "Q6_K", "Q5_K", "Q4_K", "Q3_K", "Q2_K", "Q5_1", "Q5_0", "Q4_1", "Q4_0", "BF16"}) {
    EXPECT_GT(blocks_checked[type], 0u) << "no llama-quantize tensor of type " << type;
  }
}

// Values that are already on a Q4_0 / Q8_0 / Q4_1 / Q5_0 / Q5_1 grid come back as the same bytes:
// the extreme value of each block reproduces the stored f16 scale exactly, and every other value
// lands on its own level. Checked on every such tensor llama.cpp wrote into the shared files.
TEST(Quantize, RequantizingLlamaCppTensorsReproducesTheirBytes) {
  const auto dir = test::models_dir() / "synthetic";
  uint64_t tensors = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".gguf") continue;
    const GgufFile file(entry.path());
    for (const GgufTensor& tensor : file.tensors()) {
      const GgmlType type = tensor.type;
      if (type != GgmlType::Q8_0 && type != GgmlType::Q4_0 && type != GgmlType::Q4_1 &&
          type != GgmlType::Q5_0 && type != GgmlType::Q5_1) {
        continue;
      }
      SCOPED_TRACE(entry.path().filename().string() + " " + std::string(tensor.name));
      std::vector<float> values(tensor.element_count);
      dequantize_row(type, tensor.data.data(), values.data(), static_cast<int64_t>(values.size()));
      const auto requantized = quantize(type, values);
      EXPECT_EQ(differing_blocks(type, requantized.data(), tensor.data.data(), requantized.size()),
                0u);
      ++tensors;
    }
  }
  EXPECT_GT(tensors, 100u);
}

std::vector<float> gaussian_values(std::size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gaussian(0.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values)
    v = gaussian(rng);
  return values;
}

double relative_rms_error(const std::vector<float>& reference, const std::vector<float>& actual) {
  double error = 0.0;
  double energy = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double diff = static_cast<double>(reference[i]) - actual[i];
    error += diff * diff;
    energy += static_cast<double>(reference[i]) * reference[i];
  }
  return std::sqrt(error / energy);
}

struct QualityBound {
  GgmlType type;
  double max_relative_rms;  // quantize -> dequantize, unit Gaussian input
  bool fixed_point;         // requantizing dequantized values gives exactly the same values
};

// Bounds are the relative RMS errors measured on 2^18 unit-Gaussian values (seed 42), rounded up
// by ~5-10%; the measured values are in the comments. They match the uniform-rounding estimate
// step / sqrt(12) per format (e.g. Q8_0: step = absmax(32 Gaussians) / 127 ~ 2.2 / 127, giving
// 0.5%), and since quantization is byte-identical with llama.cpp's reference quantizers these are
// llama.cpp's own figures for such data. Q4_K/Q5_K beat Q4_1/Q5_1 through their scale search;
// Q3_K and Q2_K are coarse by design.
//
// Requantizing: the 32-value formats are exact fixed points (the block extreme reproduces the f16
// scale). The K-quants re-run a greedy scale search and may settle on other sub-block scales, but
// the new fit approximates values already on a grid, so it moves them far less than the first
// quantization did: measured drift / first error is 0.3% (Q4_K) to 21% (Q3_K); required < 25%.
TEST(Quantize, ErrorOnGaussianDataIsWithinKnownBounds) {
  const std::vector<QualityBound> bounds = {
      {GgmlType::F16, 0.00023, true},   // 0.0208%: 11-bit significand
      {GgmlType::BF16, 0.0018, true},   // 0.166%: 8-bit significand
      {GgmlType::Q8_0, 0.0057, true},   // 0.536%
      {GgmlType::Q8_1, 0.0057, true},   // 0.536%: same values as Q8_0
      {GgmlType::Q8_K, 0.0075, false},  // 0.700%: one scale per 256 values; drift 0.0003%
      {GgmlType::Q6_K, 0.0190, false},  // 1.775%; drift < 0.0001%
      {GgmlType::Q5_0, 0.0450, true},   // 4.273%
      {GgmlType::Q5_1, 0.0400, true},   // 3.794%
      {GgmlType::Q5_K, 0.0380, false},  // 3.620%; drift 0.30%
      {GgmlType::Q4_0, 0.0900, true},   // 8.613%
      {GgmlType::Q4_1, 0.0820, true},   // 7.842%
      {GgmlType::Q4_K, 0.0750, false},  // 7.153%; drift 0.020%
      {GgmlType::Q3_K, 0.1580, false},  // 15.08%; drift 3.10%
      {GgmlType::Q2_K, 0.3100, false},  // 29.75%; drift 0.75%
  };
  const auto values = gaussian_values(kQK_K * 1024, 42);
  for (const auto& bound : bounds) {
    SCOPED_TRACE(ggml_type_name(bound.type));
    const auto first = dequantize(bound.type, quantize(bound.type, values), values.size());
    const double error = relative_rms_error(values, first);
    EXPECT_LT(error, bound.max_relative_rms);
    EXPECT_GT(error, bound.max_relative_rms / 2) << "suspiciously good: is the test still valid?";
    const auto second = dequantize(bound.type, quantize(bound.type, first), values.size());
    if (bound.fixed_point) {
      EXPECT_EQ(first, second);
    } else {
      EXPECT_LT(relative_rms_error(first, second), 0.25 * error);
    }
  }
}

TEST(Quantize, IsDeterministicAndIgnoresAlignment) {
  const auto values = gaussian_values(kQK_K * 8 + 1, 7);
  for (const GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K}) {
    SCOPED_TRACE(ggml_type_name(type));
    const std::vector<float> aligned(values.begin() + 1, values.end());
    const auto expected = quantize(type, aligned);
    // The same input at another address, output one byte into a buffer.
    std::vector<std::byte> shifted(expected.size() + 1);
    quantize_row(type, values.data() + 1, shifted.data() + 1, static_cast<int64_t>(aligned.size()));
    EXPECT_EQ(std::memcmp(shifted.data() + 1, expected.data(), expected.size()), 0);
    std::vector<float> out(aligned.size() + 1);
    dequantize_row(type, shifted.data() + 1, out.data() + 1, static_cast<int64_t>(aligned.size()));
    EXPECT_EQ(std::vector<float>(out.begin() + 1, out.end()),
              dequantize(type, expected, aligned.size()));
  }
}

// Q8_1 and Q8_K carry block sums for the dot-product kernels; they must match the stored values.
TEST(Quantize, ActivationFormatsStoreConsistentSums) {
  const auto values = gaussian_values(kQK_K * 4, 3);
  const auto q8_1 = quantize(GgmlType::Q8_1, values);
  for (std::size_t b = 0; b < q8_1.size() / sizeof(BlockQ8_1); ++b) {
    BlockQ8_1 block;
    std::memcpy(&block, q8_1.data() + b * sizeof(block), sizeof(block));
    int sum = 0;
    for (const int8_t q : block.qs)
      sum += q;
    // s = d * sum with d before its f16 rounding, so compare within the two f16 roundings.
    const float expected = fp16_to_f32(block.d) * static_cast<float>(sum);
    EXPECT_NEAR(fp16_to_f32(block.s), expected, std::fabs(expected) * 2e-3 + 1e-6);
  }
  const auto q8_k = quantize(GgmlType::Q8_K, values);
  for (std::size_t b = 0; b < q8_k.size() / sizeof(BlockQ8_K); ++b) {
    BlockQ8_K block;
    std::memcpy(&block, q8_k.data() + b * sizeof(block), sizeof(block));
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i)
        sum += block.qs[16 * g + i];
      EXPECT_EQ(block.bsums[g], sum);
    }
  }
}

// Rows with no spread, extreme magnitudes or a lone outlier. Values beyond what an f16 scale can
// express (|x| > 65504 * level range) cannot be represented, but must still come back finite.
TEST(Quantize, OddInputsNeverProduceNanOrInf) {
  constexpr std::size_t n = kQK_K;
  const float big = std::numeric_limits<float>::max();
  std::vector<std::pair<std::string, std::vector<float>>> rows = {
      {"zeros", std::vector<float>(n, 0.0f)},
      {"negative zeros", std::vector<float>(n, -0.0f)},
      {"constant", std::vector<float>(n, 1.0f)},
      {"negative constant", std::vector<float>(n, -3.5f)},
      {"1e30", std::vector<float>(n, 1e30f)},
      {"-FLT_MAX", std::vector<float>(n, -big)},
      {"1e-30", std::vector<float>(n, 1e-30f)},
      {"denormal", std::vector<float>(n, std::numeric_limits<float>::denorm_min())},
  };
  std::vector<float> outlier(n, 0.01f);
  outlier[7] = 1000.0f;
  rows.emplace_back("outlier", outlier);
  std::vector<float> alternating(n);
  std::vector<float> mixed(n);
  std::vector<float> ramp(n);
  for (std::size_t i = 0; i < n; ++i) {
    alternating[i] = i % 2 != 0 ? big : -big;
    mixed[i] = i % 3 != 0 ? 1e-3f : 1e5f;
    ramp[i] = static_cast<float>(i) * 1e-40f;
  }
  rows.emplace_back("alternating FLT_MAX", alternating);
  rows.emplace_back("mixed scales", mixed);
  rows.emplace_back("denormal ramp", ramp);

  for (const auto& traits : kGgmlTypes) {
    if (!can_quantize(traits.type)) continue;
    for (const auto& [label, row] : rows) {
      SCOPED_TRACE(std::string(traits.name) + " " + label);
      // F16 and BF16 are plain conversions: inf is the right answer beyond their range.
      float row_max = 0.0f;
      for (const float v : row)
        row_max = std::max(row_max, std::fabs(v));
      if ((traits.type == GgmlType::F16 && row_max > 65504.0f) ||
          (traits.type == GgmlType::BF16 && row_max > 3.38e38f)) {
        continue;
      }
      const auto values = dequantize(traits.type, quantize(traits.type, row), n);
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_TRUE(std::isfinite(values[i])) << "value " << i << " is " << values[i];
      if (label == "zeros" || label == "negative zeros") {
        for (const float v : values)
          ASSERT_EQ(v, 0.0f);
      }
      if (label == "constant" || label == "negative constant") {
        // One level hits the constant up to the f16 rounding of the scale.
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_NEAR(values[i], row[i], std::fabs(row[i]) * 1e-3);
      }
      if (label == "outlier") {
        // The outlier sets the scale; it must survive to within one level (1000 / 7 for Q4_0)
        // and the small values must not blow up.
        EXPECT_NEAR(values[7], 1000.0f, 1000.0f / 7 + 1);
        for (std::size_t i = 0; i < n; ++i) {
          if (i != 7) {
            ASSERT_LE(std::fabs(values[i]), 1000.0f / 7 + 1);
          }
        }
      }
    }
  }
}

// NaN and inf inputs have no meaningful quantization, but they must not cause undefined behaviour
// (the sanitizer build checks) and must stay inside their own block.
TEST(Quantize, NonFiniteInputsStayInTheirBlock) {
  for (const auto& traits : kGgmlTypes) {
    if (!can_quantize(traits.type) || traits.block_elements == 1) continue;
    const std::size_t n = traits.block_elements;
    const auto clean = gaussian_values(n, 11);
    const auto expected = quantize(traits.type, clean);
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      SCOPED_TRACE(std::string(traits.name) + " " + std::to_string(bad));
      std::vector<float> row(n, bad);
      row.insert(row.end(), clean.begin(), clean.end());
      row[n / 3] = 1.0f;
      const auto bytes = quantize(traits.type, row);
      EXPECT_EQ(std::memcmp(bytes.data() + traits.block_bytes, expected.data(), expected.size()),
                0);
      dequantize(traits.type, bytes, row.size());
    }
  }
}

TEST(Quantize, RejectsUnsupportedTypesAndPartialBlocks) {
  std::vector<float> values(kQK_K);
  std::vector<std::byte> out(4096);
  for (const GgmlType type : {GgmlType::IQ4_NL, GgmlType::IQ2_XXS, GgmlType::TQ2_0}) {
    EXPECT_FALSE(can_quantize(type));
    try {
      quantize_row(type, values.data(), out.data(), traits_of(type).block_elements);
      ADD_FAILURE() << "no error for " << ggml_type_name(type);
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(ggml_type_name(type)), std::string::npos);
    }
  }
  EXPECT_THROW(quantize_row(GgmlType::Q6_K, values.data(), out.data(), 128), Error);
  EXPECT_THROW(quantize_row(GgmlType::Q4_0, values.data(), out.data(), 33), Error);
}

}  // namespace
}  // namespace floatllm
