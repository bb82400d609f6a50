// `floatllm convert DIR OUT.gguf [--type f16]`: writes a Hugging Face checkpoint directory as the
// GGUF file llama.cpp's converter would (include/floatllm/model/convert_hf.hpp).
#include <floatllm/core/progress_bar.hpp>
#include <floatllm/model/convert_hf.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "commands.hpp"

namespace floatllm::cli {
namespace {

struct ConvertOptions {
  std::string input;
  std::string output;
  std::string type = "f16";
  int threads = 0;
};

int run_convert(const ConvertOptions& options) {
  const auto mix = quant_mix_from_name(options.type);
  if (!mix) fail("convert: unknown --type '", options.type, "'");
  if (!is_hf_checkpoint(options.input)) {
    fail("convert: ", options.input,
         " is not a Hugging Face checkpoint directory (no config.json)");
  }
  const HfCheckpointView view = open_hf_checkpoint(options.input);
  const GgufWriter writer = make_gguf_from_hf(view, options.input, {*mix, options.threads});
  std::fprintf(stderr, "%s -> %s as %s: %zu tensors, %.1f MiB of tensor data\n",
               options.input.c_str(), options.output.c_str(),
               std::string(quant_mix_info(*mix).name).c_str(), writer.tensors().size(),
               static_cast<double>(writer.data_bytes()) / (1 << 20));
  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar("convert");
  writer.write(options.output, [&bar](const GgufWriteProgress& progress) {
    bar.update(progress.bytes_done, progress.bytes_total, progress.tensor_name);
  });
  bar.finish();
  std::fprintf(stderr, "wrote %s in %.1f s\n", options.output.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

Command add_convert(CLI::App& app) {
  auto options = std::make_shared<ConvertOptions>();
  CLI::App* sub =
      app.add_subcommand("convert", "Write a Hugging Face checkpoint directory as a GGUF model");
  sub->add_option("input", options->input, "Checkpoint directory (config.json, *.safetensors)")
      ->required();
  sub->add_option("output", options->output, "Output GGUF file")->required();
  sub->add_option("--type", options->type,
                  "f32, f16, bf16, q8_0, q4_0, q4_k (= q4_k_s), q4_k_m, q5_k_m or q6_k")
      ->capture_default_str();
  sub->add_option("-t,--threads", options->threads, "Threads (0 = all)")->capture_default_str();
  return [options] { return run_convert(*options); };
}

const CommandRegistration registration("convert", add_convert);

}  // namespace
}  // namespace floatllm::cli
