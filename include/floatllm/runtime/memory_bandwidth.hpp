// How fast this machine's memory is read the way decoding reads weights: several threads, each
// streaming its share. It bounds decoding from memory: bandwidth / weight bytes per token.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <numeric>
#include <vector>

#include "floatllm/core/thread_pool.hpp"
#include "floatllm/runtime/direct_reader.hpp"

namespace floatllm {

// Sums `count` words read as four streams (the quarters of the range) side by side: one stream
// per core leaves bandwidth unused that the matrix kernels, reading several rows at once, reach.
inline uint64_t sum_as_four_streams(const uint64_t* words, int64_t count) {
  const int64_t quarter = count / 4;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (int64_t i = 0; i < quarter; ++i) {
    a += words[i];
    b += words[quarter + i];
    c += words[2 * quarter + i];
    d += words[3 * quarter + i];
  }
  for (int64_t i = 4 * quarter; i < count; ++i)
    a += words[i];
  return a + b + c + d;
}

// Reads all of `words` once on the pool's threads (each its contiguous share, four streams);
// returns the sum so the reads cannot be optimized away.
inline uint64_t read_words(ThreadPool& pool, const uint64_t* words, int64_t count) {
  constexpr int64_t kPage = 4096;  // words per unit of work: 32 KiB
  std::vector<uint64_t> sums(static_cast<std::size_t>(pool.size()));
  pool.parallel_for(count / kPage, [&](int64_t begin, int64_t end, int thread) {
    sums[static_cast<std::size_t>(thread)] +=
        sum_as_four_streams(words + begin * kPage, (end - begin) * kPage);
  });
  return std::accumulate(sums.begin(), sums.end(), uint64_t{0});
}

// Bytes per second over `bytes` (make it several times the last-level cache), the best of
// `passes` passes. The buffer is the process's memory while it runs.
inline double measure_memory_read_bytes_per_second(ThreadPool& pool,
                                                   uint64_t bytes = uint64_t{256} << 20,
                                                   int passes = 3) {
  const AlignedBuffer buffer(bytes);
  auto* words = reinterpret_cast<uint64_t*>(buffer.data());
  const auto count = static_cast<int64_t>(bytes / sizeof(uint64_t));
  std::fill(words, words + count, uint64_t{1});
  double best = 0;
  uint64_t total = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto start = std::chrono::steady_clock::now();
    total += read_words(pool, words, count);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, static_cast<double>(bytes) / seconds);
  }
  volatile uint64_t sink = total;
  static_cast<void>(sink);
  return best;
}

}  // namespace floatllm
