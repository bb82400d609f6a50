// `floatllm chat`: a conversation in the terminal through the model's chat template, or, when
// stdin is not a terminal, one user message per input line with one reply per output line.
#include <floatllm/floatllm.hpp>
#include <floatllm/runtime/chat_session.hpp>
#include <floatllm/runtime/preload.hpp>

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "commands.hpp"
#include "model_options.hpp"
#include "sampling_options.hpp"

namespace floatllm::cli {
namespace {

struct ChatOptions {
  ModelOptions model;
  SamplingOptions sampling;
  std::string system;
  std::optional<std::string> chat_template;
  int64_t max_tokens = 512;
  bool verbose = false;
};

// Ctrl-C while a reply streams stops that reply; at the prompt it ends the program.
std::atomic<bool> replying{false};
std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
  if (replying.load()) {
    interrupted.store(true);
    return;
  }
  constexpr char kNewline = '\n';
  [[maybe_unused]] const auto written = ::write(STDOUT_FILENO, &kNewline, 1);
  ::_exit(130);
}

void show_prompt_progress(int64_t done, int64_t total) {
  std::fprintf(stderr, "\rprompt %lld/%lld tokens", (long long)done, (long long)total);
  if (done == total) std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
}

Command add_chat(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat with a model (interactive on a terminal, one message per line otherwise)");
  o->model.add_to(*cmd);
  o->sampling.add_to(*cmd);
  cmd->add_option("--system", o->system, "System prompt");
  cmd->add_option("--chat-template", o->chat_template,
                  "Built-in template name (chatml llama3 gemma mistral phi3 smollm) or file "
                  "(default: the model's own, else a plain User:/Assistant: transcript)");
  cmd->add_option("-n,--n-predict", o->max_tokens, "Most tokens per reply")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", o->verbose, "Print the template in use and per-reply statistics");
  return [o] {
    const bool interactive = ::isatty(STDIN_FILENO) == 1;
    const bool progress = ::isatty(STDERR_FILENO) == 1;
    const auto model = Model::open(o->model.model);
    const SessionOptions session_options = o->model.session();
    // Planned before the tokenizer loads: an impossible budget is refused first.
    const ModelOptions::Memory memory = o->model.memory(*model, session_options);
    const Tokenizer tokenizer = o->model.tokenizer(*model);
    Session session(*model, tokenizer, session_options, memory.weights());
    memory.attach(session);
    const auto backend = o->model.backend(*model, session_options);
    session.set_backend(backend.get());
    // Layers a budget streams stay on disk, and layers on a device are uploaded by its backend.
    if (memory.weights() == nullptr && o->model.gpu_layers == 0) {
      ProgressBar bar("loading", progress);
      preload_weights(*model, [&](uint64_t done, uint64_t total) {
        bar.update(done, total, std::filesystem::path(o->model.model).filename().string());
      });
    }
    if (o->verbose && memory.budgeted) {
      std::fprintf(stderr, "%s", memory.budgeted->plan().describe().c_str());
    }
    ChatSession chat(session, tokenizer, select_chat_format(model->file(), o->chat_template),
                     o->system);
    if (o->verbose) {
      std::fprintf(stderr, "chat template%s:\n%s\n", chat.format().plain ? " (plain fallback)" : "",
                   chat.format().template_source.c_str());
    }
    GenerationParams params;
    params.max_tokens = o->max_tokens;
    params.sampling = o->sampling.resolved();

    struct sigaction action {};
    action.sa_handler = on_interrupt;
    // A reply blocked writing to the terminal resumes after the signal instead of failing the
    // write, which would leave std::cout unusable for the rest of the chat.
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, nullptr);
    if (interactive) {
      std::cout << "floatllm chat: /reset starts over, /exit or Ctrl-D ends, Ctrl-C stops a "
                   "reply\n";
    }
    std::string line;
    while (true) {
      if (interactive) std::cout << "> " << std::flush;
      if (!std::getline(std::cin, line)) break;
      if (line == "/exit" || line == "/quit") break;
      if (line == "/reset") {
        chat.reset();
        if (interactive) std::cout << "(conversation reset)\n";
        continue;
      }
      if (line.empty()) continue;
      interrupted.store(false);
      replying.store(true);
      const auto dropped_before = chat.dropped_turns();
      GenerationResult result;
      try {
        result = chat.reply(
            line, params,
            [](std::string_view text) {
              std::cout << text << std::flush;
              return !interrupted.load();
            },
            progress ? PromptProgress(show_prompt_progress) : PromptProgress());
      } catch (const Error& e) {
        replying.store(false);
        std::cout << std::endl;
        std::fprintf(stderr, "error: %s\n", e.what());
        if (!interactive) return 1;
        continue;
      }
      replying.store(false);
      std::cout << "\n" << std::flush;
      if (result.stop_reason == StopReason::kCancelled && interactive) std::cout << "(stopped)\n";
      if (chat.dropped_turns() > dropped_before && (interactive || o->verbose)) {
        std::fprintf(stderr, "(context full: dropped the %lld oldest turn(s))\n",
                     (long long)(chat.dropped_turns() - dropped_before));
      }
      if (o->verbose) {
        std::fprintf(stderr,
                     "[prompt %lld new tokens, %.1f tokens/s | reply %zu tokens, %.1f tokens/s | "
                     "context %lld/%lld | stop: %s]\n",
                     (long long)result.prompt_tokens, result.prompt_tokens_per_second(),
                     result.tokens.size(), result.decode_tokens_per_second(),
                     (long long)session.position(), (long long)session.options().context,
                     std::string(to_string(result.stop_reason)).c_str());
      }
    }
    return 0;
  };
}

const CommandRegistration registration("chat", add_chat);

}  // namespace
}  // namespace floatllm::cli
