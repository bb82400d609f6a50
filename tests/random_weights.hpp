// Random weight matrices of any GGML type, shared by the kernel tests and benchmarks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/ggml_type.hpp"
#include "floatllm/quant/half.hpp"

namespace floatllm::test {

// Random blocks of `type`: any byte pattern is a valid block once its f16 scales are finite, so
// quants come from random bytes and scales from a small range, as in real weights.
std::vector<std::byte> random_matrix(std::mt19937& rng, GgmlType type, int64_t rows, int64_t cols) {
  const auto bytes = ggml_row_bytes(type, static_cast<uint64_t>(cols)) * rows;
  std::vector<std::byte> data(bytes);
  for (size_t i = 0; i < data.size(); i += 4) {
    const auto word = static_cast<uint32_t>(rng());
    std::memcpy(data.data() + i, &word, std::min<size_t>(4, data.size() - i));
  }
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const auto set_f16 = [&](size_t offset, float v) {
    const uint16_t bits = f32_to_fp16(v);
    std::memcpy(data.data() + offset, &bits, 2);
  };
  const auto& traits = traits_of(type);
  const size_t blocks = bytes / traits.block_bytes;
  for (size_t b = 0; b < blocks; ++b) {
    const size_t at = b * traits.block_bytes;
    switch (type) {
      case GgmlType::Q4_0:
      case GgmlType::Q5_0:
      case GgmlType::Q8_0:
        set_f16(at, scale(rng));
        break;
      case GgmlType::Q4_1:
      case GgmlType::Q5_1:
        set_f16(at, scale(rng));
        set_f16(at + 2, -8 * scale(rng));
        break;
      case GgmlType::Q2_K:
        set_f16(at + offsetof(BlockQ2_K, d), scale(rng));
        set_f16(at + offsetof(BlockQ2_K, dmin), scale(rng));
        break;
      case GgmlType::Q3_K:
        set_f16(at + offsetof(BlockQ3_K, d), scale(rng));
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K:
        set_f16(at, 0.1f * scale(rng));
        set_f16(at + 2, 0.1f * scale(rng));
        break;
      case GgmlType::Q6_K:
        set_f16(at + offsetof(BlockQ6_K, d), 0.1f * scale(rng));
        break;
      case GgmlType::F16:
        set_f16(at, value(rng));
        break;
      case GgmlType::BF16: {
        const uint16_t bits = f32_to_bf16(value(rng));
        std::memcpy(data.data() + at, &bits, 2);
        break;
      }
      case GgmlType::F32: {
        const float v = value(rng);
        std::memcpy(data.data() + at, &v, 4);
        break;
      }
      default:
        break;  // plain random bytes
    }
  }
  return data;
}

}  // namespace floatllm::test
