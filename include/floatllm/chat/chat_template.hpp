// Turning a conversation into the prompt text a model was trained on: the model's own Jinja chat
// template (GGUF `tokenizer.chat_template` or HF `tokenizer_config.json`), or a built-in one
// chosen by name (`--chat-template NAME|FILE`).
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "floatllm/chat/jinja.hpp"
#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"

namespace floatllm {

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token;
  std::string eos_token;
  // More variables for the template, e.g. {"tools": [...], "enable_thinking": false}.
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
  jinja::JinjaLimits limits;
};

// A parsed chat template; parse once, render every turn.
class ChatTemplate {
 public:
  explicit ChatTemplate(std::string source, jinja::JinjaLimits limits = {})
      : source_(std::move(source)), parsed_(parse(source_, limits)) {}

  const std::string& source() const { return source_; }

  std::string render(const std::vector<ChatMessage>& messages,
                     const ChatTemplateOptions& options) const {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const ChatMessage& message : messages)
      list.push_back({{"role", message.role}, {"content", message.content}});
    return render_json(list, options);
  }

  // Messages as OpenAI-style JSON objects, which may carry more than role and content
  // (tool_calls, content parts, reasoning_content).
  std::string render_json(const nlohmann::ordered_json& messages,
                          const ChatTemplateOptions& options) const {
    if (!messages.is_array()) fail("chat template: messages must be a JSON array");
    if (!options.extra_context.is_object())
      fail("chat template: extra context must be a JSON object");
    nlohmann::ordered_json context = options.extra_context;
    context["messages"] = messages;
    context["add_generation_prompt"] = options.add_generation_prompt;
    context["bos_token"] = options.bos_token;
    context["eos_token"] = options.eos_token;
    try {
      return parsed_.render(context);
    } catch (const Error& e) {
      fail("chat template: ", e.what());
    }
  }

 private:
  static jinja::Template parse(const std::string& source, const jinja::JinjaLimits& limits) {
    try {
      return jinja::Template(source, {}, limits);
    } catch (const Error& e) {
      fail("chat template: ", e.what());
    }
  }

  std::string source_;
  jinja::Template parsed_;
};

inline std::string render_chat(const std::string& tmpl, const std::vector<ChatMessage>& messages,
                               bool add_generation_prompt, const std::string& bos_token,
                               const std::string& eos_token) {
  ChatTemplateOptions options;
  options.add_generation_prompt = add_generation_prompt;
  options.bos_token = bos_token;
  options.eos_token = eos_token;
  return ChatTemplate(tmpl).render(messages, options);
}

namespace detail {

// Written for floatllm after each family's published prompt format. A leading system message
// goes where the format has room for it (Gemma and Mistral fold it into the first user turn).
inline constexpr std::string_view kChatmlTemplate = R"({%- for message in messages -%}
{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|im_start|>assistant\n' }}
{%- endif -%})";

inline constexpr std::string_view kLlama3Template = R"({{- bos_token -}}
{%- for message in messages -%}
{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif -%})";

inline constexpr std::string_view kGemmaTemplate = R"({{- bos_token -}}
{%- set first_user_prefix = '' -%}
{%- set loop_messages = messages -%}
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
  {%- set loop_messages = messages[1:] -%}
{%- endif -%}
{%- for message in loop_messages -%}
  {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
  {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<start_of_turn>model\n' }}
{%- endif -%})";

inline constexpr std::string_view kMistralTemplate = R"({{- bos_token -}}
{%- set system_prefix = '' -%}
{%- set loop_messages = messages -%}
{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set system_prefix = messages[0]['content'] + '\n\n' -%}
  {%- set loop_messages = messages[1:] -%}
{%- endif -%}
{%- for message in loop_messages -%}
  {%- if message['role'] == 'user' -%}
    {{ '[INST] ' + (system_prefix if loop.first else '') + message['content'] + ' [/INST]' }}
  {%- elif message['role'] == 'assistant' -%}
    {{ message['content'] + eos_token }}
  {%- endif -%}
{%- endfor -%})";

inline constexpr std::string_view kPhi3Template = R"({%- for message in messages -%}
{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<|assistant|>\n' }}
{%- endif -%})";

inline constexpr std::array<std::pair<std::string_view, std::string_view>, 6> kBuiltinTemplates{{
    {"chatml", kChatmlTemplate},
    {"llama3", kLlama3Template},
    {"gemma", kGemmaTemplate},
    {"mistral", kMistralTemplate},
    {"phi3", kPhi3Template},
    {"smollm", kChatmlTemplate},
}};

}  // namespace detail

inline std::vector<std::string_view> builtin_chat_template_names() {
  std::vector<std::string_view> names;
  for (const auto& [name, source] : detail::kBuiltinTemplates)
    names.push_back(name);
  return names;
}

inline std::optional<std::string_view> builtin_chat_template(std::string_view name) {
  for (const auto& [builtin, source] : detail::kBuiltinTemplates)
    if (builtin == name) return source;
  return std::nullopt;
}

// The `chat_template` of an HF tokenizer_config.json: a string, or a list of {name, template}
// of which "default" is the one for plain chat.
inline std::string chat_template_from_hf_config(std::string_view json_text,
                                                std::string_view origin = "tokenizer_config.json") {
  const auto config = nlohmann::json::parse(json_text, nullptr, false);
  if (config.is_discarded() || !config.is_object()) fail(origin, ": not a JSON object");
  const auto it = config.find("chat_template");
  if (it == config.end()) fail(origin, ": no chat_template field");
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
    }
    fail(origin, ": chat_template is a list without a \"default\" template");
  }
  fail(origin, ": chat_template is neither a string nor a list");
}

inline std::optional<std::string> chat_template_from_gguf(const GgufFile& gguf) {
  const auto source = gguf.get_optional<std::string_view>("tokenizer.chat_template");
  if (!source) return std::nullopt;
  return std::string(*source);
}

// What `--chat-template NAME|FILE` names: a built-in template, an HF tokenizer_config.json, or a
// file holding a Jinja template.
inline std::string resolve_chat_template(std::string_view name_or_file) {
  if (const auto builtin = builtin_chat_template(name_or_file)) return std::string(*builtin);
  const std::filesystem::path path(name_or_file);
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    std::string names;
    for (std::string_view name : builtin_chat_template_names())
      names += (names.empty() ? "" : ", ") + std::string(name);
    fail("chat template '", name_or_file, "' is neither a built-in (", names,
         ") nor a readable file");
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) fail("cannot read chat template file ", path);
  if (path.extension() == ".json") return chat_template_from_hf_config(text, path.string());
  return text;
}

// The template a chat with this model uses: the override if given, else the model's own.
inline std::string select_chat_template(const GgufFile& gguf,
                                        const std::optional<std::string>& override_name_or_file) {
  if (override_name_or_file) return resolve_chat_template(*override_name_or_file);
  if (auto own = chat_template_from_gguf(gguf)) return std::move(*own);
  std::string names;
  for (std::string_view name : builtin_chat_template_names())
    names += (names.empty() ? "" : ", ") + std::string(name);
  fail("the model has no tokenizer.chat_template; choose one with --chat-template (", names, ")");
}

}  // namespace floatllm
