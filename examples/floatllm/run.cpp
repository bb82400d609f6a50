// `floatllm run`: generate text from a prompt, streamed to stdout; timings to stderr.
#include <floatllm/floatllm.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <random>

#include "commands.hpp"
#include "model_options.hpp"

namespace floatllm::cli {
namespace {

struct RunOptions {
  ModelOptions model;
  std::string prompt;
  std::string prompt_file;
  int64_t max_tokens = 128;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool no_special = false;
  bool verbose = false;
  std::optional<int64_t> trace_position;
};

Command add_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "Generate text from a prompt");
  o->model.add_to(*cmd);
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (empty: start from BOS alone)");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from a file")
      ->check(CLI::ExistingFile);
  cmd->add_option("-n,--n-predict", o->max_tokens, "Tokens to generate")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--temp", o->sampling.temperature, "Temperature (0: greedy)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "Top-p (1: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p, "Min-p (0: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", o->sampling.repeat_penalty, "Repetition penalty (1: off)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", o->sampling.repeat_last_n,
                  "Tokens the penalties look back at (-1: all)")
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", o->sampling.frequency_penalty, "Frequency penalty")
      ->capture_default_str();
  cmd->add_option("--presence-penalty", o->sampling.presence_penalty, "Presence penalty")
      ->capture_default_str();
  cmd->add_option("-s,--seed", o->seed, "Random seed (default: a random one, printed with -v)");
  cmd->add_option("--stop", o->stop, "Stop before this text (repeatable)");
  cmd->add_flag("--no-special", o->no_special, "Add no BOS/EOS and read special tokens as text");
  cmd->add_flag("-v,--verbose", o->verbose, "Print the model's configuration and the seed");
  cmd->add_option("--trace", o->trace_position,
                  "Print min/max/mean/NaN of every intermediate tensor at this position");
  return [o] {
    if (!o->prompt_file.empty()) {
      std::ifstream in(o->prompt_file, std::ios::binary);
      o->prompt.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto load_start = std::chrono::steady_clock::now();
    const auto model = Model::open(o->model.model);
    const SessionOptions session_options = o->model.session();
    const ModelOptions::Memory memory = o->model.memory(*model, session_options);
    const Tokenizer tokenizer = o->model.tokenizer(*model);
    Session session(*model, tokenizer, session_options, memory.weights());
    memory.attach(session);
    const auto backend = o->model.backend(*model, session_options);
    session.set_backend(backend.get());
    const double load_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

    GenerationParams params;
    params.max_tokens = o->max_tokens;
    params.sampling = o->sampling;
    params.sampling.seed = o->seed ? *o->seed : std::random_device{}();
    params.stop = o->stop;
    params.add_special = !o->no_special;
    params.parse_special = !o->no_special;
    const ModelConfig& c = model->config();
    if (o->verbose && memory.budgeted) {
      std::fprintf(stderr, "%s", memory.budgeted->plan().describe().c_str());
    }
    if (o->verbose) {
      std::fprintf(stderr,
                   "model: %s (%s), %lld layers, dim %lld, %lld/%lld heads of %lld, ffn %lld, "
                   "vocab %lld\ncontext %lld, KV cache %s (%.1f MiB), %d threads, seed %llu\n",
                   o->model.model.c_str(), std::string(model->architecture_name()).c_str(),
                   (long long)c.n_layers, (long long)c.dim, (long long)c.n_heads,
                   (long long)c.n_kv_heads, (long long)c.head_dim, (long long)c.ffn_dim,
                   (long long)c.vocab_size, (long long)session.options().context,
                   std::string(ggml_type_name(session.options().kv_type)).c_str(),
                   double(session.cache().bytes()) / (1 << 20), session.options().threads,
                   (unsigned long long)params.sampling.seed);
    }
    std::unique_ptr<PrintingTrace> trace;
    if (o->trace_position) {
      trace = std::make_unique<PrintingTrace>(stderr, *o->trace_position);
      session.set_trace(trace.get());
    }

    std::cout << o->prompt << std::flush;
    memory.phase("prompt");
    bool decoding = false;
    const GenerationResult result = session.generate(o->prompt, params, [&](std::string_view text) {
      if (!decoding) memory.phase("decode");
      decoding = true;
      std::cout << text << std::flush;
      return true;
    });
    memory.phase("done");
    std::cout << "\n";
    std::fprintf(stderr,
                 "\nload %.3f s | prompt %lld tokens, %.1f tokens/s | generated %zu tokens, "
                 "%.1f tokens/s | stop: %s | peak memory %.1f MiB\n",
                 load_seconds, (long long)result.prompt_tokens, result.prompt_tokens_per_second(),
                 result.tokens.size(), result.decode_tokens_per_second(),
                 std::string(to_string(result.stop_reason)).c_str(),
                 double(result.peak_resident_bytes) / (1 << 20));
    if (memory.budgeted && memory.budgeted->streaming() != nullptr) {
      const StreamingStats stats = memory.budgeted->streaming()->stats();
      std::fprintf(stderr,
                   "streamed %.1f MiB from disk (%s), waited %.3f s for reads | budget %.1f MiB\n",
                   double(stats.bytes_read) / (1 << 20),
                   memory.budgeted->streaming()->direct_io() ? "O_DIRECT" : "buffered",
                   stats.io_wait_seconds, double(memory.budgeted->plan().budget) / (1 << 20));
    }
    return 0;
  };
}

const CommandRegistration registration("run", add_run);

}  // namespace
}  // namespace floatllm::cli
