// OLMoE: mixture of experts with an RMS norm over the whole Q and K projections.
#pragma once

#include "floatllm/model/policy.hpp"

namespace floatllm {

struct OlmoePolicy : PolicyDefaults {
  static constexpr std::string_view kName = "olmoe";
  static constexpr auto kRopeLayout = kernels::RopeLayout::kNeox;
  static constexpr bool kFullQkNorm = true;
  static constexpr bool kMoE = true;
};

}  // namespace floatllm
