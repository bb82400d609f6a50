// Throughput of the scalar reference (de)quantization, per format, on one 64 Ki-value row.
// Dequantization here is the reference the SIMD kernels are checked against, not the hot path;
// quantization runs when writing files (e.g. converting a model), so its speed sets how long that
// takes.
#include <benchmark/benchmark.h>
#include <floatllm/quant/dequantize.hpp>
#include <floatllm/quant/quantize.hpp>

#include <cstddef>
#include <random>
#include <vector>

namespace {

constexpr int64_t kValues = 64 * 1024;

std::vector<float> gaussian_row() {
  std::mt19937 rng(1);
  std::normal_distribution<float> gaussian(0.0f, 1.0f);
  std::vector<float> values(kValues);
  for (float& v : values)
    v = gaussian(rng);
  return values;
}

void BM_Quantize(benchmark::State& state, floatllm::GgmlType type) {
  const auto values = gaussian_row();
  std::vector<std::byte> bytes(floatllm::ggml_row_bytes(type, kValues));
  for (auto _ : state) {
    floatllm::quantize_row(type, values.data(), bytes.data(), kValues);
    benchmark::DoNotOptimize(bytes.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kValues);
}

void BM_Dequantize(benchmark::State& state, floatllm::GgmlType type) {
  const auto values = gaussian_row();
  std::vector<std::byte> bytes(floatllm::ggml_row_bytes(type, kValues));
  floatllm::quantize_row(type, values.data(), bytes.data(), kValues);
  std::vector<float> out(kValues);
  for (auto _ : state) {
    floatllm::dequantize_row(type, bytes.data(), out.data(), kValues);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * kValues);
}

#define FLOATLLM_QUANT_BENCH(type)                                \
  BENCHMARK_CAPTURE(BM_Quantize, type, floatllm::GgmlType::type); \
  BENCHMARK_CAPTURE(BM_Dequantize, type, floatllm::GgmlType::type)

FLOATLLM_QUANT_BENCH(F16);
FLOATLLM_QUANT_BENCH(BF16);
FLOATLLM_QUANT_BENCH(Q4_0);
FLOATLLM_QUANT_BENCH(Q4_1);
FLOATLLM_QUANT_BENCH(Q5_0);
FLOATLLM_QUANT_BENCH(Q5_1);
FLOATLLM_QUANT_BENCH(Q8_0);
FLOATLLM_QUANT_BENCH(Q8_1);
FLOATLLM_QUANT_BENCH(Q2_K);
FLOATLLM_QUANT_BENCH(Q3_K);
FLOATLLM_QUANT_BENCH(Q4_K);
FLOATLLM_QUANT_BENCH(Q5_K);
FLOATLLM_QUANT_BENCH(Q6_K);
FLOATLLM_QUANT_BENCH(Q8_K);

}  // namespace

BENCHMARK_MAIN();
