// The memory plan's device figures against what the Vulkan backend really places on the device
// (lavapipe in CI), the host side of a plan with layers on the device, and backends that share
// their weights (Backend::share, one per server slot).
//
// Tolerance: none. device_memory_needed() and Backend::device_bytes() both count the bytes of the
// buffers the backend asks its pool for (the pool's alignment padding and the unused rest of its
// 64 MiB chunks are in neither), so any difference means the plan and the upload rules disagree.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "floatllm/backend/device_memory.hpp"
#include "floatllm/backend/vulkan/vulkan_backend.hpp"
#include "floatllm/runtime/memory_plan.hpp"
#include "floatllm/runtime/session.hpp"
#include "floatllm/runtime/weight_layout.hpp"
#include "floatllm/tokenizer/tokenizer.hpp"
#include "test_support.hpp"

namespace floatllm {
namespace {

// Llama (F32, F16, a K-quant mix whose Q5_K/Q4_0-style tensors are dequantized to F32, BF16),
// Qwen 2 (biases), Qwen 3 (QK-norm), Gemma 2 and 3 (post-norms), Llama 3 (RoPE factors) and the
// mixtures of experts (Qwen 2 MoE with a shared expert, Mixtral, OLMoE, Qwen 3 MoE).
const std::vector<std::string> kModels = {
    "tiny-llama-f32",     "tiny-llama-f16",   "tiny-llama-kq-q5_k_m", "tiny-llama-kq-bf16",
    "tiny-llama-kq-q2_k", "tiny-qwen2-q8_0",  "tiny-qwen3-kq-q4_k_m", "tiny-gemma2-f32",
    "tiny-gemma3-q8_0",   "tiny-llama3-q8_0", "tiny-qwen2moe-q8_0",   "tiny-mixtral-f32",
    "tiny-olmoe-q8_0",    "tiny-qwen3moe-f32"};

std::unique_ptr<Model> open_model(const std::string& name) {
  return Model::open(test::model_path("synthetic/" + name + ".gguf"));
}

TEST(VulkanMemoryPlan, DeviceBytesEqualWhatTheBackendAllocates) {
  struct Case {
    int64_t layers;
    int64_t context;
    int64_t batch;
    GgmlType kv;
  };
  for (const std::string& name : kModels) {
    SCOPED_TRACE(name);
    const auto model = open_model(name);
    const int64_t n = model->config().n_layers;
    for (const Case& c : {Case{1, 64, 16, GgmlType::F16}, Case{-1, 96, 7, GgmlType::F32},
                          Case{n + 10, 33, 33, GgmlType::F16}}) {
      vulkan::VulkanOptions options;
      options.layers = c.layers;
      options.context = c.context;
      options.max_batch = c.batch;
      options.kv_type = c.kv;
      const auto backend = vulkan::make_backend(*model, options);
      DeviceMemoryRequest request;
      request.layers = c.layers;
      request.context = c.context;
      request.batch = c.batch;
      request.kv_type = c.kv;
      const DeviceMemory planned = device_memory_needed(*model, request);
      EXPECT_EQ(planned.layers, backend->layers());
      EXPECT_EQ(planned.total(), backend->device_bytes())
          << "weights " << planned.weights << ", KV " << planned.kv_cache << ", activations "
          << planned.activations;
    }
  }
}

// What `floatllm run --gpu-layers N -c 128 -b 32` gets: the plan's device component is the
// backend's device_bytes() for the same options (the command makes the backend from them).
TEST(VulkanMemoryPlan, PlanDeviceComponentMatchesTheBackend) {
  for (const std::string& name : {std::string("tiny-qwen3-kq-q4_k_m"),
                                  std::string("tiny-olmoe-q8_0"), std::string("tiny-gemma2-f32")}) {
    SCOPED_TRACE(name);
    const auto model = open_model(name);
    for (const int64_t gpu_layers : {int64_t{1}, int64_t{99}}) {
      PlanRequest request;
      request.budget = uint64_t{1} << 40;
      request.context = 128;
      request.batch = 32;
      request.threads = 1;
      request.kv_type = GgmlType::Q8_0;  // the device keeps F16 for a Q8_0 session cache
      request.gpu_layers = gpu_layers;
      DeviceSpeeds speeds;
      speeds.disk_bytes_per_second = 1e9;
      speeds.memory_bytes_per_second = 1e10;
      const MemoryPlan plan = plan_memory(*model, request, speeds);

      vulkan::VulkanOptions options;
      options.layers = gpu_layers;
      options.context = 128;
      options.max_batch = 32;
      options.kv_type = GgmlType::F16;
      const auto backend = vulkan::make_backend(*model, options);
      EXPECT_EQ(plan.device.layers, backend->layers());
      EXPECT_EQ(plan.device.total(), backend->device_bytes());
      EXPECT_EQ(plan.to_json()["device"]["total"].get<uint64_t>(), backend->device_bytes());
      EXPECT_NE(plan.describe().find("on the device"), std::string::npos);
    }
  }
}

// The host plan leaves out exactly the weights of the blocks on the device (experts included),
// adds the backend's staging memory, and never streams a device block.
TEST(VulkanMemoryPlan, DeviceBlocksLeaveTheHostPlan) {
  for (const std::string& name :
       {std::string("tiny-llama-kq-q4_k_m"), std::string("tiny-mixtral-f32")}) {
    SCOPED_TRACE(name);
    const auto model = open_model(name);
    const int64_t n = model->config().n_layers;
    const WeightLayout layout = WeightLayout::of(*model, true);
    DeviceSpeeds speeds;
    speeds.disk_bytes_per_second = 1e9;
    speeds.memory_bytes_per_second = 1e10;
    PlanRequest request;
    request.budget = uint64_t{1} << 40;
    request.context = 64;
    request.threads = 1;
    const MemoryPlan cpu = plan_memory(*model, request, speeds);
    for (const int64_t gpu_layers : {int64_t{1}, n}) {
      request.gpu_layers = gpu_layers;
      const MemoryPlan split = plan_memory(*model, request, speeds);
      uint64_t on_device = 0;
      for (int64_t l = 0; l < gpu_layers; ++l) {
        const auto i = static_cast<std::size_t>(l);
        on_device +=
            layout.layers[i].tensor_bytes +
            layout.experts[i].bytes_per_expert * static_cast<uint64_t>(layout.experts[i].count);
      }
      EXPECT_EQ(split.components.resident_weights + on_device, cpu.components.resident_weights);
      EXPECT_EQ(split.components.device_staging, kDeviceStagingBytes);
      EXPECT_EQ(split.components.total() + on_device, cpu.components.total() + kDeviceStagingBytes);
      EXPECT_EQ(split.device.layers, gpu_layers);
      EXPECT_GT(split.device.weights, 0u);
      for (int64_t l = 0; l < n; ++l)
        EXPECT_EQ(split.layers[static_cast<std::size_t>(l)].on_device, l < gpu_layers);

      // A budget that makes the host stream: the device blocks are still not streamed, and the
      // smallest budget that works no longer needs room for them.
      PlanRequest tight = request;
      tight.budget = split.minimum_budget;
      const MemoryPlan streamed = plan_memory(*model, tight, speeds);
      for (int64_t l = 0; l < gpu_layers; ++l) {
        EXPECT_FALSE(streamed.layers[static_cast<std::size_t>(l)].streamed);
        EXPECT_FALSE(streamed.streaming_options().streamed[static_cast<std::size_t>(l)]);
      }
      EXPECT_LE(streamed.components.total(), split.minimum_budget);
      // Blocks moved to the device never raise the smallest host budget beyond the staging; with
      // all of them there the head streams in pieces through a ring of a block's size.
      EXPECT_LE(split.minimum_budget, cpu.minimum_budget + kDeviceStagingBytes);
    }
  }
}

// Without a device the plan is what it always was: no device bytes, no staging.
TEST(VulkanMemoryPlan, NoGpuLayersNoDeviceMemory) {
  const auto model = open_model("tiny-llama-f32");
  PlanRequest request;
  request.budget = uint64_t{1} << 40;
  DeviceSpeeds speeds;
  speeds.disk_bytes_per_second = 1e9;
  speeds.memory_bytes_per_second = 1e10;
  const MemoryPlan plan = plan_memory(*model, request, speeds);
  EXPECT_EQ(plan.device.total(), 0u);
  EXPECT_EQ(plan.components.device_staging, 0u);
  EXPECT_EQ(plan.describe().find("device"), std::string::npos);
}

// Greedy ids of `prompt` (8 steps) in a session of its own on `backend`.
std::vector<int32_t> greedy_ids(const Model& model, const Tokenizer& tokenizer,
                                LayerBackend* backend, const std::string& prompt) {
  SessionOptions options;
  options.context = 64;
  options.threads = 1;
  options.batch = 5;  // several device passes per prompt
  Session session(model, tokenizer, options);
  session.set_backend(backend);
  GenerationParams params;
  params.max_tokens = 8;
  params.sampling.temperature = 0;
  return session.generate(prompt, params).tokens;
}

// Two sessions on backends that share one upload of the weights, running at the same time, give
// exactly the ids each gives alone on a backend of its own: the KV caches and activations are
// separate, and the shared context serializes only the queue submissions.
TEST(VulkanShare, SharedWeightsSeparateCaches) {
  const auto model = open_model("tiny-qwen2moe-q8_0");
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  vulkan::VulkanOptions options;
  options.context = 64;
  options.max_batch = 5;
  const std::vector<std::string> prompts = {"Once upon a time", "The quick brown fox jumps"};

  std::vector<std::vector<int32_t>> alone;
  for (const std::string& prompt : prompts) {
    const auto own = vulkan::make_backend(*model, options);
    alone.push_back(greedy_ids(*model, tokenizer, own.get(), prompt));
    ASSERT_EQ(alone.back().size(), 8u);
  }
  EXPECT_NE(alone[0], alone[1]);

  const auto first = vulkan::make_backend(*model, options);
  const auto second = first->share();
  EXPECT_EQ(second->layers(), first->layers());
  EXPECT_EQ(second->device_bytes(), first->device_bytes());
  std::vector<std::vector<int32_t>> together(2);
  std::thread other([&] { together[1] = greedy_ids(*model, tokenizer, second.get(), prompts[1]); });
  together[0] = greedy_ids(*model, tokenizer, first.get(), prompts[0]);
  other.join();
  EXPECT_EQ(together[0], alone[0]);
  EXPECT_EQ(together[1], alone[1]);

  // A shared backend outlives the one it came from: the weights stay while anyone reads them.
  std::unique_ptr<vulkan::Backend> survivor;
  {
    const auto origin = vulkan::make_backend(*model, options);
    survivor = origin->share()->share();
  }
  EXPECT_EQ(greedy_ids(*model, tokenizer, survivor.get(), prompts[0]), alone[0]);
}

}  // namespace
}  // namespace floatllm
