// A fixed team of threads for data-parallel loops: the caller plus `threads - 1` persistent
// workers.
//
// Decoding one token calls parallel_for a dozen times per layer, so a call must cost about a
// microsecond, not the tens of microseconds of waking sleeping threads. Workers therefore spin on
// a generation counter for a short while after each job and only then block on a condition
// variable; the caller spins for completion. A pool that sits idle costs no CPU.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace floatllm {

namespace thread_pool_detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace thread_pool_detail

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    if (threads < 1) fail("ThreadPool: thread count must be at least 1, got ", threads);
    workers_.reserve(static_cast<size_t>(threads - 1));
    for (int index = 1; index < threads; ++index) {
      workers_.emplace_back([this, index] { work(index); });
    }
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
    stopping_.store(true, std::memory_order_seq_cst);
    publish();
    for (auto& worker : workers_)
      worker.join();
  }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Splits [0, count) into size() contiguous chunks of nearly equal length and runs
  // body(begin, end, thread_index) on each, the caller taking chunk 0. Empty chunks are skipped.
  // Not reentrant: `body` must not call parallel_for on the same pool. An exception thrown by
  // `body` on any thread is rethrown here after all chunks finished.
  template <class Body>
  void parallel_for(int64_t count, Body&& body) {
    if (count <= 0) return;
    using BodyType = std::remove_reference_t<Body>;
    const int threads = size();
    if (threads == 1 || count == 1) {
      body(int64_t{0}, count, 0);
      return;
    }
    std::lock_guard<std::mutex> serialize(call_mutex_);
    job_.count = count;
    job_.threads = threads;
    job_.context = const_cast<void*>(static_cast<const void*>(&body));
    job_.run = [](void* context, int64_t begin, int64_t end, int thread) {
      (*static_cast<BodyType*>(context))(begin, end, thread);
    };
    job_.error = nullptr;
    pending_.store(threads - 1, std::memory_order_relaxed);
    publish();

    run_chunk(0);

    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < kCallerSpins) {
        thread_pool_detail::cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    if (job_.error) std::rethrow_exception(job_.error);
  }

 private:
  struct Job {
    int64_t count = 0;
    int threads = 1;
    void* context = nullptr;
    void (*run)(void*, int64_t, int64_t, int) = nullptr;
    std::exception_ptr error;
  };

  // About 100 microseconds of spinning: longer than the gap between the kernels of one layer,
  // far shorter than the time a user notices a busy core.
  static constexpr auto kWorkerSpin = std::chrono::microseconds(100);
  static constexpr int kCallerSpins = 1 << 14;

  void run_chunk(int thread) noexcept {
    const int64_t begin = job_.count * thread / job_.threads;
    const int64_t end = job_.count * (thread + 1) / job_.threads;
    if (begin >= end) return;
    try {
      job_.run(job_.context, begin, end, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!job_.error) job_.error = std::current_exception();
    }
  }

  // Starts a new generation; wakes workers only if some went to sleep. The seq_cst pair
  // (generation_ store here, sleepers_ increment in wait_for_generation) guarantees that either
  // this thread sees the sleeper or the sleeper sees the new generation.
  void publish() {
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }
      wake_.notify_all();
    }
  }

  uint64_t wait_for_generation(uint64_t seen) {
    const auto spin_until = std::chrono::steady_clock::now() + kWorkerSpin;
    for (int spins = 0;; ++spins) {
      const uint64_t now = generation_.load(std::memory_order_acquire);
      if (now != seen) return now;
      thread_pool_detail::cpu_relax();
      if ((spins & 255) == 255 && std::chrono::steady_clock::now() > spin_until) break;
    }
    std::unique_lock<std::mutex> lock(sleep_mutex_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    return generation_.load(std::memory_order_acquire);
  }

  void work(int index) {
    uint64_t seen = 0;
    for (;;) {
      seen = wait_for_generation(seen);
      if (stopping_.load(std::memory_order_acquire)) return;
      run_chunk(index);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> workers_;
  Job job_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stopping_{false};
  std::mutex call_mutex_;
  std::mutex sleep_mutex_;
  std::mutex error_mutex_;
  std::condition_variable wake_;
};

}  // namespace floatllm
