// The supported architectures: one line each, mapping `general.architecture` to the policy that
// implements it.
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "floatllm/model/hf_checkpoint.hpp"
#include "floatllm/model/policies/gemma.hpp"
#include "floatllm/model/policies/llama.hpp"
#include "floatllm/model/policies/olmoe.hpp"
#include "floatllm/model/policies/qwen.hpp"
#include "floatllm/model/transformer.hpp"

namespace floatllm {

using ModelFactory = std::unique_ptr<Model> (*)(GgufFile, ModelConfig);

template <class Policy>
std::unique_ptr<Model> make_transformer(GgufFile file, ModelConfig config) {
  return std::make_unique<Transformer<Policy>>(std::move(file), std::move(config));
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

inline std::string supported_architectures() {
  std::string list;
  for (const Architecture& a : kArchitectures)
    list += concat(list.empty() ? "" : ", ", a.name);
  return list;
}

// A GGUF file, or a Hugging Face checkpoint directory seen as one (model/hf_checkpoint.hpp).
inline std::unique_ptr<Model> Model::open(const std::filesystem::path& path) {
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
  fail(path.string(), ": architecture '", config.architecture,
       "' is not supported; supported: ", supported_architectures());
}

}  // namespace floatllm
