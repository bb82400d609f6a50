// Kernel throughput against what the memory system can deliver.
//
// ReadBandwidth measures read-only memory bandwidth with 1 and 2 threads; every matrix x vector
// result then reports GB/s of weight bytes and "of_read_bw", the fraction of the bandwidth
// measured with the same thread count (run the whole binary so the bandwidth runs first).
// Weights are several copies of a 14336 x 4096 matrix, cycled so no copy is still cached (L3 is
// 32 MiB here). Matrix x matrix reports GFLOP/s for prompt batches of 32, 128 and 512 tokens, for
// floatllm's kernels and, for F32 / F16, Eigen's GEMM on dequantized row tiles.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "../tests/random_weights.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/runtime/memory_bandwidth.hpp"

namespace {

using floatllm::GgmlType;

constexpr int64_t kRows = 14336;
constexpr int64_t kCols = 4096;
constexpr uint64_t kColdBytes = 256ull << 20;  // cycle through at least this much

std::map<int, double>& measured_bandwidth() {
  static std::map<int, double> by_threads;
  return by_threads;
}

floatllm::ThreadPool& pool_of(int threads) {
  static floatllm::ThreadPool one(1), two(2);
  return threads == 1 ? one : two;
}

void ReadBandwidth(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  auto& pool = pool_of(threads);
  const int64_t words = static_cast<int64_t>(kColdBytes / 8);
  std::vector<uint64_t> buffer(static_cast<size_t>(words), 1);
  double seconds = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(floatllm::read_words(pool, buffer.data(), words));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double gbps = static_cast<double>(kColdBytes) * state.iterations() / seconds / 1e9;
  measured_bandwidth()[threads] = gbps;
  state.counters["GB/s"] = gbps;
}
BENCHMARK(ReadBandwidth)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

struct Weights {
  std::vector<std::vector<std::byte>> copies;
  uint64_t bytes = 0;
};

const Weights& weights_of(GgmlType type, int64_t rows, int64_t cols, uint64_t cold_bytes) {
  // Only the latest matrix is kept: all types at once would need gigabytes.
  static std::map<std::tuple<GgmlType, int64_t, int64_t>, Weights> cache;
  if (cache.count({type, rows, cols}) == 0) cache.clear();
  auto& w = cache[{type, rows, cols}];
  if (w.copies.empty()) {
    std::mt19937 rng(42);
    w.bytes = floatllm::ggml_row_bytes(type, static_cast<uint64_t>(cols)) * rows;
    const uint64_t copies = std::max<uint64_t>(1, (cold_bytes + w.bytes - 1) / w.bytes);
    for (uint64_t i = 0; i < copies; ++i) {
      w.copies.push_back(floatllm::test::random_matrix(rng, type, rows, cols));
    }
  }
  return w;
}

floatllm::MatrixView view(GgmlType type, int64_t rows, int64_t cols, const std::byte* data) {
  return {type, rows, cols, data, floatllm::ggml_row_bytes(type, static_cast<uint64_t>(cols))};
}

void MatVec(benchmark::State& state, GgmlType type) {
  const int threads = static_cast<int>(state.range(0));
  auto& pool = pool_of(threads);
  const Weights& w = weights_of(type, kRows, kCols, kColdBytes);
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::vector<float> x(kCols), y(kRows);
  for (auto& v : x)
    v = dist(rng);
  size_t next = 0;
  double seconds = 0;
  for (auto _ : state) {
    const auto& data = w.copies[next++ % w.copies.size()];
    const auto start = std::chrono::steady_clock::now();
    floatllm::kernels::matmul(view(type, kRows, kCols, data.data()), x.data(), 1, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double gbps = static_cast<double>(w.bytes) * state.iterations() / seconds / 1e9;
  state.counters["GB/s"] = gbps;
  const auto bw = measured_bandwidth().find(threads);
  if (bw != measured_bandwidth().end()) state.counters["of_read_bw"] = gbps / bw->second;
}

// The same product on a 1024 x 4096 matrix that stays in L3: the kernel's compute ceiling, which
// must exceed the memory bandwidth for MatVec to be memory-bound.
void MatVecCached(benchmark::State& state, GgmlType type) {
  constexpr int64_t kCachedRows = 1024;
  const int threads = static_cast<int>(state.range(0));
  auto& pool = pool_of(threads);
  const Weights& w = weights_of(type, kCachedRows, kCols, 0);
  std::vector<float> x(kCols, 0.5f), y(kCachedRows);
  const auto m = view(type, kCachedRows, kCols, w.copies[0].data());
  for (auto _ : state) {
    floatllm::kernels::matmul(m, x.data(), 1, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GB/s"] =
      benchmark::Counter(static_cast<double>(w.bytes) * state.iterations(),
                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

constexpr int64_t kGemmRows = 4096;
constexpr int64_t kGemmCols = 4096;

void report_gflops(benchmark::State& state, int64_t n_tokens) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * kGemmRows * kGemmCols * static_cast<double>(n_tokens) * state.iterations(),
      benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

void MatMul(benchmark::State& state, GgmlType type) {
  const int64_t n_tokens = state.range(0);
  auto& pool = pool_of(2);
  const Weights& w = weights_of(type, kGemmRows, kGemmCols, 0);
  std::mt19937 rng(2);
  std::normal_distribution<float> dist;
  std::vector<float> x(static_cast<size_t>(kGemmCols * n_tokens));
  std::vector<float> y(static_cast<size_t>(kGemmRows * n_tokens));
  for (auto& v : x)
    v = dist(rng);
  const auto m = view(type, kGemmRows, kGemmCols, w.copies[0].data());
  for (auto _ : state) {
    floatllm::kernels::matmul(m, x.data(), n_tokens, y.data(), pool);
    benchmark::DoNotOptimize(y.data());
  }
  report_gflops(state, n_tokens);
}

// Eigen's GEMM on 256-row tiles dequantized to F32, tiles split over the same 2 threads.
void EigenMatMul(benchmark::State& state, GgmlType type) {
  const int64_t n_tokens = state.range(0);
  auto& pool = pool_of(2);
  const Weights& w = weights_of(type, kGemmRows, kGemmCols, 0);
  std::mt19937 rng(2);
  std::normal_distribution<float> dist;
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMajor x(n_tokens, kGemmCols);
  for (int64_t i = 0; i < x.size(); ++i)
    x.data()[i] = dist(rng);
  RowMajor y(n_tokens, kGemmRows);
  constexpr int64_t kTile = 256;
  const uint64_t row_bytes = floatllm::ggml_row_bytes(type, kGemmCols);
  std::vector<RowMajor> tiles(2, RowMajor(kTile, kGemmCols));
  for (auto _ : state) {
    pool.parallel_for(kGemmRows / kTile, [&](int64_t begin, int64_t end, int thread) {
      RowMajor& tile = tiles[static_cast<size_t>(thread)];
      for (int64_t t = begin; t < end; ++t) {
        for (int64_t r = 0; r < kTile; ++r) {
          floatllm::dequantize_row(type, w.copies[0].data() + (t * kTile + r) * row_bytes,
                                   tile.row(r).data(), kGemmCols);
        }
        y.middleCols(t * kTile, kTile).noalias() = x * tile.transpose();
      }
    });
    benchmark::DoNotOptimize(y.data());
  }
  report_gflops(state, n_tokens);
}

void register_all() {
  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                            GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                            GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                            GgmlType::Q6_K};
  for (const GgmlType type : types) {
    const std::string name(floatllm::ggml_type_name(type));
    benchmark::RegisterBenchmark(("MatVec/" + name).c_str(), MatVec, type)
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const GgmlType type : types) {
    const std::string name(floatllm::ggml_type_name(type));
    benchmark::RegisterBenchmark(("MatVecCached/" + name).c_str(), MatVecCached, type)
        ->Arg(1)
        ->Arg(2)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const GgmlType type : types) {
    const std::string name(floatllm::ggml_type_name(type));
    benchmark::RegisterBenchmark(("MatMul/" + name).c_str(), MatMul, type)
        ->Arg(32)
        ->Arg(128)
        ->Arg(512)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (const GgmlType type : {GgmlType::F32, GgmlType::F16}) {
    const std::string name(floatllm::ggml_type_name(type));
    benchmark::RegisterBenchmark(("EigenMatMul/" + name).c_str(), EigenMatMul, type)
        ->Arg(32)
        ->Arg(128)
        ->Arg(512)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

const int registered = (register_all(), 0);

}  // namespace

BENCHMARK_MAIN();
