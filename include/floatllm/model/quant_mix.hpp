// Which GGML type each tensor of a model gets for a file type such as Q4_K_M: the "mixes" of
// llama.cpp's llama-quantize, so files written by floatllm have the layout users expect.
//
// Rules, as llama-quantize applies them without an importance matrix:
// - 1-D tensors (norms, biases, rope_freqs) and MoE routers (ffn_gate_inp) stay F32.
// - The output projection (or the token embedding when it doubles as output) is Q6_K in every
//   4- to 6-bit mix, Q8_0 in Q8_0; a row length that is not a multiple of 256 makes it Q8_0.
// - Q4_K_M / Q5_K_M give attn_v and ffn_down Q6_K in the layers where use_more_bits() holds
//   (the first and last eighth and every third layer between); Q4_K_S gives Q5_K to the first
//   four attn_v and to ffn_down in the first eighth of layers.
// - Models with 8 experts (Mixtral) get attn_v and attn_k in Q8_0 and, in Q4_K, attn_output in
//   Q5_K: those tensors are tiny next to the experts.
// - A row length that is not a multiple of the chosen type's block falls back: Q4_K -> Q5_0,
//   Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 if even that block does not fit.
// F32, F16 and BF16 are conversions, not quantization: every tensor of 2 or more dimensions
// gets that type, as llama.cpp's converter writes them.
#pragma once

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

enum class QuantMix : uint8_t { F32, F16, BF16, Q8_0, Q4_0, Q4_K_S, Q4_K_M, Q5_K_M, Q6_K };

struct QuantMixInfo {
  QuantMix mix;
  std::string_view name;  // as on the command line
  GgmlType base;          // the type of most weights
  uint32_t file_type;     // llama.cpp's llama_ftype, stored as general.file_type
};

inline constexpr std::array<QuantMixInfo, 9> kQuantMixes{{
    {QuantMix::F32, "f32", GgmlType::F32, 0},
    {QuantMix::F16, "f16", GgmlType::F16, 1},
    {QuantMix::BF16, "bf16", GgmlType::BF16, 32},
    {QuantMix::Q8_0, "q8_0", GgmlType::Q8_0, 7},
    {QuantMix::Q4_0, "q4_0", GgmlType::Q4_0, 2},
    {QuantMix::Q4_K_S, "q4_k_s", GgmlType::Q4_K, 14},
    {QuantMix::Q4_K_M, "q4_k_m", GgmlType::Q4_K, 15},
    {QuantMix::Q5_K_M, "q5_k_m", GgmlType::Q5_K, 17},
    {QuantMix::Q6_K, "q6_k", GgmlType::Q6_K, 18},
}};

constexpr const QuantMixInfo& quant_mix_info(QuantMix mix) {
  return kQuantMixes[static_cast<std::size_t>(mix)];
}

// Accepts the names above in any case; "q4_k" means Q4_K_S, llama.cpp's plain Q4_K mix.
constexpr std::optional<QuantMix> quant_mix_from_name(std::string_view name) {
  auto lower_equal = [](std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      char c = a[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != b[i]) return false;
    }
    return true;
  };
  if (lower_equal(name, "q4_k")) return QuantMix::Q4_K_S;
  for (const auto& info : kQuantMixes) {
    if (lower_equal(name, info.name)) return info.mix;
  }
  return std::nullopt;
}

constexpr bool quant_mix_is_quantized(QuantMix mix) {
  return mix != QuantMix::F32 && mix != QuantMix::F16 && mix != QuantMix::BF16;
}

// What choose_tensor_type needs to know about a tensor and its model.
struct TensorTypeQuery {
  std::string_view name;
  std::span<const uint64_t> ne;  // GGML order, ne[0] = row length
  uint32_t layer_count = 0;
  uint32_t expert_count = 0;
  bool model_has_output = true;  // false when token_embd doubles as the output projection
};

namespace quant_mix_detail {

constexpr bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

constexpr bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// The layer index of a "blk.N." tensor, or nothing.
constexpr std::optional<uint32_t> layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return std::nullopt;
  uint32_t layer = 0;
  const char* begin = name.data() + 4;
  const auto [end, error] = std::from_chars(begin, name.data() + name.size(), layer);
  if (error != std::errc() || end == begin || *end != '.') return std::nullopt;
  return layer;
}

// llama.cpp's choice of layers that get more bits: the first and last eighth, and every third
// layer in between.
constexpr bool use_more_bits(uint32_t layer, uint32_t layers) {
  const uint32_t eighth = layers / 8;
  return layer < eighth || layer >= 7 * layers / 8 || (layer - eighth) % 3 == 2;
}

constexpr GgmlType fallback(GgmlType type, uint64_t row_length) {
  if (row_length % traits_of(type).block_elements == 0) return type;
  GgmlType next = GgmlType::F16;
  switch (type) {
    case GgmlType::Q4_K:
      next = GgmlType::Q5_0;
      break;
    case GgmlType::Q5_K:
      next = GgmlType::Q5_1;
      break;
    case GgmlType::Q6_K:
      next = GgmlType::Q8_0;
      break;
    default:
      break;
  }
  return row_length % traits_of(next).block_elements == 0 ? next : GgmlType::F16;
}

}  // namespace quant_mix_detail

inline GgmlType choose_tensor_type(QuantMix mix, const TensorTypeQuery& query) {
  using namespace quant_mix_detail;
  const std::string_view name = query.name;
  if (query.ne.size() < 2 || ends_with(name, "_norm.weight") || contains(name, "ffn_gate_inp") ||
      name == "rope_freqs.weight") {
    return GgmlType::F32;
  }
  const QuantMixInfo& info = quant_mix_info(mix);
  if (!quant_mix_is_quantized(mix)) return info.base;

  const uint64_t row = query.ne[0];
  const bool is_output =
      name == "output.weight" || (!query.model_has_output && name == "token_embd.weight");
  if (is_output) {
    if (mix == QuantMix::Q8_0 || row % kQK_K != 0) return fallback(GgmlType::Q8_0, row);
    return GgmlType::Q6_K;
  }

  GgmlType type = info.base;
  const uint32_t layer = layer_of(name).value_or(0);
  const uint32_t layers = query.layer_count;
  const bool eight_experts = query.expert_count == 8;
  const bool more_bits_mix = mix == QuantMix::Q4_K_M || mix == QuantMix::Q5_K_M;
  if (contains(name, "attn_v.weight")) {
    if (more_bits_mix && use_more_bits(layer, layers)) type = GgmlType::Q6_K;
    if (mix == QuantMix::Q4_K_S && layer < 4) type = GgmlType::Q5_K;
    if (eight_experts) type = GgmlType::Q8_0;
  } else if (contains(name, "attn_k.weight")) {
    if (eight_experts) type = GgmlType::Q8_0;
  } else if (contains(name, "ffn_down")) {
    if (more_bits_mix && use_more_bits(layer, layers)) type = GgmlType::Q6_K;
    if (mix == QuantMix::Q4_K_S && layer < layers / 8) type = GgmlType::Q5_K;
  } else if (contains(name, "attn_output.weight")) {
    if (eight_experts && (mix == QuantMix::Q4_K_S || mix == QuantMix::Q4_K_M)) {
      type = GgmlType::Q5_K;
    }
  }
  return fallback(type, row);
}

}  // namespace floatllm
