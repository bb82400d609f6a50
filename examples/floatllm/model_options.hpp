// Options shared by the subcommands that load a model and run it (run, bench, chat, serve).
#pragma once

#include <floatllm/floatllm.hpp>

#include <CLI/CLI.hpp>

#include <string>

namespace floatllm::cli {

struct ModelOptions {
  std::string model = FLOATLLM_DEFAULT_MODEL;
  int threads = 0;
  int64_t context = 2048;
  std::string kv_type = "f16";
  int64_t batch = 512;

  void add_to(CLI::App& command) {
    command.add_option("-m,--model", model, "GGUF model file (default: the sample model)");
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
};

}  // namespace floatllm::cli
