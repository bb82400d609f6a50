// The supported architectures: one line each, mapping `general.architecture` to the policy that
// implements it.
//
// Header-only users get everything inline. floatllm's own programs define
// FLOATLLM_PRECOMPILED_MODELS (through the floatllm::dispatch target) and see only declarations:
// src/models.cpp instantiates every architecture's forward pass once for the whole build instead
// of once per test file.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/model/hf_checkpoint.hpp"
#include "floatllm/model/policies/gemma.hpp"
#include "floatllm/model/policies/llama.hpp"
#include "floatllm/model/policies/olmoe.hpp"
#include "floatllm/model/policies/qwen.hpp"
#include "floatllm/model/transformer.hpp"

namespace floatllm {

#if defined(FLOATLLM_PRECOMPILED_MODELS) && !defined(FLOATLLM_DEFINE_PRECOMPILED_MODELS)

std::vector<std::string_view> supported_architecture_names();

#else

#if defined(FLOATLLM_DEFINE_PRECOMPILED_MODELS)
#define FLOATLLM_MODELS_LINKAGE
#else
#define FLOATLLM_MODELS_LINKAGE inline
#endif

using ModelFactory = std::unique_ptr<Model> (*)(GgufFile, ModelConfig);

template <class Policy>
std::unique_ptr<Model> make_transformer(GgufFile file, ModelConfig config) {
  return std::make_unique<Transformer<Policy> >(std::move(file), std::move(config));
}

// `llama` files carry Mixtral too; experts in the metadata select the MoE policy.
inline std::unique_ptr<Model> make_llama(GgufFile file, ModelConfig config) {
  return config.is_moe() ? make_transformer<MixtralPolicy>(std::move(file), std::move(config))
                         : make_transformer<LlamaPolicy>(std::move(file), std::move(config));
}

struct Architecture {
  std::string_view name;
  ModelFactory make;
};

inline constexpr std::array kArchitectures{
    Architecture{"llama", make_llama},
    Architecture{"qwen2", make_transformer<Qwen2Policy>},
    Architecture{"qwen3", make_transformer<Qwen3Policy>},
    Architecture{"qwen2moe", make_transformer<Qwen2MoePolicy>},
    Architecture{"qwen3moe", make_transformer<Qwen3MoePolicy>},
    Architecture{"olmoe", make_transformer<OlmoePolicy>},
    Architecture{"gemma2", make_transformer<Gemma2Policy>},
    Architecture{"gemma3", make_transformer<Gemma3Policy>},
};

FLOATLLM_MODELS_LINKAGE std::vector<std::string_view> supported_architecture_names() {
  std::vector<std::string_view> names;
  for (const Architecture& a : kArchitectures)
    names.push_back(a.name);
  return names;
}

// A GGUF file, or a Hugging Face checkpoint directory seen as one (model/hf_checkpoint.hpp).
FLOATLLM_MODELS_LINKAGE std::unique_ptr<Model> Model::open(const std::filesystem::path& path) {
  std::optional<HfCheckpointView> checkpoint;
  if (std::filesystem::is_directory(path)) checkpoint.emplace(open_hf_checkpoint(path));
  GgufFile file = checkpoint ? std::move(checkpoint->file) : GgufFile(path);
  ModelConfig config = read_common_config(file);
  // Unpermuted rotate-half Q/K rows rotate in the NeoX layout (same attention as the permuted
  // rows in the interleaved layout).
  if (checkpoint && checkpoint->rotate_half_qk) config.rope_layout = kernels::RopeLayout::kNeox;
  for (const Architecture& a : kArchitectures) {
    if (a.name == config.architecture) return a.make(std::move(file), std::move(config));
  }
  std::string supported;
  for (std::string_view name : supported_architecture_names()) {
    supported += concat(supported.empty() ? "" : ", ", name);
  }
  fail(path.string(), ": architecture '", config.architecture,
       "' is not supported; supported: ", supported);
}

#undef FLOATLLM_MODELS_LINKAGE
#endif

}  // namespace floatllm
