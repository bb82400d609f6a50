// Definitions of the functions declared in kernels.hpp: argument checks, activation quantization,
// splitting work over the thread pool, and the scalar parts (RoPE tables, KV row conversion).
// Included by static_dispatch.hpp or runtime_dispatch.hpp with FLOATLLM_KERNEL_CALL(name)
// naming the per-target function to call (static or dynamic dispatch).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/kernels/tasks.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"

namespace floatllm::kernels {

namespace detail {

// Blocks are read in place, so each must be aligned like its struct (2 bytes: f16 scales).
inline void check_matrix(const MatrixView& w, const char* what) {
  const auto& traits = traits_of(w.type);
  if (w.rows < 0 || w.cols < 0 || w.cols % traits.block_elements != 0) {
    fail(what, ": a ", w.rows, " x ", w.cols, " ", ggml_type_name(w.type),
         " matrix needs whole blocks of ", traits.block_elements, " values per row");
  }
  if (w.row_bytes != ggml_row_bytes(w.type, static_cast<uint64_t>(w.cols))) {
    fail(what, ": row_bytes ", w.row_bytes, " != ", ggml_row_bytes(w.type, w.cols), " for ", w.cols,
         " values of ", ggml_type_name(w.type));
  }
  if (w.rows > 0 && w.data == nullptr) fail(what, ": matrix data is null");
  const uintptr_t align = w.type == GgmlType::F32 ? 4 : 2;
  if (reinterpret_cast<uintptr_t>(w.data) % align != 0) {
    fail(what, ": ", ggml_type_name(w.type), " matrix data is not ", align, "-byte aligned");
  }
}

// cos/sin of every rotated pair for one position, as llama.cpp's rope cache computes them
// (theta_i = pos * base^(-2i/n_dims) by repeated multiplication, then rope_yarn).
inline void rope_table(const RopeParams& p, int64_t n_dims, int64_t pos, float* cos_out,
                       float* sin_out) {
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(n_dims));
  const bool yarn = p.yarn_orig_ctx > 0;
  const float ext_factor = yarn ? p.yarn_ext_factor : 0.0f;
  float mscale = yarn ? p.yarn_attn_factor : 1.0f;
  float corr_low = 0.0f;
  float corr_high = 0.0f;
  if (yarn) {
    const auto corr_dim = [&](float n_rot) {
      return static_cast<float>(n_dims) *
             std::log(static_cast<float>(p.yarn_orig_ctx) / (n_rot * 2.0f * 3.14159265358979f)) /
             (2.0f * std::log(p.freq_base));
    };
    corr_low = std::max(0.0f, std::floor(corr_dim(p.yarn_beta_fast)));
    corr_high = std::min(static_cast<float>(n_dims - 1), std::ceil(corr_dim(p.yarn_beta_slow)));
  }
  if (ext_factor != 0.0f) mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < n_dims / 2; ++i) {
    const float factor = p.freq_factors != nullptr ? p.freq_factors[i] : 1.0f;
    const float theta_extrap = theta / factor;
    const float theta_interp = p.freq_scale * theta_extrap;
    float angle = theta_interp;
    if (ext_factor != 0.0f) {
      const float y = (static_cast<float>(i) - corr_low) / std::max(0.001f, corr_high - corr_low);
      const float ramp = (1.0f - std::min(1.0f, std::max(0.0f, y))) * ext_factor;
      angle = theta_interp * (1.0f - ramp) + theta_extrap * ramp;
    }
    cos_out[i] = std::cos(angle) * mscale;
    sin_out[i] = std::sin(angle) * mscale;
    theta *= theta_scale;
  }
}

}  // namespace detail

FLOATLLM_KERNEL_LINKAGE bool matmul_supports(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 ||
         detail::activation_group(type) > 0;
}

FLOATLLM_KERNEL_LINKAGE void matmul(const MatrixView& w, const float* x, int64_t n_tokens, float* y,
                                    ThreadPool& pool) {
  if (!matmul_supports(w.type)) {
    fail("matmul: weight type ", ggml_type_name(w.type), " is not supported");
  }
  detail::check_matrix(w, "matmul");
  if (n_tokens < 0) fail("matmul: negative token count ", n_tokens);
  if (n_tokens == 0 || w.rows == 0) return;
  detail::MatmulTask task;
  task.w = w;
  task.n_tokens = n_tokens;
  task.x = x;
  task.y = y;
  const int64_t group = detail::activation_group(w.type);
  // Per calling thread: workers must write into the caller's buffer, not their own.
  thread_local detail::QuantizedActivations activations;
  detail::QuantizedActivations* qa = &activations;
  if (group > 0) {
    detail::resize_activations(w.cols, n_tokens, group, *qa);
    if (n_tokens == 1) {
      detail::quantize_token_rows(x, 0, 1, *qa);
    } else {
      pool.parallel_for(n_tokens, [x, qa](int64_t begin, int64_t end, int) {
        detail::quantize_token_rows(x, begin, end, *qa);
      });
    }
    task.qa = qa;
  }
  pool.parallel_for(w.rows, [&task](int64_t begin, int64_t end, int) {
    FLOATLLM_KERNEL_CALL(matmul_rows_impl)(task, begin, end);
  });
}

FLOATLLM_KERNEL_LINKAGE void get_row(const MatrixView& w, int64_t row, float* out) {
  detail::check_matrix(w, "get_row");
  if (row < 0 || row >= w.rows) fail("get_row: row ", row, " out of range [0, ", w.rows, ")");
  dequantize_row(w.type, w.row(row), out, w.cols);
}

FLOATLLM_KERNEL_LINKAGE void rms_norm(const float* x, const float* weight, int64_t n, float eps,
                                      float* out) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(rms_norm_impl)(x, weight, n, eps, out);
}

FLOATLLM_KERNEL_LINKAGE void layer_norm(const float* x, const float* weight, const float* bias,
                                        int64_t n, float eps, float* out) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(layer_norm_impl)(x, weight, bias, n, eps, out);
}

FLOATLLM_KERNEL_LINKAGE void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(softmax_impl)(x, n);
}

FLOATLLM_KERNEL_LINKAGE void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(silu_mul_impl)(gate, up, n, out);
}

FLOATLLM_KERNEL_LINKAGE void gelu_tanh_mul(const float* gate, const float* up, int64_t n,
                                           float* out) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(gelu_tanh_mul_impl)(gate, up, n, out);
}

FLOATLLM_KERNEL_LINKAGE void gelu_erf_mul(const float* gate, const float* up, int64_t n,
                                          float* out) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(gelu_erf_mul_impl)(gate, up, n, out);
}

FLOATLLM_KERNEL_LINKAGE void softcap(float* x, int64_t n, float cap) {
  if (n <= 0) return;
  if (!(cap > 0.0f)) fail("softcap: cap must be positive, got ", cap);
  FLOATLLM_KERNEL_CALL(softcap_impl)(x, n, cap);
}

FLOATLLM_KERNEL_LINKAGE void add(float* acc, const float* x, int64_t n) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(add_impl)(acc, x, n);
}

FLOATLLM_KERNEL_LINKAGE void mul(float* acc, const float* x, int64_t n) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(mul_impl)(acc, x, n);
}

FLOATLLM_KERNEL_LINKAGE void scale(float* x, int64_t n, float s) {
  if (n <= 0) return;
  FLOATLLM_KERNEL_CALL(scale_impl)(x, n, s);
}

FLOATLLM_KERNEL_LINKAGE float dot(const float* a, const float* b, int64_t n) {
  if (n <= 0) return 0.0f;
  return FLOATLLM_KERNEL_CALL(dot_impl)(a, b, n);
}

FLOATLLM_KERNEL_LINKAGE void rope(float* x, int64_t n_heads, int64_t pos, const RopeParams& p) {
  const int64_t n_dims = p.rotary_dims > 0 ? p.rotary_dims : p.head_dim;
  if (p.head_dim <= 0 || n_dims % 2 != 0 || n_dims > p.head_dim) {
    fail("rope: rotary_dims ", n_dims, " must be even and within head_dim ", p.head_dim);
  }
  if (p.freq_base <= 0.0f) fail("rope: freq_base must be positive, got ", p.freq_base);
  thread_local std::vector<float> table;
  table.resize(static_cast<size_t>(n_dims));
  float* cos_table = table.data();
  float* sin_table = table.data() + n_dims / 2;
  detail::rope_table(p, n_dims, pos, cos_table, sin_table);
  const int64_t half = n_dims / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* head = x + h * p.head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = p.layout == RopeLayout::kNeox ? i : 2 * i;
      const int64_t b = p.layout == RopeLayout::kNeox ? i + half : 2 * i + 1;
      const float x0 = head[a];
      const float x1 = head[b];
      head[a] = x0 * cos_table[i] - x1 * sin_table[i];
      head[b] = x0 * sin_table[i] + x1 * cos_table[i];
    }
  }
}

FLOATLLM_KERNEL_LINKAGE void store_kv_row(GgmlType type, const float* src, int64_t n,
                                          std::byte* dst) {
  if (n < 0) fail("store_kv_row: negative length ", n);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t bits = f32_to_fp16(src[i]);
        std::memcpy(dst + 2 * i, &bits, 2);
      }
      return;
    case GgmlType::Q8_0: {
      if (n % kQK8_0 != 0) fail("store_kv_row: Q8_0 needs a multiple of 32 values, got ", n);
      for (int64_t b = 0; b < n / kQK8_0; ++b) {
        BlockQ8_0 block;
        int16_t q[kQK8_0];
        float d = 0.0f;
        float sum = 0.0f;
        detail::quantize_q8_0_block(src + kQK8_0 * b, q, &d, &sum);
        block.d = f32_to_fp16(d);
        for (int i = 0; i < kQK8_0; ++i)
          block.qs[i] = static_cast<int8_t>(q[i]);
        std::memcpy(dst + b * static_cast<int64_t>(sizeof(BlockQ8_0)), &block, sizeof(block));
      }
      return;
    }
    default:
      fail("store_kv_row: KV cache type ", ggml_type_name(type), " is not supported");
  }
}

FLOATLLM_KERNEL_LINKAGE void attention(const float* q, int64_t n_tokens, int64_t first_pos,
                                       const KvLayerView& kv, const AttentionParams& p, float* out,
                                       ThreadPool& pool) {
  if (p.n_heads <= 0 || p.n_kv_heads <= 0 || p.head_dim <= 0 || p.n_heads % p.n_kv_heads != 0) {
    fail("attention: ", p.n_heads, " query heads, ", p.n_kv_heads, " kv heads and head_dim ",
         p.head_dim, " do not form grouped-query attention");
  }
  if (kv.type != GgmlType::F32 && kv.type != GgmlType::F16 && kv.type != GgmlType::Q8_0) {
    fail("attention: KV cache type ", ggml_type_name(kv.type), " is not supported");
  }
  const int64_t kv_values = p.n_kv_heads * p.head_dim;
  if (kv.type == GgmlType::Q8_0 && kv_values % kQK8_0 != 0) {
    fail("attention: a Q8_0 KV row of ", kv_values, " values is not whole blocks");
  }
  if (kv.row_bytes < ggml_row_bytes(kv.type, static_cast<uint64_t>(kv_values))) {
    fail("attention: KV row_bytes ", kv.row_bytes, " too small for ", kv_values, " values");
  }
  if (n_tokens <= 0) return;
  if (first_pos < 0) fail("attention: negative first position ", first_pos);
  detail::AttentionTask task;
  task.q = q;
  task.n_tokens = n_tokens;
  task.first_pos = first_pos;
  task.kv_type = kv.type;
  task.k = kv.k;
  task.v = kv.v;
  task.row_bytes = kv.row_bytes;
  task.n_heads = p.n_heads;
  task.n_kv_heads = p.n_kv_heads;
  task.head_dim = p.head_dim;
  task.scale = p.scale;
  task.softcap = p.softcap;
  task.window = p.window;
  task.out = out;
  pool.parallel_for(n_tokens * p.n_heads, [&task](int64_t begin, int64_t end, int) {
    FLOATLLM_KERNEL_CALL(attention_items_impl)(task, begin, end);
  });
}

FLOATLLM_KERNEL_LINKAGE const char* active_target() {
  return FLOATLLM_KERNEL_CALL(active_target_impl)();
}

}  // namespace floatllm::kernels
