// The CPU kernel layer: matrix products over GGUF weights, norms, activations, RoPE, attention.
//
// Dispatch (see docs/kernels.md): by default every function here is inline and compiled for the
// one SIMD target the including program is built for (-march=...). A program that defines
// FLOATLLM_RUNTIME_DISPATCH (the CMake target floatllm::dispatch does) only sees declarations
// here; the definitions come from one translation unit that compiles every x86 target and picks
// the best at run time (floatllm/kernels/runtime_dispatch.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "floatllm/core/tensor.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/quant/ggml_type.hpp"

#if defined(FLOATLLM_RUNTIME_DISPATCH)
#define FLOATLLM_KERNEL_LINKAGE
#else
#define FLOATLLM_KERNEL_LINKAGE inline
#endif

namespace floatllm::kernels {

// y[t * w.rows + r] = sum_c W[r][c] * x[t * w.cols + c] for t in [0, n_tokens).
// Weight types: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
// Quantized weights multiply activations quantized the way llama.cpp does it (Q8_0 blocks for
// the 32-value formats, Q8_K super-blocks for the K-quants) with exact integer dot products.
FLOATLLM_KERNEL_LINKAGE void matmul(const MatrixView& w, const float* x, int64_t n_tokens, float* y,
                                    ThreadPool& pool);

// Whether matmul accepts weights of this type.
FLOATLLM_KERNEL_LINKAGE bool matmul_supports(GgmlType type);

// Row `row` of an embedding table as floats: out[0 .. w.cols).
FLOATLLM_KERNEL_LINKAGE void get_row(const MatrixView& w, int64_t row, float* out);

// weight may be nullptr (all ones).
FLOATLLM_KERNEL_LINKAGE void rms_norm(const float* x, const float* weight, int64_t n, float eps,
                                      float* out);
// weight and bias may be nullptr (ones, zeros).
FLOATLLM_KERNEL_LINKAGE void layer_norm(const float* x, const float* weight, const float* bias,
                                        int64_t n, float eps, float* out);
// In place; subtracts the maximum first, so any finite input is safe.
FLOATLLM_KERNEL_LINKAGE void softmax(float* x, int64_t n);
FLOATLLM_KERNEL_LINKAGE void silu_mul(const float* gate, const float* up, int64_t n, float* out);
FLOATLLM_KERNEL_LINKAGE void gelu_tanh_mul(const float* gate, const float* up, int64_t n,
                                           float* out);
FLOATLLM_KERNEL_LINKAGE void gelu_erf_mul(const float* gate, const float* up, int64_t n,
                                          float* out);
// x = cap * tanh(x / cap)
FLOATLLM_KERNEL_LINKAGE void softcap(float* x, int64_t n, float cap);
FLOATLLM_KERNEL_LINKAGE void add(float* acc, const float* x, int64_t n);
FLOATLLM_KERNEL_LINKAGE void mul(float* acc, const float* x, int64_t n);
FLOATLLM_KERNEL_LINKAGE void scale(float* x, int64_t n, float s);
FLOATLLM_KERNEL_LINKAGE float dot(const float* a, const float* b, int64_t n);

enum class RopeLayout {
  kInterleaved,  // GGUF llama: pairs (2i, 2i + 1)
  kNeox,         // pairs (i, i + rotary_dims / 2)
};

struct RopeParams {
  RopeLayout layout = RopeLayout::kInterleaved;
  int64_t head_dim = 0;     // values per head
  int64_t rotary_dims = 0;  // leading dims rotated; 0 means head_dim
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;              // linear scaling: theta *= freq_scale
  const float* freq_factors = nullptr;  // theta_i /= freq_factors[i], i < rotary_dims / 2
  // YaRN, used when yarn_orig_ctx > 0 (llama.cpp's rope_yarn with these parameters).
  float yarn_ext_factor = 0.0f;
  float yarn_attn_factor = 1.0f;
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  int64_t yarn_orig_ctx = 0;
};

// Rotates n_heads heads of x (x[h * head_dim + i]) for position `pos`, as llama.cpp does.
FLOATLLM_KERNEL_LINKAGE void rope(float* x, int64_t n_heads, int64_t pos, const RopeParams& p);

// One layer's KV cache: position p's K row is at k + p * row_bytes and holds
// n_kv_heads * head_dim values of `type` (F32, F16 or Q8_0); likewise V.
struct KvLayerView {
  GgmlType type = GgmlType::F32;
  std::byte* k = nullptr;
  std::byte* v = nullptr;
  uint64_t row_bytes = 0;  // == ggml_row_bytes(type, n_kv_heads * head_dim)
};

// Converts n floats into one KV row of `type` (F32, F16, or Q8_0 with n % 32 == 0).
FLOATLLM_KERNEL_LINKAGE void store_kv_row(GgmlType type, const float* src, int64_t n,
                                          std::byte* dst);

struct AttentionParams {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // query head h reads kv head h / (n_heads / n_kv_heads)
  int64_t head_dim = 0;
  float scale = 1.0f;    // usually 1 / sqrt(head_dim)
  float softcap = 0.0f;  // > 0: score = softcap * tanh(score / softcap), before the mask
  int64_t window = 0;    // > 0: the query at position p sees keys in (p - window, p]
};

// Causal attention of n_tokens queries at positions first_pos .. first_pos + n_tokens - 1 over
// cache positions [0, first_pos + n_tokens), whose K/V rows are already stored.
// q and out: [n_tokens][n_heads * head_dim].
FLOATLLM_KERNEL_LINKAGE void attention(const float* q, int64_t n_tokens, int64_t first_pos,
                                       const KvLayerView& kv, const AttentionParams& p, float* out,
                                       ThreadPool& pool);

// The SIMD target the kernels run on, e.g. "AVX3", "AVX2", "SSE4", "SCALAR".
FLOATLLM_KERNEL_LINKAGE const char* active_target();

}  // namespace floatllm::kernels

#if !defined(FLOATLLM_RUNTIME_DISPATCH)
#include "floatllm/kernels/static_dispatch.hpp"
#endif
