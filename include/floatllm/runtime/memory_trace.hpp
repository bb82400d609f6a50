// A trace of memory over time: a background thread samples the process's resident memory and its
// cgroup's charge every few milliseconds and writes CSV rows, labelled with the phase the program
// is in (load, prompt, decode). scripts/plot-memory turns it into a picture.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "floatllm/core/error.hpp"
#include "floatllm/runtime/memory_budget.hpp"
#include "floatllm/runtime/process_memory.hpp"

namespace floatllm {

class MemoryTrace {
 public:
  // Columns: seconds since start, VmRSS, the cgroup's charge (empty outside a cgroup), the
  // budget (empty when none), the phase.
  MemoryTrace(const std::filesystem::path& path, uint64_t budget,
              std::chrono::milliseconds interval = std::chrono::milliseconds(10))
      : out_(path),
        budget_(budget),
        interval_(interval),
        group_(MemoryCgroup::of_process()),
        start_(std::chrono::steady_clock::now()) {
    if (!out_) fail(path.string(), ": cannot write the memory trace");
    out_ << "seconds,resident_bytes,cgroup_bytes,budget_bytes,phase\n";
    sampler_ = std::thread([this] { sample_until_stopped(); });
  }

  MemoryTrace(const MemoryTrace&) = delete;
  MemoryTrace& operator=(const MemoryTrace&) = delete;

  ~MemoryTrace() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    sampler_.join();
  }

  // Labels the samples from now on (and takes one at once, so short phases show).
  void phase(std::string_view name) {
    {
      std::lock_guard lock(mutex_);
      phase_ = std::string(name);
    }
    sample();
  }

  int64_t samples() const { return samples_.load(); }

 private:
  void sample_until_stopped() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      sample();
      lock.lock();
      wake_.wait_for(lock, interval_, [&] { return stopping_; });
    }
    lock.unlock();
    sample();
  }

  void sample() {
    const uint64_t resident = process_memory().resident_bytes;
    const std::optional<uint64_t> charged = group_ ? group_->usage() : std::nullopt;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::lock_guard lock(write_mutex_);
    std::string phase;
    {
      std::lock_guard state(mutex_);
      phase = phase_;
    }
    out_ << seconds << "," << resident << ",";
    if (charged) out_ << *charged;
    out_ << ",";
    if (budget_ > 0) out_ << budget_;
    out_ << "," << phase << "\n";
    ++samples_;
  }

  std::ofstream out_;
  uint64_t budget_;
  std::chrono::milliseconds interval_;
  std::optional<MemoryCgroup> group_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::mutex write_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::string phase_ = "load";
  std::atomic<int64_t> samples_{0};
  std::thread sampler_;
};

}  // namespace floatllm
