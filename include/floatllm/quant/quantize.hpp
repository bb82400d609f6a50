// Scalar quantization into the GGML formats, producing the bytes llama.cpp's reference quantizers
// produce (quantize_row_*_ref, which llama-quantize uses when no importance matrix is given), so
// files written here read identically everywhere.
//
// The scale searches follow llama.cpp's published algorithms: plain absmax scaling for the
// 32-value formats, weighted least-squares refinement over a sweep of candidate scales for the
// K-quants. Everything is sequential float arithmetic in a fixed order, so the output depends only
// on the input.
//
// One deliberate difference: scales that would overflow f16 saturate at +-65504 instead of
// becoming inf, so absurdly large inputs give finite (if inaccurate) values instead of NaN.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

#include "floatllm/core/error.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/ggml_type.hpp"
#include "floatllm/quant/half.hpp"

// The scale searches compare sums of products; fusing a multiply and an add into one FMA rounds
// differently and changes which candidate wins. llama-quantize's bytes come from unfused
// arithmetic, so contraction is switched off here whatever the build flags (-march=native makes
// GCC and clang fuse by default). Restored at the end of this header.
#if defined(__clang__)
#pragma float_control(push)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

namespace floatllm {

namespace quantize_detail {

// Below this, a group is treated as all zeros (llama.cpp's GROUP_MAX_EPS).
inline constexpr float kAllZeroThreshold = 1e-15f;

// Rounds to nearest, ties to even, for |value| < 2^22: adding 1.5 * 2^23 leaves the integer in the
// low mantissa bits. This is llama.cpp's nearest_int; it is defined for any input (out-of-range
// and NaN inputs give values the callers clamp), so hostile floats cannot cause UB.
inline int nearest_int(float value) {
  const float shifted = value + 12582912.0f;
  return static_cast<int>(std::bit_cast<uint32_t>(shifted) & 0x7fffffu) - 0x400000;
}

// The f16 bits of a block scale, saturating at the largest finite f16 instead of overflowing.
inline f16_bits scale_to_fp16(float scale) {
  constexpr float kMaxF16 = 65504.0f;
  return f32_to_fp16(std::isnan(scale) ? 0.0f : std::clamp(scale, -kMaxF16, kMaxF16));
}

// The level (int8_t)(shifted) capped at `max_level` that llama.cpp's 32-value quantizers take; the
// float is range-checked first because converting an out-of-range float to an integer is UB.
inline int truncate_level(float shifted, int max_level) {
  if (!(shifted >= 0.0f)) return 0;
  if (shifted >= static_cast<float>(max_level)) return max_level;
  return static_cast<int>(shifted);
}

// A value rounded half away from zero (roundf) and clamped to -127..127.
inline int8_t round_to_int8(float value) {
  if (std::isnan(value)) return 0;
  return static_cast<int8_t>(std::round(std::clamp(value, -127.0f, 127.0f)));
}

// The first value of largest magnitude, with its sign.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  return max;
}

// Symmetric levels for n values, L[i] in 0..2*nmax-1 meaning l = L[i] - nmax, x ~ scale * l.
// Starts from the scale that maps the largest magnitude to -nmax, then tries 18 nearby scales and
// keeps the one whose levels give the best weighted least-squares fit (weights x^2, favouring the
// large values that dominate a dot product). Returns that least-squares scale.
inline float symmetric_levels_x2(int n, int nmax, const float* x, int8_t* levels) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kAllZeroThreshold) {
    std::fill_n(levels, n, int8_t{0});
    return 0.0f;
  }
  const auto fit = [&](float iscale, float& sumlx, float& suml2) {
    sumlx = 0.0f;
    suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
  };
  const auto store = [&](float iscale) {
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      levels[i] = static_cast<int8_t>(l + nmax);
    }
  };

  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  fit(iscale, sumlx, suml2);
  store(iscale);
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
    fit(iscale, sumlx, suml2);
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      store(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's search: symmetric levels l in -nmax..nmax-1, then up to 5 rounds of coordinate descent
// that move single levels while that improves the weighted (x^2) least-squares fit. Levels come
// back offset by nmax.
inline float symmetric_levels_descent(int n, int nmax, const float* x, int8_t* levels) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kAllZeroThreshold) {
    std::fill_n(levels, n, int8_t{0});
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f;
  float suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    levels[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const auto old_l = static_cast<float>(levels[i]);
      float slx = sumlx - w * x[i] * old_l;
      if (!(slx > 0.0f)) continue;
      float sl2 = suml2 - w * old_l * old_l;
      const int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (new_l == levels[i]) continue;
      slx += w * x[i] * static_cast<float>(new_l);
      sl2 += w * static_cast<float>(new_l) * static_cast<float>(new_l);
      if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
        levels[i] = static_cast<int8_t>(new_l);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i)
    levels[i] = static_cast<int8_t>(levels[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

struct AffineFit {
  float scale;
  float min;  // subtracted: x ~ scale * L - min, min >= 0
};

struct AffineSearch {
  float rmin;    // first candidate is (nmax + rmin) / range
  float rdelta;  // candidate step
  int steps;     // candidates after the first
  bool use_mad;  // minimise weighted |error| instead of weighted error^2
};

// Affine levels L[i] in 0..nmax with x ~ scale * L + m (m <= 0, so the range includes 0). For each
// candidate scale, levels are rounded and (scale, m) solved by weighted least squares in closed
// form; the candidate with the smallest weighted error wins. This is llama.cpp's make_qkx2_quants.
inline AffineFit affine_levels(int n, int nmax, const float* x, const float* weights,
                               uint8_t* levels, const AffineSearch& search) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = x[i] < min ? x[i] : min;
    max = x[i] > max ? x[i] : max;
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (max == min) {
    std::fill_n(levels, n, uint8_t{0});
    return {0.0f, -min};
  }
  const auto error_of = [&](float scale, float offset, const uint8_t* candidate) {
    float error = 0.0f;
    for (int i = 0; i < n; ++i) {
      float diff = scale * static_cast<float>(candidate[i]) + offset - x[i];
      diff = search.use_mad ? std::fabs(diff) : diff * diff;
      error += weights[i] * diff;
    }
    return error;
  };

  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1.0f / iscale;
  for (int i = 0; i < n; ++i)
    levels[i] = static_cast<uint8_t>(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
  float best_error = error_of(scale, min, levels);

  uint8_t candidate[kQK_K];
  for (int step = 0; step <= search.steps; ++step) {
    iscale = (search.rmin + search.rdelta * static_cast<float>(step) + static_cast<float>(nmax)) /
             (max - min);
    float sum_l = 0.0f;
    float sum_l2 = 0.0f;
    float sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      candidate[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * static_cast<float>(l);
      sum_l2 += w * static_cast<float>(l) * static_cast<float>(l);
      sum_xl += w * static_cast<float>(l) * x[i];
    }
    const float determinant = sum_w * sum_l2 - sum_l * sum_l;
    if (!(determinant > 0.0f)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / determinant;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / determinant;
    if (this_min > 0.0f) {
      this_min = 0.0f;
      this_scale = sum_xl / sum_l2;
    }
    const float error = error_of(this_scale, this_min, candidate);
    if (error < best_error) {
      std::copy_n(candidate, n, levels);
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  return {scale, -min};
}

// Inverse of unpack_k_scale_min: 6-bit scale and min of sub-block j into the 12 packed bytes
// (which must start zeroed for sub-blocks 4..7 to OR into).
inline void pack_k_scale_min(uint8_t (&packed)[kKScaleBytes], int j, uint8_t scale, uint8_t min) {
  if (j < 4) {
    packed[j] = scale;
    packed[j + 4] = min;
  } else {
    packed[j + 4] = static_cast<uint8_t>((scale & 0xf) | ((min & 0xf) << 4));
    packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((scale >> 4) << 6));
    packed[j] = static_cast<uint8_t>(packed[j] | ((min >> 4) << 6));
  }
}

// Inverse of unpack_q3_k_scale for a biased 6-bit value (0..63); `packed` must start zeroed.
inline void pack_q3_k_scale(uint8_t (&packed)[12], int k, int biased) {
  if (k < 8) {
    packed[k] = static_cast<uint8_t>(biased & 0xf);
  } else {
    packed[k - 8] = static_cast<uint8_t>(packed[k - 8] | ((biased & 0xf) << 4));
  }
  packed[8 + k % 4] = static_cast<uint8_t>(packed[8 + k % 4] | ((biased >> 4) << (2 * (k / 4))));
}

// Two-bit levels of a 256-value block into 64 bytes, in the order dequantize_block walks them.
inline void pack_2bit(const uint8_t* levels, uint8_t* qs) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* l = levels + 128 * half;
    for (int i = 0; i < 32; ++i) {
      qs[32 * half + i] =
          static_cast<uint8_t>(l[i] | (l[i + 32] << 2) | (l[i + 64] << 4) | (l[i + 96] << 6));
    }
  }
}

// Q4_K / Q5_K per-value weights: the sub-block's RMS plus |x|, so larger values fit better.
inline void rms_plus_abs_weights(const float* x, float* weights) {
  float sum_x2 = 0.0f;
  for (int l = 0; l < 32; ++l)
    sum_x2 += x[l] * x[l];
  const float rms = std::sqrt(sum_x2 / 32.0f);
  for (int l = 0; l < 32; ++l)
    weights[l] = rms + std::fabs(x[l]);
}

// Shared by Q4_K and Q5_K: fits eight 32-value sub-blocks with `nmax` levels, quantizes their
// scales and mins to 6 bits against the block maxima, then re-rounds every value against the
// scales actually stored.
template <class Block>
void quantize_k_block_with_mins(const float* x, Block& block, int nmax, const AffineSearch& search,
                                uint8_t* levels) {
  float scales[8];
  float mins[8];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float weights[32];
    rms_plus_abs_weights(x + 32 * j, weights);
    const AffineFit fit = affine_levels(32, nmax, x + 32 * j, weights, levels + 32 * j, search);
    scales[j] = fit.scale;
    mins[j] = fit.min;
    max_scale = scales[j] > max_scale ? scales[j] : max_scale;
    max_min = mins[j] > max_min ? mins[j] : max_min;
  }

  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  std::memset(block.scales, 0, sizeof(block.scales));
  for (int j = 0; j < 8; ++j) {
    // llama.cpp stores the rounded value in a uint8_t before capping it; keep that wrap-around.
    const auto ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
    const auto lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
    pack_k_scale_min(block.scales, j, std::min<uint8_t>(63, ls), std::min<uint8_t>(63, lm));
  }
  block.d = scale_to_fp16(max_scale / 63.0f);
  block.dmin = scale_to_fp16(max_min / 63.0f);

  for (int j = 0; j < 8; ++j) {
    const ScaleMin sm = unpack_k_scale_min(block.scales, j);
    const float d = fp16_to_f32(block.d) * static_cast<float>(sm.scale);
    if (d == 0.0f) continue;
    const float dm = fp16_to_f32(block.dmin) * static_cast<float>(sm.min);
    for (int i = 0; i < 32; ++i) {
      levels[32 * j + i] =
          static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace quantize_detail

// ---------------------------------------------------------------------------------------------
// 32-value formats: the scale maps the block's extreme value to the end of the level range.

// d = max / -8 where max is the value of largest magnitude, so it lands exactly on level 0.
inline void quantize_block(const float* x, BlockQ4_0& block) {
  using namespace quantize_detail;
  const float d = signed_absmax(x, kQK4_0) / -8.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = scale_to_fp16(d);
  for (int j = 0; j < kQK4_0 / 2; ++j) {
    const int low = truncate_level(x[j] * id + 8.5f, 15);
    const int high = truncate_level(x[j + kQK4_0 / 2] * id + 8.5f, 15);
    block.qs[j] = static_cast<uint8_t>(low | (high << 4));
  }
}

// x ~ d * q + min over the block's [min, max].
inline void quantize_block(const float* x, BlockQ4_1& block) {
  using namespace quantize_detail;
  float min = std::numeric_limits<float>::max();
  float max = -std::numeric_limits<float>::max();
  for (int j = 0; j < kQK4_1; ++j) {
    min = x[j] < min ? x[j] : min;
    max = x[j] > max ? x[j] : max;
  }
  const float d = (max - min) / 15.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = scale_to_fp16(d);
  block.m = scale_to_fp16(min);
  for (int j = 0; j < kQK4_1 / 2; ++j) {
    const int low = truncate_level((x[j] - min) * id + 0.5f, 15);
    const int high = truncate_level((x[j + kQK4_1 / 2] - min) * id + 0.5f, 15);
    block.qs[j] = static_cast<uint8_t>(low | (high << 4));
  }
}

// Splits 32 five-bit levels into the nibbles of qs and the bit plane qh.
inline void pack_q5(const int (&levels)[32], uint8_t (&qs)[16], uint8_t (&qh)[4]) {
  uint32_t high_bits = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((levels[j] & 0xf) | ((levels[j + 16] & 0xf) << 4));
    high_bits |= static_cast<uint32_t>((levels[j] >> 4) & 1) << j;
    high_bits |= static_cast<uint32_t>((levels[j + 16] >> 4) & 1) << (j + 16);
  }
  for (int b = 0; b < 4; ++b)
    qh[b] = static_cast<uint8_t>(high_bits >> (8 * b));
}

inline void quantize_block(const float* x, BlockQ5_0& block) {
  using namespace quantize_detail;
  const float d = signed_absmax(x, kQK5_0) / -16.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = scale_to_fp16(d);
  int levels[32];
  for (int j = 0; j < kQK5_0; ++j)
    levels[j] = truncate_level(x[j] * id + 16.5f, 31);
  pack_q5(levels, block.qs, block.qh);
}

inline void quantize_block(const float* x, BlockQ5_1& block) {
  using namespace quantize_detail;
  float min = std::numeric_limits<float>::max();
  float max = -std::numeric_limits<float>::max();
  for (int j = 0; j < kQK5_1; ++j) {
    min = x[j] < min ? x[j] : min;
    max = x[j] > max ? x[j] : max;
  }
  const float d = (max - min) / 31.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = scale_to_fp16(d);
  block.m = scale_to_fp16(min);
  int levels[32];
  for (int j = 0; j < kQK5_1; ++j)
    levels[j] = truncate_level((x[j] - min) * id + 0.5f, 31);
  pack_q5(levels, block.qs, block.qh);
}

inline float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j)
    amax = std::max(amax, std::fabs(x[j]));
  return amax;
}

inline void quantize_block(const float* x, BlockQ8_0& block) {
  using namespace quantize_detail;
  const float d = absmax(x, kQK8_0) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = scale_to_fp16(d);
  for (int j = 0; j < kQK8_0; ++j)
    block.qs[j] = round_to_int8(x[j] * id);
}

inline void quantize_block(const float* x, BlockQ8_1& block) {
  using namespace quantize_detail;
  const float d = absmax(x, kQK8_1) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  block.d = scale_to_fp16(d);
  int sum = 0;
  for (int j = 0; j < kQK8_1; ++j) {
    block.qs[j] = round_to_int8(x[j] * id);
    sum += block.qs[j];
  }
  block.s = scale_to_fp16(static_cast<float>(sum) * d);
}

// ---------------------------------------------------------------------------------------------
// K-quants: 256-value super-blocks whose sub-block scales are themselves quantized.

// Sixteen 16-value sub-blocks fitted with 2-bit affine levels (weights |x|, least absolute error),
// their scales and mins quantized to 4 bits against the block maxima.
inline void quantize_block(const float* x, BlockQ2_K& block) {
  using namespace quantize_detail;
  constexpr AffineSearch kSearch{-0.5f, 0.1f, 15, true};
  uint8_t levels[kQK_K];
  float scales[16];
  float mins[16];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    float weights[16];
    for (int l = 0; l < 16; ++l)
      weights[l] = std::fabs(x[16 * j + l]);
    const AffineFit fit = affine_levels(16, 3, x + 16 * j, weights, levels + 16 * j, kSearch);
    scales[j] = fit.scale;
    mins[j] = fit.min;
    max_scale = scales[j] > max_scale ? scales[j] : max_scale;
    max_min = mins[j] > max_min ? mins[j] : max_min;
  }

  std::memset(block.scales, 0, sizeof(block.scales));
  block.d = 0;
  block.dmin = 0;
  if (max_scale > 0.0f) {
    const float iscale = 15.0f / max_scale;
    for (int j = 0; j < 16; ++j)
      block.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    block.d = scale_to_fp16(max_scale / 15.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = 15.0f / max_min;
    for (int j = 0; j < 16; ++j) {
      block.scales[j] =
          static_cast<uint8_t>(block.scales[j] | (nearest_int(iscale * mins[j]) << 4));
    }
    block.dmin = scale_to_fp16(max_min / 15.0f);
  }

  for (int j = 0; j < 16; ++j) {
    const float d = fp16_to_f32(block.d) * static_cast<float>(block.scales[j] & 0xf);
    if (d == 0.0f) continue;
    const float dm = fp16_to_f32(block.dmin) * static_cast<float>(block.scales[j] >> 4);
    for (int i = 0; i < 16; ++i) {
      levels[16 * j + i] =
          static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + i] + dm) / d), 0, 3));
    }
  }
  pack_2bit(levels, block.qs);
}

// Sixteen 16-value sub-blocks with symmetric 3-bit levels (-4..3), 6-bit signed scales.
inline void quantize_block(const float* x, BlockQ3_K& block) {
  using namespace quantize_detail;
  int8_t levels[kQK_K];
  float scales[16];
  float max_scale = 0.0f;
  float amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = symmetric_levels_descent(16, 4, x + 16 * j, levels + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }

  std::memset(block.scales, 0, sizeof(block.scales));
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const auto rounded = static_cast<int8_t>(nearest_int(iscale * scales[j]));
      pack_q3_k_scale(block.scales, j, std::clamp<int>(rounded, -32, 31) + 32);
    }
    block.d = scale_to_fp16(1.0f / iscale);
  } else {
    block.d = 0;
  }

  for (int j = 0; j < 16; ++j) {
    const float d = fp16_to_f32(block.d) * static_cast<float>(unpack_q3_k_scale(block.scales, j));
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = std::clamp(nearest_int(x[16 * j + i] / d), -4, 3);
      levels[16 * j + i] = static_cast<int8_t>(l + 4);
    }
  }

  // Levels 4..7 set the value's bit in hmask (bit k / 32 of byte k % 32) and keep 2 low bits.
  uint8_t low_bits[kQK_K];
  std::memset(block.hmask, 0, sizeof(block.hmask));
  for (int k = 0; k < static_cast<int>(kQK_K); ++k) {
    int level = levels[k];
    if (level > 3) {
      block.hmask[k % 32] = static_cast<uint8_t>(block.hmask[k % 32] | (1u << (k / 32)));
      level -= 4;
    }
    low_bits[k] = static_cast<uint8_t>(level);
  }
  pack_2bit(low_bits, block.qs);
}

inline void quantize_block(const float* x, BlockQ4_K& block) {
  using namespace quantize_detail;
  uint8_t levels[kQK_K];
  quantize_k_block_with_mins(x, block, 15, AffineSearch{-1.0f, 0.1f, 20, false}, levels);
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* l = levels + 64 * chunk;
    for (int i = 0; i < 32; ++i)
      block.qs[32 * chunk + i] = static_cast<uint8_t>(l[i] | (l[i + 32] << 4));
  }
}

inline void quantize_block(const float* x, BlockQ5_K& block) {
  using namespace quantize_detail;
  uint8_t levels[kQK_K];
  quantize_k_block_with_mins(x, block, 31, AffineSearch{-0.5f, 0.1f, 15, false}, levels);
  std::memset(block.qh, 0, sizeof(block.qh));
  for (int chunk = 0; chunk < 4; ++chunk) {
    const uint8_t* l = levels + 64 * chunk;
    for (int i = 0; i < 32; ++i) {
      block.qs[32 * chunk + i] = static_cast<uint8_t>((l[i] & 0xf) | ((l[i + 32] & 0xf) << 4));
      const int high = ((l[i] >> 4) << (2 * chunk)) | ((l[i + 32] >> 4) << (2 * chunk + 1));
      block.qh[i] = static_cast<uint8_t>(block.qh[i] | high);
    }
  }
}

// Sixteen 16-value sub-blocks with symmetric 6-bit levels (-32..31), 8-bit signed scales.
inline void quantize_block(const float* x, BlockQ6_K& block) {
  using namespace quantize_detail;
  int8_t levels[kQK_K];
  float scales[16];
  float max_scale = 0.0f;
  float max_abs_scale = 0.0f;
  for (int j = 0; j < 16; ++j) {
    scales[j] = symmetric_levels_x2(16, 32, x + 16 * j, levels + 16 * j);
    if (std::fabs(scales[j]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  if (max_abs_scale < kAllZeroThreshold) {
    std::memset(&block, 0, sizeof(block));
    return;
  }

  const float iscale = -128.0f / max_scale;
  block.d = scale_to_fp16(1.0f / iscale);
  for (int j = 0; j < 16; ++j)
    block.scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));

  for (int j = 0; j < 16; ++j) {
    const float d = fp16_to_f32(block.d) * static_cast<float>(block.scales[j]);
    if (d == 0.0f) continue;
    for (int i = 0; i < 16; ++i) {
      const int l = std::clamp(nearest_int(x[16 * j + i] / d), -32, 31);
      levels[16 * j + i] = static_cast<int8_t>(l + 32);
    }
  }

  for (int half = 0; half < 2; ++half) {
    const int8_t* l = levels + 128 * half;
    uint8_t* ql = block.ql + 64 * half;
    uint8_t* qh = block.qh + 32 * half;
    for (int i = 0; i < 32; ++i) {
      ql[i] = static_cast<uint8_t>((l[i] & 0xf) | ((l[i + 64] & 0xf) << 4));
      ql[i + 32] = static_cast<uint8_t>((l[i + 32] & 0xf) | ((l[i + 96] & 0xf) << 4));
      qh[i] = static_cast<uint8_t>((l[i] >> 4) | ((l[i + 32] >> 4) << 2) | ((l[i + 64] >> 4) << 4) |
                                   ((l[i + 96] >> 4) << 6));
    }
  }
}

// The activation format of K-quant dot products: float scale, so no search is needed.
inline void quantize_block(const float* x, BlockQ8_K& block) {
  using namespace quantize_detail;
  const float max = signed_absmax(x, static_cast<int>(kQK_K));
  if (max == 0.0f) {
    std::memset(&block, 0, sizeof(block));
    return;
  }
  const float iscale = -127.0f / max;
  for (int j = 0; j < static_cast<int>(kQK_K); ++j)
    block.qs[j] = static_cast<int8_t>(std::clamp(nearest_int(iscale * x[j]), -128, 127));
  for (int j = 0; j < static_cast<int>(kQK_K) / 16; ++j) {
    int sum = 0;
    for (int i = 0; i < 16; ++i)
      sum += block.qs[16 * j + i];
    block.bsums[j] = static_cast<int16_t>(sum);
  }
  // Capped so that d * 127 stays finite for inputs within a rounding error of FLT_MAX.
  const float max_scale = std::nextafter(std::numeric_limits<float>::max() / 127.0f, 0.0f);
  block.d = std::clamp(1.0f / iscale, -max_scale, max_scale);
}

namespace quantize_detail {

template <class Block>
void quantize_blocks(const float* src, std::byte* dst, int64_t blocks) {
  constexpr int64_t kValues = traits_of(Block::kGgmlType).block_elements;
  for (int64_t b = 0; b < blocks; ++b) {
    Block block{};
    quantize_block(src + b * kValues, block);
    std::memcpy(dst + b * static_cast<int64_t>(sizeof(Block)), &block, sizeof(Block));
  }
}

}  // namespace quantize_detail

constexpr bool can_quantize(GgmlType type) {
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

// Quantizes `count` floats (a multiple of the type's block size) into `dst`, which must hold
// ggml_row_bytes(type, count) bytes.
inline void quantize_row(GgmlType type, const float* src, std::byte* dst, int64_t count) {
  if (!can_quantize(type)) fail("quantize_row: type ", ggml_type_name(type), " is unsupported");
  const int64_t block_elements = traits_of(type).block_elements;
  if (count < 0 || count % block_elements != 0) {
    fail("quantize_row: ", count, " values of ", ggml_type_name(type), " is not a whole number of ",
         block_elements, "-value blocks");
  }
  const int64_t blocks = count / block_elements;
  using namespace quantize_detail;
  switch (type) {
    case GgmlType::F32:
      if (count > 0) std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
      return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t bits = type == GgmlType::F16 ? f32_to_fp16(src[i]) : f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &bits, sizeof(bits));
      }
      return;
    case GgmlType::Q4_0:
      return quantize_blocks<BlockQ4_0>(src, dst, blocks);
    case GgmlType::Q4_1:
      return quantize_blocks<BlockQ4_1>(src, dst, blocks);
    case GgmlType::Q5_0:
      return quantize_blocks<BlockQ5_0>(src, dst, blocks);
    case GgmlType::Q5_1:
      return quantize_blocks<BlockQ5_1>(src, dst, blocks);
    case GgmlType::Q8_0:
      return quantize_blocks<BlockQ8_0>(src, dst, blocks);
    case GgmlType::Q8_1:
      return quantize_blocks<BlockQ8_1>(src, dst, blocks);
    case GgmlType::Q2_K:
      return quantize_blocks<BlockQ2_K>(src, dst, blocks);
    case GgmlType::Q3_K:
      return quantize_blocks<BlockQ3_K>(src, dst, blocks);
    case GgmlType::Q4_K:
      return quantize_blocks<BlockQ4_K>(src, dst, blocks);
    case GgmlType::Q5_K:
      return quantize_blocks<BlockQ5_K>(src, dst, blocks);
    case GgmlType::Q6_K:
      return quantize_blocks<BlockQ6_K>(src, dst, blocks);
    case GgmlType::Q8_K:
      return quantize_blocks<BlockQ8_K>(src, dst, blocks);
    default:
      return;  // excluded by can_quantize above
  }
}

}  // namespace floatllm

#if defined(__clang__)
#pragma float_control(pop)
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
