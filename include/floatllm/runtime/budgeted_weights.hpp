// A session's weights under a memory budget: the plan, the streaming source that carries it out
// (when anything streams) and the watchdog that stops generation before a limit is crossed.
//
//   BudgetedWeights budgeted(*model, session_options, parse_memory_size("2G"));
//   Session session(*model, tokenizer, session_options, budgeted.weights());
//   session.set_step_check(budgeted.step_check());
//
// Several sessions may share one (BudgetedWeightsOptions::slots, as floatllm serve --parallel
// does): the plan then counts a KV cache, activations and threads for each, and the watchdog
// may be checked from their threads at once. A streaming source is one ring read in the order
// of the forward pass, so such sessions must take turns (Session::set_forward_lock).
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "floatllm/model/model.hpp"
#include "floatllm/runtime/memory_plan.hpp"
#include "floatllm/runtime/streaming_weights.hpp"
#include "floatllm/runtime/watchdog.hpp"

namespace floatllm {

struct BudgetedWeightsOptions {
  int64_t context = 2048;  // as SessionOptions
  GgmlType kv_type = GgmlType::F16;
  int threads = 0;  // per session
  int64_t batch = 512;
  int64_t slots = 1;       // sessions sharing the weights, each with its own KV cache and threads
  int64_t gpu_layers = 0;  // blocks on a device backend: out of the host's placement
  // Measure this disk and memory for the prediction (a quarter of a second); otherwise assume.
  bool measure_speeds = true;
  DirectReader::Options io;
  WatchdogOptions watchdog;  // its budget is set to the plan's
};

class BudgetedWeights {
 public:
  // Plans before anything is read: an impossible budget throws here, naming the smallest.
  BudgetedWeights(const Model& model, uint64_t budget, const BudgetedWeightsOptions& options)
      : plan_(make_plan(model, budget, options)), watchdog_(watchdog_options(budget, options)) {
    if (plan_.streams()) {
      StreamingOptions streaming = plan_.streaming_options();
      streaming.before_layer = [this] { check(); };
      streaming_ = std::make_unique<StreamingWeightSource>(model, std::move(streaming));
    }
  }

  const MemoryPlan& plan() const { return plan_; }
  // The source to give the Session; nullptr when everything stays mapped.
  WeightSource* weights() { return streaming_.get(); }
  const StreamingWeightSource* streaming() const { return streaming_.get(); }
  Watchdog& watchdog() { return watchdog_; }
  // Polls the watchdog (throws MemoryLimitError past a limit); safe from several threads.
  void check() {
    std::lock_guard lock(watchdog_mutex_);
    watchdog_.check();
  }
  // For Session::set_step_check: the watchdog between tokens and batches.
  std::function<void()> step_check() {
    return [this] { check(); };
  }

 private:
  static MemoryPlan make_plan(const Model& model, uint64_t budget,
                              const BudgetedWeightsOptions& options) {
    PlanRequest request;
    request.budget = budget;
    request.context = options.context;
    request.kv_type = options.kv_type;
    request.batch = options.batch;
    request.threads = options.threads;
    request.slots = options.slots;
    request.gpu_layers = options.gpu_layers;
    request.io = options.io;
    DeviceSpeeds speeds;
    speeds.disk_bytes_per_second = 1e9;
    speeds.memory_bytes_per_second = 1e10;
    // A first plan with assumed speeds refuses an impossible budget before any measurement.
    MemoryPlan plan = plan_memory(model, request, speeds);
    if (!options.measure_speeds) return plan;
    return plan_memory(model, request, DeviceSpeeds::measure(model, options.io, plan.threads));
  }

  static WatchdogOptions watchdog_options(uint64_t budget, const BudgetedWeightsOptions& options) {
    WatchdogOptions w = options.watchdog;
    w.budget = budget;
    return w;
  }

  MemoryPlan plan_;
  std::mutex watchdog_mutex_;
  Watchdog watchdog_;
  std::unique_ptr<StreamingWeightSource> streaming_;
};

}  // namespace floatllm
