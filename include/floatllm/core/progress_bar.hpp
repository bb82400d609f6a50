// A one-line progress bar on stderr for long jobs (writing, quantizing, synthesizing models).
//
// It draws only when stderr is a terminal, so logs, pipes and CI output stay free of carriage
// returns, and redraws at most a few times a second so it never slows the work it reports.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

namespace floatllm {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool enabled = ::isatty(STDERR_FILENO) == 1)
      : label_(std::move(label)), enabled_(enabled), start_(Clock::now()), last_draw_(start_) {}

  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  ~ProgressBar() { finish(); }

  bool enabled() const { return enabled_; }

  void update(uint64_t done, uint64_t total, std::string_view item = {}) {
    if (!enabled_ || finished_) return;
    const auto now = Clock::now();
    if (done < total && now - last_draw_ < std::chrono::milliseconds(150)) return;
    last_draw_ = now;
    drawn_ = true;
    const double fraction =
        total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    const double seconds = std::chrono::duration<double>(now - start_).count();
    const double mib = static_cast<double>(done) / (1024.0 * 1024.0);
    std::string shown(item.substr(0, 40));
    std::fprintf(stderr, "\r%s [%s] %5.1f%% %9.1f MiB %6.1f s %-40s", label_.c_str(), bar.c_str(),
                 100.0 * fraction, mib, seconds, shown.c_str());
    std::fflush(stderr);
  }

  // Ends the line the bar was drawn on; later output starts on a fresh line.
  void finish() {
    if (finished_) return;
    finished_ = true;
    if (drawn_) {
      std::fputc('\n', stderr);
      std::fflush(stderr);
    }
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  bool finished_ = false;
  Clock::time_point start_;
  Clock::time_point last_draw_;
};

}  // namespace floatllm
