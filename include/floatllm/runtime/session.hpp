// A conversation with a model: its own KV cache, scratch memory and threads, the tokens seen so
// far, and text generation with sampling, stop conditions and statistics.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/model/model.hpp"
#include "floatllm/runtime/kv_cache.hpp"
#include "floatllm/runtime/process_memory.hpp"
#include "floatllm/runtime/sampling.hpp"
#include "floatllm/runtime/stop_strings.hpp"
#include "floatllm/tokenizer/tokenizer.hpp"

namespace floatllm {

struct SessionOptions {
  int64_t context = 2048;  // tokens; 0 = the model's trained context
  GgmlType kv_type = GgmlType::F16;
  int threads = 0;      // 0 = one per hardware thread
  int64_t batch = 512;  // prompt tokens per forward pass
};

struct GenerationParams {
  int64_t max_tokens = 256;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings; the text stops before the first one
  bool add_special = true;        // BOS/EOS as the tokenizer's metadata asks
  bool parse_special = true;      // "<|eot_id|>" in the prompt becomes the special token
};

enum class StopReason { kMaxTokens, kEndOfGeneration, kStopString, kCancelled };

inline std::string_view to_string(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens:
      return "max tokens";
    case StopReason::kEndOfGeneration:
      return "end of generation";
    case StopReason::kStopString:
      return "stop string";
    case StopReason::kCancelled:
      return "cancelled";
  }
  return "?";
}

struct GenerationResult {
  std::string text;
  std::vector<int32_t> tokens;
  StopReason stop_reason = StopReason::kMaxTokens;
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0;
  double decode_seconds = 0;
  uint64_t peak_resident_bytes = 0;

  double prompt_tokens_per_second() const {
    return prompt_seconds > 0 ? double(prompt_tokens) / prompt_seconds : 0;
  }
  double decode_tokens_per_second() const {
    // The first generated token comes from the prompt's logits; the rest each cost one decode.
    const auto decoded = static_cast<double>(tokens.size() > 0 ? tokens.size() - 1 : 0);
    return decode_seconds > 0 ? decoded / decode_seconds : 0;
  }
};

// Receives each piece of generated text as soon as it is complete UTF-8; returning false stops.
using TextCallback = std::function<bool(std::string_view)>;

class Session {
 public:
  Session(const Model& model, const Tokenizer& tokenizer, SessionOptions options = {},
          WeightSource* weights = nullptr)
      : model_(model),
        tokenizer_(tokenizer),
        options_(resolve(options, model.config())),
        pool_(options_.threads),
        cache_(model.config(), options_.context, options_.kv_type),
        workspace_(model.config(), options_.batch),
        weights_(weights != nullptr ? weights : &mapped_weights_),
        logits_(static_cast<std::size_t>(model.config().vocab_size)) {}

  // Evaluates tokens after the ones already in the context; returns the last one's logits.
  std::span<const float> eval(std::span<const int32_t> tokens) {
    if (tokens.empty()) fail("nothing to evaluate");
    const auto room = options_.context - position();
    if (static_cast<int64_t>(tokens.size()) > room) {
      fail("the context of ", options_.context, " tokens is full: ", position(), " are used and ",
           tokens.size(), " more were given (use a larger context)");
    }
    for (std::size_t start = 0; start < tokens.size();
         start += static_cast<std::size_t>(options_.batch)) {
      const auto count = std::min(tokens.size() - start, static_cast<std::size_t>(options_.batch));
      const bool last = start + count == tokens.size();
      if (step_check_) step_check_();
      std::unique_lock<std::mutex> turn;
      if (forward_lock_ != nullptr) turn = std::unique_lock(*forward_lock_);
      ForwardContext context{cache_, workspace_, *weights_, pool_, trace_, backend_};
      model_.forward(tokens.subspan(start, count), position(), context, logits_,
                     last ? LogitsFor::kLastToken : LogitsFor::kNone);
      history_.insert(history_.end(), tokens.begin() + static_cast<std::ptrdiff_t>(start),
                      tokens.begin() + static_cast<std::ptrdiff_t>(start + count));
    }
    return logits_;
  }

  // Tokenizes `prompt`, appends it to the context and generates until a stop condition.
  GenerationResult generate(std::string_view prompt, const GenerationParams& params,
                            const TextCallback& on_text = {}) {
    EncodeOptions encode;
    encode.add_special = params.add_special && position() == 0;
    encode.parse_special = params.parse_special;
    return generate_tokens(tokenizer_.encode(prompt, encode), params, on_text);
  }

  GenerationResult generate_tokens(const std::vector<int32_t>& prompt,
                                   const GenerationParams& params, const TextCallback& on_text) {
    using Clock = std::chrono::steady_clock;
    GenerationResult result;
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
    if (prompt.empty()) fail("the prompt has no tokens");

    const auto prompt_start = Clock::now();
    const std::span<const float> prompt_logits = eval(prompt);
    std::vector<float> logits(prompt_logits.begin(), prompt_logits.end());
    result.prompt_seconds = seconds_since(prompt_start);

    Sampler sampler(params.sampling);
    StreamingDecoder decoder(tokenizer_);
    StopStrings stops(params.stop);
    const auto emit = [&](const std::string& text) {
      if (text.empty()) return true;
      result.text += text;
      return !on_text || on_text(text);
    };

    const auto decode_start = Clock::now();
    for (int64_t i = 0; i < params.max_tokens; ++i) {
      const int32_t token = sampler.sample(logits, history_);
      result.tokens.push_back(token);
      if (tokenizer_.is_end_of_generation(token)) {
        result.stop_reason = StopReason::kEndOfGeneration;
        break;
      }
      if (!emit(stops.push(decoder.push(token)))) {
        result.stop_reason = StopReason::kCancelled;
        break;
      }
      if (stops.stopped()) {
        result.stop_reason = StopReason::kStopString;
        break;
      }
      if (i + 1 == params.max_tokens) break;
      if (position() >= options_.context) {
        fail("the context of ", options_.context, " tokens is full after ", result.tokens.size(),
             " generated tokens (use a larger context)");
      }
      const auto next = eval({&token, 1});
      logits.assign(next.begin(), next.end());
    }
    if (result.stop_reason != StopReason::kStopString &&
        result.stop_reason != StopReason::kCancelled) {
      emit(stops.push(decoder.flush()));
      emit(stops.flush());
    }
    result.decode_seconds = seconds_since(decode_start);
    result.peak_resident_bytes = process_memory().peak_resident_bytes;
    return result;
  }

  void reset() { history_.clear(); }
  // Forgets the tokens from `length` on. The cache rows before it stay valid, so a new prompt
  // that shares a prefix with the context only needs its differing tail evaluated.
  void truncate(int64_t length) {
    if (length < 0 || length > position()) {
      fail("cannot truncate a context of ", position(), " tokens to ", length);
    }
    history_.resize(static_cast<std::size_t>(length));
  }
  int64_t position() const { return static_cast<int64_t>(history_.size()); }
  const std::vector<int32_t>& history() const { return history_; }
  const SessionOptions& options() const { return options_; }
  const KvCache& cache() const { return cache_; }
  ThreadPool& pool() { return pool_; }
  void set_trace(Trace* trace) { trace_ = trace; }
  // Called before every forward pass (each prompt batch and generated token); it may throw to
  // stop generation, as the memory watchdog does (runtime/watchdog.hpp). The context then holds
  // the tokens evaluated so far and the session can go on later.
  void set_step_check(std::function<void()> check) { step_check_ = std::move(check); }
  // Sessions sharing a weight source that keeps state from layer to layer (the streaming
  // source's ring) take turns: each forward pass holds this mutex.
  void set_forward_lock(std::mutex* lock) { forward_lock_ = lock; }
  // Blocks the backend owns run there; it must have been made for this session's model.
  void set_backend(LayerBackend* backend) { backend_ = backend; }

 private:
  static SessionOptions resolve(SessionOptions options, const ModelConfig& config) {
    if (options.context == 0) options.context = config.context_length;
    if (options.context < 0) fail("context length must be positive, got ", options.context);
    if (options.threads <= 0) {
      options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }
    options.batch = std::clamp<int64_t>(options.batch, 1, options.context);
    return options;
  }

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  const Model& model_;
  const Tokenizer& tokenizer_;
  SessionOptions options_;
  ThreadPool pool_;
  KvCache cache_;
  Workspace workspace_;
  MappedWeightSource mapped_weights_;
  WeightSource* weights_;
  std::vector<float> logits_;
  std::vector<int32_t> history_;
  Trace* trace_ = nullptr;
  std::function<void()> step_check_;
  std::mutex* forward_lock_ = nullptr;
  LayerBackend* backend_ = nullptr;
};

}  // namespace floatllm
