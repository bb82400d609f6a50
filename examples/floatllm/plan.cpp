// `floatllm plan -m MODEL --mem-budget SIZE`: how a model would run within a memory budget —
// the bytes of each component, which layers stream, the reads per token and the predicted decode
// speed — without loading it. An impossible budget is an error naming the smallest that works.
#include <floatllm/floatllm.hpp>
#include <floatllm/runtime/memory_plan.hpp>

#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "commands.hpp"

namespace floatllm::cli {
namespace {

struct PlanOptions {
  std::string model = FLOATLLM_DEFAULT_MODEL;
  std::string budget = "auto";
  int64_t context = 2048;
  std::string kv_type = "f16";
  int64_t batch = 512;
  int threads = 0;
  int64_t gpu_layers = 0;
  int64_t parallel = 1;
  bool json = false;
  bool measure = true;
};

Command add_plan(CLI::App& app) {
  auto o = std::make_shared<PlanOptions>();
  CLI::App* cmd = app.add_subcommand("plan", "Show how a model would run within a memory budget");
  cmd->add_option("-m,--model", o->model, "GGUF model file (default: the sample model)");
  cmd->add_option("--mem-budget", o->budget, "Memory budget: 512M, 6G, 1.5GiB, or auto")
      ->capture_default_str();
  cmd->add_option("-c,--ctx-size", o->context, "Context length in tokens (0: the model's)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--kv-type", o->kv_type, "KV cache type")
      ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
      ->capture_default_str();
  cmd->add_option("-b,--batch-size", o->batch, "Prompt tokens per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "Threads (default: one per hardware thread)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--gpu-layers,--ngl", o->gpu_layers,
                  "The first N layers on a Vulkan device (99: all): their bytes are counted as "
                  "device memory, outside the budget")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--parallel", o->parallel,
                  "Sessions sharing the model, as floatllm serve --parallel: a KV cache, "
                  "activations and threads each")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print the plan as JSON");
  cmd->add_flag("!--no-measure", o->measure,
                "Assume 1 GB/s disk and 10 GB/s memory instead of measuring them");
  return [o] {
    const auto model = Model::open(o->model);
    PlanRequest request;
    request.budget = resolve_memory_budget(o->budget);
    request.context = o->context;
    const auto kv = ggml_type_from_name(o->kv_type);
    if (!kv) fail("unknown KV cache type '", o->kv_type, "'");
    request.kv_type = *kv;
    request.batch = o->batch;
    request.threads = o->threads;
    request.slots = o->parallel;
    if (o->threads == 0 && o->parallel > 1) {
      // As floatllm serve does: the slots share the cores.
      const auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
      request.threads = static_cast<int>(std::max<int64_t>(1, cores / o->parallel));
    }
    request.gpu_layers = o->gpu_layers;
    DeviceSpeeds speeds;
    speeds.disk_bytes_per_second = 1e9;
    speeds.memory_bytes_per_second = 1e10;
    MemoryPlan plan = plan_memory(*model, request, speeds);
    if (o->measure) {
      plan = plan_memory(*model, request, DeviceSpeeds::measure(*model, request.io, plan.threads));
    }
    if (o->json) {
      std::cout << plan.to_json().dump(2) << "\n";
    } else {
      std::cout << plan.describe();
    }
    return 0;
  };
}

const CommandRegistration registration("plan", add_plan);

}  // namespace
}  // namespace floatllm::cli
