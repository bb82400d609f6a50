// The Qwen family: Qwen2 (QKV bias), Qwen3 (per-head QK norm) and their mixture-of-experts
// variants. All rotate Q and K in the NeoX layout.
#pragma once

#include "floatllm/model/policy.hpp"

namespace floatllm {

struct Qwen2Policy : PolicyDefaults {
  static constexpr std::string_view kName = "qwen2";
  static constexpr auto kRopeLayout = kernels::RopeLayout::kNeox;
  static constexpr bool kQkvBias = true;
};

struct Qwen3Policy : PolicyDefaults {
  static constexpr std::string_view kName = "qwen3";
  static constexpr auto kRopeLayout = kernels::RopeLayout::kNeox;
  static constexpr bool kQkNorm = true;
};

// Routed experts (softmax, top-k, weights kept as they are) plus a shared expert whose output is
// scaled by a sigmoid gate.
struct Qwen2MoePolicy : Qwen2Policy {
  static constexpr std::string_view kName = "qwen2moe";
  static constexpr bool kMoE = true;
  static constexpr bool kSharedExpert = true;
};

struct Qwen3MoePolicy : Qwen3Policy {
  static constexpr std::string_view kName = "qwen3moe";
  static constexpr bool kMoE = true;
  static constexpr bool kNormalizeExpertWeights = true;
};

}  // namespace floatllm
