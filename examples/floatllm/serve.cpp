// `floatllm serve`: an OpenAI-compatible HTTP server (include/floatllm/serve/openai_server.hpp).
#include <floatllm/floatllm.hpp>
#include <floatllm/runtime/preload.hpp>
#include <floatllm/serve/openai_server.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "commands.hpp"
#include "model_options.hpp"

namespace floatllm::cli {
namespace {

struct ServeOptions {
  ModelOptions model;
  std::string host = "127.0.0.1";
  int port = 8080;
  int parallel = 1;
  std::optional<std::string> chat_template;
  std::string alias;
  int64_t max_tokens = 256;
};

std::atomic<bool> stop_requested{false};

extern "C" void on_stop_signal(int) {
  stop_requested.store(true);
}

Command add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve the OpenAI HTTP API (chat, completions)");
  o->model.add_to(*cmd);
  cmd->add_option("--host", o->host, "Address to listen on (loopback unless you say otherwise)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free one, printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--parallel", o->parallel,
                  "Requests served at once, each with its own KV cache; more wait")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--chat-template", o->chat_template,
                  "Built-in template name or file (default: the model's own, else plain)");
  cmd->add_option("--alias", o->alias, "Model id clients use (default: the file's stem)");
  cmd->add_option("--max-tokens", o->max_tokens, "Reply length when a request sets none")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return [o] {
    const bool progress = ::isatty(STDERR_FILENO) == 1;
    const auto model = Model::open(o->model.model);
    ServerOptions options;
    options.host = o->host;
    options.port = o->port;
    options.parallel = o->parallel;
    options.session = o->model.session();
    if (o->model.threads == 0) {
      // The slots share the cores instead of each starting a thread per core.
      const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      options.session.threads = std::max(1, cores / o->parallel);
    }
    // The budget covers every slot; it is planned before anything else loads, so an impossible
    // one (say, too many slots) is refused first, naming the smallest that works.
    const ModelOptions::Memory memory = o->model.memory(*model, options.session, o->parallel);
    if (memory.budgeted) {
      std::fprintf(stderr, "%s", memory.budgeted->plan().describe().c_str());
      options.weights = memory.weights();
      options.step_check = memory.budgeted->step_check();
    }
    const Tokenizer tokenizer = o->model.tokenizer(*model);
    options.model_id =
        o->alias.empty() ? std::filesystem::path(o->model.model).stem().string() : o->alias;
    options.chat_format = select_chat_format(model->file(), o->chat_template);
    options.default_max_tokens = o->max_tokens;
    if (o->model.gpu_layers > 0) {
      // A backend per slot, each with its own KV cache on the device; the weights are uploaded
      // once, by the first.
      options.make_backend = [o, &model, session = options.session,
                              first = static_cast<const LayerBackend*>(nullptr)]() mutable {
        auto backend = o->model.backend(*model, session, first);
        if (first == nullptr) first = backend.get();
        return backend;
      };
    }
    // Layers a budget streams stay on disk, and layers on a device are uploaded by its backend.
    if (memory.weights() == nullptr && o->model.gpu_layers == 0) {
      ProgressBar bar("loading", progress);
      preload_weights(*model, [&](uint64_t done, uint64_t total) {
        bar.update(done, total, std::filesystem::path(o->model.model).filename().string());
      });
    }
    OpenAiServer server(*model, tokenizer, options);
    const int port = server.bind();
    std::fprintf(stderr,
                 "floatllm serve: model '%s' on http://%s:%d/v1 (%d slot(s), %lld tokens "
                 "of context each)\n",
                 options.model_id.c_str(), o->host.c_str(), port, o->parallel,
                 (long long)server.slots().options().context);
    std::fflush(stderr);

    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    std::atomic<bool> served{false};
    std::thread watcher([&] {
      while (!stop_requested.load() && !served.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      server.stop();
    });
    try {
      server.serve();
    } catch (...) {
      served.store(true);
      watcher.join();
      throw;
    }
    served.store(true);
    watcher.join();
    return 0;
  };
}

const CommandRegistration registration("serve", add_serve);

}  // namespace
}  // namespace floatllm::cli
