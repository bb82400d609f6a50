// A model's dimensions and hyper-parameters, read at run time from the GGUF metadata.
// The architecture's compile-time choices live in its policy (model/policies/); everything that
// varies between sizes of one architecture lives here.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/kernels/kernels.hpp"

namespace floatllm {

enum class RopeScaling { kNone, kLinear, kYarn };

struct LayerConfig {
  bool sliding_window = false;  // attends only to the last `ModelConfig::sliding_window` positions
  float rope_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // positions times this: 1 / the linear or YaRN scaling factor
};

struct ModelConfig {
  std::string architecture;
  std::string name;
  int64_t n_layers = 0;
  int64_t dim = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;  // of queries and keys
  int64_t value_dim = 0;
  int64_t ffn_dim = 0;
  int64_t vocab_size = 0;
  int64_t context_length = 0;
  float norm_eps = 1e-5f;

  int64_t rope_dims = 0;
  // Set by a loader whose Q/K rows are in the rotate-half order (Hugging Face Llama checkpoints,
  // which GGUF files permute into adjacent pairs): the NeoX layout computes the same attention
  // from the unpermuted rows. Unset: the policy's layout.
  std::optional<kernels::RopeLayout> rope_layout;
  float rope_base = 10000.0f;
  RopeScaling rope_scaling = RopeScaling::kNone;
  float rope_scale_factor = 1.0f;
  int64_t rope_original_context = 0;

  float attention_scale = 0.0f;  // multiplies Q·K; 1/sqrt(head_dim) unless the file says otherwise
  float attention_softcap = 0.0f;
  float final_softcap = 0.0f;
  int64_t sliding_window = 0;
  float embedding_scale = 1.0f;

  int64_t expert_count = 0;
  int64_t experts_used = 0;
  int64_t expert_ffn_dim = 0;
  int64_t shared_expert_ffn_dim = 0;
  std::optional<bool> normalize_expert_weights;  // from the file; else the policy decides

  std::vector<LayerConfig> layers;

  int64_t q_width() const { return n_heads * head_dim; }
  int64_t kv_width() const { return n_kv_heads * head_dim; }
  int64_t v_width() const { return n_kv_heads * value_dim; }
  bool is_moe() const { return expert_count > 0; }
};

// Reads `<arch>.<key>` values; the architecture prefix is what GGUF files use.
class ArchKeys {
 public:
  ArchKeys(const GgufFile& gguf, std::string arch) : gguf_(gguf), arch_(std::move(arch)) {}

  std::string key(std::string_view suffix) const { return concat(arch_, ".", suffix); }
  bool has(std::string_view suffix) const { return gguf_.contains(key(suffix)); }

  template <class T>
  T get(std::string_view suffix) const {
    return gguf_.get<T>(key(suffix));
  }
  template <class T>
  T get_or(std::string_view suffix, T fallback) const {
    return gguf_.get_or<T>(key(suffix), fallback);
  }

 private:
  const GgufFile& gguf_;
  std::string arch_;
};

// The metadata every architecture shares. Policies then adjust what is theirs.
inline ModelConfig read_common_config(const GgufFile& gguf) {
  ModelConfig c;
  c.architecture = gguf.get<std::string>("general.architecture");
  c.name = gguf.get_or<std::string>("general.name", "");
  const ArchKeys keys(gguf, c.architecture);

  c.n_layers = keys.get<int64_t>("block_count");
  c.dim = keys.get<int64_t>("embedding_length");
  c.n_heads = keys.get<int64_t>("attention.head_count");
  c.n_kv_heads = keys.get_or<int64_t>("attention.head_count_kv", c.n_heads);
  c.ffn_dim = keys.get_or<int64_t>("feed_forward_length", 0);
  c.context_length = keys.get_or<int64_t>("context_length", 2048);
  c.norm_eps = keys.get_or<float>("attention.layer_norm_rms_epsilon",
                                  keys.get_or<float>("attention.layer_norm_epsilon", 1e-5f));

  const auto positive = [&](int64_t value, std::string_view what) {
    if (value <= 0 || value > (int64_t{1} << 24)) {
      fail(gguf.source(), ": metadata '", keys.key(what), "' is ", value, ", not a plausible size");
    }
  };
  positive(c.n_layers, "block_count");
  positive(c.dim, "embedding_length");
  positive(c.n_heads, "attention.head_count");
  positive(c.n_kv_heads, "attention.head_count_kv");
  if (c.n_heads % c.n_kv_heads != 0) {
    fail(gguf.source(), ": ", c.n_heads, " query heads cannot be grouped over ", c.n_kv_heads,
         " key/value heads");
  }
  c.head_dim = keys.get_or<int64_t>("attention.key_length", c.dim / c.n_heads);
  c.value_dim = keys.get_or<int64_t>("attention.value_length", c.head_dim);
  positive(c.head_dim, "attention.key_length");
  if (c.value_dim != c.head_dim) {
    fail(gguf.source(), ": value heads of ", c.value_dim, " differ from key heads of ", c.head_dim,
         "; floatllm supports equal sizes only");
  }

  c.rope_dims = keys.get_or<int64_t>("rope.dimension_count", c.head_dim);
  if (c.rope_dims <= 0 || c.rope_dims > c.head_dim || c.rope_dims % 2 != 0) {
    fail(gguf.source(), ": metadata '", keys.key("rope.dimension_count"), "' is ", c.rope_dims,
         "; it must be even and at most the head size ", c.head_dim);
  }
  c.rope_base = keys.get_or<float>("rope.freq_base", 10000.0f);
  const std::string scaling = gguf.get_or<std::string>(keys.key("rope.scaling.type"), "none");
  if (scaling == "linear") {
    c.rope_scaling = RopeScaling::kLinear;
  } else if (scaling == "yarn") {
    c.rope_scaling = RopeScaling::kYarn;
  } else if (scaling != "none") {
    fail(gguf.source(), ": unsupported RoPE scaling type '", scaling, "'");
  }
  c.rope_scale_factor = keys.get_or<float>("rope.scaling.factor", 1.0f);
  if (c.rope_scaling != RopeScaling::kNone && !(c.rope_scale_factor > 0.0f)) {
    fail(gguf.source(), ": metadata '", keys.key("rope.scaling.factor"), "' must be positive");
  }
  c.rope_original_context =
      keys.get_or<int64_t>("rope.scaling.original_context_length", c.context_length);

  c.attention_scale = keys.get_or<float>("attention.scale", 0.0f);
  if (c.attention_scale == 0.0f) c.attention_scale = 1.0f / std::sqrt(float(c.head_dim));
  c.attention_softcap = keys.get_or<float>("attn_logit_softcapping", 0.0f);
  c.final_softcap = keys.get_or<float>("final_logit_softcapping", 0.0f);
  c.sliding_window = keys.get_or<int64_t>("attention.sliding_window", 0);

  c.expert_count = keys.get_or<int64_t>("expert_count", 0);
  c.experts_used = keys.get_or<int64_t>("expert_used_count", 0);
  c.expert_ffn_dim = keys.get_or<int64_t>("expert_feed_forward_length", c.ffn_dim);
  c.shared_expert_ffn_dim = keys.get_or<int64_t>("expert_shared_feed_forward_length", 0);
  c.normalize_expert_weights = gguf.get_optional<bool>(keys.key("expert_weights_norm"));
  if (c.expert_count > 0 && (c.experts_used <= 0 || c.experts_used > c.expert_count)) {
    fail(gguf.source(), ": ", c.experts_used, " experts used per token out of ", c.expert_count);
  }

  const float freq_scale = c.rope_scaling == RopeScaling::kNone ? 1.0f : 1.0f / c.rope_scale_factor;
  c.layers.assign(static_cast<std::size_t>(c.n_layers),
                  LayerConfig{false, c.rope_base, freq_scale});
  return c;
}

}  // namespace floatllm
