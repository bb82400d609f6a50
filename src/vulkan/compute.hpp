// The compute pipelines of the embedded shaders and a stream of dispatches recorded into one
// command buffer, submitted when the caller needs the results.
//
// Every shader uses one layout: up to four storage buffers in set 0 (unused bindings get a
// placeholder) and up to 128 bytes of push constants, so one pipeline layout serves them all.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "device.hpp"
#include "memory.hpp"

namespace floatllm::vulkan {

enum class Shader {
  kMatmul,
  kRmsNorm,
  kRope,
  kAttention,
  kStoreKv,
  kGlu,
  kAdd,
  kSoftmax,
  kGatherRows,
  kScaleAddRows,
  kQuantizeActivations,
  kCount,
};

class Pipelines {
 public:
  static constexpr uint32_t kBindings = 4;
  static constexpr uint32_t kPushBytes = 128;

  explicit Pipelines(Device& device);
  ~Pipelines();
  Pipelines(const Pipelines&) = delete;
  Pipelines& operator=(const Pipelines&) = delete;

  // The pipeline of `shader` with specialization constants 0 and 1, built on first use.
  // Thread-safe: backends on one device share their pipelines.
  VkPipeline get(Shader shader, uint32_t constant0, uint32_t constant1);
  VkPipelineLayout layout() const { return layout_; }
  VkDescriptorSetLayout set_layout() const { return set_layout_; }

 private:
  Device& device_;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkShaderModule modules_[static_cast<int>(Shader::kCount)] = {};
  std::map<std::tuple<Shader, uint32_t, uint32_t>, VkPipeline> pipelines_;
  std::mutex mutex_;
};

// A device with its memory pools and pipelines: what every computation needs.
class Context {
 public:
  explicit Context(int device_index = -1);

  Device device;
  MemoryPool device_memory;
  MemoryPool host_memory;
  Pipelines pipelines;
  Buffer placeholder;  // bound to the bindings a shader does not use
};

// The context of device `index` (-1: the best), shared by everyone who asks while one is alive,
// so that backends on one device share its memory and compile each pipeline once.
std::shared_ptr<Context> shared_context(int index);

// Records dispatches and copies in order, each one waiting for everything recorded before it
// (the layers are a chain of dependent steps), and submits them to the compute queue on finish().
class CommandStream {
 public:
  explicit CommandStream(Context& context);
  ~CommandStream();
  CommandStream(const CommandStream&) = delete;
  CommandStream& operator=(const CommandStream&) = delete;

  struct Shape {
    Shader shader;
    uint32_t constant0 = 0;
    uint32_t constant1 = 0;
  };

  // Runs `groups` workgroups (split over x and y beyond the 65535 limit) times `groups_z`.
  template <class Push>
  void dispatch(Shape shape, std::initializer_list<const Buffer*> bindings, const Push& push,
                uint64_t groups, uint32_t groups_z = 1) {
    static_assert(sizeof(Push) <= Pipelines::kPushBytes);
    record_dispatch(shape, bindings, &push, sizeof(Push), groups, groups_z, false);
  }
  // Runs exactly groups_x * groups_y workgroups with these ids (attention: head, token).
  template <class Push>
  void dispatch_grid(Shape shape, std::initializer_list<const Buffer*> bindings, const Push& push,
                     uint32_t groups_x, uint32_t groups_y) {
    static_assert(sizeof(Push) <= Pipelines::kPushBytes);
    record_dispatch(shape, bindings, &push, sizeof(Push), groups_x, groups_y, true);
  }

  void copy(const Buffer& src, uint64_t src_offset, const Buffer& dst, uint64_t dst_offset,
            uint64_t bytes);
  void fill_zero(const Buffer& buffer, uint64_t bytes);

  // Submits what was recorded and waits for it.
  void finish();

 private:
  void record_dispatch(Shape shape, std::initializer_list<const Buffer*> bindings, const void* push,
                       uint32_t push_bytes, uint64_t groups, uint32_t second, bool grid);
  VkCommandBuffer recording();
  void barrier();

  static constexpr uint32_t kSetsPerPool = 512;

  Context& context_;
  VkCommandPool command_pool_ = VK_NULL_HANDLE;
  VkCommandBuffer commands_ = VK_NULL_HANDLE;
  VkDescriptorPool descriptor_pool_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  bool recording_ = false;
  bool empty_ = true;
  uint32_t sets_used_ = 0;
};

}  // namespace floatllm::vulkan
