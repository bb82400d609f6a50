// The shaders as typed operations on device buffers, recorded into a CommandStream. Matrices
// keep their GGUF bytes when a shader reads their type (WeightFormat); the backend converts the
// others on upload.
#pragma once

#include <cstdint>

#include "compute.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm::vulkan {

// The weight types the matmul shader decodes; the values are its WEIGHT_TYPE constant.
enum class WeightFormat : uint32_t { kF32 = 0, kF16 = 1, kQ8_0 = 2, kQ4_K = 3, kQ6_K = 4 };

// The device format of weights of `type`: the same type when a shader reads it, else F32
// (dequantized on upload, exactly: rounding those weights to F16 moved the synthetic models'
// activations by ~1%).
WeightFormat device_format(GgmlType type);
GgmlType ggml_type_of(WeightFormat format);

// The block size (32 or 256) in which the CPU quantizes activations for weights of `type`, as
// llama.cpp does; 0 when it multiplies them as floats.
uint32_t activation_group(GgmlType type);

// rows x cols weights, row r at byte r * row_bytes of `buffer`.
struct DeviceMatrix {
  Buffer buffer;
  WeightFormat format = WeightFormat::kF32;
  uint32_t activation_group = 0;  // of the file's type, which may differ from `format`
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t row_bytes = 0;
};

struct RopeConfig {
  uint32_t head_dim = 0;
  uint32_t rotary_dims = 0;
  bool neox = false;
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  // YaRN when yarn_orig_ctx > 0, as llama.cpp's rope with these parameters.
  float yarn_ext_factor = 0.0f;
  float yarn_attn_factor = 1.0f;
  float yarn_beta_fast = 32.0f;
  float yarn_beta_slow = 1.0f;
  uint32_t yarn_orig_ctx = 0;
};

struct AttentionConfig {
  uint32_t n_heads = 0;
  uint32_t n_kv_heads = 0;
  uint32_t head_dim = 0;  // at most kMaxHeadDim
  float scale = 1.0f;
  float softcap = 0.0f;  // > 0: softcap * tanh(score / softcap), before the mask
  uint32_t window = 0;   // > 0: position p sees keys (p - window, p]
  bool kv_f16 = true;    // the cache holds F16 (else F32)
};

inline constexpr uint32_t kMaxHeadDim = 512;

namespace ops {

// y[t][r] = sum_c w[r][c] * x[t][c], t < n_tokens. When w.activation_group > 0, x is first
// quantized into `scratch` (n_tokens * w.cols floats) as the CPU does.
void matmul(CommandStream& s, const DeviceMatrix& w, const Buffer& x, uint32_t n_tokens,
            const Buffer& y, const Buffer* scratch = nullptr);
// y = each `group`-value block of x replaced by its 8-bit quantization (Q8_0 or Q8_K).
void quantize_activations(CommandStream& s, const Buffer& x, uint64_t n, uint32_t group,
                          const Buffer& y);
// out[r] = x[r] / rms(x[r]) * weight for rows of `width`; weight may be null; out may be x.
void rms_norm(CommandStream& s, const Buffer& x, const Buffer* weight, uint32_t rows,
              uint32_t width, float eps, const Buffer& out);
// Rotates n_heads heads per token of x ([n_tokens][n_heads * head_dim]) in place.
void rope(CommandStream& s, const Buffer& x, uint32_t n_tokens, uint32_t n_heads,
          uint32_t first_pos, const RopeConfig& config, const Buffer* freq_factors);
// Writes n_tokens rows of `width` floats into the cache at positions first_pos...
void store_kv(CommandStream& s, const Buffer& rows, uint32_t n_tokens, uint32_t width,
              uint32_t first_pos, bool f16, const Buffer& cache);
// Causal attention of n_tokens queries at first_pos.. over cache positions [0, first_pos + n).
void attention(CommandStream& s, const Buffer& q, uint32_t n_tokens, uint32_t first_pos,
               const Buffer& k_cache, const Buffer& v_cache, const AttentionConfig& config,
               const Buffer& out);
// gate[i] = act(gate[i]) * up[i], act = SiLU or tanh-approximate GELU.
void glu(CommandStream& s, const Buffer& gate, const Buffer& up, uint64_t n, bool gelu);
// acc[i] += src[i % period] for i < n.
void add(CommandStream& s, const Buffer& acc, const Buffer& src, uint64_t n, uint64_t period);
void softmax(CommandStream& s, const Buffer& x, uint32_t rows, uint32_t width);
// dst[i] = src[index[first + i]], rows of `width`.
void gather_rows(CommandStream& s, const Buffer& src, const Buffer& index, uint32_t first,
                 uint32_t rows, uint32_t width, const Buffer& dst);
// out[index[first + i]] += f(weight[first + i]) * src[i], f = sigmoid or identity.
void scale_add_rows(CommandStream& s, const Buffer& src, const Buffer& index, const Buffer& weight,
                    uint32_t first, uint32_t rows, uint32_t width, bool sigmoid, const Buffer& out);

}  // namespace ops
}  // namespace floatllm::vulkan
