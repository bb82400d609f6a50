// Options shared by the subcommands that load a model and run it (run, bench, chat, serve).
#pragma once

#include <floatllm/floatllm.hpp>
#include <floatllm/runtime/budgeted_weights.hpp>
#include <floatllm/runtime/memory_trace.hpp>

#include <CLI/CLI.hpp>

#if defined(FLOATLLM_HAVE_VULKAN)
#include <floatllm/backend/vulkan/vulkan_backend.hpp>
#endif

#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace floatllm::cli {

struct ModelOptions {
  std::string model = FLOATLLM_DEFAULT_MODEL;
  int threads = 0;
  int64_t context = 2048;
  std::string kv_type = "f16";
  int64_t batch = 512;
  std::string mem_budget;  // empty: no budget, everything stays mapped
  std::string mem_trace;
  int64_t gpu_layers = 0;
  int device = -1;

  void add_to(CLI::App& command) {
    command.add_option("-m,--model", model,
                       "GGUF model file or Hugging Face checkpoint directory (default: the sample "
                       "model)");
    command.add_option("-t,--threads", threads, "Threads (default: one per hardware thread)")
        ->check(CLI::NonNegativeNumber);
    command.add_option("-c,--ctx-size", context, "Context length in tokens (0: the model's)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command.add_option("--kv-type", kv_type, "KV cache type")
        ->check(CLI::IsMember({"f32", "f16", "q8_0"}))
        ->capture_default_str();
    command.add_option("-b,--batch-size", batch, "Prompt tokens per forward pass")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    command.add_option("--mem-budget", mem_budget,
                       "Memory budget (512M, 6G, 1.5GiB, auto): layers that do not fit are "
                       "streamed from disk, and generation stops cleanly before it is exceeded");
    command.add_option("--mem-trace", mem_trace,
                       "Write the process's memory over time to this CSV file "
                       "(scripts/plot-memory draws it)");
    command
        .add_option("--gpu-layers,--ngl", gpu_layers,
                    "Run the first N layers on a Vulkan device (99: all; see floatllm devices)")
        ->check(CLI::NonNegativeNumber);
    command.add_option("--device", device, "Vulkan device index (default: the best device)")
        ->check(CLI::NonNegativeNumber);
  }

  // The model's tokenizer: its GGUF metadata, or the tokenizer.json of a checkpoint directory.
  Tokenizer tokenizer(const Model& loaded) const {
    return std::filesystem::is_directory(model) ? Tokenizer::from_file(model)
                                                : Tokenizer::from_gguf(loaded.file());
  }

  SessionOptions session() const {
    SessionOptions options;
    options.context = context;
    options.threads = threads;
    options.batch = batch;
    const auto type = ggml_type_from_name(kv_type);
    if (!type) fail("unknown KV cache type '", kv_type, "'");
    options.kv_type = *type;
    return options;
  }

  // The memory side of a run, from --mem-budget and --mem-trace: call before loading anything
  // else, so an impossible budget is refused first.
  struct Memory {
    std::unique_ptr<MemoryTrace> trace;
    std::unique_ptr<BudgetedWeights> budgeted;

    // For the Session: nullptr keeps every weight mapped.
    WeightSource* weights() const { return budgeted ? budgeted->weights() : nullptr; }
    void attach(Session& session) const {
      if (budgeted) session.set_step_check(budgeted->step_check());
    }
    void phase(std::string_view name) const {
      if (trace) trace->phase(name);
    }
  };

  // The layers --gpu-layers puts on a Vulkan device, for Session::set_backend; nullptr when every
  // layer stays on the CPU. The device KV cache is F32 with --kv-type f32, else F16. With
  // `sibling`, a backend this made for another session of the model (serve's slots), the new one
  // reads the sibling's weights on the device and has only its own KV cache and activations.
  std::unique_ptr<LayerBackend> backend(const Model& model, const SessionOptions& options,
                                        const LayerBackend* sibling = nullptr) const {
    if (gpu_layers == 0) return nullptr;
#if defined(FLOATLLM_HAVE_VULKAN)
    if (sibling != nullptr) return static_cast<const vulkan::Backend*>(sibling)->share();
    vulkan::VulkanOptions v;
    v.device = device;
    v.layers = gpu_layers;
    v.context = options.context > 0 ? options.context : model.config().context_length;
    v.max_batch = std::min(options.batch, v.context);
    v.kv_type = options.kv_type == GgmlType::F32 ? GgmlType::F32 : GgmlType::F16;
    auto backend = vulkan::make_backend(model, v);
    std::fprintf(stderr, "floatllm: %lld of %lld layers on %s (%.0f MiB of device memory)\n",
                 static_cast<long long>(backend->layers()),
                 static_cast<long long>(model.config().n_layers), backend->device().name.c_str(),
                 static_cast<double>(backend->device_bytes()) / (1 << 20));
    return backend;
#else
    (void)model;
    (void)options;
    (void)sibling;
    fail(
        "--gpu-layers needs the Vulkan backend; this floatllm was built without it "
        "(-DFLOATLLM_VULKAN=ON)");
#endif
  }

  // `slots`: sessions that will share the weights, each with its own KV cache (serve --parallel).
  Memory memory(const Model& model, const SessionOptions& options, int64_t slots = 1) const {
    Memory memory;
    const uint64_t budget = mem_budget.empty() ? 0 : resolve_memory_budget(mem_budget);
    if (!mem_trace.empty()) memory.trace = std::make_unique<MemoryTrace>(mem_trace, budget);
    if (budget > 0) {
      BudgetedWeightsOptions b;
      b.context = options.context;
      b.kv_type = options.kv_type;
      b.threads = options.threads;
      b.batch = options.batch;
      b.slots = slots;
      b.gpu_layers = gpu_layers;
      memory.budgeted = std::make_unique<BudgetedWeights>(model, budget, b);
    }
    return memory;
  }
};

}  // namespace floatllm::cli
