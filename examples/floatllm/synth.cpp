// `floatllm synth --like NAME --type TYPE -o OUT.gguf`: a random-weight model with the shapes,
// metadata and tokenizer of a real one (see include/floatllm/model/synthetic.hpp).
#include <floatllm/core/progress_bar.hpp>
#include <floatllm/model/synthetic.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "commands.hpp"

namespace floatllm::cli {
namespace {

struct SynthOptions {
  std::string like;
  std::string type = "q8_0";
  std::string output;
  uint64_t seed = 0;
  int threads = 0;
  std::string vocab_from;
  bool list = false;
  bool dry_run = false;
};

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return text;
}

int list_models() {
  std::cout
      << "name                   arch    layers  dim   heads/kv  head  ffn    experts  vocab\n";
  for (const SyntheticModelSpec& s : synthetic_models()) {
    std::printf("%-22s %-7s %6u %5u %5u/%-3u %5u %6u %8u %6u\n", s.name.c_str(),
                s.architecture.c_str(), s.block_count, s.embedding_length, s.head_count,
                s.head_count_kv, s.head_dim, s.feed_forward_length, s.expert_count, s.vocab_size);
  }
  return 0;
}

int run_synth(const SynthOptions& options) {
  if (options.list) return list_models();
  if (options.like.empty()) fail("synth: --like NAME is required (see --list)");
  const SyntheticModelSpec spec = synthetic_model(options.like);
  const auto mix = quant_mix_from_name(options.type);
  if (!mix) fail("synth: unknown --type '", options.type, "'");
  const std::filesystem::path vocab_path =
      options.vocab_from.empty()
          ? std::filesystem::path(FLOATLLM_TEST_MODELS) / default_vocab_file(spec.vocab)
          : std::filesystem::path(options.vocab_from);
  if (options.vocab_from.empty() && !std::filesystem::exists(vocab_path)) {
    fail("synth: the default vocabulary file ", vocab_path.string(),
         " is missing; pass --vocab-from FILE (any GGUF with tokenizer.ggml.* metadata)");
  }
  const GgufFile vocab(vocab_path);
  const GgufWriter writer =
      make_synthetic_model(spec, *mix, vocab, {options.seed, options.threads});

  std::map<GgmlType, std::pair<int, uint64_t>> by_type;
  for (const auto& tensor : writer.tensors()) {
    by_type[tensor.type].first += 1;
    by_type[tensor.type].second += tensor.byte_size;
  }
  std::cerr << spec.name << " as " << quant_mix_info(*mix).name << ": " << writer.tensors().size()
            << " tensors, " << gib(writer.data_bytes()) << " of tensor data; vocabulary from "
            << vocab_path.string() << "\n";
  for (const auto& [type, count_bytes] : by_type) {
    std::cerr << "  " << ggml_type_name(type) << ": " << count_bytes.first << " tensors, "
              << gib(count_bytes.second) << "\n";
  }
  if (options.dry_run) return 0;
  if (options.output.empty()) fail("synth: -o OUT.gguf is required");

  const auto start = std::chrono::steady_clock::now();
  ProgressBar bar("synth");
  writer.write(options.output, [&bar](const GgufWriteProgress& progress) {
    bar.update(progress.bytes_done, progress.bytes_total, progress.tensor_name);
  });
  bar.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "wrote %s in %.1f s\n", options.output.c_str(), seconds);
  return 0;
}

Command add_synth(CLI::App& app) {
  auto options = std::make_shared<SynthOptions>();
  CLI::App* sub = app.add_subcommand(
      "synth", "Write a random-weight GGUF model shaped exactly like a real one");
  sub->add_option("--like", options->like, "Model to imitate (see --list), e.g. llama-3.2-1b");
  sub->add_option("--type", options->type,
                  "f32, f16, bf16, q8_0, q4_0, q4_k (= q4_k_s), q4_k_m, q5_k_m or q6_k")
      ->capture_default_str();
  sub->add_option("-o,--output", options->output, "Output GGUF file");
  sub->add_option("--seed", options->seed, "Random seed")->capture_default_str();
  sub->add_option("-t,--threads", options->threads, "Threads (0 = all)")->capture_default_str();
  sub->add_option("--vocab-from", options->vocab_from,
                  "GGUF file whose tokenizer.* metadata to copy (default: a shared test model "
                  "with the right kind of vocabulary)");
  sub->add_flag("--list", options->list, "List the models it can imitate");
  sub->add_flag("--dry-run", options->dry_run, "Print the tensor types and sizes, write nothing");
  return [options] { return run_synth(*options); };
}

const CommandRegistration registration("synth", add_synth);

}  // namespace
}  // namespace floatllm::cli
