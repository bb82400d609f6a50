// `floatllm quantize IN.gguf OUT.gguf --type q4_k_m`: rewrites a GGUF model with the per-tensor
// types of a llama-quantize file type (see include/floatllm/model/quantize_model.hpp).
#include <floatllm/core/progress_bar.hpp>
#include <floatllm/model/quantize_model.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "commands.hpp"

namespace floatllm::cli {
namespace {

struct QuantizeOptions {
  std::string input;
  std::string output;
  std::string type;
  int threads = 0;
};

int run_quantize(const QuantizeOptions& options) {
  const auto mix = quant_mix_from_name(options.type);
  if (!mix) fail("quantize: unknown --type '", options.type, "'");
  const GgufFile source(options.input);
  const GgufWriter writer = make_quantized_model(source, *mix, {options.threads});

  std::map<GgmlType, std::pair<int, uint64_t>> by_type;
  for (const auto& tensor : writer.tensors()) {
    by_type[tensor.type].first += 1;
    by_type[tensor.type].second += tensor.byte_size;
  }
  std::fprintf(stderr, "%s -> %s as %s: %zu tensors, %.1f MiB -> %.1f MiB of tensor data\n",
               options.input.c_str(), options.output.c_str(),
               std::string(quant_mix_info(*mix).name).c_str(), writer.tensors().size(),
               static_cast<double>(source.file_size() - source.data_offset()) / (1 << 20),
               static_cast<double>(writer.data_bytes()) / (1 << 20));
  for (const auto& [type, count_bytes] : by_type) {
    std::fprintf(stderr, "  %-5s %4d tensors %10.1f MiB\n",
                 std::string(ggml_type_name(type)).c_str(), count_bytes.first,
                 static_cast<double>(count_bytes.second) / (1 << 20));
  }

  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar("quantize");
  writer.write(options.output, [&bar](const GgufWriteProgress& progress) {
    bar.update(progress.bytes_done, progress.bytes_total, progress.tensor_name);
  });
  bar.finish();
  std::fprintf(stderr, "wrote %s in %.1f s\n", options.output.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return 0;
}

Command add_quantize(CLI::App& app) {
  auto options = std::make_shared<QuantizeOptions>();
  CLI::App* sub = app.add_subcommand("quantize", "Rewrite a GGUF model with quantized weights");
  sub->add_option("input", options->input, "Input GGUF file")->required();
  sub->add_option("output", options->output, "Output GGUF file")->required();
  sub->add_option("--type", options->type,
                  "f32, f16, bf16, q8_0, q4_0, q4_k (= q4_k_s), q4_k_m, q5_k_m or q6_k")
      ->required();
  sub->add_option("-t,--threads", options->threads, "Threads (0 = all)")->capture_default_str();
  return [options] { return run_quantize(*options); };
}

const CommandRegistration registration("quantize", add_quantize);

}  // namespace
}  // namespace floatllm::cli
