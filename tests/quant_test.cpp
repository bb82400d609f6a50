// The GGML formats: f16/bf16 conversion, dequantization against llama.cpp's own values, and
// quantization quality and determinism.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "floatllm/io/gguf.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"
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

}  // namespace
}  // namespace floatllm
