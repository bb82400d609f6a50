// The memory watchdog: follows the process's resident memory and its cgroup's charge against the
// budget and the cgroup's limit, and the system's available memory, and stops generation with a
// floatllm::Error before a limit is crossed, so the process is never OOM-killed.
//
// It is polled between layers and tokens (Session::set_step_check, StreamingOptions::
// before_layer). Stopping there is clean: the KV cache holds only completed positions of the
// session's history, so the session can go on once memory is back.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

#include "floatllm/core/error.hpp"
#include "floatllm/runtime/memory_budget.hpp"
#include "floatllm/runtime/process_memory.hpp"

namespace floatllm {

// What the watchdog looks at, in bytes.
struct MemoryReading {
  uint64_t resident = 0;                 // the process's VmRSS
  std::optional<uint64_t> cgroup_usage;  // the cgroup's working set (charge minus inactive file)
  std::optional<uint64_t> cgroup_limit;
  std::optional<uint64_t> mem_available;  // the system's MemAvailable
};

using MemoryProbe = std::function<MemoryReading()>;

// Reads the live system: /proc/self/status, the process's memory cgroup and /proc/meminfo.
inline MemoryProbe system_memory_probe() {
  std::optional<MemoryCgroup> group = MemoryCgroup::of_process();
  std::optional<uint64_t> limit = group ? group->limit() : std::nullopt;
  return [group = std::move(group), limit] {
    MemoryReading r;
    r.resident = process_memory().resident_bytes;
    if (group) r.cgroup_usage = group->working_set();
    r.cgroup_limit = limit;
    r.mem_available = read_meminfo("MemAvailable");
    return r;
  };
}

struct WatchdogOptions {
  uint64_t budget = 0;
  // The process may exceed its budget by this share before it is stopped: the plan is an estimate
  // and allocators round up.
  double budget_tolerance = 0.03;
  // The cgroup's working set is kept this share below its limit; past it the kernel would start
  // reclaiming the process's own memory, then kill it.
  double cgroup_headroom = 0.02;
  // Generation stops while the system has less than this available.
  uint64_t min_available = 32 << 20;
  // Readings are taken at most this often; checks in between reuse the last one.
  std::chrono::microseconds interval{std::chrono::milliseconds(5)};
};

// The error of a stop for memory; a floatllm::Error like every other.
class MemoryLimitError : public Error {
 public:
  using Error::Error;
};

class Watchdog {
 public:
  explicit Watchdog(WatchdogOptions options, MemoryProbe probe = system_memory_probe())
      : options_(options), probe_(std::move(probe)) {}

  // Stops (throws MemoryLimitError) when the process is past its budget (+ tolerance), or when
  // the cgroup's limit would be reached by the next step at the pace memory grew since the last
  // reading (that growth counted up to 2% of the limit: a one-off allocation is not a trend), or
  // when the system runs short.
  void check() {
    const auto now = std::chrono::steady_clock::now();
    if (has_reading_ && now - last_time_ < options_.interval) return;
    check_now();
  }

  void check_now() {
    const MemoryReading r = probe_();
    const MemoryReading before = has_reading_ ? last_ : r;
    last_ = r;
    last_time_ = std::chrono::steady_clock::now();
    has_reading_ = true;
    ++readings_;
    peak_resident_ = std::max(peak_resident_, r.resident);
    const auto next = [](uint64_t now, uint64_t then, uint64_t limit) {
      return now + std::min<uint64_t>(now > then ? now - then : 0, limit / 50);
    };

    if (options_.budget > 0) {
      const auto ceiling = static_cast<uint64_t>(static_cast<double>(options_.budget) *
                                                 (1 + options_.budget_tolerance));
      if (r.resident > ceiling) {
        stop(concat("the process uses ", format_bytes(r.resident), ", past its budget of ",
                    format_bytes(options_.budget), " (+", options_.budget_tolerance * 100, "%)"));
      }
    }
    if (r.cgroup_usage && r.cgroup_limit) {
      const auto ceiling = static_cast<uint64_t>(static_cast<double>(*r.cgroup_limit) *
                                                 (1 - options_.cgroup_headroom));
      if (next(*r.cgroup_usage, before.cgroup_usage.value_or(*r.cgroup_usage), *r.cgroup_limit) >
          ceiling) {
        stop(concat("the memory cgroup's working set of ", format_bytes(*r.cgroup_usage),
                    " is about to reach its limit of ", format_bytes(*r.cgroup_limit)));
      }
    }
    if (r.mem_available && *r.mem_available < options_.min_available) {
      stop(concat("the system has only ", format_bytes(*r.mem_available),
                  " of memory available (the watchdog keeps ", format_bytes(options_.min_available),
                  ")"));
    }
  }

  const WatchdogOptions& options() const { return options_; }
  const MemoryReading& last_reading() const { return last_; }
  uint64_t peak_resident() const { return peak_resident_; }
  int64_t readings() const { return readings_; }

 private:
  [[noreturn]] void stop(const std::string& why) {
    // The next check reads afresh: once memory is back, generation can go on.
    has_reading_ = false;
    throw MemoryLimitError(concat("stopped to stay within memory: ", why,
                                  "; nothing was lost and the session can continue when memory "
                                  "is available (or give a larger --mem-budget)"));
  }

  WatchdogOptions options_;
  MemoryProbe probe_;
  MemoryReading last_;
  std::chrono::steady_clock::time_point last_time_{};
  bool has_reading_ = false;
  int64_t readings_ = 0;
  uint64_t peak_resident_ = 0;
};

}  // namespace floatllm
