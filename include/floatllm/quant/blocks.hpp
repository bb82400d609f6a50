// Memory layouts of the GGML block formats, byte for byte as GGUF files store them.
// Half-precision scales are kept as raw IEEE binary16 bits (uint16_t); see quant/half.hpp.
#pragma once

#include <cstdint>

#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

using f16_bits = uint16_t;
using bf16_bits = uint16_t;

inline constexpr int kQK4_0 = 32;
inline constexpr int kQK4_1 = 32;
inline constexpr int kQK5_0 = 32;
inline constexpr int kQK5_1 = 32;
inline constexpr int kQK8_0 = 32;
inline constexpr int kQK8_1 = 32;
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales and mins of Q4_K / Q5_K

// x = d * (q - 8), q in 0..15; low nibbles hold values 0..15, high nibbles 16..31.
struct BlockQ4_0 {
  static constexpr GgmlType kGgmlType = GgmlType::Q4_0;
  f16_bits d;
  uint8_t qs[kQK4_0 / 2];
};

// x = d * q + m, q in 0..15.
struct BlockQ4_1 {
  static constexpr GgmlType kGgmlType = GgmlType::Q4_1;
  f16_bits d;
  f16_bits m;
  uint8_t qs[kQK4_1 / 2];
};

// x = d * (q - 16), q in 0..31: 4 low bits in qs, the 5th bit of value j in bit j of qh.
struct BlockQ5_0 {
  static constexpr GgmlType kGgmlType = GgmlType::Q5_0;
  f16_bits d;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};

// x = d * q + m, q in 0..31.
struct BlockQ5_1 {
  static constexpr GgmlType kGgmlType = GgmlType::Q5_1;
  f16_bits d;
  f16_bits m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};

// x = d * q, q in -127..127.
struct BlockQ8_0 {
  static constexpr GgmlType kGgmlType = GgmlType::Q8_0;
  f16_bits d;
  int8_t qs[kQK8_0];
};

// Q8_0 plus s = d * sum(q), used as the activation format of Q4_1 / Q5_1 dot products.
struct BlockQ8_1 {
  static constexpr GgmlType kGgmlType = GgmlType::Q8_1;
  f16_bits d;
  f16_bits s;
  int8_t qs[kQK8_1];
};

// 16 sub-blocks of 16: x = d * scale * q - dmin * min, 4-bit scale and min per sub-block, q 2-bit.
struct BlockQ2_K {
  static constexpr GgmlType kGgmlType = GgmlType::Q2_K;
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  f16_bits d;
  f16_bits dmin;
};

// 16 sub-blocks of 16: x = d * (scale - 32) * (q - 4 * !hbit), 6-bit scales, q 2 low bits + hmask.
struct BlockQ3_K {
  static constexpr GgmlType kGgmlType = GgmlType::Q3_K;
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  f16_bits d;
};

// 8 sub-blocks of 32: x = d * scale * q - dmin * min, 6-bit scales and mins packed in 12 bytes.
struct BlockQ4_K {
  static constexpr GgmlType kGgmlType = GgmlType::Q4_K;
  f16_bits d;
  f16_bits dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};

// As Q4_K with a 5th bit per value in qh.
struct BlockQ5_K {
  static constexpr GgmlType kGgmlType = GgmlType::Q5_K;
  f16_bits d;
  f16_bits dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};

// 16 sub-blocks of 16: x = d * scale * (q - 32), q 6-bit (4 low bits in ql, 2 high in qh).
struct BlockQ6_K {
  static constexpr GgmlType kGgmlType = GgmlType::Q6_K;
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  f16_bits d;
};

// The activation format of K-quant dot products: float scale, int8 values, sums per 16.
struct BlockQ8_K {
  static constexpr GgmlType kGgmlType = GgmlType::Q8_K;
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

template <class Block>
constexpr bool block_size_matches_table() {
  return sizeof(Block) == traits_of(Block::kGgmlType).block_bytes;
}
static_assert(block_size_matches_table<BlockQ4_0>());
static_assert(block_size_matches_table<BlockQ4_1>());
static_assert(block_size_matches_table<BlockQ5_0>());
static_assert(block_size_matches_table<BlockQ5_1>());
static_assert(block_size_matches_table<BlockQ8_0>());
static_assert(block_size_matches_table<BlockQ8_1>());
static_assert(block_size_matches_table<BlockQ2_K>());
static_assert(block_size_matches_table<BlockQ3_K>());
static_assert(block_size_matches_table<BlockQ4_K>());
static_assert(block_size_matches_table<BlockQ5_K>());
static_assert(block_size_matches_table<BlockQ6_K>());
static_assert(block_size_matches_table<BlockQ8_K>());

}  // namespace floatllm
