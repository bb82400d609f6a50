// Which tensors a model has, checked against its configuration, and the WeightSource through
// which the forward pass reaches their bytes.
//
// The forward pass never reads a tensor's bytes from the file view directly: it asks a
// WeightSource. A resident source hands out the memory-mapped bytes; a streaming source (the
// budgeted runtime) reads a layer into a buffer ahead of use and hands out that buffer. The math
// is the same either way.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/core/tensor.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/model/config.hpp"

namespace floatllm {

// The tensors of one transformer block. Optional ones are null when the architecture or the
// file does not have them.
struct LayerTensors {
  const GgufTensor* attn_norm = nullptr;
  const GgufTensor* attn_q = nullptr;
  const GgufTensor* attn_k = nullptr;
  const GgufTensor* attn_v = nullptr;
  const GgufTensor* attn_output = nullptr;
  const GgufTensor* attn_q_bias = nullptr;
  const GgufTensor* attn_k_bias = nullptr;
  const GgufTensor* attn_v_bias = nullptr;
  const GgufTensor* attn_q_norm = nullptr;
  const GgufTensor* attn_k_norm = nullptr;
  const GgufTensor* post_attention_norm = nullptr;
  const GgufTensor* ffn_norm = nullptr;
  const GgufTensor* ffn_gate = nullptr;
  const GgufTensor* ffn_up = nullptr;
  const GgufTensor* ffn_down = nullptr;
  const GgufTensor* post_ffn_norm = nullptr;
  // Mixture of experts: a router and experts stacked along the third dimension.
  const GgufTensor* ffn_router = nullptr;
  const GgufTensor* ffn_gate_experts = nullptr;
  const GgufTensor* ffn_up_experts = nullptr;
  const GgufTensor* ffn_down_experts = nullptr;
  const GgufTensor* ffn_gate_shared = nullptr;
  const GgufTensor* ffn_up_shared = nullptr;
  const GgufTensor* ffn_down_shared = nullptr;
  const GgufTensor* ffn_router_shared = nullptr;

  // Every tensor of the block, for planning what to keep resident and what to stream.
  std::vector<const GgufTensor*> all() const {
    std::vector<const GgufTensor*> list;
    for (const GgufTensor* t :
         {attn_norm,           attn_q,        attn_k,           attn_v,           attn_output,
          attn_q_bias,         attn_k_bias,   attn_v_bias,      attn_q_norm,      attn_k_norm,
          post_attention_norm, ffn_norm,      ffn_gate,         ffn_up,           ffn_down,
          post_ffn_norm,       ffn_router,    ffn_gate_experts, ffn_up_experts,   ffn_down_experts,
          ffn_gate_shared,     ffn_up_shared, ffn_down_shared,  ffn_router_shared}) {
      if (t != nullptr) list.push_back(t);
    }
    return list;
  }
};

struct ModelTensors {
  const GgufTensor* token_embedding = nullptr;
  const GgufTensor* output_norm = nullptr;
  const GgufTensor* output = nullptr;  // the token embedding when the output is tied
  const GgufTensor* rope_factors = nullptr;
  std::vector<LayerTensors> layers;
};

// Looks tensors up by their GGUF names and checks their shapes, so a file that does not fit its
// metadata is refused at load time with the tensor's name rather than failing mid-inference.
class TensorFinder {
 public:
  TensorFinder(const GgufFile& gguf) : gguf_(gguf) {}

  const GgufTensor* optional(const std::string& name, std::initializer_list<int64_t> shape) const {
    const GgufTensor* t = gguf_.find_tensor(name);
    if (t != nullptr) check_shape(*t, shape);
    return t;
  }

  const GgufTensor* required(const std::string& name, std::initializer_list<int64_t> shape) const {
    const GgufTensor* t = optional(name, shape);
    if (t == nullptr) fail(gguf_.source(), ": missing tensor '", name, "'");
    return t;
  }

  // A per-channel vector (norm weight or bias): it is read as floats on every token.
  const GgufTensor* vector(const std::string& name, int64_t length, bool required_tensor) const {
    const GgufTensor* t = required_tensor ? required(name, {length}) : optional(name, {length});
    if (t != nullptr && t->type != GgmlType::F32) {
      fail(gguf_.source(), ": tensor '", name, "' is ", ggml_type_name(t->type),
           "; norm weights and biases must be F32");
    }
    return t;
  }

 private:
  void check_shape(const GgufTensor& t, std::initializer_list<int64_t> shape) const {
    bool ok = t.n_dims <= shape.size() || (t.n_dims == 2 && shape.size() == 1 && t.ne[1] == 1);
    std::size_t d = 0;
    for (int64_t expected : shape) {
      ok = ok && static_cast<int64_t>(t.ne[d]) == expected;
      ++d;
    }
    for (; d < kGgmlMaxDims; ++d)
      ok = ok && t.ne[d] == 1;
    if (!ok) {
      std::string want = "[";
      for (int64_t v : shape)
        want += concat(want.size() > 1 ? ", " : "", v);
      std::string have = "[";
      for (uint32_t i = 0; i < t.n_dims; ++i)
        have += concat(i ? ", " : "", t.ne[i]);
      fail(gguf_.source(), ": tensor '", t.name, "' has shape ", have, "], expected ", want, "]");
    }
  }

  const GgufFile& gguf_;
};

// Where the forward pass gets weight bytes. Calls bracket each block: begin_layer(l) before its
// first tensor is read and end_layer(l) after its last; the output head is layer n_layers.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual void begin_layer(int64_t layer) = 0;
  virtual void end_layer(int64_t layer) = 0;
  // The bytes of a whole tensor, valid between begin_layer and end_layer of its layer.
  virtual const std::byte* data(const GgufTensor& tensor) = 0;
  // The bytes of expert `expert` of a stacked expert tensor [cols, rows, n_experts].
  virtual const std::byte* expert_data(const GgufTensor& tensor, int64_t expert) = 0;
  // The most rows of a matrix the forward pass may take at once through rows(): less than all of
  // them when a streaming source reads a matrix larger than its buffers piece by piece (the
  // output head of a large vocabulary). Only the output head is read this way.
  virtual int64_t row_block(const GgufTensor& tensor) { return static_cast<int64_t>(tensor.ne[1]); }
  // Rows [first, first + count) of a matrix, count <= row_block(); asked for in increasing order,
  // valid until the next rows() call or end_layer.
  virtual const std::byte* rows(const GgufTensor& tensor, int64_t first, int64_t count) {
    static_cast<void>(count);
    return data(tensor) + static_cast<uint64_t>(first) * tensor.row_bytes();
  }
};

// All weights stay in the memory mapping of the file.
class MappedWeightSource final : public WeightSource {
 public:
  void begin_layer(int64_t) override {}
  void end_layer(int64_t) override {}
  const std::byte* data(const GgufTensor& tensor) override { return tensor.data.data(); }
  const std::byte* expert_data(const GgufTensor& tensor, int64_t expert) override {
    if (!tensor.expert_blocks.empty())
      return tensor.expert_blocks[static_cast<std::size_t>(expert)];
    return tensor.data.data() + expert * static_cast<int64_t>(tensor.row_bytes() * tensor.ne[1]);
  }
};

// A 2-D weight as the kernels see it, with its bytes from `source`.
inline MatrixView matrix(WeightSource& source, const GgufTensor& t) {
  return MatrixView{t.type, static_cast<int64_t>(t.ne[1]), static_cast<int64_t>(t.ne[0]),
                    source.data(t), t.row_bytes()};
}

inline MatrixView expert_matrix(WeightSource& source, const GgufTensor& t, int64_t expert) {
  return MatrixView{t.type, static_cast<int64_t>(t.ne[1]), static_cast<int64_t>(t.ne[0]),
                    source.expert_data(t, expert), t.row_bytes()};
}

inline const float* vector_data(WeightSource& source, const GgufTensor* t) {
  return t == nullptr ? nullptr : reinterpret_cast<const float*>(source.data(*t));
}

}  // namespace floatllm
