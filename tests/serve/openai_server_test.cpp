// The OpenAI server under a memory budget: the budget covers every slot (an impossible one, e.g.
// too many slots, is refused by `floatllm serve` before loading, naming the smallest that works),
// slots sharing a streaming source answer exactly like a fully mapped server, and a stop of the
// memory watchdog reaches only the request it interrupted, as an OpenAI-shaped 503, while the
// server goes on answering.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>
#include <floatllm/floatllm.hpp>
#include <floatllm/runtime/budgeted_weights.hpp>
#include <floatllm/serve/openai_server.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

using Json = nlohmann::json;

// A server on a free loopback port, serving on its own thread for the test's lifetime.
class RunningServer {
 public:
  RunningServer(const Model& model, const Tokenizer& tokenizer, ServerOptions options)
      : server_(model, tokenizer, [&] {
          options.port = 0;
          return options;
        }()) {
    port_ = server_.bind();
    thread_ = std::thread([this] { server_.serve(); });
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;
  ~RunningServer() {
    server_.stop();
    thread_.join();
  }

  httplib::Result post(const std::string& route, const Json& body) {
    httplib::Client client("127.0.0.1", port_);
    client.set_read_timeout(60, 0);
    return client.Post(route, body.dump(), "application/json");
  }

 private:
  OpenAiServer server_;
  int port_ = 0;
  std::thread thread_;
};

struct Stories {
  std::unique_ptr<Model> model = Model::open(test::model_path("gguf/stories260K.gguf"));
  Tokenizer tokenizer = Tokenizer::from_gguf(model->file());
};

ServerOptions server_options(int parallel) {
  ServerOptions options;
  options.parallel = parallel;
  options.session.context = 256;
  options.session.threads = 1;
  options.session.batch = 16;
  options.model_id = "stories260K";
  return options;
}

Json greedy_completion(const std::string& prompt, int max_tokens, bool stream = false) {
  return {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
}

std::string completion_text(const httplib::Result& result) {
  if (!result || result->status != 200) {
    ADD_FAILURE() << "request failed: "
                  << (result ? result->body : httplib::to_string(result.error()));
    return {};
  }
  return Json::parse(result->body)["choices"][0]["text"].get<std::string>();
}

TEST(OpenAiServerBudget, SlotsSharingAStreamingSourceAnswerLikeTheMappedServer) {
  Stories s;
  const std::vector<std::string> prompts = {"Once upon a time", "The cat", "Lily and Ben went",
                                            "One day, a big dog"};
  std::vector<std::string> expected;
  {
    RunningServer mapped(*s.model, s.tokenizer, server_options(1));
    for (const std::string& prompt : prompts)
      expected.push_back(
          completion_text(mapped.post("/v1/completions", greedy_completion(prompt, 40))));
  }

  constexpr int kSlots = 3;
  BudgetedWeightsOptions b;
  b.context = 256;
  b.threads = 1;
  b.batch = 16;
  b.slots = kSlots;
  b.measure_speeds = false;
  b.watchdog.budget_tolerance = 1e6;  // this test is about the shared weights, not RSS
  b.watchdog.min_available = 0;
  PlanRequest r;
  r.budget = 1ull << 30;
  r.context = b.context;
  r.threads = b.threads;
  r.batch = b.batch;
  r.slots = kSlots;
  DeviceSpeeds speeds;
  speeds.disk_bytes_per_second = 1e9;
  speeds.memory_bytes_per_second = 1e10;
  const uint64_t smallest = plan_memory(*s.model, r, speeds).minimum_budget;
  BudgetedWeights budgeted(*s.model, smallest, b);
  ASSERT_TRUE(budgeted.plan().streams()) << budgeted.plan().describe();
  ServerOptions options = server_options(kSlots);
  options.weights = budgeted.weights();
  options.step_check = budgeted.step_check();
  RunningServer server(*s.model, s.tokenizer, options);
  std::vector<std::vector<std::string>> got(6);
  std::vector<std::thread> clients;
  for (std::size_t c = 0; c < got.size(); ++c) {
    clients.emplace_back([&, c] {
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        const std::string& prompt = prompts[(c + i) % prompts.size()];
        got[c].push_back(
            completion_text(server.post("/v1/completions", greedy_completion(prompt, 40))));
      }
    });
  }
  for (std::thread& t : clients)
    t.join();
  for (std::size_t c = 0; c < got.size(); ++c) {
    for (std::size_t i = 0; i < got[c].size(); ++i)
      EXPECT_EQ(got[c][i], expected[(c + i) % prompts.size()])
          << "client " << c << ", request " << i;
  }
  EXPECT_GT(budgeted.streaming()->stats().bytes_read, 0u);
}

TEST(OpenAiServerBudget, AWatchdogStopIsA503ForThatRequestAndTheServerGoesOn) {
  Stories s;
  // The watchdog sees the process over its budget from the `pressure_from`th check on.
  std::atomic<int64_t> checks{0};
  std::atomic<int64_t> pressure_from{-1};
  WatchdogOptions w;
  w.budget = 64 << 20;
  w.interval = std::chrono::microseconds(0);
  Watchdog watchdog(w, [&] {
    MemoryReading reading;
    const int64_t n = ++checks;
    const int64_t from = pressure_from.load();
    reading.resident = from >= 0 && n >= from ? uint64_t{80} << 20 : uint64_t{32} << 20;
    return reading;
  });
  std::mutex watchdog_mutex;
  ServerOptions options = server_options(2);
  options.step_check = [&] {
    std::lock_guard lock(watchdog_mutex);
    watchdog.check();
  };
  RunningServer server(*s.model, s.tokenizer, options);
  const std::string before =
      completion_text(server.post("/v1/completions", greedy_completion("The cat", 24)));

  // Non-streamed: the whole answer is the error.
  pressure_from = checks.load() + 1;
  const auto stopped = server.post("/v1/completions", greedy_completion("The cat", 24));
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->status, 503);
  const Json error = Json::parse(stopped->body);
  ASSERT_TRUE(error.contains("error")) << stopped->body;
  EXPECT_EQ(error["error"]["type"], "server_error");
  EXPECT_EQ(error["error"]["code"], "memory_limit");
  EXPECT_TRUE(error["error"].contains("param"));
  EXPECT_NE(error["error"]["message"].get<std::string>().find("stopped to stay within memory"),
            std::string::npos)
      << stopped->body;

  // Streamed: a few pieces of text arrive, then the error as an event, then [DONE].
  pressure_from = checks.load() + 6;
  const auto streamed = server.post("/v1/completions", greedy_completion("The cat", 24, true));
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->status, 200);
  const std::string& events = streamed->body;
  const auto error_event = events.find("data: {\"error\"");
  ASSERT_NE(error_event, std::string::npos) << events;
  EXPECT_NE(events.find("\"text_completion\""), std::string::npos) << events;
  EXPECT_LT(events.find("\"text_completion\""), error_event) << events;
  const auto line_end = events.find('\n', error_event);
  const Json event = Json::parse(events.substr(error_event + 6, line_end - error_event - 6));
  EXPECT_EQ(event["error"]["code"], "memory_limit");
  EXPECT_NE(events.find("data: [DONE]", error_event), std::string::npos) << events;

  // Memory is back: the same request is answered as before the stops.
  pressure_from = -1;
  EXPECT_EQ(completion_text(server.post("/v1/completions", greedy_completion("The cat", 24))),
            before);
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

CommandResult run_command(const std::string& line) {
  test::TempDir dir;
  const auto out = dir / "stdout.txt";
  const auto err = dir / "stderr.txt";
  const int status = std::system((line + " >" + out.string() + " 2>" + err.string()).c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = test::read_text(out);
  r.err = test::read_text(err);
  return r;
}

TEST(ServeCommandBudget, RefusesTooManySlotsBeforeLoadingNamingTheSmallestBudget) {
  const std::string model = test::model_path("gguf/stories260K.gguf").string();
  const std::string command = std::string(FLOATLLM_COMMAND);
  const CommandResult plan = run_command(command + " plan --no-measure --json -t 1 -c 2048 -m " +
                                         model + " --mem-budget 1G");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const uint64_t one_slot = Json::parse(plan.out)["minimum_budget_bytes"].get<uint64_t>();

  // A budget that one slot fits in, but not 32 slots with 2048 tokens of KV cache each.
  const CommandResult refused =
      run_command(command + " serve --port 0 -t 1 -c 2048 --parallel 32 -m " + model +
                  " --mem-budget " + std::to_string(one_slot + (1 << 20)));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("is too small for"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("32 slots"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("the smallest that works is "), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--parallel"), std::string::npos) << refused.err;
  // Refused before serving: the server never said where it listens.
  EXPECT_EQ(refused.err.find("http://"), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace floatllm
