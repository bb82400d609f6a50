// Per-token cost of the sampler on a Qwen-sized (151936-token) vocabulary.
#include <benchmark/benchmark.h>
#include <floatllm/runtime/sampling.hpp>

#include <vector>

namespace {

// Flat: uniform in [-10, 10], the worst case for top-p (it keeps most of the vocabulary).
// Peaked: like a trained model, a handful of tokens far above a broad bulk.
std::vector<float> logits_of_vocab(size_t n, bool peaked) {
  floatllm::Xoshiro256 rng(1);
  std::vector<float> logits(n);
  for (float& l : logits)
    l = static_cast<float>(rng.uniform() * 20 - 10);
  if (peaked) {
    for (size_t i = 0; i < 8; ++i)
      logits[(i * 7919) % n] = 18.0f + static_cast<float>(i);
  }
  return logits;
}

void run(benchmark::State& state, const floatllm::SamplingParams& params) {
  const std::vector<float> logits = logits_of_vocab(151936, state.range(0) != 0);
  std::vector<int32_t> history(64);
  for (size_t i = 0; i < history.size(); ++i)
    history[i] = static_cast<int32_t>(i * 997);
  floatllm::Sampler sampler(params);
  std::vector<float> work(logits.size());
  for (auto _ : state) {
    work = logits;
    benchmark::DoNotOptimize(sampler.sample(work, history));
  }
}

void BM_Greedy(benchmark::State& state) {
  run(state, {.temperature = 0});
}
void BM_DefaultChain(benchmark::State& state) {
  run(state, {.repeat_penalty = 1.1f});
}
void BM_TopPOnly(benchmark::State& state) {
  run(state, {.top_k = 0, .top_p = 0.95f, .min_p = 0});
}
void BM_MinPOnly(benchmark::State& state) {
  run(state, {.top_k = 0, .top_p = 1, .min_p = 0.05f});
}
void BM_FullSoftmax(benchmark::State& state) {
  run(state, {.top_k = 0, .top_p = 1, .min_p = 0});
}

// Argument: 0 flat logits, 1 peaked logits.
BENCHMARK(BM_Greedy)->Arg(0);
BENCHMARK(BM_DefaultChain)->Arg(0)->Arg(1);
BENCHMARK(BM_TopPOnly)->Arg(0)->Arg(1);
BENCHMARK(BM_MinPOnly)->Arg(0)->Arg(1);
BENCHMARK(BM_FullSoftmax)->Arg(0);

}  // namespace
BENCHMARK_MAIN();
