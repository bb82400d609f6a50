// Scalar reference dequantization of the GGML formats, bit-exact with llama.cpp's reference code.
//
// This is the ground truth the SIMD kernels are tested against, so it favours plain loops that
// mirror the block layout over speed. Every product below is exact in float (an f16 scale has an
// 11-bit significand, multiplied by integers of at most 8 bits), so results do not depend on the
// compiler fusing multiply-adds: each output value is rounded at most once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "floatllm/core/error.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/ggml_type.hpp"
#include "floatllm/quant/half.hpp"

namespace floatllm {

struct ScaleMin {
  uint8_t scale;
  uint8_t min;
};

// Q4_K / Q5_K pack eight 6-bit scales and eight 6-bit mins in 12 bytes. Sub-blocks 0..3 keep them
// in the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 keep their low 4 bits
// in the nibbles of bytes 8..11 and their top 2 bits in the spare top bits of bytes 0..7.
constexpr ScaleMin unpack_k_scale_min(const uint8_t (&packed)[kKScaleBytes], int sub_block) {
  const int j = sub_block;
  if (j < 4) {
    return {static_cast<uint8_t>(packed[j] & 63), static_cast<uint8_t>(packed[j + 4] & 63)};
  }
  return {static_cast<uint8_t>((packed[j + 4] & 0xf) | ((packed[j - 4] >> 6) << 4)),
          static_cast<uint8_t>((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4))};
}

// Q3_K packs sixteen 6-bit scales (stored with a +32 bias) in 12 bytes: the low 4 bits of scales
// 0..7 in the low nibbles of bytes 0..7, of scales 8..15 in their high nibbles; the top 2 bits of
// scale k in bits 2*(k/4) of byte 8 + k%4.
constexpr int unpack_q3_k_scale(const uint8_t (&packed)[12], int sub_block) {
  const int k = sub_block;
  const int low = k < 8 ? (packed[k] & 0xf) : (packed[k - 8] >> 4);
  const int high = (packed[8 + k % 4] >> (2 * (k / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// x[j] = d * (q[j] - 8); byte j holds value j in its low nibble and value j + 16 in its high one.
inline void dequantize_block(const BlockQ4_0& block, float* out) {
  const float d = fp16_to_f32(block.d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    out[j] = static_cast<float>((block.qs[j] & 0xf) - 8) * d;
    out[j + kQK4_0 / 2] = static_cast<float>((block.qs[j] >> 4) - 8) * d;
  }
}

inline void dequantize_block(const BlockQ4_1& block, float* out) {
  const float d = fp16_to_f32(block.d);
  const float m = fp16_to_f32(block.m);
  for (int j = 0; j < kQK4_1 / 2; ++j) {
    out[j] = static_cast<float>(block.qs[j] & 0xf) * d + m;
    out[j + kQK4_1 / 2] = static_cast<float>(block.qs[j] >> 4) * d + m;
  }
}

// The 5th bit of value j is bit j of the little-endian 32-bit word qh.
inline uint32_t load_high_bits(const uint8_t (&qh)[4]) {
  return static_cast<uint32_t>(qh[0]) | (static_cast<uint32_t>(qh[1]) << 8) |
         (static_cast<uint32_t>(qh[2]) << 16) | (static_cast<uint32_t>(qh[3]) << 24);
}

inline int q5_value(const uint8_t (&qs)[16], uint32_t high_bits, int j) {
  const int low = j < 16 ? (qs[j] & 0xf) : (qs[j - 16] >> 4);
  return low | static_cast<int>(((high_bits >> j) & 1u) << 4);
}

inline void dequantize_block(const BlockQ5_0& block, float* out) {
  const float d = fp16_to_f32(block.d);
  const uint32_t high_bits = load_high_bits(block.qh);
  for (int j = 0; j < kQK5_0; ++j) {
    out[j] = static_cast<float>(q5_value(block.qs, high_bits, j) - 16) * d;
  }
}

inline void dequantize_block(const BlockQ5_1& block, float* out) {
  const float d = fp16_to_f32(block.d);
  const float m = fp16_to_f32(block.m);
  const uint32_t high_bits = load_high_bits(block.qh);
  for (int j = 0; j < kQK5_1; ++j) {
    out[j] = static_cast<float>(q5_value(block.qs, high_bits, j)) * d + m;
  }
}

inline void dequantize_block(const BlockQ8_0& block, float* out) {
  const float d = fp16_to_f32(block.d);
  for (int j = 0; j < kQK8_0; ++j)
    out[j] = static_cast<float>(block.qs[j]) * d;
}

// The stored sum s is redundant for dequantization.
inline void dequantize_block(const BlockQ8_1& block, float* out) {
  const float d = fp16_to_f32(block.d);
  for (int j = 0; j < kQK8_1; ++j)
    out[j] = static_cast<float>(block.qs[j]) * d;
}

// Each 128-value half uses 32 bytes of qs: value 32 * pass + l takes bits 2 * pass of byte l,
// pass = 0..3. Sub-block k (16 values) has scale byte k: low nibble scale, high nibble min.
inline void dequantize_block(const BlockQ2_K& block, float* out) {
  const float d = fp16_to_f32(block.d);
  const float dmin = fp16_to_f32(block.dmin);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = block.qs + 32 * half;
    for (int pass = 0; pass < 4; ++pass) {
      for (int part = 0; part < 2; ++part) {
        const uint8_t scale_byte = block.scales[8 * half + 2 * pass + part];
        const float scale = d * static_cast<float>(scale_byte & 0xf);
        const float min = dmin * static_cast<float>(scale_byte >> 4);
        for (int l = 0; l < 16; ++l) {
          const int value = (q[16 * part + l] >> (2 * pass)) & 3;
          *out++ = scale * static_cast<float>(value) - min;
        }
      }
    }
  }
}

// The same 2-bit walk as Q2_K. The third bit of value 128 * half + 32 * pass + l is bit
// 4 * half + pass of hmask[l]; a clear bit means the value is 4 lower (q in -4..3).
inline void dequantize_block(const BlockQ3_K& block, float* out) {
  const float d = fp16_to_f32(block.d);
  int sub_block = 0;
  for (int half = 0; half < 2; ++half) {
    const uint8_t* q = block.qs + 32 * half;
    for (int pass = 0; pass < 4; ++pass) {
      const auto high_mask = static_cast<uint8_t>(1u << (4 * half + pass));
      for (int part = 0; part < 2; ++part) {
        const float scale = d * static_cast<float>(unpack_q3_k_scale(block.scales, sub_block++));
        for (int l = 16 * part; l < 16 * part + 16; ++l) {
          const int low = (q[l] >> (2 * pass)) & 3;
          const int value = low - ((block.hmask[l] & high_mask) != 0 ? 0 : 4);
          *out++ = scale * static_cast<float>(value);
        }
      }
    }
  }
}

// Each 64 values share 32 bytes of qs: the first 32 are low nibbles, the next 32 high nibbles.
inline void dequantize_block(const BlockQ4_K& block, float* out) {
  const float d = fp16_to_f32(block.d);
  const float dmin = fp16_to_f32(block.dmin);
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* q = block.qs + 32 * chunk;
    for (int nibble = 0; nibble < 2; ++nibble) {
      const ScaleMin sm = unpack_k_scale_min(block.scales, 2 * chunk + nibble);
      const float scale = d * static_cast<float>(sm.scale);
      const float min = dmin * static_cast<float>(sm.min);
      for (int l = 0; l < 32; ++l) {
        const int value = (q[l] >> (4 * nibble)) & 0xf;
        *out++ = scale * static_cast<float>(value) - min;
      }
    }
  }
}

// As Q4_K; the 5th bit of value 32 * s + l (sub-block s) is bit s of qh[l].
inline void dequantize_block(const BlockQ5_K& block, float* out) {
  const float d = fp16_to_f32(block.d);
  const float dmin = fp16_to_f32(block.dmin);
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* q = block.qs + 32 * chunk;
    for (int nibble = 0; nibble < 2; ++nibble) {
      const int sub_block = 2 * chunk + nibble;
      const ScaleMin sm = unpack_k_scale_min(block.scales, sub_block);
      const float scale = d * static_cast<float>(sm.scale);
      const float min = dmin * static_cast<float>(sm.min);
      for (int l = 0; l < 32; ++l) {
        const int value = ((q[l] >> (4 * nibble)) & 0xf) | (((block.qh[l] >> sub_block) & 1) << 4);
        *out++ = scale * static_cast<float>(value) - min;
      }
    }
  }
}

// Per 128-value half: 64 bytes of ql and 32 of qh. Value 32 * pass + l (pass 0..3) takes the low
// nibble (passes 0, 1) or high nibble (passes 2, 3) of ql[l + 32 * (pass % 2)] and bits 2 * pass
// of qh[l]. Scale index is 8 * half + 2 * pass + l / 16.
inline void dequantize_block(const BlockQ6_K& block, float* out) {
  const float d = fp16_to_f32(block.d);
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = block.ql + 64 * half;
    const uint8_t* qh = block.qh + 32 * half;
    const int8_t* scales = block.scales + 8 * half;
    for (int pass = 0; pass < 4; ++pass) {
      for (int l = 0; l < 32; ++l) {
        const int low = (ql[l + 32 * (pass % 2)] >> (4 * (pass / 2))) & 0xf;
        const int high = (qh[l] >> (2 * pass)) & 3;
        const int value = (low | (high << 4)) - 32;
        const float scale = d * static_cast<float>(scales[2 * pass + l / 16]);
        out[128 * half + 32 * pass + l] = scale * static_cast<float>(value);
      }
    }
  }
}

inline void dequantize_block(const BlockQ8_K& block, float* out) {
  for (int j = 0; j < static_cast<int>(kQK_K); ++j)
    out[j] = block.d * static_cast<float>(block.qs[j]);
}

namespace dequantize_detail {

// Blocks are copied out before use: tensor data need not be aligned for the block struct.
template <class Block>
void dequantize_blocks(const std::byte* src, float* dst, int64_t blocks) {
  constexpr int64_t kValues = traits_of(Block::kGgmlType).block_elements;
  for (int64_t b = 0; b < blocks; ++b) {
    Block block;
    std::memcpy(&block, src + b * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
    dequantize_block(block, dst + b * kValues);
  }
}

}  // namespace dequantize_detail

constexpr bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q8_1:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::Q8_K:
      return true;
    default:
      return false;
  }
}

// Dequantizes `count` values (a multiple of the type's block size) from `src` into `dst`.
inline void dequantize_row(GgmlType type, const std::byte* src, float* dst, int64_t count) {
  if (!can_dequantize(type)) fail("dequantize_row: type ", ggml_type_name(type), " is unsupported");
  const int64_t block_elements = traits_of(type).block_elements;
  if (count < 0 || count % block_elements != 0) {
    fail("dequantize_row: ", count, " values of ", ggml_type_name(type),
         " is not a whole number of ", block_elements, "-value blocks");
  }
  const int64_t blocks = count / block_elements;
  using namespace dequantize_detail;
  switch (type) {
    case GgmlType::F32:
      if (count > 0) std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
      return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < count; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, sizeof(bits));
        dst[i] = type == GgmlType::F16 ? fp16_to_f32(bits) : bf16_to_f32(bits);
      }
      return;
    case GgmlType::Q4_0:
      return dequantize_blocks<BlockQ4_0>(src, dst, blocks);
    case GgmlType::Q4_1:
      return dequantize_blocks<BlockQ4_1>(src, dst, blocks);
    case GgmlType::Q5_0:
      return dequantize_blocks<BlockQ5_0>(src, dst, blocks);
    case GgmlType::Q5_1:
      return dequantize_blocks<BlockQ5_1>(src, dst, blocks);
    case GgmlType::Q8_0:
      return dequantize_blocks<BlockQ8_0>(src, dst, blocks);
    case GgmlType::Q8_1:
      return dequantize_blocks<BlockQ8_1>(src, dst, blocks);
    case GgmlType::Q2_K:
      return dequantize_blocks<BlockQ2_K>(src, dst, blocks);
    case GgmlType::Q3_K:
      return dequantize_blocks<BlockQ3_K>(src, dst, blocks);
    case GgmlType::Q4_K:
      return dequantize_blocks<BlockQ4_K>(src, dst, blocks);
    case GgmlType::Q5_K:
      return dequantize_blocks<BlockQ5_K>(src, dst, blocks);
    case GgmlType::Q6_K:
      return dequantize_blocks<BlockQ6_K>(src, dst, blocks);
    case GgmlType::Q8_K:
      return dequantize_blocks<BlockQ8_K>(src, dst, blocks);
    default:
      return;  // excluded by can_dequantize above
  }
}

}  // namespace floatllm
