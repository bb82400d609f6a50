// Per-target elementwise kernels and reductions over float rows. Included once per SIMD target
// (Highway's toggle guard), from static_dispatch.hpp or runtime_dispatch.hpp via all-inl.hpp.
#if defined(FLOATLLM_KERNELS_OPS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FLOATLLM_KERNELS_OPS_INL_H_
#undef FLOATLLM_KERNELS_OPS_INL_H_
#else
#define FLOATLLM_KERNELS_OPS_INL_H_
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace floatllm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Room for the widest vector of floats on any target (AVX-512: 16).
inline constexpr size_t kTailFloats = 64;

// out[i] = op(d, a[i], b[i]) on whole vectors; the tail goes through a zero-padded stack buffer so
// that no target reads past the arrays and tail results match the vector code exactly.
template <class Op>
HWY_INLINE void map2(const float* a, const float* b, float* out, size_t n, const Op& op) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(op(d, hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  }
  if (i == n) return;
  HWY_ALIGN float ta[kTailFloats] = {};
  HWY_ALIGN float tb[kTailFloats] = {};
  const size_t rest = n - i;
  std::memcpy(ta, a + i, rest * sizeof(float));
  std::memcpy(tb, b + i, rest * sizeof(float));
  hn::Store(op(d, hn::Load(d, ta), hn::Load(d, tb)), d, ta);
  std::memcpy(out + i, ta, rest * sizeof(float));
}

template <class Op>
HWY_INLINE void map1(float* x, size_t n, const Op& op) {
  map2(x, x, x, n, [&op](DF d, VF v, VF) HWY_ATTR { return op(d, v); });
}

// Sum of a[i] * b[i] with four independent accumulators to hide FMA latency.
HWY_INLINE float dot_f32(const float* a, const float* b, size_t n) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  size_t i = 0;
  for (; i + 4 * lanes <= n; i += 4 * lanes) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + lanes), hn::LoadU(d, b + i + lanes), s1);
    s2 = hn::MulAdd(hn::LoadU(d, a + i + 2 * lanes), hn::LoadU(d, b + i + 2 * lanes), s2);
    s3 = hn::MulAdd(hn::LoadU(d, a + i + 3 * lanes), hn::LoadU(d, b + i + 3 * lanes), s3);
  }
  for (; i + lanes <= n; i += lanes) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; i < n; ++i)
    sum += a[i] * b[i];
  return sum;
}

HWY_INLINE float sum_of_squares(const float* x, size_t n) {
  return dot_f32(x, x, n);
}

HWY_INLINE float max_of(const float* x, size_t n) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF m = hn::Set(d, -INFINITY);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    m = hn::Max(m, hn::LoadU(d, x + i));
  float result = hn::GetLane(hn::MaxOfLanes(d, m));
  for (; i < n; ++i)
    result = x[i] > result ? x[i] : result;
  return result;
}

HWY_INLINE float sum_of(const float* x, size_t n) {
  const DF d;
  const size_t lanes = hn::Lanes(d);
  VF s = hn::Zero(d);
  size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    s = hn::Add(s, hn::LoadU(d, x + i));
  float result = hn::GetLane(hn::SumOfLanes(d, s));
  for (; i < n; ++i)
    result += x[i];
  return result;
}

// exp(x) for x <= 0 (softmax after subtracting the maximum); Highway's Exp needs x >= -87.
HWY_INLINE VF exp_nonpositive(DF d, VF x) {
  return hn::Exp(d, hn::Max(x, hn::Set(d, -87.0f)));
}

// silu(x) = x / (1 + exp(-x)); the argument is clamped where the result no longer changes.
HWY_INLINE VF silu(DF d, VF x) {
  const VF e = hn::Exp(d, hn::Min(hn::Neg(x), hn::Set(d, 88.0f)));
  return hn::Div(x, hn::Add(hn::Set(d, 1.0f), e));
}

HWY_INLINE VF gelu_tanh(DF d, VF x) {
  const VF k = hn::Set(d, 0.7978845608028654f);  // sqrt(2 / pi)
  const VF inner = hn::Mul(k, hn::MulAdd(hn::Mul(hn::Set(d, 0.044715f), x), hn::Mul(x, x), x));
  const VF half_x = hn::Mul(hn::Set(d, 0.5f), x);
  return hn::MulAdd(half_x, hn::Tanh(d, inner), half_x);
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7, under float resolution of the
// GELU output), odd-extended to negative arguments.
HWY_INLINE VF erf_approx(DF d, VF x) {
  const VF ax = hn::Abs(x);
  const VF t = hn::Div(hn::Set(d, 1.0f), hn::MulAdd(hn::Set(d, 0.3275911f), ax, hn::Set(d, 1.0f)));
  VF poly = hn::Set(d, 1.061405429f);
  poly = hn::MulAdd(poly, t, hn::Set(d, -1.453152027f));
  poly = hn::MulAdd(poly, t, hn::Set(d, 1.421413741f));
  poly = hn::MulAdd(poly, t, hn::Set(d, -0.284496736f));
  poly = hn::MulAdd(poly, t, hn::Set(d, 0.254829592f));
  poly = hn::Mul(poly, t);
  const VF e = hn::Exp(d, hn::Max(hn::Neg(hn::Mul(ax, ax)), hn::Set(d, -87.0f)));
  const VF magnitude = hn::NegMulAdd(poly, e, hn::Set(d, 1.0f));
  return hn::CopySign(magnitude, x);
}

HWY_INLINE VF gelu_erf(DF d, VF x) {
  const VF half_x = hn::Mul(hn::Set(d, 0.5f), x);
  return hn::MulAdd(half_x, erf_approx(d, hn::Mul(x, hn::Set(d, 0.7071067811865476f))), half_x);
}

// ---- Entry points (HWY_EXPORTed in the runtime-dispatch build) ----

inline void rms_norm_impl(const float* x, const float* weight, int64_t n, float eps, float* out) {
  const auto count = static_cast<size_t>(n);
  const float mean = sum_of_squares(x, count) / static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(mean + eps);
  if (weight == nullptr) {
    map2(x, x, out, count, [inv](DF d, VF v, VF) HWY_ATTR { return hn::Mul(v, hn::Set(d, inv)); });
    return;
  }
  map2(x, weight, out, count,
       [inv](DF d, VF v, VF w) HWY_ATTR { return hn::Mul(hn::Mul(v, hn::Set(d, inv)), w); });
}

inline void layer_norm_impl(const float* x, const float* weight, const float* bias, int64_t n,
                            float eps, float* out) {
  const auto count = static_cast<size_t>(n);
  const float mean = sum_of(x, count) / static_cast<float>(n);
  map2(x, x, out, count, [mean](DF d, VF v, VF) HWY_ATTR { return hn::Sub(v, hn::Set(d, mean)); });
  const float variance = sum_of_squares(out, count) / static_cast<float>(n);
  const float inv = 1.0f / std::sqrt(variance + eps);
  if (weight != nullptr) {
    map2(out, weight, out, count,
         [inv](DF d, VF v, VF w) HWY_ATTR { return hn::Mul(hn::Mul(v, hn::Set(d, inv)), w); });
  } else {
    map1(out, count, [inv](DF d, VF v) HWY_ATTR { return hn::Mul(v, hn::Set(d, inv)); });
  }
  if (bias != nullptr) {
    map2(out, bias, out, count, [](DF, VF v, VF b) HWY_ATTR { return hn::Add(v, b); });
  }
}

inline void softmax_impl(float* x, int64_t n) {
  if (n <= 0) return;
  const auto count = static_cast<size_t>(n);
  const float max = max_of(x, count);
  map1(x, count,
       [max](DF d, VF v) HWY_ATTR { return exp_nonpositive(d, hn::Sub(v, hn::Set(d, max))); });
  const float inv = 1.0f / sum_of(x, count);
  map1(x, count, [inv](DF d, VF v) HWY_ATTR { return hn::Mul(v, hn::Set(d, inv)); });
}

inline void silu_mul_impl(const float* gate, const float* up, int64_t n, float* out) {
  map2(gate, up, out, static_cast<size_t>(n),
       [](DF d, VF g, VF u) HWY_ATTR { return hn::Mul(silu(d, g), u); });
}

inline void gelu_tanh_mul_impl(const float* gate, const float* up, int64_t n, float* out) {
  map2(gate, up, out, static_cast<size_t>(n),
       [](DF d, VF g, VF u) HWY_ATTR { return hn::Mul(gelu_tanh(d, g), u); });
}

inline void gelu_erf_mul_impl(const float* gate, const float* up, int64_t n, float* out) {
  map2(gate, up, out, static_cast<size_t>(n),
       [](DF d, VF g, VF u) HWY_ATTR { return hn::Mul(gelu_erf(d, g), u); });
}

inline void softcap_impl(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  map1(x, static_cast<size_t>(n), [cap, inv](DF d, VF v) HWY_ATTR {
    return hn::Mul(hn::Set(d, cap), hn::Tanh(d, hn::Mul(v, hn::Set(d, inv))));
  });
}

inline void add_impl(float* acc, const float* x, int64_t n) {
  map2(acc, x, acc, static_cast<size_t>(n), [](DF, VF a, VF b) HWY_ATTR { return hn::Add(a, b); });
}

inline void mul_impl(float* acc, const float* x, int64_t n) {
  map2(acc, x, acc, static_cast<size_t>(n), [](DF, VF a, VF b) HWY_ATTR { return hn::Mul(a, b); });
}

inline void scale_impl(float* x, int64_t n, float s) {
  map1(x, static_cast<size_t>(n), [s](DF d, VF v) HWY_ATTR { return hn::Mul(v, hn::Set(d, s)); });
}

inline float dot_impl(const float* a, const float* b, int64_t n) {
  return dot_f32(a, b, static_cast<size_t>(n));
}

inline const char* active_target_impl() {
  return hwy::TargetName(HWY_TARGET);
}

}  // namespace floatllm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
