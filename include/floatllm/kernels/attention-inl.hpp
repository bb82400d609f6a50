// Per-target attention over a KV cache. Included once per SIMD target via all-inl.hpp, after
// ops-inl.hpp and matmul-inl.hpp, whose helpers it uses.
#if defined(FLOATLLM_KERNELS_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FLOATLLM_KERNELS_ATTENTION_INL_H_
#undef FLOATLLM_KERNELS_ATTENTION_INL_H_
#else
#define FLOATLLM_KERNELS_ATTENTION_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include <hwy/highway.h>

#include "floatllm/kernels/tasks.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/half.hpp"

HWY_BEFORE_NAMESPACE();
namespace floatllm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Values [first, first + count) of a KV row as floats: the row itself for F32, else converted
// into `scratch` (count floats).
inline const float* kv_values(GgmlType type, const std::byte* row, int64_t first, int64_t count,
                              float* scratch) {
  switch (type) {
    case GgmlType::F32:
      return reinterpret_cast<const float*>(row) + first;
    case GgmlType::F16: {
      const auto* src = reinterpret_cast<const hwy::float16_t*>(row) + first;
      const hn::ScalableTag<float> df;
      const auto lanes = static_cast<int64_t>(hn::Lanes(df));
      int64_t i = 0;
      for (; i + lanes <= count; i += lanes)
        hn::StoreU(load_float(src + i), df, scratch + i);
      for (; i < count; ++i)
        scratch[i] = scalar_float(src + i);
      return scratch;
    }
    default: {  // Q8_0, validated by the caller
      const auto* blocks = reinterpret_cast<const BlockQ8_0*>(row);
      int64_t i = 0;
      while (i < count) {
        const int64_t index = first + i;
        const BlockQ8_0& block = blocks[index / 32];
        const float d = fp16_to_f32(block.d);
        const int64_t end = std::min(count, i + 32 - index % 32);
        for (int64_t j = index % 32; i < end; ++i, ++j)
          scratch[i] = d * block.qs[j];
      }
      return scratch;
    }
  }
}

// out += p * v
HWY_INLINE void axpy(float p, const float* v, float* out, int64_t n) {
  const hn::ScalableTag<float> df;
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto vp = hn::Set(df, p);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::MulAdd(vp, hn::LoadU(df, v + i), hn::LoadU(df, out + i)), df, out + i);
  }
  for (; i < n; ++i)
    out[i] += p * v[i];
}

// ---- Entry point (HWY_EXPORTed in the runtime-dispatch build) ----

// Items [begin, end) of the n_heads * n_tokens (head, token) pairs, head-major: later tokens of a
// causal batch see more keys, so contiguous ranges of whole heads balance the threads' work.
inline void attention_items_impl(const detail::AttentionTask& task, int64_t begin, int64_t end) {
  thread_local std::vector<float> scores;
  thread_local std::vector<float> scratch;
  const int64_t hd = task.head_dim;
  const int64_t group = task.n_heads / task.n_kv_heads;
  scratch.resize(static_cast<size_t>(hd));
  for (int64_t item = begin; item < end; ++item) {
    const int64_t h = item / task.n_tokens;
    const int64_t t = item % task.n_tokens;
    const int64_t first = (h / group) * hd;
    const int64_t pos = task.first_pos + t;
    const int64_t lo = task.window > 0 ? std::max<int64_t>(0, pos - task.window + 1) : 0;
    const int64_t n = pos - lo + 1;
    const float* q = task.q + (t * task.n_heads + h) * hd;
    float* out = task.out + (t * task.n_heads + h) * hd;

    scores.resize(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const std::byte* row = task.k + static_cast<uint64_t>(lo + j) * task.row_bytes;
      const float* k = kv_values(task.kv_type, row, first, hd, scratch.data());
      scores[static_cast<size_t>(j)] = dot_f32(q, k, static_cast<size_t>(hd)) * task.scale;
    }
    if (task.softcap > 0.0f) softcap_impl(scores.data(), n, task.softcap);
    softmax_impl(scores.data(), n);

    std::fill(out, out + hd, 0.0f);
    for (int64_t j = 0; j < n; ++j) {
      const std::byte* row = task.v + static_cast<uint64_t>(lo + j) * task.row_bytes;
      const float* v = kv_values(task.kv_type, row, first, hd, scratch.data());
      axpy(scores[static_cast<size_t>(j)], v, out, hd);
    }
  }
}

}  // namespace floatllm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
