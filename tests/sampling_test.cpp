// The sampler against a naive reference of llama.cpp's chain (full sort, plain softmax) and
// against the statistics of many seeded draws.
#include <gtest/gtest.h>
#include <floatllm/runtime/sampling.hpp>

#include <cmath>
#include <map>
#include <numeric>
#include <set>
#include <vector>

namespace floatllm {
namespace {

std::vector<float> random_logits(size_t n, uint64_t seed, float scale) {
  Xoshiro256 rng(seed);
  std::vector<float> logits(n);
  for (float& l : logits)
    l = static_cast<float>((rng.uniform() * 2 - 1) * scale);
  return logits;
}

// llama.cpp's chain written the slow, obvious way: sort everything, softmax, cut, re-softmax.
std::map<int32_t, double> reference_distribution(std::vector<float> logits,
                                                 const SamplingParams& p) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < order.size()) order.resize(p.top_k);
  auto softmax = [&](double temperature) {
    std::vector<double> probs;
    double total = 0;
    for (int32_t id : order) {
      probs.push_back(std::exp((static_cast<double>(logits[id]) - logits[order[0]]) / temperature));
      total += probs.back();
    }
    for (double& q : probs)
      q /= total;
    return probs;
  };
  if (p.top_p < 1) {
    const std::vector<double> probs = softmax(1.0);
    double cumulative = 0;
    size_t keep = order.size();
    for (size_t i = 0; i < order.size(); ++i) {
      cumulative += probs[i];
      if (cumulative >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    order.resize(keep);
  }
  if (p.min_p > 0) {
    const std::vector<double> probs = softmax(1.0);
    size_t keep = 0;
    while (keep < order.size() && probs[keep] >= p.min_p * probs[0])
      ++keep;
    order.resize(keep);
  }
  const std::vector<double> probs = softmax(p.temperature);
  std::map<int32_t, double> result;
  for (size_t i = 0; i < order.size(); ++i)
    result[order[i]] = probs[i];
  return result;
}

std::map<int32_t, int> draw(Sampler& sampler, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> counts;
  for (int i = 0; i < n; ++i) {
    std::vector<float> copy = logits;
    ++counts[sampler.sample(copy, {})];
  }
  return counts;
}

// Pearson's chi-square of observed counts against expected probabilities. Every test below uses
// a fixed seed, so the statistic is a fixed number; the bound is the 99.9% quantile for the
// degrees of freedom, which a correct sampler exceeds with probability 0.001 for a random seed
// while a wrong distribution (wrong temperature, wrong cut) exceeds it by orders of magnitude.
double chi_square(const std::map<int32_t, int>& observed, const std::map<int32_t, double>& expected,
                  int draws) {
  double statistic = 0;
  for (const auto& [id, probability] : expected) {
    const auto it = observed.find(id);
    const double seen = it == observed.end() ? 0 : it->second;
    const double wanted = probability * draws;
    statistic += (seen - wanted) * (seen - wanted) / wanted;
  }
  return statistic;
}

// 99.9% quantiles of the chi-square distribution.
double chi_square_bound(size_t degrees_of_freedom) {
  static const std::map<size_t, double> table{{1, 10.83},  {2, 13.82},  {3, 16.27}, {4, 18.47},
                                              {5, 20.52},  {6, 22.46},  {7, 24.32}, {9, 27.88},
                                              {11, 31.26}, {15, 37.70}, {19, 43.82}};
  return table.at(degrees_of_freedom);
}

TEST(Xoshiro256, StreamMatchesTheReferenceAlgorithm) {
  // Values from an independent Python implementation of splitmix64 seeding + xoshiro256**.
  Xoshiro256 zero(0);
  EXPECT_EQ(zero.next(), 0x99ec5f36cb75f2b4ull);
  EXPECT_EQ(zero.next(), 0xbf6e1f784956452aull);
  EXPECT_EQ(zero.next(), 0x1a5f849d4933e6e0ull);
  Xoshiro256 answer(42);
  EXPECT_EQ(answer.next(), 0x15780b2e0c2ec716ull);
  EXPECT_EQ(answer.next(), 0x6104d9866d113a7eull);
  EXPECT_EQ(answer.next(), 0xae17533239e499a1ull);
  answer.reseed(0);
  EXPECT_EQ(answer.next(), 0x99ec5f36cb75f2b4ull);
  for (int i = 0; i < 1000; ++i) {
    const double u = zero.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(Sampler, GreedyTakesTheArgmaxAndTheLowestIdOnTies) {
  Sampler greedy({.temperature = 0});
  std::vector<float> logits{0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  EXPECT_EQ(greedy.sample(logits, {}), 1);
  std::vector<float> negative{-3.0f, -1.0f, -2.0f};
  EXPECT_EQ(greedy.sample(negative, {}), 1);
  std::vector<float> one{7.0f};
  EXPECT_EQ(greedy.sample(one, {}), 0);
  const auto dist = greedy.distribution(logits, {});
  ASSERT_EQ(dist.size(), 1u);
  EXPECT_EQ(dist[0].id, 1);
  EXPECT_EQ(dist[0].probability, 1.0);
}

TEST(Sampler, TinyTemperatureEqualsGreedy) {
  const std::vector<float> logits = random_logits(5000, 7, 4.0f);
  const int32_t best =
      static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  // Random logits in [-4, 4] over 5000 tokens: the gap to the runner-up is ~1e-3, and at
  // temperature 1e-6 the runner-up's odds are exp(-1e3), i.e. zero.
  Sampler cold({.temperature = 1e-6f, .top_k = 0, .top_p = 1, .min_p = 0, .seed = 3});
  for (int i = 0; i < 200; ++i) {
    std::vector<float> copy = logits;
    ASSERT_EQ(cold.sample(copy, {}), best);
  }
}

TEST(Sampler, FixedSeedReproducesAndReseedRestarts) {
  const std::vector<float> logits = random_logits(1000, 11, 2.0f);
  const SamplingParams params{.temperature = 1.0f, .top_k = 100, .top_p = 0.9f, .seed = 1234};
  auto run = [&](Sampler& sampler) {
    std::vector<int32_t> tokens;
    for (int i = 0; i < 100; ++i) {
      std::vector<float> copy = logits;
      tokens.push_back(sampler.sample(copy, {}));
    }
    return tokens;
  };
  Sampler a(params), b(params);
  const std::vector<int32_t> first = run(a);
  EXPECT_EQ(first, run(b));
  a.reseed(1234);
  EXPECT_EQ(first, run(a));
  Sampler other({.temperature = 1.0f, .top_k = 100, .top_p = 0.9f, .seed = 1235});
  EXPECT_NE(first, run(other));
  EXPECT_GT(std::set<int32_t>(first.begin(), first.end()).size(), 10u);
}

TEST(Sampler, TopKNeverLeavesTheKBest) {
  const std::vector<float> logits = random_logits(1000, 5, 1.0f);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  const std::set<int32_t> best(order.begin(), order.begin() + 10);
  // A high temperature flattens the kept ten, so every one of them is drawn.
  Sampler sampler({.temperature = 5.0f, .top_k = 10, .top_p = 1, .min_p = 0, .seed = 9});
  const auto counts = draw(sampler, logits, 20000);
  for (const auto& [id, count] : counts)
    EXPECT_TRUE(best.contains(id)) << "token " << id << " drawn " << count << " times";
  EXPECT_EQ(counts.size(), 10u);
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (logits are their logs).
  const std::vector<float> logits{std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  auto kept = [&](SamplingParams p) {
    std::vector<float> copy = logits;
    std::set<int32_t> ids;
    for (const TokenProbability& t : Sampler(p).distribution(copy, {}))
      ids.insert(t.id);
    return ids;
  };
  const SamplingParams base{.temperature = 1, .top_k = 0, .top_p = 1, .min_p = 0};
  SamplingParams p = base;
  p.top_p = 0.75f;  // 0.5 < 0.75 <= 0.8
  EXPECT_EQ(kept(p), (std::set<int32_t>{1, 3}));
  p.top_p = 0.4f;
  EXPECT_EQ(kept(p), (std::set<int32_t>{1}));
  p.top_p = 0.9f;  // 0.8 < 0.9 <= 0.95
  EXPECT_EQ(kept(p), (std::set<int32_t>{1, 3, 0}));
  p.top_p = 0.0f;  // always at least one token
  EXPECT_EQ(kept(p), (std::set<int32_t>{1}));

  p = base;
  p.min_p = 0.2f;  // keeps p >= 0.1
  EXPECT_EQ(kept(p), (std::set<int32_t>{1, 3, 0}));
  p.min_p = 0.5f;  // keeps p >= 0.25
  EXPECT_EQ(kept(p), (std::set<int32_t>{1, 3}));
  p.min_p = 1.0f;
  EXPECT_EQ(kept(p), (std::set<int32_t>{1}));

  p = base;
  p.top_p = 0.9f;  // {1, 3, 0}
  p.min_p = 0.5f;  // {1, 3}
  EXPECT_EQ(kept(p), (std::set<int32_t>{1, 3}));
  p.top_k = 1;
  EXPECT_EQ(kept(p), (std::set<int32_t>{1}));

  // Top-p after top-k judges the renormalized k best {0.5, 0.3} -> {0.625, 0.375}: top-p 0.6
  // keeps only the first, 0.7 needs both (over the whole vocabulary 0.6 would need both).
  p = base;
  p.top_k = 2;
  p.top_p = 0.6f;
  EXPECT_EQ(kept(p), (std::set<int32_t>{1}));
  p.top_p = 0.7f;
  EXPECT_EQ(kept(p), (std::set<int32_t>{1, 3}));
}

TEST(Sampler, TopPAndMinPDrawsStayInTheirSets) {
  const std::vector<float> logits = random_logits(2000, 21, 6.0f);
  for (SamplingParams p :
       {SamplingParams{.temperature = 1.5f, .top_k = 0, .top_p = 0.5f, .min_p = 0, .seed = 1},
        SamplingParams{.temperature = 1.5f, .top_k = 0, .top_p = 1, .min_p = 0.3f, .seed = 2}}) {
    const auto allowed = reference_distribution(logits, p);
    ASSERT_GT(allowed.size(), 1u);
    ASSERT_LT(allowed.size(), logits.size() / 4);
    Sampler sampler(p);
    for (const auto& [id, count] : draw(sampler, logits, 5000))
      EXPECT_TRUE(allowed.contains(id)) << "token " << id << " (" << logits[id] << ") drawn";
  }
}

TEST(Sampler, DistributionEqualsTheReferenceChain) {
  const std::vector<SamplingParams> cases{
      {},  // llama.cpp defaults
      {.temperature = 1.0f, .top_k = 0, .top_p = 1, .min_p = 0},
      {.temperature = 0.5f, .top_k = 0, .top_p = 0.9f, .min_p = 0},
      {.temperature = 2.0f, .top_k = 0, .top_p = 0.99f, .min_p = 0},
      {.temperature = 0.7f, .top_k = 0, .top_p = 1, .min_p = 0.01f},
      {.temperature = 1.3f, .top_k = 500, .top_p = 0.8f, .min_p = 0.02f},
      {.temperature = 1.0f, .top_k = 3, .top_p = 1, .min_p = 0},
  };
  for (size_t vocab : {size_t{50}, size_t{4000}}) {
    const std::vector<float> logits = random_logits(vocab, vocab, 5.0f);
    for (const SamplingParams& p : cases) {
      const auto expected = reference_distribution(logits, p);
      std::vector<float> copy = logits;
      const auto actual = Sampler(p).distribution(copy, {});
      ASSERT_EQ(actual.size(), expected.size()) << "top_k " << p.top_k << " top_p " << p.top_p;
      // Both sides are double softmaxes of the same floats, differing in summation order and in
      // dividing by the temperature versus multiplying by its inverse: a few ulps per term, so
      // 1e-12 relative leaves ~1e3 ulps of headroom.
      for (const TokenProbability& t : actual) {
        ASSERT_TRUE(expected.contains(t.id));
        EXPECT_NEAR(t.probability, expected.at(t.id), 1e-12 * expected.at(t.id));
      }
      for (size_t i = 1; i < actual.size(); ++i)
        EXPECT_GE(actual[i - 1].probability, actual[i].probability);
    }
  }
}

TEST(Sampler, EmpiricalFrequenciesMatchTheSoftmax) {
  const std::vector<float> logits{1.0f, 0.2f, -0.5f, 2.0f, 0.0f, 1.5f, -1.0f, 0.7f};
  const int draws = 200000;
  for (const SamplingParams& p :
       {SamplingParams{.temperature = 1.0f, .top_k = 0, .top_p = 1, .min_p = 0, .seed = 77},
        SamplingParams{.temperature = 0.6f, .top_k = 0, .top_p = 1, .min_p = 0, .seed = 78},
        SamplingParams{
            .temperature = 1.7f, .top_k = 6, .top_p = 0.9f, .min_p = 0.1f, .seed = 79}}) {
    const auto expected = reference_distribution(logits, p);
    Sampler sampler(p);
    const auto observed = draw(sampler, logits, draws);
    for (const auto& [id, count] : observed)
      ASSERT_TRUE(expected.contains(id)) << "token " << id;
    const double statistic = chi_square(observed, expected, draws);
    EXPECT_LT(statistic, chi_square_bound(expected.size() - 1))
        << "temperature " << p.temperature << ", " << expected.size() << " tokens";
    // A sampler that ignored the temperature would fail the same test by far.
    if (p.temperature != 1.0f) {
      SamplingParams untempered = p;
      untempered.temperature = 1.0f;
      EXPECT_GT(chi_square(observed, reference_distribution(logits, untempered), draws), 1000.0);
    }
  }
}

TEST(Sampler, LargeVocabularyChiSquare) {
  // 150k-token vocabulary, where only a few tokens carry real mass (one per 10k is lifted).
  std::vector<float> logits = random_logits(151936, 31, 1.0f);
  const std::vector<int32_t> lifted{17, 10017, 50000, 99999, 151935};
  for (size_t i = 0; i < lifted.size(); ++i)
    logits[lifted[i]] = 14.0f + static_cast<float>(i) * 0.5f;
  const SamplingParams p{.temperature = 1.0f, .top_k = 0, .top_p = 0.95f, .min_p = 0, .seed = 5};
  const auto expected = reference_distribution(logits, p);
  ASSERT_EQ(expected.size(), lifted.size());
  Sampler sampler(p);
  const int draws = 1000;
  const auto observed = draw(sampler, logits, draws);
  EXPECT_LT(chi_square(observed, expected, draws), chi_square_bound(expected.size() - 1));
}

TEST(Sampler, PenaltiesChangeExactlyThePenalizedLogits) {
  const std::vector<float> original{2.0f, -1.0f, 0.5f, -0.25f, 3.0f, 0.0f, 1.0f, -2.0f};
  // Window of the last 5: {4, 1, 1, 3, 1} -> counts 1:3, 3:1, 4:1. Token 0 and 6 are older.
  const std::vector<int32_t> history{0, 6, 0, 4, 1, 1, 3, 1};
  const SamplingParams p{.temperature = 0,
                         .repeat_penalty = 1.25f,
                         .repeat_last_n = 5,
                         .frequency_penalty = 0.5f,
                         .presence_penalty = 0.1f};
  std::vector<float> logits = original;
  Sampler(p).sample(logits, history);
  std::vector<float> expected = original;
  expected[1] = -1.0f * 1.25f - (3 * 0.5f + 0.1f);
  expected[3] = -0.25f * 1.25f - (1 * 0.5f + 0.1f);
  expected[4] = 3.0f / 1.25f - (1 * 0.5f + 0.1f);
  for (size_t i = 0; i < original.size(); ++i)
    EXPECT_FLOAT_EQ(logits[i], expected[i]) << "token " << i;
  for (size_t i : {0u, 2u, 5u, 6u, 7u})
    EXPECT_EQ(logits[i], original[i]) << "unpenalized token " << i << " must be bit-identical";

  // -1 looks at the whole history: tokens 0 (twice) and 6 join.
  SamplingParams all = p;
  all.repeat_last_n = -1;
  logits = original;
  Sampler(all).sample(logits, history);
  EXPECT_FLOAT_EQ(logits[0], 2.0f / 1.25f - (2 * 0.5f + 0.1f));
  EXPECT_FLOAT_EQ(logits[6], 1.0f / 1.25f - (1 * 0.5f + 0.1f));
  EXPECT_EQ(logits[2], original[2]);

  // 0 turns penalties off; so do neutral values.
  SamplingParams none = p;
  none.repeat_last_n = 0;
  logits = original;
  Sampler(none).sample(logits, history);
  EXPECT_EQ(logits, original);
  logits = original;
  Sampler({.temperature = 0}).sample(logits, history);
  EXPECT_EQ(logits, original);

  // The penalty changes the greedy choice: token 4 drops below token 0.
  logits = original;
  EXPECT_EQ(Sampler({.temperature = 0, .repeat_penalty = 2.0f}).sample(logits, {{4}}), 0);
}

TEST(Sampler, NaNLogitsAreNeverChosen) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> logits{nan, 1.0f, nan, 0.5f, nan};
  Sampler sampler({.temperature = 1.0f, .top_k = 2, .seed = 4});
  for (int i = 0; i < 200; ++i) {
    std::vector<float> copy = logits;
    const int32_t id = sampler.sample(copy, {});
    ASSERT_TRUE(id == 1 || id == 3) << id;
  }
  std::vector<float> all_nan(5, nan);
  EXPECT_GE(sampler.sample(all_nan, {}), 0);
  std::vector<float> infinite{1.0f, std::numeric_limits<float>::infinity(), 2.0f};
  EXPECT_EQ(sampler.sample(infinite, {}), 1);
}

TEST(Sampler, RejectsBadInput) {
  EXPECT_THROW(Sampler({.repeat_penalty = 0}), Error);
  EXPECT_THROW(Sampler({.repeat_last_n = -2}), Error);
  EXPECT_THROW(Sampler({.temperature = std::numeric_limits<float>::quiet_NaN()}), Error);
  EXPECT_THROW(Sampler({.temperature = std::numeric_limits<float>::infinity()}), Error);
  Sampler sampler({.repeat_penalty = 1.1f});
  std::vector<float> logits{1, 2, 3};
  EXPECT_THROW(sampler.sample(logits, std::vector<int32_t>{3}), Error);
  EXPECT_THROW(sampler.sample(logits, std::vector<int32_t>{-1}), Error);
  std::vector<float> empty;
  EXPECT_THROW(sampler.sample(empty, {}), Error);
}

}  // namespace
}  // namespace floatllm
