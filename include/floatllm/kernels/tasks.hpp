// Plain data handed from the target-independent entry points (entry_points.hpp) to the per-target
// SIMD code (*-inl.hpp), and the quantization of activations, which is the same on every target.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "floatllm/core/tensor.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/half.hpp"

namespace floatllm::kernels::detail {

// Activation rows quantized as llama.cpp's vec_dot functions see them, with the int8 values
// widened to int16 once so every weight row's dot product can feed them straight into 16-bit
// multiply-adds.
//   group 32 (Q8_0 / Q8_1): x ~ d * q per 32 values, d rounded to f16 as Q8_0 stores it;
//                           s = f16(d * sum(q)) is Q8_1's sum, used by Q4_1 / Q5_1.
//   group 256 (Q8_K):       x ~ d * q per 256 values, d a float; bsums are sums of 16 values.
struct QuantizedActivations {
  int64_t cols = 0;
  int64_t n_tokens = 0;
  int64_t group = 32;
  std::vector<int16_t> q;        // [n_tokens][cols]
  std::vector<int8_t> q8;        // the same values as int8, for u8 x i8 multiply-adds
  std::vector<float> d;          // [n_tokens][cols / group]
  std::vector<float> s;          // [n_tokens][cols / 32], group 32 only
  std::vector<int16_t> bsums;    // [n_tokens][cols / 16], group 256 only
  std::vector<int16_t> bsums32;  // [n_tokens][cols / 32]: sums of each 32 values
  // Group 256: q8 with each 128 values reordered as [0, 32) [64, 96) [32, 64) [96, 128), so the
  // low and the high nibbles of 64 consecutive Q4_K bytes each meet 64 consecutive activations.
  std::vector<int8_t> q8_pairs;

  const int16_t* q_row(int64_t t) const { return q.data() + t * cols; }
  const int8_t* q8_row(int64_t t) const { return q8.data() + t * cols; }
  const int8_t* q8_pairs_row(int64_t t) const { return q8_pairs.data() + t * cols; }
  const float* d_row(int64_t t) const { return d.data() + t * (cols / group); }
  const float* s_row(int64_t t) const { return s.data() + t * (cols / 32); }
  const int16_t* bsums_row(int64_t t) const { return bsums.data() + t * (cols / 16); }
  const int16_t* bsums32_row(int64_t t) const { return bsums32.data() + t * (cols / 32); }
};

// Round half to even by adding 1.5 * 2^23, which leaves the integer in the low mantissa bits
// (ggml's nearest_int, in the default rounding mode); valid for |x| < 2^22, and no libm call.
inline int round_to_int(float x) {
  const float shifted = x + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, sizeof(bits));
  return (bits & 0x007fffff) - 0x00400000;
}

// Q8_0 / Q8_1 of one 32-value block as llama.cpp's x86 code computes it (round half to even,
// scale 127 / amax), which is what produced the reference logits.
inline void quantize_q8_0_block(const float* x, int16_t* q, float* d_out, float* s_out) {
  float amax = 0.0f;
  for (int i = 0; i < 32; ++i)
    amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  int sum = 0;
  for (int i = 0; i < 32; ++i) {
    q[i] = static_cast<int16_t>(round_to_int(x[i] * id));
    sum += q[i];
  }
  *d_out = fp16_to_f32(f32_to_fp16(d));
  *s_out = fp16_to_f32(f32_to_fp16(static_cast<float>(sum) * d));
}

// Q8_K of one 256-value super-block, as quantize_row_q8_K_ref computes it: the scale maps the
// value of largest magnitude to -127.
inline void quantize_q8_k_block(const float* x, int16_t* q, float* d_out, int16_t* bsums) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < 256; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) {
    std::fill(q, q + 256, int16_t{0});
    std::fill(bsums, bsums + 16, int16_t{0});
    *d_out = 0.0f;
    return;
  }
  const float iscale = -127.0f / max;
  for (int i = 0; i < 256; ++i) {
    q[i] = static_cast<int16_t>(std::min(127, round_to_int(iscale * x[i])));
  }
  for (int j = 0; j < 16; ++j) {
    int sum = 0;
    for (int i = 0; i < 16; ++i)
      sum += q[16 * j + i];
    bsums[j] = static_cast<int16_t>(sum);
  }
  *d_out = 1.0f / iscale;
}

inline void quantize_token_rows(const float* x, int64_t t_begin, int64_t t_end,
                                QuantizedActivations& qa) {
  const int64_t cols = qa.cols;
  if (qa.group == 32) {
    for (int64_t b = t_begin * cols / 32; b < t_end * cols / 32; ++b) {
      quantize_q8_0_block(x + 32 * b, qa.q.data() + 32 * b, &qa.d[static_cast<size_t>(b)],
                          &qa.s[static_cast<size_t>(b)]);
      int sum = 0;
      for (int i = 0; i < 32; ++i)
        sum += qa.q[static_cast<size_t>(32 * b + i)];
      qa.bsums32[static_cast<size_t>(b)] = static_cast<int16_t>(sum);
    }
  } else {
    for (int64_t b = t_begin * cols / 256; b < t_end * cols / 256; ++b) {
      int16_t* bsums = qa.bsums.data() + 16 * b;
      quantize_q8_k_block(x + 256 * b, qa.q.data() + 256 * b, &qa.d[static_cast<size_t>(b)], bsums);
      for (int j = 0; j < 8; ++j) {
        qa.bsums32[static_cast<size_t>(8 * b + j)] =
            static_cast<int16_t>(bsums[2 * j] + bsums[2 * j + 1]);
      }
    }
  }
  for (int64_t i = t_begin * cols; i < t_end * cols; ++i) {
    qa.q8[static_cast<size_t>(i)] = static_cast<int8_t>(qa.q[static_cast<size_t>(i)]);
  }
  if (qa.group == 256) {
    constexpr int64_t kFrom[4] = {0, 64, 32, 96};
    for (int64_t chunk = t_begin * cols; chunk < t_end * cols; chunk += 128) {
      for (int part = 0; part < 4; ++part) {
        std::memcpy(qa.q8_pairs.data() + chunk + 32 * part, qa.q8.data() + chunk + kFrom[part], 32);
      }
    }
  }
}

inline void resize_activations(int64_t cols, int64_t n_tokens, int64_t group,
                               QuantizedActivations& qa) {
  qa.cols = cols;
  qa.n_tokens = n_tokens;
  qa.group = group;
  const auto total = static_cast<size_t>(cols * n_tokens);
  qa.q.resize(total);
  qa.q8.resize(total);
  qa.d.resize(total / static_cast<size_t>(group));
  qa.bsums32.resize(total / 32);
  if (group == 32) {
    qa.s.resize(total / 32);
  } else {
    qa.bsums.resize(total / 16);
    qa.q8_pairs.resize(total);
  }
}

inline void quantize_activations(const float* x, int64_t cols, int64_t n_tokens, int64_t group,
                                 QuantizedActivations& out) {
  resize_activations(cols, n_tokens, group, out);
  quantize_token_rows(x, 0, n_tokens, out);
}

// The activation group a weight type's integer dot product uses; 0 for float weights.
constexpr int64_t activation_group(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
      return 32;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return 256;
    default:
      return 0;
  }
}

struct MatmulTask {
  MatrixView w;
  int64_t n_tokens = 0;
  const float* x = nullptr;                  // float weights: activations as given
  const QuantizedActivations* qa = nullptr;  // quantized weights
  float* y = nullptr;                        // [n_tokens][w.rows]
};

struct AttentionTask {
  const float* q = nullptr;
  int64_t n_tokens = 0;
  int64_t first_pos = 0;
  GgmlType kv_type = GgmlType::F32;
  const std::byte* k = nullptr;
  const std::byte* v = nullptr;
  uint64_t row_bytes = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;
  float softcap = 0.0f;
  int64_t window = 0;
  float* out = nullptr;
};

}  // namespace floatllm::kernels::detail
