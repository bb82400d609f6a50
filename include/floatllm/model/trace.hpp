// Trace taps: the forward pass reports its intermediate tensors at named points, so a run can be
// compared layer by layer with a reference (e.g. llama.cpp's traces in shared/models/trace).
// With no trace attached a tap costs one pointer test.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <span>
#include <string_view>

namespace floatllm {

class Trace {
 public:
  virtual ~Trace() = default;
  // `values` holds `rows` rows (one per token of the batch, the first at position `first_pos`)
  // of `width` values. Layer -1 is before the first block; n_layers is the output head.
  virtual void tap(int64_t layer, std::string_view point, const float* values, int64_t rows,
                   int64_t width, int64_t first_pos) = 0;
};

struct TraceSummary {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  double sum = 0;
  int64_t nan_count = 0;
  int64_t count = 0;
  double mean() const { return count > nan_count ? sum / double(count - nan_count) : 0.0; }
};

inline TraceSummary summarize(std::span<const float> values) {
  TraceSummary s;
  for (float v : values) {
    ++s.count;
    if (std::isnan(v)) {
      ++s.nan_count;
      continue;
    }
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
    s.sum += v;
  }
  return s;
}

// Prints one line per tap for the token at `position` (or the last token of each batch when
// negative): layer, point, min, max, mean, sum, NaN count.
class PrintingTrace final : public Trace {
 public:
  explicit PrintingTrace(std::FILE* out, int64_t position = -1) : out_(out), position_(position) {}

  void tap(int64_t layer, std::string_view point, const float* values, int64_t rows, int64_t width,
           int64_t first_pos) override {
    int64_t row = rows - 1;
    if (position_ >= 0) {
      row = position_ - first_pos;
      if (row < 0 || row >= rows) return;
    }
    const TraceSummary s = summarize({values + row * width, static_cast<std::size_t>(width)});
    std::fprintf(out_,
                 "trace pos=%lld layer=%lld %-18.*s min=%-12.6g max=%-12.6g mean=%-12.6g "
                 "sum=%-12.6g nan=%lld\n",
                 static_cast<long long>(first_pos + row), static_cast<long long>(layer),
                 static_cast<int>(point.size()), point.data(), s.min, s.max, s.mean(), s.sum,
                 static_cast<long long>(s.nan_count));
  }

 private:
  std::FILE* out_;
  int64_t position_;
};

}  // namespace floatllm
