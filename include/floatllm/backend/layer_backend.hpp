// The seam between the forward pass and an accelerator: a backend that owns some transformer
// blocks (their weights and their part of the KV cache) runs those blocks in place of the CPU
// code. The header-only core only knows this interface; a Vulkan backend lives in its own
// translation unit (backend/vulkan/) and never leaks its headers into the core.
#pragma once

#include <cstdint>

namespace floatllm {

class LayerBackend {
 public:
  virtual ~LayerBackend() = default;
  virtual bool runs_layer(int64_t layer) const = 0;
  // Runs block `layer` for `n` tokens at positions first_pos.. on the residual stream `x`
  // ([n][dim] floats in host memory), updating it in place and storing the block's K/V in the
  // backend's own cache.
  virtual void run_layer(int64_t layer, float* x, int64_t n, int64_t first_pos) = 0;
};

}  // namespace floatllm
