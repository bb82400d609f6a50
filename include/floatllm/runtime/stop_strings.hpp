// Finds stop strings in streamed text without ever emitting a part of one: text that could still
// become a stop string is held back until it can't.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace floatllm {

class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {
    std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
  }

  // Adds text; returns what is safe to emit now. After a stop string is found, stopped() is true
  // and the text before it has been returned.
  std::string push(std::string_view text) {
    if (stopped_) return {};
    pending_ += text;
    std::size_t cut = std::string::npos;
    for (const std::string& stop : stops_)
      cut = std::min(cut, pending_.find(stop));
    if (cut != std::string::npos) {
      stopped_ = true;
      std::string out = pending_.substr(0, cut);
      pending_.clear();
      return out;
    }
    const std::size_t keep = longest_stop_prefix_suffix();
    std::string out = pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    return out;
  }

  // The held-back text, once generation ends without a stop string.
  std::string flush() {
    std::string out;
    if (!stopped_) out.swap(pending_);
    return out;
  }

  bool stopped() const { return stopped_; }

 private:
  // Length of the longest end of `pending_` that is a proper prefix of some stop string.
  std::size_t longest_stop_prefix_suffix() const {
    std::size_t best = 0;
    for (const std::string& stop : stops_) {
      const std::size_t limit = std::min(stop.size() - 1, pending_.size());
      for (std::size_t len = limit; len > best; --len) {
        if (std::string_view(pending_).substr(pending_.size() - len) ==
            std::string_view(stop).substr(0, len)) {
          best = len;
          break;
        }
      }
    }
    return best;
  }

  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace floatllm
