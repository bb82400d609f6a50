// The OpenAI HTTP API's request and response bodies: parsing and validating
// /v1/chat/completions and /v1/completions requests, and building completions, stream chunks,
// model lists and errors in the shapes OpenAI's clients expect. No networking here.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <ctime>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "floatllm/runtime/session.hpp"
#include "floatllm/runtime/watchdog.hpp"

namespace floatllm::openai {

using Json = nlohmann::ordered_json;

// An error the client caused or must hear about, sent as {"error": {...}} with `status`.
class ApiError : public std::exception {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt)
      : status_(status),
        message_(std::move(message)),
        type_(std::move(type)),
        param_(std::move(param)),
        code_(std::move(code)) {}

  const char* what() const noexcept override { return message_.c_str(); }
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::optional<std::string>& param() const { return param_; }
  const std::optional<std::string>& code() const { return code_; }

 private:
  int status_;
  std::string message_;
  std::string type_;
  std::optional<std::string> param_;
  std::optional<std::string> code_;
};

inline Json error_body(std::string_view message, std::string_view type,
                       const std::optional<std::string>& param = std::nullopt,
                       const std::optional<std::string>& code = std::nullopt) {
  Json error = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (param) error["param"] = *param;
  if (code) error["code"] = *code;
  return {{"error", std::move(error)}};
}

inline Json error_body(const ApiError& error) {
  return error_body(error.what(), error.type(), error.param(), error.code());
}

// What a client hears when generation failed: a stop of the memory watchdog is 503 (the server is
// fine and can answer again once memory is back), anything else a 500.
inline ApiError generation_error(const std::exception& error) {
  if (dynamic_cast<const MemoryLimitError*>(&error) != nullptr) {
    return ApiError(503, error.what(), "server_error", std::nullopt, "memory_limit");
  }
  return ApiError(500, error.what(), "server_error");
}

enum class Endpoint { kChat, kCompletion };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;   // as the client named it; empty when it named none
  Json messages;       // chat: the messages, content flattened to strings
  std::string prompt;  // completion: the prompt text
  GenerationParams params;
  bool seed_given = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

namespace detail {

[[noreturn]] inline void bad_field(const std::string& param, std::string_view expected) {
  throw ApiError(400, "'" + param + "' must be " + std::string(expected), "invalid_request_error",
                 param, "invalid_type");
}

inline std::optional<double> number_field(const Json& body, const std::string& name, double low,
                                          double high) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) bad_field(name, "a number");
  const double value = it->get<double>();
  if (!(value >= low && value <= high)) {
    throw ApiError(400,
                   "'" + name + "' is " + it->dump() + ", it must be between " + Json(low).dump() +
                       " and " + Json(high).dump(),
                   "invalid_request_error", name, "invalid_value");
  }
  return value;
}

inline std::optional<int64_t> integer_field(const Json& body, const std::string& name, int64_t low,
                                            int64_t high) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) bad_field(name, "an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(high)) {
    throw ApiError(400, "'" + name + "' is too large", "invalid_request_error", name,
                   "invalid_value");
  }
  const int64_t value = it->get<int64_t>();
  if (value < low || value > high) {
    throw ApiError(400,
                   "'" + name + "' is " + std::to_string(value) + ", it must be between " +
                       std::to_string(low) + " and " + std::to_string(high),
                   "invalid_request_error", name, "invalid_value");
  }
  return value;
}

inline std::optional<bool> bool_field(const Json& body, const std::string& name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) bad_field(name, "a boolean");
  return it->get<bool>();
}

// Text content: a string, or an array of {"type": "text", "text": ...} parts joined.
inline std::string message_content(const Json& content, const std::string& param) {
  if (content.is_null()) return {};
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) bad_field(param, "a string or an array of text parts");
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    const std::string part_param = param + "[" + std::to_string(i) + "]";
    if (!part.is_object() || part.value("type", Json()) != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      throw ApiError(400, "'" + part_param + "' must be a text part {\"type\": \"text\", ...}",
                     "invalid_request_error", part_param, "invalid_value");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

inline Json parse_messages(const Json& body) {
  const auto it = body.find("messages");
  if (it == body.end() || it->is_null()) {
    throw ApiError(400, "'messages' is required", "invalid_request_error", "messages",
                   "missing_required_parameter");
  }
  if (!it->is_array()) bad_field("messages", "an array of messages");
  if (it->empty()) {
    throw ApiError(400, "'messages' must hold at least one message", "invalid_request_error",
                   "messages", "invalid_value");
  }
  Json messages = Json::array();
  for (std::size_t i = 0; i < it->size(); ++i) {
    const Json& message = (*it)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) bad_field(param, "an object");
    const auto role = message.find("role");
    if (role == message.end() || !role->is_string()) bad_field(param + ".role", "a string");
    std::string role_name = role->get<std::string>();
    if (role_name == "developer") role_name = "system";
    if (role_name != "system" && role_name != "user" && role_name != "assistant" &&
        role_name != "tool") {
      throw ApiError(400, "'" + param + ".role' is '" + role_name + "', not a known role",
                     "invalid_request_error", param + ".role", "invalid_value");
    }
    const auto content = message.find("content");
    if (content == message.end() && role_name != "assistant") {
      throw ApiError(400, "'" + param + ".content' is required", "invalid_request_error",
                     param + ".content", "missing_required_parameter");
    }
    messages.push_back(
        {{"role", role_name},
         {"content", content == message.end() ? std::string()
                                              : message_content(*content, param + ".content")}});
  }
  return messages;
}

inline std::string parse_prompt(const Json& body) {
  const auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) {
    throw ApiError(400, "'prompt' is required", "invalid_request_error", "prompt",
                   "missing_required_parameter");
  }
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) return (*it)[0].get<std::string>();
  bad_field("prompt", "a string (or an array of one string)");
}

inline std::vector<std::string> parse_stop(const Json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  if (it->is_string()) return {it->get<std::string>()};
  if (!it->is_array()) bad_field("stop", "a string or an array of strings");
  if (it->size() > 4) {
    throw ApiError(400, "'stop' holds at most 4 strings", "invalid_request_error", "stop",
                   "invalid_value");
  }
  std::vector<std::string> stop;
  for (const Json& entry : *it) {
    if (!entry.is_string()) bad_field("stop", "a string or an array of strings");
    if (!entry.get_ref<const std::string&>().empty()) stop.push_back(entry.get<std::string>());
  }
  return stop;
}

}  // namespace detail

// Parses a request body. `default_max_tokens` applies when the client sets no limit.
inline CompletionRequest parse_request(Endpoint endpoint, std::string_view body_text,
                                       int64_t default_max_tokens) {
  const Json body = Json::parse(body_text, nullptr, false);
  if (body.is_discarded()) {
    throw ApiError(400, "the request body is not valid JSON", "invalid_request_error", std::nullopt,
                   "invalid_json");
  }
  if (!body.is_object()) {
    throw ApiError(400, "the request body must be a JSON object", "invalid_request_error",
                   std::nullopt, "invalid_json");
  }
  CompletionRequest request;
  request.endpoint = endpoint;
  if (const auto model = body.find("model"); model != body.end() && !model->is_null()) {
    if (!model->is_string()) detail::bad_field("model", "a string");
    request.model = model->get<std::string>();
  }
  if (endpoint == Endpoint::kChat) {
    request.messages = detail::parse_messages(body);
  } else {
    request.prompt = detail::parse_prompt(body);
  }
  if (const auto n = detail::integer_field(body, "n", 1, 128); n && *n != 1) {
    throw ApiError(400, "only n = 1 is supported", "invalid_request_error", "n", "unsupported");
  }
  for (const char* unsupported : {"logprobs", "echo"}) {
    const auto it = body.find(unsupported);
    if (it == body.end() || it->is_null() || *it == false || *it == 0) continue;
    if (it->is_boolean() || it->is_number()) {
      throw ApiError(400, std::string("'") + unsupported + "' is not supported",
                     "invalid_request_error", unsupported, "unsupported");
    }
    detail::bad_field(unsupported, "a boolean");
  }

  GenerationParams& params = request.params;
  // OpenAI's own defaults, not llama.cpp's: sampling over the whole distribution at temperature 1.
  params.sampling.temperature = 1.0f;
  params.sampling.top_k = 0;
  params.sampling.top_p = 1.0f;
  params.sampling.min_p = 0.0f;
  params.sampling.repeat_penalty = 1.0f;
  params.sampling.repeat_last_n = -1;
  if (const auto v = detail::number_field(body, "temperature", 0, 2))
    params.sampling.temperature = static_cast<float>(*v);
  if (const auto v = detail::number_field(body, "top_p", 0, 1))
    params.sampling.top_p = static_cast<float>(*v);
  if (const auto v = detail::number_field(body, "min_p", 0, 1))
    params.sampling.min_p = static_cast<float>(*v);
  if (const auto v = detail::integer_field(body, "top_k", 0, INT32_MAX))
    params.sampling.top_k = static_cast<int32_t>(*v);
  if (const auto v = detail::number_field(body, "presence_penalty", -2, 2))
    params.sampling.presence_penalty = static_cast<float>(*v);
  if (const auto v = detail::number_field(body, "frequency_penalty", -2, 2))
    params.sampling.frequency_penalty = static_cast<float>(*v);
  if (const auto v = detail::number_field(body, "repeat_penalty", 0.01, 100))
    params.sampling.repeat_penalty = static_cast<float>(*v);
  if (const auto v = detail::integer_field(body, "seed", INT64_MIN, INT64_MAX)) {
    params.sampling.seed = static_cast<uint64_t>(*v);
    request.seed_given = true;
  }
  params.max_tokens = default_max_tokens;
  const auto max_tokens = detail::integer_field(body, "max_tokens", 1, INT32_MAX);
  const auto max_completion = detail::integer_field(body, "max_completion_tokens", 1, INT32_MAX);
  if (max_completion) params.max_tokens = *max_completion;
  if (max_tokens) params.max_tokens = *max_tokens;
  params.stop = detail::parse_stop(body);
  request.stream = detail::bool_field(body, "stream").value_or(false);
  if (const auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) detail::bad_field("stream_options", "an object");
    request.include_usage = detail::bool_field(*it, "include_usage").value_or(false);
  }
  return request;
}

inline std::string_view finish_reason(StopReason reason) {
  return reason == StopReason::kMaxTokens ? "length" : "stop";
}

inline Json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

// What a response needs besides the generated text.
struct ResponseInfo {
  std::string id;  // "chatcmpl-..." or "cmpl-..."
  std::string model;
  int64_t created = 0;  // Unix seconds
};

inline Json completion_response(Endpoint endpoint, const ResponseInfo& info,
                                const std::string& text, StopReason reason, int64_t prompt_tokens,
                                int64_t completion_tokens) {
  Json choice = {{"index", 0}};
  if (endpoint == Endpoint::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason(reason);
  return {{"id", info.id},
          {"object", endpoint == Endpoint::kChat ? "chat.completion" : "text_completion"},
          {"created", info.created},
          {"model", info.model},
          {"choices", Json::array({std::move(choice)})},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

// One streamed piece: `text` (the first chat chunk carries the role too), or the end with its
// finish reason.
inline Json stream_chunk(Endpoint endpoint, const ResponseInfo& info,
                         std::optional<std::string_view> text, bool first,
                         std::optional<StopReason> finished) {
  Json choice = {{"index", 0}};
  if (endpoint == Endpoint::kChat) {
    Json delta = Json::object();
    if (first) delta["role"] = "assistant";
    if (text) delta["content"] = *text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text ? *text : std::string_view();
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finished ? Json(finish_reason(*finished)) : Json(nullptr);
  return {{"id", info.id},
          {"object", endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", info.created},
          {"model", info.model},
          {"choices", Json::array({std::move(choice)})}};
}

// The last chunk when the client asked for stream_options.include_usage: no choices, the usage.
inline Json usage_chunk(Endpoint endpoint, const ResponseInfo& info, int64_t prompt_tokens,
                        int64_t completion_tokens) {
  return {{"id", info.id},
          {"object", endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", info.created},
          {"model", info.model},
          {"choices", Json::array()},
          {"usage", usage_json(prompt_tokens, completion_tokens)}};
}

inline Json model_json(const std::string& id, int64_t created) {
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "floatllm"}};
}

inline Json models_response(const std::string& id, int64_t created) {
  return {{"object", "list"}, {"data", Json::array({model_json(id, created)})}};
}

// Serialized for the wire; bytes that are not UTF-8 (a model can emit them) become U+FFFD.
inline std::string to_text(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

inline std::string sse_event(const Json& data) {
  return "data: " + to_text(data) + "\n\n";
}
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace floatllm::openai
