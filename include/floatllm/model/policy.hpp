// The compile-time features an architecture policy chooses. Each architecture is one header in
// model/policies/ that derives from PolicyDefaults, overrides what differs, and adds one line to
// the registry (model/registry.hpp). Sizes and per-layer values stay run-time (ModelConfig).
#pragma once

#include <string_view>

#include "floatllm/io/gguf.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/model/config.hpp"

namespace floatllm {

enum class FfnActivation { kSilu, kGeluTanh };

struct PolicyDefaults {
  // Q and K rotate as adjacent pairs (GGUF llama files) or as halves (NeoX, most others).
  static constexpr kernels::RopeLayout kRopeLayout = kernels::RopeLayout::kInterleaved;
  static constexpr FfnActivation kActivation = FfnActivation::kSilu;
  static constexpr bool kQkvBias = false;         // biases on the Q, K and V projections
  static constexpr bool kQkNorm = false;          // RMS norm of each Q and K head before RoPE
  static constexpr bool kFullQkNorm = false;      // RMS norm over the whole Q and K width
  static constexpr bool kPostNorms = false;       // norms after attention and after the FFN
  static constexpr bool kScaleEmbedding = false;  // embeddings times sqrt(dim)
  static constexpr bool kMoE = false;             // routed experts instead of one FFN
  static constexpr bool kSharedExpert = false;    // plus an always-on expert with a sigmoid gate
  // Routing: softmax over all experts then top-k (false), or top-k then softmax over those.
  static constexpr bool kSoftmaxAfterTopK = false;
  // Whether the chosen experts' weights are rescaled to sum to one, unless the file says.
  static constexpr bool kNormalizeExpertWeights = false;

  // Architecture-specific metadata, after the common keys were read.
  static void configure(ModelConfig&, const GgufFile&) {}
};

// A policy's features as run-time values, for code that cannot be a template of the policy
// (an accelerator backend in its own translation unit, the memory planner, `floatllm inspect`).
struct ArchitectureFeatures {
  kernels::RopeLayout rope_layout;
  FfnActivation activation;
  bool qkv_bias, qk_norm, full_qk_norm, post_norms, scale_embedding, moe, shared_expert,
      softmax_after_top_k, normalize_expert_weights;
};

template <class Policy>
constexpr ArchitectureFeatures features_of() {
  return {Policy::kRopeLayout,
          Policy::kActivation,
          Policy::kQkvBias,
          Policy::kQkNorm,
          Policy::kFullQkNorm,
          Policy::kPostNorms,
          Policy::kScaleEmbedding,
          Policy::kMoE,
          Policy::kSharedExpert,
          Policy::kSoftmaxAfterTopK,
          Policy::kNormalizeExpertWeights};
}

}  // namespace floatllm
