// The memory watchdog under simulated pressure: injected readings of the process, its cgroup and
// the system, and a streamed forward pass that it stops cleanly and that then goes on unchanged.
#include <gtest/gtest.h>
#include <floatllm/model/registry.hpp>
#include <floatllm/runtime/streaming_weights.hpp>
#include <floatllm/runtime/watchdog.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

constexpr uint64_t MiB = 1 << 20;

WatchdogOptions every_reading(uint64_t budget) {
  WatchdogOptions o;
  o.budget = budget;
  o.interval = std::chrono::microseconds(0);
  return o;
}

std::string message_of(Watchdog& w) {
  try {
    w.check();
  } catch (const MemoryLimitError& e) {
    return e.what();
  }
  return {};
}

TEST(Watchdog, StaysQuietWithinTheBudget) {
  MemoryReading r;
  r.resident = 100 * MiB;
  r.mem_available = 4000 * MiB;
  Watchdog w(every_reading(200 * MiB), [&] { return r; });
  for (int i = 0; i < 10; ++i) {
    r.resident += MiB;
    EXPECT_NO_THROW(w.check());
  }
  EXPECT_EQ(w.readings(), 10);
  EXPECT_EQ(w.peak_resident(), 110 * MiB);
}

TEST(Watchdog, StopsWhenTheProcessOutgrowsItsBudget) {
  MemoryReading r;
  r.resident = 150 * MiB;
  Watchdog w(every_reading(200 * MiB), [&] { return r; });
  EXPECT_NO_THROW(w.check());
  // A one-off jump that stays within 200 MiB + 3% = 206 MiB is allowed.
  r.resident = 205 * MiB;
  EXPECT_NO_THROW(w.check());
  r.resident = 207 * MiB;
  const std::string why = message_of(w);
  EXPECT_NE(why.find("budget of 200.0 MiB"), std::string::npos) << why;
  EXPECT_NE(why.find("can continue"), std::string::npos) << why;
  // Once memory is back, checks pass again.
  r.resident = 150 * MiB;
  EXPECT_NO_THROW(w.check());
}

TEST(Watchdog, StopsWhenTheCgroupWouldReachItsLimitAtTheNextStep) {
  MemoryReading r;
  r.cgroup_limit = 1000 * MiB;
  r.cgroup_usage = 960 * MiB;
  Watchdog w(every_reading(0), [&] { return r; });
  EXPECT_NO_THROW(w.check());
  // Limit less 2% = 980 MiB: 972 MiB growing by 12 MiB a step would pass it next time.
  r.cgroup_usage = 972 * MiB;
  EXPECT_THROW(w.check(), MemoryLimitError);
}

TEST(Watchdog, StopsBeforeTheCgroupLimit) {
  MemoryReading r;
  r.resident = 50 * MiB;
  r.cgroup_limit = 500 * MiB;
  r.cgroup_usage = 400 * MiB;
  Watchdog w(every_reading(0), [&] { return r; });  // no budget of its own: only the cgroup's
  EXPECT_NO_THROW(w.check());
  r.cgroup_usage = 491 * MiB;  // 98% of 500 MiB is 490 MiB
  const std::string why = message_of(w);
  EXPECT_NE(why.find("cgroup"), std::string::npos) << why;
  EXPECT_NE(why.find("500.0 MiB"), std::string::npos) << why;
}

TEST(Watchdog, StopsWhenTheSystemRunsShort) {
  MemoryReading r;
  r.resident = 50 * MiB;
  r.mem_available = 1000 * MiB;
  Watchdog w(every_reading(1000 * MiB), [&] { return r; });
  EXPECT_NO_THROW(w.check());
  r.mem_available = 20 * MiB;
  const std::string why = message_of(w);
  EXPECT_NE(why.find("available"), std::string::npos) << why;
}

TEST(Watchdog, ReadsAtMostOncePerInterval) {
  int reads = 0;
  WatchdogOptions o;
  o.budget = 100 * MiB;
  o.interval = std::chrono::hours(1);
  Watchdog w(o, [&] {
    ++reads;
    return MemoryReading{};
  });
  for (int i = 0; i < 100; ++i)
    w.check();
  EXPECT_EQ(reads, 1);
}

TEST(Watchdog, ReadsThisProcess) {
  const MemoryReading r = system_memory_probe()();
  EXPECT_GT(r.resident, 0u);
  EXPECT_TRUE(r.mem_available);
}

// Pressure arrives in the middle of a streamed prompt: the forward pass stops with the error, and
// after the pressure is gone the same batch gives the logits of a run that was never stopped.
TEST(Watchdog, StopsAStreamedForwardPassCleanly) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama-f32.gguf"));
  const ModelConfig& c = model->config();
  const std::vector<int32_t> prompt{1, 4, 8, 15, 16, 23, 42};
  const auto n = static_cast<int64_t>(prompt.size());
  const auto forward = [&](WeightSource& weights, KvCache& cache) {
    Workspace workspace(c, n);
    ThreadPool pool(2);
    ForwardContext context{cache, workspace, weights, pool};
    std::vector<float> logits(static_cast<std::size_t>(c.vocab_size));
    model->forward(prompt, 0, context, logits, LogitsFor::kLastToken);
    return logits;
  };
  MappedWeightSource mapped;
  KvCache reference_cache(c, n, GgmlType::F16);
  const std::vector<float> expected = forward(mapped, reference_cache);

  MemoryReading r;
  r.resident = 10 * MiB;
  int layers_seen = 0;
  Watchdog watchdog(every_reading(64 * MiB), [&] {
    if (++layers_seen == 3) r.resident = 80 * MiB;  // pressure from the third layer on
    return r;
  });
  StreamingOptions options;
  options.streamed.assign(static_cast<std::size_t>(c.n_layers + 1), true);
  const WeightLayout layout = WeightLayout::of(*model, false);
  for (int64_t l = 0; l <= c.n_layers; ++l)
    options.ring_bytes = std::max(options.ring_bytes, 2 * layout.unit(l).read_bytes);
  options.before_layer = [&] { watchdog.check(); };
  StreamingWeightSource streamed(*model, options);
  KvCache cache(c, n, GgmlType::F16);
  EXPECT_THROW(forward(streamed, cache), MemoryLimitError);
  r.resident = 10 * MiB;
  const std::vector<float> got = forward(streamed, cache);
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace floatllm
