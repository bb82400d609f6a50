// Gemma 2 and Gemma 3: embeddings scaled by sqrt(dim), GELU (tanh) gated FFN, norms after
// attention and after the FFN, NeoX RoPE, and sliding-window attention on most layers. The norm
// weights in GGUF files already include Gemma's "+1", so they multiply as usual.
#pragma once

#include <cmath>

#include "floatllm/model/policy.hpp"

namespace floatllm {

struct GemmaCommon : PolicyDefaults {
  static constexpr auto kRopeLayout = kernels::RopeLayout::kNeox;
  static constexpr FfnActivation kActivation = FfnActivation::kGeluTanh;
  static constexpr bool kPostNorms = true;
  static constexpr bool kScaleEmbedding = true;

  // Layers whose index satisfies `index % period < period - 1` use the sliding window; every
  // `period`-th layer attends to the whole context.
  static void set_window_pattern(ModelConfig& config, int64_t period) {
    for (std::size_t i = 0; i < config.layers.size(); ++i) {
      config.layers[i].sliding_window =
          config.sliding_window > 0 && static_cast<int64_t>(i) % period < period - 1;
    }
  }

  static void configure_common(ModelConfig& config, int64_t largest_model_layers) {
    config.embedding_scale = std::sqrt(static_cast<float>(config.dim));
    // The largest Gemma scales queries by 1/sqrt(dim / heads) instead of 1/sqrt(head size).
    if (config.n_layers == largest_model_layers) {
      config.attention_scale = 1.0f / std::sqrt(float(config.dim) / float(config.n_heads));
    }
  }
};

// Soft-capped attention logits and final logits; sliding window on every other layer.
struct Gemma2Policy : GemmaCommon {
  static constexpr std::string_view kName = "gemma2";
  static void configure(ModelConfig& config, const GgufFile&) {
    configure_common(config, 46);
    set_window_pattern(config, 2);
  }
};

// Per-head QK norm, no soft-caps; five local layers per global one, the local ones with their
// own RoPE base.
struct Gemma3Policy : GemmaCommon {
  static constexpr std::string_view kName = "gemma3";
  static constexpr bool kQkNorm = true;
  static void configure(ModelConfig& config, const GgufFile& gguf) {
    configure_common(config, 62);
    set_window_pattern(config, 6);
    const float local_base = gguf.get_or<float>("gemma3.rope.freq_base_swa", 10000.0f);
    for (LayerConfig& layer : config.layers) {
      if (layer.sliding_window) {
        layer.rope_base = local_base;
        layer.rope_freq_scale = 1.0f;  // context scaling applies to the global layers only
      }
    }
    config.attention_softcap = 0.0f;
    config.final_softcap = 0.0f;
  }
};

}  // namespace floatllm
