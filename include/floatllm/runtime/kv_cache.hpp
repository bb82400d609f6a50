// The key/value cache of a session: for every layer, one row of K and one of V per position, in
// F32, F16 or Q8_0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/model/config.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t context, GgmlType type)
      : type_(type), context_(context) {
    if (type != GgmlType::F32 && type != GgmlType::F16 && type != GgmlType::Q8_0) {
      fail("KV cache type ", ggml_type_name(type), " is not supported (use f32, f16 or q8_0)");
    }
    if (context <= 0) fail("context length must be positive, got ", context);
    const int64_t width = config.kv_width();
    if (width % traits_of(type).block_elements != 0) {
      fail("a ", ggml_type_name(type), " KV cache needs rows of a multiple of ",
           traits_of(type).block_elements, " values; this model's rows have ", width);
    }
    row_bytes_ = ggml_row_bytes(type, static_cast<uint64_t>(width));
    const std::size_t layer_bytes = static_cast<std::size_t>(context) * row_bytes_;
    layers_.resize(static_cast<std::size_t>(config.n_layers));
    for (Layer& layer : layers_) {
      // Zero-filled so that unused positions hold valid numbers in every format.
      layer.k = std::make_unique<std::byte[]>(layer_bytes);
      layer.v = std::make_unique<std::byte[]>(layer_bytes);
    }
  }

  static uint64_t bytes_needed(const ModelConfig& config, int64_t context, GgmlType type) {
    return 2 * static_cast<uint64_t>(config.n_layers) * static_cast<uint64_t>(context) *
           ggml_row_bytes(type, static_cast<uint64_t>(config.kv_width()));
  }

  kernels::KvLayerView layer(int64_t index) {
    Layer& layer = layers_[static_cast<std::size_t>(index)];
    return {type_, layer.k.get(), layer.v.get(), row_bytes_};
  }

  GgmlType type() const { return type_; }
  int64_t context() const { return context_; }
  uint64_t bytes() const { return 2 * layers_.size() * context_ * row_bytes_; }

 private:
  struct Layer {
    std::unique_ptr<std::byte[]> k;
    std::unique_ptr<std::byte[]> v;
  };
  GgmlType type_;
  int64_t context_;
  uint64_t row_bytes_ = 0;
  std::vector<Layer> layers_;
};

}  // namespace floatllm
