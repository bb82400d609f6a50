// Sampling options of the conversational subcommands (chat), with llama.cpp's defaults.
#pragma once

#include <floatllm/floatllm.hpp>

#include <CLI/CLI.hpp>

#include <optional>
#include <random>

namespace floatllm::cli {

struct SamplingOptions {
  SamplingParams params;
  std::optional<uint64_t> seed;

  void add_to(CLI::App& command) {
    command.add_option("--temp", params.temperature, "Temperature (0: greedy)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    command.add_option("--top-k", params.top_k, "Top-k (0: off)")->capture_default_str();
    command.add_option("--top-p", params.top_p, "Top-p (1: off)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    command.add_option("--min-p", params.min_p, "Min-p (0: off)")
        ->check(CLI::Range(0.0, 1.0))
        ->capture_default_str();
    command.add_option("--repeat-penalty", params.repeat_penalty, "Repetition penalty (1: off)")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    command.add_option("--frequency-penalty", params.frequency_penalty, "Frequency penalty")
        ->capture_default_str();
    command.add_option("--presence-penalty", params.presence_penalty, "Presence penalty")
        ->capture_default_str();
    command.add_option("-s,--seed", seed, "Random seed (default: a random one)");
  }

  SamplingParams resolved() const {
    SamplingParams resolved_params = params;
    resolved_params.seed = seed ? *seed : std::random_device{}();
    return resolved_params;
  }
};

}  // namespace floatllm::cli
