// A multi-turn conversation on one Session: the message history, rendered through a chat template
// every turn, with the KV cache reused for the prefix the new prompt shares with the context, so
// each turn evaluates only its new tokens.
//
// Context policy: a turn's prompt may use at most `context - min(max_tokens, context / 2)` tokens,
// which leaves room for the reply. When the conversation is longer, the oldest turns (a user
// message and the replies that follow it) are dropped, never the system prompt nor the new
// message, and the rest is re-evaluated from where it first differs. A message that does not
// fit even alone is an error and leaves the history as it was. A reply is cut at the end of the
// context (stop reason: max tokens).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "floatllm/chat/chat_template.hpp"
#include "floatllm/core/error.hpp"
#include "floatllm/runtime/session.hpp"
#include "floatllm/tokenizer/tokenizer.hpp"
#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm {

// Called while a prompt is evaluated with the tokens done so far and the total.
using PromptProgress = std::function<void(int64_t done, int64_t total)>;

// A template and the stop strings that go with it.
struct ChatFormat {
  std::string template_source;
  std::vector<std::string> stop;
  bool plain = false;  // the fallback for models that ship no template
};

namespace detail {
// For models without a chat template (base models such as stories260K): plain transcript lines.
// "\nUser:" stops a reply before the model writes the user's next line itself.
inline constexpr std::string_view kPlainChatTemplate = R"({%- for message in messages -%}
{%- if message['role'] == 'system' -%}{{ message['content'] + '\n\n' }}
{%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\n' }}
{%- else -%}{{ 'Assistant:' + message['content'] + '\n' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%})";
}  // namespace detail

inline ChatFormat plain_chat_format() {
  return {std::string(detail::kPlainChatTemplate), {"\nUser:"}, true};
}

// The override (`--chat-template NAME|FILE`) if given, else the model's own template, else the
// plain transcript format.
inline ChatFormat select_chat_format(const GgufFile& gguf,
                                     const std::optional<std::string>& override_name_or_file) {
  if (override_name_or_file) return {resolve_chat_template(*override_name_or_file), {}, false};
  if (auto own = chat_template_from_gguf(gguf)) return {std::move(*own), {}, false};
  return plain_chat_format();
}

// The tokens of a rendered prompt: special tokens parsed, and the tokenizer's BOS added only
// when the template did not print it already.
inline std::vector<int32_t> tokenize_chat_prompt(const Tokenizer& tokenizer,
                                                 const std::string& rendered) {
  EncodeOptions options;
  options.parse_special = true;
  if (const auto bos = tokenizer.bos_id()) {
    const std::string_view bos_text = tokenizer.token_to_piece(*bos);
    options.add_special = bos_text.empty() || !rendered.starts_with(bos_text);
  }
  return tokenizer.encode(rendered, options);
}

// Text with every byte that is not part of valid UTF-8 replaced by U+FFFD. A model can emit
// such bytes (a cut multi-byte character); kept in the history they would fail the next encode.
inline std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8::valid_sequence_at(text, at);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++at;
    } else {
      out.append(text, at, length);
      at += length;
    }
  }
  return out;
}

inline std::string special_token_text(const Tokenizer& tokenizer, std::optional<int32_t> id) {
  return id ? std::string(tokenizer.token_to_piece(*id)) : std::string();
}

// Generates from `prompt`, a whole context's worth of tokens: the part the session already holds
// is kept, only the rest is evaluated (in batches, reporting progress).
inline GenerationResult generate_reusing_prefix(Session& session, std::vector<int32_t> prompt,
                                                const GenerationParams& params,
                                                const TextCallback& on_text,
                                                const PromptProgress& progress = {}) {
  if (prompt.empty()) fail("the prompt has no tokens");
  const std::vector<int32_t>& held = session.history();
  const auto differs = std::mismatch(held.begin(), held.end(), prompt.begin(), prompt.end());
  // The last prompt token is always evaluated again: its logits give the first reply token.
  const auto shared = std::min<std::size_t>(static_cast<std::size_t>(differs.first - held.begin()),
                                            prompt.size() - 1);
  session.truncate(static_cast<int64_t>(shared));

  const auto start = std::chrono::steady_clock::now();
  const std::size_t last = prompt.size() - 1;
  const auto batch = static_cast<std::size_t>(session.options().batch);
  for (std::size_t at = shared; at < last; at += batch) {
    const std::size_t count = std::min(batch, last - at);
    session.eval(std::span<const int32_t>(prompt).subspan(at, count));
    if (progress) progress(static_cast<int64_t>(at + count - shared), int64_t(last - shared));
  }
  const double batches_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  GenerationResult result = session.generate_tokens({prompt.back()}, params, on_text);
  result.prompt_tokens = static_cast<int64_t>(prompt.size() - shared);
  result.prompt_seconds += batches_seconds;
  return result;
}

class ChatSession {
 public:
  ChatSession(Session& session, const Tokenizer& tokenizer, ChatFormat format,
              std::string system_prompt = {})
      : session_(session),
        tokenizer_(tokenizer),
        format_(std::move(format)),
        template_(format_.template_source),
        system_prompt_(std::move(system_prompt)) {
    options_.bos_token = special_token_text(tokenizer, tokenizer.bos_id());
    options_.eos_token = special_token_text(tokenizer, tokenizer.eos_id());
    reset();
  }

  // Adds the user's message, generates the reply (streamed to `on_text`) and keeps both. A
  // cancelled reply is kept as far as it got.
  GenerationResult reply(const std::string& user_message, GenerationParams params,
                         const TextCallback& on_text = {}, const PromptProgress& progress = {}) {
    const auto saved = messages_;
    messages_.push_back({"user", user_message});
    try {
      const int64_t context = session_.options().context;
      const int64_t reserve = std::max<int64_t>(1, std::min(params.max_tokens, context / 2));
      std::vector<int32_t> prompt = render_tokens();
      while (static_cast<int64_t>(prompt.size()) > context - reserve) {
        if (!drop_oldest_turn()) {
          fail("the message needs ", prompt.size(), " tokens of the prompt but the context of ",
               context, " tokens leaves ", context - reserve,
               " after keeping room for the reply (use a larger context or a shorter message)");
        }
        prompt = render_tokens();
      }
      params.max_tokens =
          std::min(params.max_tokens, context - static_cast<int64_t>(prompt.size()) + 1);
      params.stop.insert(params.stop.end(), format_.stop.begin(), format_.stop.end());
      GenerationResult result =
          generate_reusing_prefix(session_, std::move(prompt), params, on_text, progress);
      messages_.push_back({"assistant", valid_utf8(result.text)});
      return result;
    } catch (...) {
      messages_ = saved;
      throw;
    }
  }

  // Back to the system prompt alone; the cache keeps it, so the next turn starts quickly.
  void reset() {
    messages_.clear();
    if (!system_prompt_.empty()) messages_.push_back({"system", system_prompt_});
  }

  const std::vector<ChatMessage>& messages() const { return messages_; }
  int64_t dropped_turns() const { return dropped_turns_; }
  const ChatFormat& format() const { return format_; }

 private:
  std::vector<int32_t> render_tokens() const {
    return tokenize_chat_prompt(tokenizer_, template_.render(messages_, options_));
  }

  // Removes the first user message after the system prompt with the replies up to the next user
  // message; never the last message (the one being answered).
  bool drop_oldest_turn() {
    const std::size_t first = !messages_.empty() && messages_.front().role == "system" ? 1 : 0;
    if (messages_.size() <= first + 1) return false;
    std::size_t end = first + 1;
    while (end + 1 < messages_.size() && messages_[end].role != "user")
      ++end;
    messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(first),
                    messages_.begin() + static_cast<std::ptrdiff_t>(end));
    ++dropped_turns_;
    return true;
  }

  Session& session_;
  const Tokenizer& tokenizer_;
  ChatFormat format_;
  ChatTemplate template_;
  ChatTemplateOptions options_;
  std::string system_prompt_;
  std::vector<ChatMessage> messages_;
  int64_t dropped_turns_ = 0;
};

}  // namespace floatllm
