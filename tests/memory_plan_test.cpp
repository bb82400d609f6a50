// The memory plan: what each component costs, what streams as the budget shrinks, the refusal of
// a budget that cannot work (naming the smallest that can), and that a plan carried out by the
// streaming source gives the mapped run's logits.
#include <gtest/gtest.h>
#include <floatllm/model/registry.hpp>
#include <floatllm/runtime/memory_plan.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

DeviceSpeeds assumed_speeds() {
  DeviceSpeeds s;
  s.disk_bytes_per_second = 1e9;
  s.memory_bytes_per_second = 1e10;
  s.measured = true;
  return s;
}

PlanRequest request(uint64_t budget) {
  PlanRequest r;
  r.budget = budget;
  r.context = 256;
  r.batch = 32;
  r.threads = 2;
  return r;
}

uint64_t weights_of(const Model& model) {
  uint64_t total = 0;
  for (const GgufTensor& t : model.file().tensors())
    total += t.byte_size();
  return total;
}

TEST(MemoryPlan, EverythingResidentWhenItFits) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const MemoryPlan plan = plan_memory(*model, request(1ull << 30), assumed_speeds());
  EXPECT_FALSE(plan.streams());
  EXPECT_EQ(plan.streamed_bytes_per_token, 0u);
  EXPECT_EQ(plan.components.streaming_ring, 0u);
  EXPECT_EQ(plan.components.kv_cache, KvCache::bytes_needed(model->config(), 256, GgmlType::F16));
  // Resident weights are every tensor the forward pass reads: all of them but a tied duplicate.
  EXPECT_LE(plan.components.resident_weights, weights_of(*model));
  EXPECT_GE(plan.components.resident_weights, weights_of(*model) * 9 / 10);
  EXPECT_LE(plan.components.total(), plan.budget);
  EXPECT_GT(plan.predicted_tokens_per_second, 0);
}

TEST(MemoryPlan, StreamsMoreAsTheBudgetShrinksAndNeverExceedsIt) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const MemoryPlan roomy = plan_memory(*model, request(1ull << 30), assumed_speeds());
  const uint64_t smallest = roomy.minimum_budget;
  const uint64_t fits = roomy.components.total();
  ASSERT_LT(smallest, fits);
  uint64_t previous_streamed = ~uint64_t{0};
  for (int step = 0; step <= 10; ++step) {
    const uint64_t budget = smallest + (fits - smallest) * static_cast<uint64_t>(step) / 10;
    const MemoryPlan plan = plan_memory(*model, request(budget), assumed_speeds());
    EXPECT_LE(plan.components.total(), budget) << "step " << step;
    EXPECT_LE(plan.streamed_bytes_per_token, previous_streamed) << "step " << step;
    previous_streamed = plan.streamed_bytes_per_token;
    // The ring holds the largest streamed layer, or piece of the head.
    for (const LayerPlacement& l : plan.layers) {
      if (l.streamed) {
        EXPECT_LE(l.piece_bytes > 0 ? l.piece_bytes : l.read_bytes, plan.ring_bytes);
      }
    }
    if (step < 10) {
      EXPECT_TRUE(plan.streams()) << "step " << step;
    }
    // The prediction is the streamed bytes at the disk's speed, or slower.
    EXPECT_LE(
        plan.predicted_tokens_per_second,
        1e9 / static_cast<double>(std::max<uint64_t>(plan.streamed_bytes_per_token, 1)) * 1.0001);
  }
  EXPECT_FALSE(plan_memory(*model, request(fits), assumed_speeds()).streams());
}

TEST(MemoryPlan, RefusesAnImpossibleBudgetNamingTheSmallestThatWorks) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const uint64_t smallest =
      plan_memory(*model, request(1ull << 30), assumed_speeds()).minimum_budget;
  EXPECT_NO_THROW(plan_memory(*model, request(smallest), assumed_speeds()));
  try {
    plan_memory(*model, request(smallest - 1), assumed_speeds());
    FAIL() << "a budget below the smallest was accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("smallest that works is " + format_bytes(smallest)), std::string::npos)
        << what;
    EXPECT_NE(what.find("tiny-llama3-q8_0.gguf"), std::string::npos) << what;
  }
  // A longer context needs a larger KV cache, and so a larger smallest budget.
  PlanRequest longer = request(1ull << 30);
  longer.context = 2048;
  EXPECT_GT(plan_memory(*model, longer, assumed_speeds()).minimum_budget, smallest);
}

TEST(MemoryPlan, MixtureOfExpertsStreamsExpertsThroughACache) {
  const auto model = Model::open(test::model_path("synthetic/tiny-mixtral-f32.gguf"));
  const MemoryPlan roomy = plan_memory(*model, request(1ull << 30), assumed_speeds());
  EXPECT_FALSE(roomy.experts_streamed);
  EXPECT_GT(roomy.total_experts, 0);
  const MemoryPlan tight = plan_memory(*model, request(roomy.minimum_budget), assumed_speeds());
  EXPECT_TRUE(tight.experts_streamed);
  EXPECT_GE(tight.expert_cache_entries, model->config().experts_used + 1);
  EXPECT_LE(tight.components.total(), tight.budget);
  const nlohmann::json j = tight.to_json();
  EXPECT_EQ(j["experts"]["streamed"], true);
  EXPECT_EQ(j["components"]["total"], tight.components.total());
}

// Logits of a prompt and three decode steps.
std::vector<float> run(const Model& model, WeightSource& weights) {
  const ModelConfig& c = model.config();
  const std::vector<int32_t> prompt{1, 7, 3, 9, 4};
  KvCache cache(c, 16, GgmlType::F16);
  Workspace workspace(c, 8);
  ThreadPool pool(2);
  ForwardContext context{cache, workspace, weights, pool};
  std::vector<float> logits(static_cast<std::size_t>(c.vocab_size));
  std::vector<float> all;
  model.forward(prompt, 0, context, logits, LogitsFor::kLastToken);
  for (int32_t s = 0; s < 3; ++s) {
    all.insert(all.end(), logits.begin(), logits.end());
    const int32_t token = s + 2;
    model.forward({&token, 1}, 5 + s, context, logits, LogitsFor::kLastToken);
  }
  all.insert(all.end(), logits.begin(), logits.end());
  return all;
}

TEST(MemoryPlan, CarriedOutByTheStreamingSourceGivesTheMappedLogits) {
  for (const char* name : {"synthetic/tiny-llama3-q8_0.gguf", "synthetic/tiny-mixtral-q8_0.gguf",
                           "synthetic/tiny-qwen3moe-q8_0.gguf"}) {
    const auto model = Model::open(test::model_path(name));
    MappedWeightSource mapped;
    const std::vector<float> expected = run(*model, mapped);
    const uint64_t smallest =
        plan_memory(*model, request(1ull << 30), assumed_speeds()).minimum_budget;
    for (uint64_t extra : {uint64_t{0}, uint64_t{1} << 20, uint64_t{4} << 20}) {
      const MemoryPlan plan = plan_memory(*model, request(smallest + extra), assumed_speeds());
      StreamingWeightSource streamed(*model, plan.streaming_options());
      const std::vector<float> got = run(*model, streamed);
      EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0)
          << name << " with " << extra << " bytes over the smallest budget\n"
          << plan.describe();
    }
  }
}

TEST(MemoryPlan, DescribesItself) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const uint64_t smallest =
      plan_memory(*model, request(1ull << 30), assumed_speeds()).minimum_budget;
  const MemoryPlan plan = plan_memory(*model, request(smallest), assumed_speeds());
  const std::string text = plan.describe();
  for (const char* part :
       {"resident weights", "streaming ring", "KV cache", "activations", "tokenizer", "page cache",
        "program", "read per token", "predicted decode", "streamed: "}) {
    EXPECT_NE(text.find(part), std::string::npos) << part << " missing from\n" << text;
  }
  const nlohmann::json j = plan.to_json();
  EXPECT_EQ(j["budget_bytes"], smallest);
  EXPECT_EQ(j["layers"].size(), static_cast<std::size_t>(model->config().n_layers + 1));
  EXPECT_EQ(j["streamed_bytes_per_token"], plan.streamed_bytes_per_token);
}

TEST(DeviceSpeeds, MeasuresThisDiskAndMemory) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  DirectReader::Options io;
  const DeviceSpeeds s = DeviceSpeeds::measure(*model, io, 2);
  EXPECT_GT(s.disk_bytes_per_second, 1e6);
  EXPECT_GT(s.memory_bytes_per_second, 1e8);
  EXPECT_GT(s.compute_bytes_per_second, 1e6);
}

}  // namespace
}  // namespace floatllm
