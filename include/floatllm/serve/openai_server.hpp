// An OpenAI-compatible HTTP server on cpp-httplib: /v1/chat/completions, /v1/completions (both
// with SSE streaming), /v1/models and /health. Requests run in N slots, each a Session with its
// own KV cache over the one shared Model; more requests wait for a free slot. Under a memory
// budget the slots share the budgeted weights: a streaming source makes them take turns per
// forward pass, and a stop of the memory watchdog reaches only the request it interrupted, as a
// 503 error (code "memory_limit"). Needs the
// cpp-httplib library (Debian libcpp-httplib-dev, target floatllm::serve).
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "floatllm/chat/chat_template.hpp"
#include "floatllm/runtime/chat_session.hpp"
#include "floatllm/runtime/session.hpp"
#include "floatllm/serve/openai_api.hpp"

namespace floatllm {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see OpenAiServer::bind)
  int parallel = 1;
  SessionOptions session;  // for every slot; threads are per slot
  // Weights every slot reads (e.g. BudgetedWeights::weights()); nullptr: the mapped file.
  WeightSource* weights = nullptr;
  // Called before every forward pass of every slot, from their threads (the memory watchdog).
  std::function<void()> step_check;
  // Makes one slot's layer backend (the Vulkan backend of --gpu-layers): every slot gets its own,
  // since a backend holds its session's KV cache on the device. Empty: all layers on the CPU.
  std::function<std::unique_ptr<LayerBackend>()> make_backend;
  std::string model_id = "floatllm";
  ChatFormat chat_format = plain_chat_format();
  int64_t default_max_tokens = 256;
  std::size_t max_body_bytes = std::size_t{8} << 20;
};

// Sessions that requests borrow one at a time. A request gets the free slot whose context
// shares the longest prefix with its prompt, so a conversation that comes back reuses its cache.
class SlotPool {
 public:
  // A custom `weights` source may keep state between the layers of a forward pass (the
  // streaming ring does): then the slots' forward passes take turns.
  SlotPool(const Model& model, const Tokenizer& tokenizer, const SessionOptions& options, int count,
           WeightSource* weights = nullptr, const std::function<void()>& step_check = {}) {
    if (count < 1) fail("the server needs at least one slot, got ", count);
    for (int i = 0; i < count; ++i) {
      slots_.push_back(std::make_unique<Session>(model, tokenizer, options, weights));
      if (weights != nullptr) slots_.back()->set_forward_lock(&forward_mutex_);
      if (step_check) slots_.back()->set_step_check(step_check);
      busy_.push_back(false);
    }
  }

  class Lease {
   public:
    Lease(SlotPool& pool, std::size_t index) : pool_(&pool), index_(index) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_->release(index_); }
    Session& session() const { return *pool_->slots_[index_]; }

   private:
    SlotPool* pool_;
    std::size_t index_;
  };

  std::unique_ptr<Lease> acquire(const std::vector<int32_t>& prompt) {
    std::unique_lock lock(mutex_);
    freed_.wait(lock, [&] { return std::find(busy_.begin(), busy_.end(), false) != busy_.end(); });
    std::size_t best = slots_.size();
    std::size_t best_shared = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (busy_[i]) continue;
      const auto& held = slots_[i]->history();
      const auto shared = static_cast<std::size_t>(
          std::mismatch(held.begin(), held.end(), prompt.begin(), prompt.end()).first -
          held.begin());
      if (best == slots_.size() || shared > best_shared) {
        best = i;
        best_shared = shared;
      }
    }
    busy_[best] = true;
    return std::make_unique<Lease>(*this, best);
  }

  // Gives every slot a backend of its own from `make`. Backends on one device may run at once
  // (the Vulkan backend's queues and memory pools are shared under locks).
  void attach_backends(const std::function<std::unique_ptr<LayerBackend>()>& make) {
    for (auto& slot : slots_) {
      backends_.push_back(make());
      slot->set_backend(backends_.back().get());
    }
  }

  const SessionOptions& options() const { return slots_.front()->options(); }
  std::size_t size() const { return slots_.size(); }

 private:
  void release(std::size_t index) {
    {
      std::lock_guard lock(mutex_);
      busy_[index] = false;
    }
    freed_.notify_one();
  }

  std::mutex forward_mutex_;
  // Declared before the sessions so that it is destroyed after them: a backend outlives its
  // session.
  std::vector<std::unique_ptr<LayerBackend>> backends_;
  std::vector<std::unique_ptr<Session>> slots_;
  std::vector<bool> busy_;
  std::mutex mutex_;
  std::condition_variable freed_;
};

class OpenAiServer {
 public:
  OpenAiServer(const Model& model, const Tokenizer& tokenizer, ServerOptions options)
      : tokenizer_(tokenizer),
        options_(std::move(options)),
        template_(options_.chat_format.template_source),
        slots_(model, tokenizer, options_.session, options_.parallel, options_.weights,
               options_.step_check),
        created_(static_cast<int64_t>(std::time(nullptr))) {
    if (options_.make_backend) slots_.attach_backends(options_.make_backend);
    template_options_.bos_token = special_token_text(tokenizer, tokenizer.bos_id());
    template_options_.eos_token = special_token_text(tokenizer, tokenizer.eos_id());
    const std::size_t workers = static_cast<std::size_t>(options_.parallel) + 8;
    http_.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
    http_.set_payload_max_length(options_.max_body_bytes);
    route();
  }

  // Binds the listening socket; returns the port (useful with port 0).
  int bind() {
    if (options_.port == 0) {
      const int port = http_.bind_to_any_port(options_.host);
      if (port <= 0) fail("cannot listen on ", options_.host, " (any port)");
      return port;
    }
    if (!http_.bind_to_port(options_.host, options_.port)) {
      fail("cannot listen on ", options_.host, ":", options_.port);
    }
    return options_.port;
  }

  // Serves until stop(); call bind() first.
  void serve() {
    if (!http_.listen_after_bind()) fail("the HTTP server stopped with an error");
  }

  // Safe from any thread (not from a signal handler).
  void stop() { http_.stop(); }

  const SlotPool& slots() const { return slots_; }

 private:
  using Json = openai::Json;

  static void send_json(httplib::Response& response, int status, const Json& body) {
    response.status = status;
    response.set_content(openai::to_text(body), "application/json");
  }

  static void send_error(httplib::Response& response, const openai::ApiError& error) {
    send_json(response, error.status(), openai::error_body(error));
  }

  void route() {
    http_.Get("/health", [](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200, {{"status", "ok"}});
    });
    http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200, openai::models_response(options_.model_id, created_));
    });
    http_.Get(R"(/v1/models/(.+))",
              [this](const httplib::Request& request, httplib::Response& response) {
                if (request.matches[1] != options_.model_id) {
                  send_error(response, unknown_model(request.matches[1]));
                  return;
                }
                send_json(response, 200, openai::model_json(options_.model_id, created_));
              });
    http_.Post("/v1/chat/completions",
               [this](const httplib::Request& request, httplib::Response& response) {
                 complete(openai::Endpoint::kChat, request, response);
               });
    http_.Post("/v1/completions",
               [this](const httplib::Request& request, httplib::Response& response) {
                 complete(openai::Endpoint::kCompletion, request, response);
               });
    http_.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
      if (!response.body.empty()) return;
      const bool not_found = response.status == 404;
      const std::string message =
          not_found ? "no route " + request.method + " " + request.path
                    : "the request failed with HTTP status " + std::to_string(response.status);
      send_json(
          response, response.status,
          openai::error_body(message, "invalid_request_error", std::nullopt,
                             not_found ? std::optional<std::string>("not_found") : std::nullopt));
    });
    http_.set_exception_handler(
        [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
          std::string message = "internal error";
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            message = e.what();
          } catch (...) {
          }
          send_json(response, 500, openai::error_body(message, "server_error"));
        });
  }

  static openai::ApiError unknown_model(const std::string& name) {
    return openai::ApiError(404, "The model '" + name + "' does not exist", "invalid_request_error",
                            "model", "model_not_found");
  }

  std::vector<int32_t> prompt_tokens(const openai::CompletionRequest& request) {
    try {
      if (request.endpoint == openai::Endpoint::kChat) {
        std::string rendered;
        {
          std::lock_guard lock(template_mutex_);
          rendered = template_.render_json(request.messages, template_options_);
        }
        return tokenize_chat_prompt(tokenizer_, rendered);
      }
      return tokenizer_.encode(request.prompt);
    } catch (const Error& e) {
      throw openai::ApiError(400, e.what(), "invalid_request_error",
                             request.endpoint == openai::Endpoint::kChat ? "messages" : "prompt",
                             "invalid_prompt");
    }
  }

  std::string next_id(openai::Endpoint endpoint) {
    return (endpoint == openai::Endpoint::kChat ? "chatcmpl-" : "cmpl-") +
           std::to_string(created_) + "-" + std::to_string(++requests_);
  }

  void complete(openai::Endpoint endpoint, const httplib::Request& http_request,
                httplib::Response& response) {
    auto request = std::make_shared<openai::CompletionRequest>();
    auto prompt = std::make_shared<std::vector<int32_t>>();
    try {
      *request = openai::parse_request(endpoint, http_request.body, options_.default_max_tokens);
      if (!request->model.empty() && request->model != options_.model_id)
        throw unknown_model(request->model);
      *prompt = prompt_tokens(*request);
      if (prompt->empty()) {
        throw openai::ApiError(400, "the prompt has no tokens", "invalid_request_error", "prompt",
                               "invalid_prompt");
      }
      const int64_t context = slots_.options().context;
      const auto length = static_cast<int64_t>(prompt->size());
      if (length >= context) {
        throw openai::ApiError(
            400,
            "This model's maximum context length is " + std::to_string(context) +
                " tokens. However, your prompt has " + std::to_string(length) + " tokens.",
            "invalid_request_error", endpoint == openai::Endpoint::kChat ? "messages" : "prompt",
            "context_length_exceeded");
      }
    } catch (const openai::ApiError& error) {
      send_error(response, error);
      return;
    }
    GenerationParams& params = request->params;
    params.max_tokens =
        std::min(params.max_tokens, slots_.options().context - int64_t(prompt->size()) + 1);
    if (endpoint == openai::Endpoint::kChat) {
      params.stop.insert(params.stop.end(), options_.chat_format.stop.begin(),
                         options_.chat_format.stop.end());
    }
    if (!request->seed_given) params.sampling.seed = random_seed();
    params.add_special = false;  // the prompt is tokenized already

    const openai::ResponseInfo info{next_id(endpoint),
                                    request->model.empty() ? options_.model_id : request->model,
                                    static_cast<int64_t>(std::time(nullptr))};
    if (!request->stream) {
      GenerationResult result;
      try {
        const auto lease = slots_.acquire(*prompt);
        result = generate_reusing_prefix(lease->session(), *prompt, params, {});
      } catch (const Error& e) {
        send_error(response, openai::generation_error(e));
        return;
      }
      send_json(response, 200,
                openai::completion_response(endpoint, info, result.text, result.stop_reason,
                                            static_cast<int64_t>(prompt->size()),
                                            static_cast<int64_t>(result.tokens.size())));
      return;
    }
    response.set_header("Cache-Control", "no-cache");
    response.set_chunked_content_provider(
        "text/event-stream",
        [this, endpoint, request, prompt, info](std::size_t, httplib::DataSink& sink) {
          const auto send = [&sink](const std::string& event) {
            return sink.write(event.data(), event.size());
          };
          bool first = true;
          try {
            GenerationResult result;
            {
              const auto lease = slots_.acquire(*prompt);
              result = generate_reusing_prefix(
                  lease->session(), *prompt, request->params, [&](std::string_view text) {
                    const bool sent = send(openai::sse_event(
                        openai::stream_chunk(endpoint, info, text, first, std::nullopt)));
                    first = false;
                    return sent;
                  });
            }
            if (result.stop_reason != StopReason::kCancelled) {
              send(openai::sse_event(
                  openai::stream_chunk(endpoint, info, std::nullopt, first, result.stop_reason)));
              if (request->include_usage) {
                send(openai::sse_event(
                    openai::usage_chunk(endpoint, info, static_cast<int64_t>(prompt->size()),
                                        static_cast<int64_t>(result.tokens.size()))));
              }
            }
          } catch (const std::exception& e) {
            send(openai::sse_event(openai::error_body(openai::generation_error(e))));
          }
          send(std::string(openai::kSseDone));
          sink.done();
          return true;
        });
  }

  uint64_t random_seed() {
    std::lock_guard lock(random_mutex_);
    return random_();
  }

  const Tokenizer& tokenizer_;
  ServerOptions options_;
  ChatTemplate template_;
  ChatTemplateOptions template_options_;
  std::mutex template_mutex_;
  SlotPool slots_;
  int64_t created_;
  std::atomic<uint64_t> requests_{0};
  std::mutex random_mutex_;
  std::mt19937_64 random_{std::random_device{}()};
  httplib::Server http_;
};

}  // namespace floatllm
