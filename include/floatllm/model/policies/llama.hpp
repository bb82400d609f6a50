// Llama 1-3, SmolLM, Mistral and, with experts, Mixtral: the GGUF `llama` architecture.
#pragma once

#include "floatllm/model/policy.hpp"

namespace floatllm {

struct LlamaPolicy : PolicyDefaults {
  static constexpr std::string_view kName = "llama";
};

// Mixtral is stored as `llama` with expert_count > 0: softmax over all experts, top-k, and the
// chosen weights renormalized to sum to one.
struct MixtralPolicy : LlamaPolicy {
  static constexpr std::string_view kName = "llama (mixture of experts)";
  static constexpr bool kMoE = true;
  static constexpr bool kNormalizeExpertWeights = true;
};

}  // namespace floatllm
