// The forward pass of every architecture, compiled once for floatllm's own programs (CMake target
// floatllm::dispatch, which defines FLOATLLM_PRECOMPILED_MODELS for them); see model/registry.hpp.
#define FLOATLLM_DEFINE_PRECOMPILED_MODELS
#include "floatllm/model/registry.hpp"
