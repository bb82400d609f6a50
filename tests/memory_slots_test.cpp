// A memory budget shared by several sessions (floatllm serve --parallel N): the plan counts a KV
// cache, activations and threads per slot and shares the rest, an impossible slot count is
// refused naming the smallest budget that works, and slots that share one streaming source take
// turns per forward pass and get exactly the tokens of a fully mapped run.
#include <gtest/gtest.h>
#include <floatllm/model/registry.hpp>
#include <floatllm/runtime/budgeted_weights.hpp>
#include <floatllm/runtime/memory_plan.hpp>
#include <floatllm/serve/openai_api.hpp>

#include <string>
#include <thread>
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

constexpr int kThreads = 2;

PlanRequest request(uint64_t budget, int64_t slots) {
  PlanRequest r;
  r.budget = budget;
  r.context = 256;
  r.batch = 32;
  r.threads = kThreads;
  r.slots = slots;
  return r;
}

MemoryPlan plan(const Model& model, uint64_t budget, int64_t slots) {
  return plan_memory(model, request(budget, slots), assumed_speeds());
}

TEST(MemoryPlanSlots, EachSlotAddsItsKvCacheActivationsAndThreads) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const MemoryPlan one = plan(*model, 1ull << 30, 1);
  const MemoryPlan four = plan(*model, 1ull << 30, 4);
  EXPECT_EQ(one.slots, 1);
  EXPECT_EQ(four.slots, 4);
  EXPECT_EQ(one.components.kv_cache, KvCache::bytes_needed(model->config(), 256, GgmlType::F16));
  EXPECT_EQ(four.components.kv_cache, 4 * one.components.kv_cache);
  EXPECT_EQ(four.components.activations, 4 * one.components.activations);
  EXPECT_EQ(four.components.program - one.components.program,
            3 * kThreads * MemoryPlan::kThreadBytes);
  // Shared by every slot: counted once.
  EXPECT_EQ(four.components.resident_weights, one.components.resident_weights);
  EXPECT_EQ(four.components.tokenizer, one.components.tokenizer);
  EXPECT_EQ(four.components.page_cache, one.components.page_cache);
  const uint64_t per_slot =
      one.components.kv_cache + one.components.activations + kThreads * MemoryPlan::kThreadBytes;
  EXPECT_EQ(four.minimum_budget, one.minimum_budget + 3 * per_slot);
  EXPECT_EQ(four.components.total(), one.components.total() + 3 * per_slot);
  EXPECT_EQ(four.to_json()["slots"], 4);
  EXPECT_NE(four.describe().find("4 slots"), std::string::npos) << four.describe();
}

TEST(MemoryPlanSlots, RefusesMoreSlotsThanTheBudgetHoldsNamingTheSmallestThatWorks) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const uint64_t two = plan(*model, 1ull << 30, 2).minimum_budget;
  const uint64_t three = plan(*model, 1ull << 30, 3).minimum_budget;
  ASSERT_GT(three, two);
  EXPECT_NO_THROW(plan(*model, two, 2));
  try {
    plan(*model, two, 3);
    FAIL() << "three slots were planned in the budget of two";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("smallest that works is " + format_bytes(three)), std::string::npos)
        << what;
    EXPECT_NE(what.find("3 slots"), std::string::npos) << what;
    EXPECT_NE(what.find("--parallel"), std::string::npos) << what;
  }
  EXPECT_THROW(plan(*model, 1ull << 30, 0), Error);
  EXPECT_THROW(plan(*model, 1ull << 30, kMaxPlanSlots + 1), Error);
}

TEST(MemoryPlanSlots, MoreSlotsInOneBudgetStreamMoreOfTheModel) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama3-q8_0.gguf"));
  const MemoryPlan roomy = plan(*model, 1ull << 30, 1);
  // Everything fits for one slot; the KV caches of three more push layers out to the disk.
  const uint64_t budget = roomy.components.total();
  EXPECT_FALSE(plan(*model, budget, 1).streams());
  const uint64_t four_minimum = plan(*model, 1ull << 30, 4).minimum_budget;
  ASSERT_LE(four_minimum, budget) << "the model is too small for this test's budget";
  const MemoryPlan four = plan(*model, budget, 4);
  EXPECT_TRUE(four.streams());
  EXPECT_LE(four.components.total(), budget);
}

std::vector<int32_t> greedy_tokens(Session& session, const std::vector<int32_t>& prompt) {
  GenerationParams params;
  params.max_tokens = 24;
  params.sampling.temperature = 0;
  session.reset();
  return session.generate_tokens(prompt, params, {}).tokens;
}

TEST(MemoryPlanSlots, SlotsSharingAStreamingSourceTakeTurnsAndMatchTheMappedRun) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama-f32.gguf"));
  const Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
  SessionOptions options;
  options.context = 128;
  options.threads = 1;
  options.batch = 8;
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 17, 30, 45, 99, 7, 250, 3, 12, 88, 64}, {1, 400, 5, 6, 321, 42}, {1, 9, 9, 9, 200}};
  std::vector<std::vector<int32_t>> expected;
  {
    Session mapped(*model, tokenizer, options);
    for (const auto& prompt : prompts)
      expected.push_back(greedy_tokens(mapped, prompt));
  }

  BudgetedWeightsOptions b;
  b.context = options.context;
  b.kv_type = options.kv_type;
  b.threads = options.threads;
  b.batch = options.batch;
  b.slots = 3;
  b.measure_speeds = false;
  b.watchdog.budget_tolerance = 1e6;  // this test is about the weights, not the process's size
  b.watchdog.min_available = 0;
  PlanRequest r;
  r.budget = 1ull << 30;
  r.context = b.context;
  r.kv_type = b.kv_type;
  r.batch = b.batch;
  r.threads = b.threads;
  r.slots = b.slots;
  const uint64_t smallest = plan_memory(*model, r, assumed_speeds()).minimum_budget;
  BudgetedWeights budgeted(*model, smallest, b);
  ASSERT_NE(budgeted.weights(), nullptr) << budgeted.plan().describe();
  ASSERT_GT(budgeted.plan().streamed_layer_count(), 1) << budgeted.plan().describe();

  std::mutex turns;
  std::vector<std::unique_ptr<Session>> slots;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    slots.push_back(std::make_unique<Session>(*model, tokenizer, options, budgeted.weights()));
    slots.back()->set_forward_lock(&turns);
    slots.back()->set_step_check(budgeted.step_check());
  }
  std::vector<std::vector<std::vector<int32_t>>> got(prompts.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      for (int round = 0; round < 4; ++round)
        got[i].push_back(greedy_tokens(*slots[i], prompts[i]));
    });
  }
  for (std::thread& t : threads)
    t.join();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    for (std::size_t round = 0; round < got[i].size(); ++round)
      EXPECT_EQ(got[i][round], expected[i]) << "slot " << i << ", round " << round;
  }
  EXPECT_GT(budgeted.streaming()->stats().bytes_read, 0u);
}

TEST(MemoryPlanSlots, AWatchdogStopIsA503ForTheClientAndOtherFailuresA500) {
  const openai::ApiError memory =
      openai::generation_error(MemoryLimitError("stopped to stay within memory: test"));
  EXPECT_EQ(memory.status(), 503);
  EXPECT_EQ(memory.type(), "server_error");
  EXPECT_EQ(memory.code(), std::optional<std::string>("memory_limit"));
  EXPECT_EQ(std::string(memory.what()), "stopped to stay within memory: test");
  const openai::Json body = openai::error_body(memory);
  EXPECT_EQ(body["error"]["code"], "memory_limit");
  EXPECT_EQ(body["error"]["message"], "stopped to stay within memory: test");

  const openai::ApiError other = openai::generation_error(Error("disk went away"));
  EXPECT_EQ(other.status(), 500);
  EXPECT_EQ(other.code(), std::nullopt);
}

}  // namespace
}  // namespace floatllm
