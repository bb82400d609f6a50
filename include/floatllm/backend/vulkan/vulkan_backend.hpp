// The Vulkan backend: runs some or all transformer blocks of a model on a GPU (or any Vulkan
// device). Compiled separately as the CMake target floatllm::vulkan; this header names no Vulkan
// type, so the header-only core and programs that use it never see the Vulkan headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "floatllm/backend/layer_backend.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

class Model;

namespace vulkan {

struct DeviceInfo {
  int index = 0;              // what VulkanOptions::device takes
  std::string name;           // e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
  std::string type;           // "discrete", "integrated", "virtual", "cpu" or "other"
  uint64_t memory_bytes = 0;  // of its largest device-local heap
};

// Every Vulkan device of the system, in the driver's order. Empty when there is no driver.
std::vector<DeviceInfo> list_devices();

struct VulkanOptions {
  int device = -1;          // index into list_devices(); -1 picks the best (discrete first)
  int64_t layers = -1;      // the first `layers` blocks run on the device; -1 (or more) all
  int64_t context = 2048;   // positions of the device KV cache; match the session's context
  int64_t max_batch = 512;  // tokens per device pass; longer batches are split
  GgmlType kv_type = GgmlType::F16;  // F16 or F32
};

// A LayerBackend on one Vulkan device, as programs see it.
class Backend : public LayerBackend {
 public:
  virtual const DeviceInfo& device() const = 0;
  virtual int64_t layers() const = 0;  // blocks 0 .. layers() - 1 run on the device
  // The bytes of its buffers on the device (weights, KV cache, activations), all placed when it
  // is made: device_memory_needed() (backend/device_memory.hpp) predicts them. Backends made by
  // share() count the weights they share too.
  virtual uint64_t device_bytes() const = 0;
  // Another backend for another session of the same model (a server's slot): it reads this one's
  // weights on the device and has a KV cache and activations of its own. Both may run at once.
  virtual std::unique_ptr<Backend> share() const = 0;
};

// A backend that owns the first `options.layers` blocks of `model`, whose weights start
// uploading at once (the first forward pass waits only for the blocks it reaches). The model must
// outlive the backend. Fails with a floatllm::Error when no device is usable or the blocks do not
// fit its memory.
std::unique_ptr<Backend> make_backend(const Model& model, const VulkanOptions& options = {});

}  // namespace vulkan
}  // namespace floatllm
