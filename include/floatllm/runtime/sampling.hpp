// Choosing the next token from a vector of logits: repetition penalties, top-k, top-p, min-p,
// temperature and a seeded random draw that gives the same tokens on every platform.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "floatllm/core/error.hpp"

namespace floatllm {

// Defaults are llama.cpp's. Each filter has a value that turns it off, noted next to it.
struct SamplingParams {
  float temperature = 0.8f;        // <= 0: greedy (argmax, lowest id wins ties)
  int32_t top_k = 40;              // <= 0: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.05f;             // <= 0: off
  float repeat_penalty = 1.0f;     // llama.cpp: logit > 0 ? logit / p : logit * p; 1: off
  int32_t repeat_last_n = 64;      // how many of the latest history tokens penalties see; -1: all
  float frequency_penalty = 0.0f;  // OpenAI: logit -= count * frequency_penalty
  float presence_penalty = 0.0f;   // OpenAI: logit -= (count > 0) * presence_penalty
  uint64_t seed = 0;
};

// xoshiro256** seeded through splitmix64: a fixed algorithm, so a seed yields the same stream
// with every compiler and standard library (std::mt19937 is fixed too, but the std
// distributions on top of it are not).
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed) { reseed(seed); }

  void reseed(uint64_t seed) {
    for (uint64_t& word : state_) {
      seed += 0x9E3779B97F4A7C15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      word = z ^ (z >> 31);
    }
  }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4] = {};
};

struct TokenProbability {
  int32_t id;
  double probability;
};

// The chain follows llama.cpp's default order: penalties -> top-k -> top-p -> min-p ->
// temperature -> draw. As in llama.cpp, top-p and min-p judge the distribution before
// temperature, so changing the temperature reshapes the kept tokens but never changes which
// tokens are kept.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
    if (!std::isfinite(params.temperature) || std::isnan(params.top_p) || std::isnan(params.min_p))
      fail("sampling: temperature must be finite, top_p and min_p numbers");
    if (!(params.repeat_penalty > 0) || !std::isfinite(params.repeat_penalty))
      fail("sampling: repeat_penalty must be a positive number, got ", params.repeat_penalty);
    if (!std::isfinite(params.frequency_penalty) || !std::isfinite(params.presence_penalty))
      fail("sampling: frequency_penalty and presence_penalty must be finite");
    if (params.repeat_last_n < -1)
      fail("sampling: repeat_last_n must be -1 (all) or >= 0, got ", params.repeat_last_n);
  }

  const SamplingParams& params() const { return params_; }

  void reseed(uint64_t seed) { rng_.reseed(seed); }

  // `logits` covers the whole vocabulary and is modified in place (penalties); `history` holds
  // the previous tokens, prompt and generated.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history) {
    prepare(logits, history);
    if (params_.temperature <= 0) return argmax(logits);
    select_candidates(logits);
    const std::vector<double>& weights = tempered_weights();
    double total = 0;
    for (double w : weights)
      total += w;
    const double target = rng_.uniform() * total;
    double cumulative = 0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      cumulative += weights[i];
      if (target < cumulative) return candidates_[i].id;
    }
    return candidates_.back().id;
  }

  // The exact distribution sample() draws from for these inputs (modifies `logits` the same
  // way), best first; greedy sampling gives the argmax with probability 1.
  std::vector<TokenProbability> distribution(std::span<float> logits,
                                             std::span<const int32_t> history) {
    prepare(logits, history);
    if (params_.temperature <= 0) return {{argmax(logits), 1.0}};
    select_candidates(logits);
    const std::vector<double>& weights = tempered_weights();
    double total = 0;
    for (double w : weights)
      total += w;
    std::vector<TokenProbability> result;
    result.reserve(candidates_.size());
    for (size_t i = 0; i < candidates_.size(); ++i)
      result.push_back({candidates_[i].id, weights[i] / total});
    std::sort(result.begin(), result.end(),
              [](const TokenProbability& a, const TokenProbability& b) {
                return a.probability != b.probability ? a.probability > b.probability : a.id < b.id;
              });
    return result;
  }

 private:
  struct Candidate {
    float logit;
    int32_t id;
    double weight;  // exp(logit - max logit), filled only when top-p needs the mass
  };

  // Higher logit first, lower id first among equals: a strict total order, so every partial
  // sort is deterministic.
  static bool better(const Candidate& a, const Candidate& b) {
    return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
  }

  // exp(logit - max) without NaN when the maximum is infinite.
  static double relative_weight(float logit, float max_logit) {
    if (logit == max_logit) return 1.0;
    return std::exp(static_cast<double>(logit) - static_cast<double>(max_logit));
  }

  void prepare(std::span<float> logits, std::span<const int32_t> history) {
    if (logits.empty()) fail("sampling: empty logits");
    if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
      fail("sampling: vocabulary of ", logits.size(), " tokens exceeds int32 ids");
    // NaN breaks the ordering every filter relies on; a NaN logit can never be chosen.
    for (float& logit : logits)
      if (std::isnan(logit)) logit = -std::numeric_limits<float>::infinity();
    apply_penalties(logits, history);
  }

  void apply_penalties(std::span<float> logits, std::span<const int32_t> history) {
    const bool neutral = params_.repeat_penalty == 1.0f && params_.frequency_penalty == 0.0f &&
                         params_.presence_penalty == 0.0f;
    if (neutral || params_.repeat_last_n == 0 || history.empty()) return;
    size_t window = history.size();
    if (params_.repeat_last_n > 0)
      window = std::min(window, static_cast<size_t>(params_.repeat_last_n));
    window_.assign(history.end() - static_cast<std::ptrdiff_t>(window), history.end());
    for (int32_t id : window_) {
      if (id < 0 || static_cast<size_t>(id) >= logits.size())
        fail("sampling: history token ", id, " is outside the vocabulary of ", logits.size());
    }
    std::sort(window_.begin(), window_.end());
    for (size_t begin = 0; begin < window_.size();) {
      size_t end = begin;
      while (end < window_.size() && window_[end] == window_[begin])
        ++end;
      const float count = static_cast<float>(end - begin);
      float& logit = logits[static_cast<size_t>(window_[begin])];
      logit = logit > 0 ? logit / params_.repeat_penalty : logit * params_.repeat_penalty;
      logit -= count * params_.frequency_penalty + params_.presence_penalty;
      begin = end;
    }
  }

  static int32_t argmax(std::span<const float> logits) {
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
      if (logits[i] > logits[best]) best = i;
    return static_cast<int32_t>(best);
  }

  // Leaves in candidates_ the tokens that survive top-k, top-p and min-p, in ascending id order
  // whatever algorithm picked them, so a seed draws the same token with every standard library.
  void select_candidates(std::span<const float> logits) {
    const size_t vocab = logits.size();
    const auto k = static_cast<size_t>(std::max<int32_t>(params_.top_k, 0));
    if (k > 0 && k < vocab) {
      keep_top_k(logits, k);
    } else {
      candidates_.resize(vocab);
      for (size_t i = 0; i < vocab; ++i)
        candidates_[i] = {logits[i], static_cast<int32_t>(i), 0.0};
    }
    const bool use_top_p = params_.top_p < 1.0f;
    const bool use_min_p = params_.min_p > 0.0f;
    if (!use_top_p && !use_min_p) {
      if (k > 0 && k < vocab) sort_by_id(vocab);
      return;
    }

    float max_logit = -std::numeric_limits<float>::infinity();
    for (const Candidate& c : candidates_)
      max_logit = std::max(max_logit, c.logit);

    // Both filters keep a best-first prefix of the same ordering, so top-p then min-p keeps the
    // shorter of the two prefixes: cut min-p's (a linear scan in logit space), then find
    // top-p's inside it, with top-p's mass measured over everything top-k left.
    auto end = candidates_.end();
    if (use_min_p) {
      const double log_min_p = std::log(static_cast<double>(params_.min_p));
      end = std::partition(candidates_.begin(), end, [&](const Candidate& c) {
        return c.logit == max_logit ||
               static_cast<double>(c.logit) - static_cast<double>(max_logit) >= log_min_p;
      });
    }
    if (use_top_p) {
      double total = 0;
      for (Candidate& c : candidates_) {
        c.weight = relative_weight(c.logit, max_logit);
        total += c.weight;
      }
      const double target = static_cast<double>(params_.top_p) * total;
      end = candidates_.begin() + static_cast<std::ptrdiff_t>(smallest_prefix_reaching(
                                      static_cast<size_t>(end - candidates_.begin()), target));
    }
    candidates_.resize(std::max<size_t>(static_cast<size_t>(end - candidates_.begin()), 1));
    sort_by_id(vocab);
  }

  // The k best in one pass over the logits with a heap of the k best so far; as ids rise
  // during the scan, a later token must beat the heap's worst strictly to enter.
  void keep_top_k(std::span<const float> logits, size_t k) {
    candidates_.resize(k);
    for (size_t i = 0; i < k; ++i)
      candidates_[i] = {logits[i], static_cast<int32_t>(i), 0.0};
    std::make_heap(candidates_.begin(), candidates_.end(), better);
    for (size_t i = k; i < logits.size(); ++i) {
      if (!(logits[i] > candidates_.front().logit)) continue;
      std::pop_heap(candidates_.begin(), candidates_.end(), better);
      candidates_.back() = {logits[i], static_cast<int32_t>(i), 0.0};
      std::push_heap(candidates_.begin(), candidates_.end(), better);
    }
  }

  // Rearranges candidates_[0, count) so that its best-first prefix of the returned length is the
  // shortest one whose weights sum to at least `target` (all of them if none does). Cheap
  // partitions by weight first peel off the heavy head that real distributions put their mass
  // in; halving with nth_element then settles the boundary. Linear time, where sorting would be
  // n log n.
  size_t smallest_prefix_reaching(size_t count, double target) {
    double all = 0;
    for (size_t i = 0; i < count; ++i)
      all += candidates_[i].weight;
    if (count == 0 || all < target) return count;
    const auto at = [&](size_t i) { return candidates_.begin() + static_cast<std::ptrdiff_t>(i); };
    // Invariant: [0, low) is kept with mass `kept`, which is short of the target; the answer is
    // in (low, high].
    size_t low = 0, high = count;
    double kept = 0;
    for (const double threshold : {1e-2, 1e-5, 1e-9}) {
      const auto heavy_end = std::partition(
          at(low), at(high), [threshold](const Candidate& c) { return c.weight >= threshold; });
      const auto heavy = static_cast<size_t>(heavy_end - candidates_.begin());
      double mass = 0;
      for (size_t i = low; i < heavy; ++i)
        mass += candidates_[i].weight;
      if (kept + mass >= target) {
        high = heavy;
        break;
      }
      kept += mass;
      low = heavy;
    }
    while (high - low > 1) {
      const size_t middle = low + (high - low) / 2;
      std::nth_element(at(low), at(middle), at(high), better);
      double mass = 0;
      for (size_t i = low; i < middle; ++i)
        mass += candidates_[i].weight;
      if (kept + mass >= target) {
        high = middle;
      } else {
        kept += mass;
        low = middle;
      }
    }
    return high;
  }

  // Small sets sort; large ones are rebuilt through a membership mask in one pass over the ids.
  void sort_by_id(size_t vocab) {
    if (candidates_.size() * 16 < vocab) {
      std::sort(candidates_.begin(), candidates_.end(),
                [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
      return;
    }
    kept_mask_.assign(vocab, 0);
    by_id_.resize(vocab);
    for (const Candidate& c : candidates_) {
      kept_mask_[static_cast<size_t>(c.id)] = 1;
      by_id_[static_cast<size_t>(c.id)] = c;
    }
    size_t next = 0;
    for (size_t id = 0; id < vocab; ++id)
      if (kept_mask_[id]) candidates_[next++] = by_id_[id];
  }

  const std::vector<double>& tempered_weights() {
    float max_logit = -std::numeric_limits<float>::infinity();
    for (const Candidate& c : candidates_)
      max_logit = std::max(max_logit, c.logit);
    const double inverse_temperature = 1.0 / static_cast<double>(params_.temperature);
    weights_.resize(candidates_.size());
    for (size_t i = 0; i < candidates_.size(); ++i) {
      const Candidate& c = candidates_[i];
      weights_[i] =
          c.logit == max_logit
              ? 1.0
              : std::exp((static_cast<double>(c.logit) - max_logit) * inverse_temperature);
    }
    return weights_;
  }

  SamplingParams params_;
  Xoshiro256 rng_;
  std::vector<Candidate> candidates_;
  std::vector<double> weights_;
  std::vector<int32_t> window_;
  std::vector<uint8_t> kept_mask_;
  std::vector<Candidate> by_id_;
};

}  // namespace floatllm
