#include "ops.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "floatllm/backend/device_memory.hpp"
#include "floatllm/core/error.hpp"

namespace floatllm::vulkan {

WeightFormat device_format(GgmlType type) {
  switch (device_weight_type(type)) {
    case GgmlType::F16:
      return WeightFormat::kF16;
    case GgmlType::Q8_0:
      return WeightFormat::kQ8_0;
    case GgmlType::Q4_K:
      return WeightFormat::kQ4_K;
    case GgmlType::Q6_K:
      return WeightFormat::kQ6_K;
    default:
      return WeightFormat::kF32;
  }
}

GgmlType ggml_type_of(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32:
      return GgmlType::F32;
    case WeightFormat::kF16:
      return GgmlType::F16;
    case WeightFormat::kQ8_0:
      return GgmlType::Q8_0;
    case WeightFormat::kQ4_K:
      return GgmlType::Q4_K;
    case WeightFormat::kQ6_K:
      return GgmlType::Q6_K;
  }
  return GgmlType::F32;
}

uint32_t activation_group(GgmlType type) {
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

namespace ops {

namespace {

constexpr uint32_t kGroup = 64;  // local_size_x of every shader

uint64_t groups_for(uint64_t invocations) {
  return (invocations + kGroup - 1) / kGroup;
}

// The matmul shader's tokens per workgroup: one for a matrix-vector product, eight when a batch
// lets each decoded weight chunk serve several tokens.
constexpr uint32_t kMatmulTokens = 8;

}  // namespace

void quantize_activations(CommandStream& s, const Buffer& x, uint64_t n, uint32_t group,
                          const Buffer& y) {
  struct {
    uint32_t blocks, group;
  } push{static_cast<uint32_t>(n / group), group};
  s.dispatch({Shader::kQuantizeActivations}, {&x, &y}, push, groups_for(n / group));
}

void matmul(CommandStream& s, const DeviceMatrix& w, const Buffer& x, uint32_t n_tokens,
            const Buffer& y, const Buffer* scratch) {
  const Buffer* input = &x;
  if (w.activation_group > 0) {
    if (scratch == nullptr) fail("Vulkan matmul: quantized activations need a scratch buffer");
    quantize_activations(s, x, uint64_t{n_tokens} * w.cols, w.activation_group, *scratch);
    input = scratch;
  }
  struct {
    uint32_t rows, cols, row_bytes, n_tokens;
  } push{w.rows, w.cols, w.row_bytes, n_tokens};
  const uint32_t tokens = n_tokens == 1 ? 1 : kMatmulTokens;
  s.dispatch({Shader::kMatmul, static_cast<uint32_t>(w.format), tokens}, {&w.buffer, input, &y},
             push, w.rows, (n_tokens + tokens - 1) / tokens);
}

void rms_norm(CommandStream& s, const Buffer& x, const Buffer* weight, uint32_t rows,
              uint32_t width, float eps, const Buffer& out) {
  struct {
    uint32_t rows, width;
    float eps;
    uint32_t has_weight;
  } push{rows, width, eps, weight != nullptr};
  s.dispatch({Shader::kRmsNorm}, {&x, weight, &out}, push, rows);
}

void rope(CommandStream& s, const Buffer& x, uint32_t n_tokens, uint32_t n_heads,
          uint32_t first_pos, const RopeConfig& c, const Buffer* freq_factors) {
  struct {
    uint32_t n_tokens, n_heads, head_dim, rotary_dims, first_pos, neox, has_factors;
    float freq_base, freq_scale, ext_factor, mscale, corr_low, corr_high;
  } push{n_tokens,
         n_heads,
         c.head_dim,
         c.rotary_dims,
         first_pos,
         c.neox,
         freq_factors != nullptr,
         c.freq_base,
         c.freq_scale,
         0.0f,
         c.yarn_attn_factor,
         0.0f,
         0.0f};
  if (c.yarn_orig_ctx > 0 && c.yarn_ext_factor != 0.0f) {
    // The dimensions where YaRN ramps from interpolation to extrapolation (llama.cpp's corr dims).
    const auto corr_dim = [&](float rotations) {
      return static_cast<float>(c.rotary_dims) *
             std::log(static_cast<float>(c.yarn_orig_ctx) /
                      (rotations * 2.0f * std::numbers::pi_v<float>)) /
             (2.0f * std::log(c.freq_base));
    };
    push.ext_factor = c.yarn_ext_factor;
    push.corr_low = std::max(0.0f, std::floor(corr_dim(c.yarn_beta_fast)));
    push.corr_high =
        std::min(static_cast<float>(c.rotary_dims - 1), std::ceil(corr_dim(c.yarn_beta_slow)));
    push.mscale = c.yarn_attn_factor * (1.0f + 0.1f * std::log(1.0f / c.freq_scale));
  }
  s.dispatch({Shader::kRope}, {&x, freq_factors}, push,
             groups_for(uint64_t{n_tokens} * n_heads * (c.rotary_dims / 2)));
}

void store_kv(CommandStream& s, const Buffer& rows, uint32_t n_tokens, uint32_t width,
              uint32_t first_pos, bool f16, const Buffer& cache) {
  struct {
    uint32_t n_tokens, width, first_pos;
  } push{n_tokens, width, first_pos};
  s.dispatch({Shader::kStoreKv, f16}, {&rows, &cache}, push,
             groups_for(uint64_t{n_tokens} * (f16 ? width / 2 : width)));
}

void attention(CommandStream& s, const Buffer& q, uint32_t n_tokens, uint32_t first_pos,
               const Buffer& k_cache, const Buffer& v_cache, const AttentionConfig& c,
               const Buffer& out) {
  if (c.head_dim > kMaxHeadDim) {
    fail("Vulkan attention: heads of ", c.head_dim, " values exceed the shader's ", kMaxHeadDim);
  }
  struct {
    uint32_t n_heads, n_kv_heads, head_dim, first_pos, window;
    float scale, softcap;
  } push{c.n_heads, c.n_kv_heads, c.head_dim, first_pos, c.window, c.scale, c.softcap};
  s.dispatch_grid({Shader::kAttention, c.kv_f16}, {&q, &k_cache, &v_cache, &out}, push, c.n_heads,
                  n_tokens);
}

void glu(CommandStream& s, const Buffer& gate, const Buffer& up, uint64_t n, bool gelu) {
  struct {
    uint32_t n, gelu;
  } push{static_cast<uint32_t>(n), gelu};
  s.dispatch({Shader::kGlu}, {&gate, &up}, push, groups_for(n));
}

void add(CommandStream& s, const Buffer& acc, const Buffer& src, uint64_t n, uint64_t period) {
  struct {
    uint32_t n, period;
  } push{static_cast<uint32_t>(n), static_cast<uint32_t>(period)};
  s.dispatch({Shader::kAdd}, {&acc, &src}, push, groups_for(n));
}

void softmax(CommandStream& s, const Buffer& x, uint32_t rows, uint32_t width) {
  struct {
    uint32_t rows, width;
  } push{rows, width};
  s.dispatch({Shader::kSoftmax}, {&x}, push, rows);
}

void gather_rows(CommandStream& s, const Buffer& src, const Buffer& index, uint32_t first,
                 uint32_t rows, uint32_t width, const Buffer& dst) {
  struct {
    uint32_t rows, width, first;
  } push{rows, width, first};
  s.dispatch({Shader::kGatherRows}, {&src, &index, &dst}, push, groups_for(uint64_t{rows} * width));
}

void scale_add_rows(CommandStream& s, const Buffer& src, const Buffer& index, const Buffer& weight,
                    uint32_t first, uint32_t rows, uint32_t width, bool sigmoid,
                    const Buffer& out) {
  struct {
    uint32_t rows, width, first, sigmoid;
  } push{rows, width, first, sigmoid};
  s.dispatch({Shader::kScaleAddRows}, {&src, &index, &weight, &out}, push,
             groups_for(uint64_t{rows} * width));
}

}  // namespace ops
}  // namespace floatllm::vulkan
