// A Hugging Face checkpoint directory (config.json + *.safetensors) seen as a GGUF file, so the
// engine runs it directly, without conversion.
//
// The view is a GgufFile whose metadata is built from config.json under the keys llama.cpp's
// converter writes, and whose tensors are records under llama.cpp's names pointing into the
// safetensors mappings: the large matrices are never copied. Three things differ from a GGUF
// file and are handled here, once:
//  - Q/K row order. Llama-family checkpoints keep Q and K rows in the rotate-half order that GGUF
//    llama files permute into adjacent pairs. Rather than permuting, the view asks for the NeoX
//    RoPE layout (ModelConfig::rope_layout), which computes the same attention from the
//    unpermuted rows.
//  - Experts. HF stores each expert's matrix as its own tensor; GGUF stacks them. The view keeps
//    one record per stacked tensor whose `expert_blocks` lists the experts' mapped matrices.
//  - Norm weights and biases are read as F32 by the forward pass; they are small, so they are
//    converted into owned buffers, with Gemma's "1 +" folded in as the GGUF converter does.
//    Llama 3's frequency factors become an owned `rope_freqs.weight` the same way.
#pragma once

#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/io/gguf_writer.hpp"
#include "floatllm/io/safetensors.hpp"
#include "floatllm/kernels/kernels.hpp"

namespace floatllm {

// How one HF `model_type` maps to a GGUF architecture.
struct HfArchitecture {
  std::string_view model_type;
  std::string_view gguf_architecture;
  bool rotate_half_qk;  // GGUF files of this architecture hold Q/K permuted into adjacent pairs
  bool norm_plus_one;   // RMS norms multiply by (1 + w)
};

inline constexpr std::array kHfArchitectures{
    HfArchitecture{"llama", "llama", true, false},
    HfArchitecture{"mistral", "llama", true, false},
    HfArchitecture{"mixtral", "llama", true, false},
    HfArchitecture{"qwen2", "qwen2", false, false},
    HfArchitecture{"qwen3", "qwen3", false, false},
    HfArchitecture{"qwen2_moe", "qwen2moe", false, false},
    HfArchitecture{"qwen3_moe", "qwen3moe", false, false},
    HfArchitecture{"olmoe", "olmoe", false, false},
    HfArchitecture{"gemma2", "gemma2", false, true},
    HfArchitecture{"gemma3_text", "gemma3", false, true},
};

inline bool is_hf_checkpoint(const std::filesystem::path& path) {
  return std::filesystem::is_directory(path) && std::filesystem::exists(path / "config.json");
}

namespace hf_detail {

using nlohmann::json;

// config.json's values, with errors that name the file and the key.
class Config {
 public:
  Config(json root, std::string source) : root_(std::move(root)), source_(std::move(source)) {
    if (!root_.is_object()) fail(source_, ": not a JSON object");
  }

  const std::string& source() const { return source_; }
  bool has(const char* key) const { return root_.contains(key) && !root_[key].is_null(); }
  const json& raw(const char* key) const { return root_[key]; }

  int64_t integer(const char* key) const {
    if (!has(key)) fail(source_, ": missing key '", key, "'");
    const json& v = root_[key];
    if (!v.is_number_integer()) fail(source_, ": '", key, "' is ", v.dump(), ", not an integer");
    const auto value = v.get<int64_t>();
    if (value <= 0 || value > (int64_t{1} << 40)) {
      fail(source_, ": '", key, "' is ", value, ", not a plausible size");
    }
    return value;
  }
  int64_t integer_or(const char* key, int64_t fallback) const {
    return has(key) ? integer(key) : fallback;
  }
  float number_or(const char* key, float fallback) const {
    if (!has(key)) return fallback;
    const json& v = root_[key];
    if (!v.is_number()) fail(source_, ": '", key, "' is ", v.dump(), ", not a number");
    return v.get<float>();
  }
  std::string string(const char* key) const {
    if (!has(key)) fail(source_, ": missing key '", key, "'");
    const json& v = root_[key];
    if (!v.is_string()) fail(source_, ": '", key, "' is ", v.dump(), ", not a string");
    return v.get<std::string>();
  }
  bool boolean_or(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!root_[key].is_boolean()) fail(source_, ": '", key, "' is not true or false");
    return root_[key].get<bool>();
  }

 private:
  json root_;
  std::string source_;
};

// A metadata-only GGUF image (no tensors), which GgufFile parses like any other file.
inline std::vector<std::byte> encode_metadata(
    const std::vector<std::pair<std::string, GgufMetadataValue>>& entries) {
  std::vector<std::byte> out;
  const auto put = [&out](const void* data, std::size_t size) {
    const auto* bytes = static_cast<const std::byte*>(data);
    out.insert(out.end(), bytes, bytes + size);
  };
  const auto put_u32 = [&](uint32_t v) { put(&v, 4); };
  const auto put_u64 = [&](uint64_t v) { put(&v, 8); };
  put("GGUF", 4);
  put_u32(3);
  put_u64(0);
  put_u64(entries.size());
  for (const auto& [key, value] : entries) {
    put_u64(key.size());
    put(key.data(), key.size());
    put_u32(static_cast<uint32_t>(value.type()));
    put(value.encoded().data(), value.encoded().size());
  }
  return out;
}

// Llama 3's per-frequency RoPE factors, computed as llama.cpp's converter computes rope_freqs:
// long wavelengths are stretched by `factor`, short ones kept, and the band between blended.
inline std::vector<float> llama3_rope_factors(const Config& config, const json& scaling,
                                              int64_t rope_dims, float base) {
  const auto number = [&](const char* key, std::optional<float> fallback) {
    if (!scaling.contains(key)) {
      if (fallback) return *fallback;
      fail(config.source(), ": rope_scaling of type llama3 has no '", key, "'");
    }
    if (!scaling[key].is_number())
      fail(config.source(), ": rope_scaling.", key, " is not a number");
    return scaling[key].get<float>();
  };
  const float factor = number("factor", std::nullopt);
  const float low = number("low_freq_factor", 1.0f);
  const float high = number("high_freq_factor", 4.0f);
  const float old_context = number("original_max_position_embeddings", 8192.0f);
  if (!(factor > 0) || !(high > low) || !(low > 0) || !(old_context > 0)) {
    fail(config.source(), ": rope_scaling of type llama3 has inconsistent factors");
  }
  const float low_wavelength = old_context / low;
  const float high_wavelength = old_context / high;
  std::vector<float> factors;
  for (int64_t i = 0; i < rope_dims; i += 2) {
    const double freq = 1.0 / std::pow(double(base), double(i) / double(rope_dims));
    const double wavelength = 2.0 * std::numbers::pi / freq;
    if (wavelength < high_wavelength) {
      factors.push_back(1.0f);
    } else if (wavelength > low_wavelength) {
      factors.push_back(factor);
    } else {
      const double smooth = (old_context / wavelength - low) / (high - low);
      factors.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / factor + smooth)));
    }
  }
  return factors;
}

// What the view owns besides the mapping of the checkpoint.
struct Storage {
  std::vector<std::byte> metadata;
  std::unique_ptr<SafetensorsCheckpoint> checkpoint;
  std::deque<std::vector<float>> vectors;
  std::deque<std::vector<const std::byte*>> expert_blocks;
};

// The GGUF name of an HF tensor inside a layer, or nothing for tensors the engine does not use.
// Expert tensors come back with their expert index.
struct MappedName {
  std::string gguf;
  std::optional<int64_t> expert;
};

inline std::optional<MappedName> map_layer_tensor(std::string_view rest, bool gemma) {
  static const std::map<std::string_view, std::string_view> kNames{
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
      {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"mlp.gate.weight", "ffn_gate_inp.weight"},
      {"block_sparse_moe.gate.weight", "ffn_gate_inp.weight"},
      {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
      {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
      {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
      {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
  };
  if (rest == "post_attention_layernorm.weight") {
    // Gemma normalizes the attention output with it; elsewhere it is the norm before the FFN.
    return MappedName{gemma ? "post_attention_norm.weight" : "ffn_norm.weight", std::nullopt};
  }
  if (const auto it = kNames.find(rest); it != kNames.end()) {
    return MappedName{std::string(it->second), std::nullopt};
  }
  static const std::map<std::string_view, std::string_view> kExpertNames{
      {"gate_proj.weight", "ffn_gate_exps.weight"}, {"up_proj.weight", "ffn_up_exps.weight"},
      {"down_proj.weight", "ffn_down_exps.weight"}, {"w1.weight", "ffn_gate_exps.weight"},
      {"w3.weight", "ffn_up_exps.weight"},          {"w2.weight", "ffn_down_exps.weight"},
  };
  for (std::string_view prefix : {"mlp.experts.", "block_sparse_moe.experts."}) {
    if (!rest.starts_with(prefix)) continue;
    rest.remove_prefix(prefix.size());
    const std::size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot > 6) return std::nullopt;
    int64_t expert = 0;
    for (char ch : rest.substr(0, dot)) {
      if (ch < '0' || ch > '9') return std::nullopt;
      expert = expert * 10 + (ch - '0');
    }
    const auto it = kExpertNames.find(rest.substr(dot + 1));
    if (it == kExpertNames.end()) return std::nullopt;
    return MappedName{std::string(it->second), expert};
  }
  return std::nullopt;
}

inline std::optional<MappedName> map_tensor_name(std::string_view name, bool gemma) {
  if (name == "model.embed_tokens.weight") return MappedName{"token_embd.weight", std::nullopt};
  if (name == "model.norm.weight") return MappedName{"output_norm.weight", std::nullopt};
  if (name == "lm_head.weight") return MappedName{"output.weight", std::nullopt};
  constexpr std::string_view kLayers = "model.layers.";
  if (!name.starts_with(kLayers)) return std::nullopt;
  name.remove_prefix(kLayers.size());
  const std::size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 6) return std::nullopt;
  int64_t layer = 0;
  for (char ch : name.substr(0, dot)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    layer = layer * 10 + (ch - '0');
  }
  auto mapped = map_layer_tensor(name.substr(dot + 1), gemma);
  if (mapped) mapped->gguf = concat("blk.", layer, ".", mapped->gguf);
  return mapped;
}

inline GgmlType ggml_type_of(const SafetensorsTensor& t) {
  switch (t.dtype) {
    case SafetensorsDtype::F32:
      return GgmlType::F32;
    case SafetensorsDtype::F16:
      return GgmlType::F16;
    case SafetensorsDtype::BF16:
      return GgmlType::BF16;
    default:
      fail("tensor '", t.name, "' is ", safetensors_dtype_name(t.dtype),
           "; floatllm runs F32, F16 and BF16 checkpoints");
  }
}

}  // namespace hf_detail

// The metadata of config.json as llama.cpp's converter writes it, and the view's notes for the
// loader: whether Q/K rows are in rotate-half order and whether norms are stored without Gemma's 1.
struct HfModelInfo {
  HfArchitecture architecture;
  std::vector<std::pair<std::string, GgufMetadataValue>> metadata;
  std::vector<float> rope_factors;  // Llama 3 scaling; empty otherwise
};

inline HfModelInfo read_hf_config(const std::filesystem::path& dir) {
  using hf_detail::json;
  const std::filesystem::path path = dir / "config.json";
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open");
  json root = json::parse(in, nullptr, false);
  if (root.is_discarded()) fail(path.string(), ": not valid JSON");
  // Gemma 3's multimodal checkpoints nest the language model's settings.
  if (root.is_object() && root.contains("text_config") && root["text_config"].is_object()) {
    json text = root["text_config"];
    if (!text.contains("model_type")) text["model_type"] = "gemma3_text";
    root = std::move(text);
  }
  const hf_detail::Config c(std::move(root), path.string());
  std::string type = c.string("model_type");
  if (type == "gemma3") type = "gemma3_text";

  HfModelInfo info{};
  const HfArchitecture* arch = nullptr;
  for (const HfArchitecture& a : kHfArchitectures) {
    if (a.model_type == type) arch = &a;
  }
  if (arch == nullptr) {
    std::string known;
    for (const HfArchitecture& a : kHfArchitectures)
      known += concat(known.empty() ? "" : ", ", a.model_type);
    fail(path.string(), ": model_type '", type, "' is not supported; supported: ", known);
  }
  info.architecture = *arch;
  const std::string prefix = concat(arch->gguf_architecture, ".");
  auto& m = info.metadata;
  const auto set = [&](std::string key, GgufMetadataValue value) {
    m.emplace_back(std::move(key), std::move(value));
  };
  const auto set_u32 = [&](std::string_view key, int64_t value) {
    set(prefix + std::string(key), GgufMetadataValue::of(static_cast<uint32_t>(value)));
  };
  const auto set_f32 = [&](std::string_view key, float value) {
    set(prefix + std::string(key), GgufMetadataValue::of(value));
  };
  set("general.architecture", GgufMetadataValue::string(arch->gguf_architecture));
  set("general.name",
      GgufMetadataValue::string(dir.filename().empty() ? dir.parent_path().filename().string()
                                                       : dir.filename().string()));

  const int64_t dim = c.integer("hidden_size");
  const int64_t heads = c.integer("num_attention_heads");
  const int64_t head_dim = c.integer_or("head_dim", dim / heads);
  set_u32("block_count", c.integer("num_hidden_layers"));
  set_u32("embedding_length", dim);
  set_u32("attention.head_count", heads);
  set_u32("attention.head_count_kv", c.integer_or("num_key_value_heads", heads));
  set_u32("attention.key_length", head_dim);
  set_u32("attention.value_length", head_dim);
  set_u32("vocab_size", c.integer("vocab_size"));
  set_u32("context_length", c.integer_or("max_position_embeddings", 2048));
  if (c.has("intermediate_size")) set_u32("feed_forward_length", c.integer("intermediate_size"));
  set_f32("attention.layer_norm_rms_epsilon", c.number_or("rms_norm_eps", 1e-6f));
  const float base = c.number_or("rope_theta", 10000.0f);
  set_f32("rope.freq_base", base);
  set_u32("rope.dimension_count", head_dim);

  if (c.has("rope_scaling")) {
    const json& scaling = c.raw("rope_scaling");
    if (!scaling.is_object()) fail(path.string(), ": 'rope_scaling' is not an object");
    const json& kind = scaling.contains("rope_type") ? scaling["rope_type"] : scaling["type"];
    if (!kind.is_string()) fail(path.string(), ": rope_scaling has no string 'rope_type'");
    const std::string name = kind.get<std::string>();
    const auto factor = [&] {
      if (!scaling.contains("factor") || !scaling["factor"].is_number()) {
        fail(path.string(), ": rope_scaling of type ", name, " has no numeric 'factor'");
      }
      return scaling["factor"].get<float>();
    };
    if (name == "llama3") {
      info.rope_factors = hf_detail::llama3_rope_factors(c, scaling, head_dim, base);
    } else if (name == "linear" || name == "yarn") {
      set(prefix + "rope.scaling.type", GgufMetadataValue::string(name));
      set_f32("rope.scaling.factor", factor());
      if (scaling.contains("original_max_position_embeddings")) {
        if (!scaling["original_max_position_embeddings"].is_number_integer()) {
          fail(path.string(), ": rope_scaling.original_max_position_embeddings is not an integer");
        }
        set_u32("rope.scaling.original_context_length",
                scaling["original_max_position_embeddings"].get<int64_t>());
      }
    } else if (name != "default") {
      fail(path.string(), ": unsupported rope_scaling type '", name, "'");
    }
  }

  const int64_t experts = c.integer_or("num_local_experts", c.integer_or("num_experts", 0));
  if (experts > 0) {
    set_u32("expert_count", experts);
    set_u32("expert_used_count", c.integer("num_experts_per_tok"));
    if (c.has("moe_intermediate_size")) {
      set_u32("expert_feed_forward_length", c.integer("moe_intermediate_size"));
    }
    if (c.has("shared_expert_intermediate_size")) {
      set_u32("expert_shared_feed_forward_length", c.integer("shared_expert_intermediate_size"));
    }
    if (c.has("norm_topk_prob")) {
      set(prefix + "expert_weights_norm",
          GgufMetadataValue::of(c.boolean_or("norm_topk_prob", false)));
    }
  }
  if (arch->norm_plus_one) {
    if (c.has("sliding_window")) set_u32("attention.sliding_window", c.integer("sliding_window"));
    if (c.has("attn_logit_softcapping")) {
      set_f32("attn_logit_softcapping", c.number_or("attn_logit_softcapping", 0.0f));
    }
    if (c.has("final_logit_softcapping")) {
      set_f32("final_logit_softcapping", c.number_or("final_logit_softcapping", 0.0f));
    }
    if (c.has("rope_local_base_freq")) {
      set_f32("rope.freq_base_swa", c.number_or("rope_local_base_freq", 10000.0f));
    }
  }
  return info;
}

// Opens a checkpoint directory as a GGUF view (see the top of this file). `rotate_half_qk` says
// whether the caller must use the NeoX RoPE layout for an architecture whose GGUF files are
// interleaved.
struct HfCheckpointView {
  GgufFile file;
  bool rotate_half_qk;
};

inline HfCheckpointView open_hf_checkpoint(const std::filesystem::path& dir) {
  HfModelInfo info = read_hf_config(dir);
  auto storage = std::make_shared<hf_detail::Storage>();
  storage->metadata = hf_detail::encode_metadata(info.metadata);
  const std::filesystem::path index = dir / "model.safetensors.index.json";
  storage->checkpoint = std::make_unique<SafetensorsCheckpoint>(
      std::filesystem::exists(index) ? index : dir / "model.safetensors");
  GgufFile file(storage->metadata, dir.string());
  file.keep_alive(storage);

  const auto add_vector = [&](std::string name, std::vector<float> values) {
    const std::vector<float>& kept = storage->vectors.emplace_back(std::move(values));
    GgufTensor t;
    t.type = GgmlType::F32;
    t.n_dims = 1;
    t.ne = {kept.size(), 1, 1, 1};
    t.element_count = kept.size();
    t.data = std::as_bytes(std::span<const float>(kept));
    file.add_external_tensor(t, std::move(name));
  };
  if (!info.rope_factors.empty()) add_vector("rope_freqs.weight", info.rope_factors);

  struct Experts {
    std::vector<const SafetensorsTensor*> blocks;
  };
  std::map<std::string, Experts> stacked;
  const bool gemma = info.architecture.norm_plus_one;
  for (const SafetensorsTensor* st : storage->checkpoint->tensors()) {
    const auto mapped = hf_detail::map_tensor_name(st->name, gemma);
    if (!mapped) continue;
    if (st->shape.empty() || st->shape.size() > 2) {
      fail(dir.string(), ": tensor '", st->name, "' has ", st->shape.size(),
           " dimensions; expected 1 or 2");
    }
    if (mapped->expert) {
      auto& blocks = stacked[mapped->gguf].blocks;
      const auto e = static_cast<std::size_t>(*mapped->expert);
      if (e >= 4096) fail(dir.string(), ": tensor '", st->name, "': expert index out of range");
      if (blocks.size() <= e) blocks.resize(e + 1, nullptr);
      blocks[e] = st;
      continue;
    }
    const bool is_vector = st->shape.size() == 1 || st->shape[0] == 1;
    if (is_vector) {
      std::vector<float> values(static_cast<std::size_t>(st->element_count));
      st->read_f32(0, values);
      if (gemma && mapped->gguf.ends_with("norm.weight")) {
        for (float& v : values)
          v += 1.0f;
      }
      add_vector(mapped->gguf, std::move(values));
      continue;
    }
    GgufTensor t;
    t.type = hf_detail::ggml_type_of(*st);
    t.n_dims = 2;
    t.ne = {st->shape[1], st->shape[0], 1, 1};
    t.element_count = st->element_count;
    t.file_offset = st->file_offset;
    t.data = st->data;
    file.add_external_tensor(t, mapped->gguf);
  }

  for (auto& [name, experts] : stacked) {
    const SafetensorsTensor* first = experts.blocks.front();
    auto& pointers = storage->expert_blocks.emplace_back();
    for (std::size_t e = 0; e < experts.blocks.size(); ++e) {
      const SafetensorsTensor* st = experts.blocks[e];
      if (st == nullptr) fail(dir.string(), ": '", name, "' is missing expert ", e);
      if (st->shape != first->shape || st->dtype != first->dtype || st->shape.size() != 2) {
        fail(dir.string(), ": experts of '", name, "' differ in shape or dtype (", st->name, ")");
      }
      pointers.push_back(st->data.data());
    }
    GgufTensor t;
    t.type = hf_detail::ggml_type_of(*first);
    t.n_dims = 3;
    t.ne = {first->shape[1], first->shape[0], pointers.size(), 1};
    t.element_count = first->element_count * pointers.size();
    t.file_offset = first->file_offset;
    t.data = first->data;
    t.expert_blocks = pointers;
    file.add_external_tensor(t, name);
  }
  return {std::move(file), info.architecture.rotate_half_qk};
}

}  // namespace floatllm
