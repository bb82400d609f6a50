// `floatllm bench`: prompt-processing and decode speed, like llama-bench: mean ± sd over runs.
#include <floatllm/floatllm.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "commands.hpp"
#include "model_options.hpp"

namespace floatllm::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  int64_t prompt_tokens = 128;
  int64_t decode_tokens = 64;
  int repetitions = 3;
  bool json = false;
};

struct MeanSd {
  double mean = 0;
  double sd = 0;
};

MeanSd mean_sd(const std::vector<double>& values) {
  MeanSd r;
  if (values.empty()) return r;
  r.mean = std::accumulate(values.begin(), values.end(), 0.0) / double(values.size());
  double squares = 0;
  for (double v : values)
    squares += (v - r.mean) * (v - r.mean);
  r.sd = values.size() > 1 ? std::sqrt(squares / double(values.size() - 1)) : 0.0;
  return r;
}

// How a budgeted run went against its budget, its plan, and the bound the disk sets: the disk's
// sequential O_DIRECT read speed (`disk`, measured in this run before the model loaded, so its
// buffer is not part of the peak) over the bytes streamed per decoded token.
struct BudgetReport {
  std::string text;
  nlohmann::json json;
};

BudgetReport budget_report(const BudgetedWeights& budgeted, uint64_t peak, double decode_speed,
                           double disk) {
  const MemoryPlan& plan = budgeted.plan();
  const double per_token = static_cast<double>(plan.streamed_bytes_per_token);
  const double bound = per_token > 0 ? disk / per_token : 0;
  const double budget = static_cast<double>(plan.budget);
  const double predicted_peak = static_cast<double>(plan.components.total());
  const auto mib = [](double bytes) { return bytes / (1 << 20); };
  BudgetReport r;
  char line[512];
  std::snprintf(line, sizeof line,
                "\nmemory budget %.1f MiB: peak %.1f MiB = %.1f%% of the budget (limit 103%%)\n"
                "plan: predicted peak %.1f MiB (measured %+.1f%%), predicted decode %.3f tokens/s "
                "(measured %+.1f%%)\n",
                mib(budget), mib(double(peak)), 100 * double(peak) / budget, mib(predicted_peak),
                100 * (double(peak) / predicted_peak - 1), plan.predicted_tokens_per_second,
                plan.predicted_tokens_per_second > 0
                    ? 100 * (decode_speed / plan.predicted_tokens_per_second - 1)
                    : 0.0);
  r.text = line;
  if (per_token > 0) {
    std::snprintf(line, sizeof line,
                  "streaming: %.1f MiB read per token; this disk reads %.1f MiB/s (O_DIRECT, "
                  "measured before loading) -> bound %.3f tokens/s; decode %.3f tokens/s = "
                  "%.1f%% of the bound\n",
                  mib(per_token), mib(disk), bound, decode_speed,
                  bound > 0 ? 100 * decode_speed / bound : 0.0);
    r.text += line;
  }
  r.json = {{"budget_bytes", plan.budget},
            {"peak_resident_bytes", peak},
            {"predicted_peak_bytes", plan.components.total()},
            {"predicted_decode_tokens_per_second", plan.predicted_tokens_per_second},
            {"streamed_bytes_per_token", plan.streamed_bytes_per_token},
            {"disk_bytes_per_second", disk},
            {"decode_bound_tokens_per_second", bound},
            {"plan", plan.to_json()}};
  if (const StreamingWeightSource* s = budgeted.streaming()) {
    const StreamingStats stats = s->stats();
    r.json["streamed_bytes"] = stats.bytes_read;
    r.json["io_wait_seconds"] = stats.io_wait_seconds;
  }
  return r;
}

// The weight bytes one decoded token reads: every layer and the output head, and of each MoE
// layer only the experts a token is routed to.
uint64_t weight_bytes_per_token(const Model& model) {
  const WeightLayout layout = WeightLayout::of(model, true);
  uint64_t bytes = layout.head.tensor_bytes;
  for (const WeightUnit& unit : layout.layers)
    bytes += unit.tensor_bytes;
  const auto used = static_cast<uint64_t>(std::max<int64_t>(model.config().experts_used, 0));
  for (const ExpertLayout& experts : layout.experts)
    bytes += experts.bytes_per_expert * used;
  return bytes;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Command add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt and decode speed");
  o->model.add_to(*cmd);
  cmd->add_option("-p,--n-prompt", o->prompt_tokens, "Prompt tokens per run (0: skip)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("-n,--n-gen", o->decode_tokens, "Generated tokens per run (0: skip)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("-r,--repetitions", o->repetitions, "Runs of each test")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON for machines");
  return [o] {
    const auto model = Model::open(o->model.model);
    SessionOptions options = o->model.session();
    options.context = std::max<int64_t>(options.context, o->prompt_tokens + o->decode_tokens + 1);
    // Under a budget, a batch larger than the prompt would only reserve memory it never uses.
    if (!o->model.mem_budget.empty() && o->prompt_tokens > 0) {
      options.batch = std::min(options.batch, o->prompt_tokens);
    }
    const double disk_speed =
        o->model.mem_budget.empty()
            ? 0
            : measure_read_bytes_per_second(o->model.model, DirectReader::Options{}, 256 << 20);
    const ModelOptions::Memory memory = o->model.memory(*model, options);
    const Tokenizer tokenizer = o->model.tokenizer(*model);
    Session session(*model, tokenizer, options, memory.weights());
    memory.attach(session);
    const auto backend = o->model.backend(*model, options);
    session.set_backend(backend.get());
    const int64_t vocab = model->config().vocab_size;

    // Random tokens, as llama-bench uses: speed does not depend on which tokens they are.
    std::mt19937 rng(42);
    std::uniform_int_distribution<int32_t> any_token(0, static_cast<int32_t>(vocab - 1));
    std::vector<double> prompt_speeds;
    std::vector<double> decode_speeds;
    for (int run = -1; run < o->repetitions; ++run) {  // run -1 warms up caches and threads
      if (o->prompt_tokens > 0) {
        std::vector<int32_t> prompt(static_cast<std::size_t>(o->prompt_tokens));
        for (int32_t& t : prompt)
          t = any_token(rng);
        session.reset();
        memory.phase("prompt");
        const auto start = std::chrono::steady_clock::now();
        session.eval(prompt);
        if (run >= 0) prompt_speeds.push_back(double(o->prompt_tokens) / seconds_since(start));
      }
      if (o->decode_tokens > 0) {
        session.reset();
        int32_t token = tokenizer.bos_id().value_or(any_token(rng));
        memory.phase("decode");
        const auto start = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < o->decode_tokens; ++i) {
          session.eval({&token, 1});
          token = any_token(rng);
        }
        if (run >= 0) decode_speeds.push_back(double(o->decode_tokens) / seconds_since(start));
      }
    }

    const MeanSd pp = mean_sd(prompt_speeds);
    const MeanSd tg = mean_sd(decode_speeds);
    const ModelConfig& c = model->config();
    const uint64_t weight_bytes = model->file().file_size() - model->file().data_offset();
    const uint64_t peak = process_memory().peak_resident_bytes;
    memory.phase("done");
    // The bound of a run from memory: measured after the runs, so its buffer is not in the peak.
    const uint64_t per_token = weight_bytes_per_token(*model);
    const double memory_speed = memory.budgeted || o->decode_tokens == 0 ? 0 : [&] {
      ThreadPool pool(session.options().threads);
      return measure_memory_read_bytes_per_second(pool);
    }();
    const double memory_bound = memory_speed > 0 ? memory_speed / double(per_token) : 0;
    const std::optional<BudgetReport> budget =
        memory.budgeted ? std::optional(budget_report(*memory.budgeted, peak, tg.mean, disk_speed))
                        : std::nullopt;
    if (o->json) {
      nlohmann::json out = {
          {"model", o->model.model},      {"architecture", model->architecture_name()},
          {"weight_bytes", weight_bytes}, {"threads", session.options().threads},
          {"kv_type", o->model.kv_type},  {"repetitions", o->repetitions},
          {"peak_resident_bytes", peak}};
      if (o->prompt_tokens > 0) {
        out["prompt"] = {{"tokens", o->prompt_tokens},
                         {"tokens_per_second", pp.mean},
                         {"sd", pp.sd},
                         {"runs", prompt_speeds}};
      }
      if (budget) out["memory_budget"] = budget->json;
      if (memory_bound > 0) {
        out["memory_bound"] = {{"weight_bytes_per_token", per_token},
                               {"memory_read_bytes_per_second", memory_speed},
                               {"decode_bound_tokens_per_second", memory_bound},
                               {"decode_fraction_of_bound", tg.mean / memory_bound}};
      }
      if (o->decode_tokens > 0) {
        out["decode"] = {{"tokens", o->decode_tokens},
                         {"tokens_per_second", tg.mean},
                         {"sd", tg.sd},
                         {"runs", decode_speeds}};
      }
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    std::printf("model: %s (%s, %lld layers, dim %lld, %.1f MiB of weights)\n",
                o->model.model.c_str(), std::string(model->architecture_name()).c_str(),
                (long long)c.n_layers, (long long)c.dim, double(weight_bytes) / (1 << 20));
    std::printf("threads %d, KV cache %s, %d runs\n\n", session.options().threads,
                o->model.kv_type.c_str(), o->repetitions);
    std::printf("%-12s %10s %22s\n", "test", "tokens", "tokens/s");
    if (o->prompt_tokens > 0) {
      std::printf("%-12s %10lld %13.2f ± %6.2f\n", "prompt", (long long)o->prompt_tokens, pp.mean,
                  pp.sd);
    }
    if (o->decode_tokens > 0) {
      std::printf("%-12s %10lld %13.2f ± %6.2f\n", "decode", (long long)o->decode_tokens, tg.mean,
                  tg.sd);
    }
    std::printf("\npeak memory %.1f MiB\n", double(peak) / (1 << 20));
    if (memory_bound > 0) {
      std::printf(
          "memory: %.1f MiB of weights per token; this machine reads %.1f GB/s with %d "
          "threads (measured after the runs) -> bound %.2f tokens/s; decode %.2f tokens/s "
          "= %.1f%% of the bound\n",
          double(per_token) / (1 << 20), memory_speed / 1e9, session.options().threads,
          memory_bound, tg.mean, 100 * tg.mean / memory_bound);
    }
    if (budget) std::printf("%s", budget->text.c_str());
    return 0;
  };
}

const CommandRegistration registration("bench", add_bench);

}  // namespace
}  // namespace floatllm::cli
