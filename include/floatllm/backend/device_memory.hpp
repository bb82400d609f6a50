// The device memory a layer backend needs for the first N blocks of a model: their weights as
// uploaded, the device KV cache and the activations of one device pass. A pure function of the
// model and the options, so the memory plan can count device memory without any device (or Vulkan
// header) in sight; the Vulkan backend checks its fit with the same figures, and a test compares
// them with what it actually allocates.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "floatllm/model/model.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

// The type weights of `type` have on the device: the matmul shader reads F32, F16, Q8_0, Q4_K and
// Q6_K as they are; every other type is dequantized to F32 on upload.
constexpr GgmlType device_weight_type(GgmlType type) {
  switch (type) {
    case GgmlType::F16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q6_K:
      return type;
    default:
      return GgmlType::F32;
  }
}

// The device KV cache holds F32 when the session's does, else F16 (a Q8_0 session cache included).
constexpr GgmlType device_kv_type(GgmlType session_kv_type) {
  return session_kv_type == GgmlType::F32 ? GgmlType::F32 : GgmlType::F16;
}

// Host memory a device backend maps for its staging buffers (two of 16 MiB for uploads) and
// read-backs: its host-visible pool grows in chunks of 64 MiB, and one holds them all.
inline constexpr uint64_t kDeviceStagingBytes = uint64_t{64} << 20;

struct DeviceMemoryRequest {
  int64_t layers = -1;     // the first `layers` blocks; negative or more than the model's: all
  int64_t context = 2048;  // positions of the device KV cache
  int64_t batch = 512;     // tokens per device pass
  GgmlType kv_type = GgmlType::F16;  // of the device cache: F16 or F32
};

struct DeviceMemory {
  int64_t layers = 0;    // blocks on the device
  uint64_t weights = 0;  // RoPE frequency factors included
  uint64_t kv_cache = 0;
  uint64_t activations = 0;  // buffers of one device pass

  uint64_t total() const { return weights + kv_cache + activations; }
};

namespace device_memory_detail {

inline uint64_t padded_to_words(uint64_t bytes) {
  return (bytes + 3) / 4 * 4;
}

// One matrix of a tensor (an expert's, or the whole of a dense one) in its device type, its rows
// packed and the buffer rounded up to whole 32-bit words.
inline uint64_t matrix_bytes(const GgufTensor& t) {
  return padded_to_words(t.ne[1] * ggml_row_bytes(device_weight_type(t.type), t.ne[0]));
}

inline uint64_t layer_weight_bytes(const LayerTensors& t) {
  uint64_t bytes = 0;
  // Norms and biases are F32 vectors, uploaded as they are.
  for (const GgufTensor* vector :
       {t.attn_norm, t.attn_q_bias, t.attn_k_bias, t.attn_v_bias, t.attn_q_norm, t.attn_k_norm,
        t.post_attention_norm, t.ffn_norm, t.post_ffn_norm}) {
    if (vector != nullptr) bytes += vector->byte_size();
  }
  for (const GgufTensor* matrix :
       {t.attn_q, t.attn_k, t.attn_v, t.attn_output, t.ffn_gate, t.ffn_up, t.ffn_down, t.ffn_router,
        t.ffn_gate_shared, t.ffn_up_shared, t.ffn_down_shared, t.ffn_router_shared}) {
    if (matrix != nullptr) bytes += matrix_bytes(*matrix);
  }
  for (const GgufTensor* experts : {t.ffn_gate_experts, t.ffn_up_experts, t.ffn_down_experts}) {
    if (experts != nullptr) bytes += matrix_bytes(*experts) * experts->ne[2];
  }
  return bytes;
}

}  // namespace device_memory_detail

// The widest feed-forward activation of a model: its FFN, an expert's or the shared expert's.
inline int64_t widest_ffn(const ModelConfig& c) {
  return std::max({c.ffn_dim, c.expert_ffn_dim, c.shared_expert_ffn_dim, int64_t{1}});
}

inline DeviceMemory device_memory_needed(const Model& model, const DeviceMemoryRequest& request) {
  namespace d = device_memory_detail;
  const ModelConfig& c = model.config();
  DeviceMemory m;
  m.layers = request.layers < 0 ? c.n_layers : std::min(request.layers, c.n_layers);
  if (m.layers == 0) return m;
  for (int64_t l = 0; l < m.layers; ++l)
    m.weights += d::layer_weight_bytes(model.tensors().layers[static_cast<std::size_t>(l)]);
  if (const GgufTensor* factors = model.tensors().rope_factors) m.weights += factors->byte_size();

  const auto u = [](int64_t v) { return static_cast<uint64_t>(std::max<int64_t>(v, 0)); };
  m.kv_cache = 2 * u(m.layers) * u(request.context) *
               ggml_row_bytes(device_kv_type(request.kv_type), u(c.kv_width()));

  // The buffers of one pass of `batch` tokens: the residual stream, its norm, the attention and
  // FFN outputs (4 x dim), Q and the attention result, K and V, gate and up, and the quantized
  // copy of the widest matmul input; routing buffers for experts.
  const ArchitectureFeatures features = model.features();
  const int64_t ffn = widest_ffn(c);
  uint64_t widths = 4 * u(c.dim) + 2 * u(c.q_width()) + 2 * u(c.kv_width()) + 2 * u(ffn) +
                    u(std::max({c.dim, c.q_width(), ffn}));
  if (features.moe) widths += u(c.expert_count) + 2 * u(c.dim);
  if (features.shared_expert) widths += 1;
  m.activations = widths * u(request.batch) * sizeof(float);
  return m;
}

}  // namespace floatllm
