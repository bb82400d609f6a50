// Request parsing/validation and response shapes of the OpenAI API layer (no network), and the
// chat session's prefix reuse and context policy on stories260K.
#include <gtest/gtest.h>

#include <floatllm/floatllm.hpp>
#include <floatllm/runtime/chat_session.hpp>
#include <floatllm/serve/openai_api.hpp>

#include "test_support.hpp"

namespace floatllm {
namespace {

using openai::ApiError;
using openai::Endpoint;
using openai::Json;
using openai::parse_request;

ApiError error_of(Endpoint endpoint, std::string_view body) {
  try {
    parse_request(endpoint, body, 16);
  } catch (const ApiError& error) {
    return error;
  }
  ADD_FAILURE() << "no error for " << body;
  return ApiError(0, "");
}

TEST(OpenAiRequest, ChatFieldsAreRead) {
  const auto request = parse_request(Endpoint::kChat, R"({
    "model": "m", "messages": [{"role": "developer", "content": "be brief"},
                               {"role": "user", "content": [{"type": "text", "text": "hi "},
                                                            {"type": "text", "text": "there"}]}],
    "temperature": 0.5, "top_p": 0.9, "top_k": 7, "min_p": 0.1, "seed": 42,
    "presence_penalty": 0.25, "frequency_penalty": -0.5, "max_tokens": 9, "stop": "END",
    "stream": true, "stream_options": {"include_usage": true}, "unknown_field": [1, 2]})",
                                     16);
  EXPECT_EQ(request.model, "m");
  ASSERT_EQ(request.messages.size(), 2u);
  EXPECT_EQ(request.messages[0]["role"], "system");
  EXPECT_EQ(request.messages[1]["content"], "hi there");
  EXPECT_FLOAT_EQ(request.params.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(request.params.sampling.top_p, 0.9f);
  EXPECT_EQ(request.params.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(request.params.sampling.min_p, 0.1f);
  EXPECT_EQ(request.params.sampling.seed, 42u);
  EXPECT_TRUE(request.seed_given);
  EXPECT_FLOAT_EQ(request.params.sampling.presence_penalty, 0.25f);
  EXPECT_FLOAT_EQ(request.params.sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(request.params.max_tokens, 9);
  EXPECT_EQ(request.params.stop, std::vector<std::string>{"END"});
  EXPECT_TRUE(request.stream);
  EXPECT_TRUE(request.include_usage);
}

TEST(OpenAiRequest, DefaultsAreOpenAis) {
  const auto request = parse_request(Endpoint::kCompletion, R"({"prompt": ["Once"]})", 16);
  EXPECT_EQ(request.prompt, "Once");
  EXPECT_EQ(request.params.max_tokens, 16);
  EXPECT_FLOAT_EQ(request.params.sampling.temperature, 1.0f);
  EXPECT_EQ(request.params.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(request.params.sampling.top_p, 1.0f);
  EXPECT_FALSE(request.seed_given);
  EXPECT_FALSE(request.stream);
  const auto stops =
      parse_request(Endpoint::kCompletion, R"({"prompt": "x", "stop": ["a", "b"]})", 16);
  EXPECT_EQ(stops.params.stop, (std::vector<std::string>{"a", "b"}));
}

TEST(OpenAiRequest, BadRequestsNameTheField) {
  struct Case {
    Endpoint endpoint;
    const char* body;
    const char* param;  // "" when the error names no field
    const char* code;
  };
  const Case cases[] = {
      {Endpoint::kChat, "{not json", "", "invalid_json"},
      {Endpoint::kChat, "[1, 2]", "", "invalid_json"},
      {Endpoint::kChat, R"({"model": 3, "messages": []})", "model", "invalid_type"},
      {Endpoint::kChat, R"({})", "messages", "missing_required_parameter"},
      {Endpoint::kChat, R"({"messages": "hi"})", "messages", "invalid_type"},
      {Endpoint::kChat, R"({"messages": []})", "messages", "invalid_value"},
      {Endpoint::kChat, R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role",
       "invalid_value"},
      {Endpoint::kChat, R"({"messages": [{"role": "user"}]})", "messages[0].content",
       "missing_required_parameter"},
      {Endpoint::kChat, R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content",
       "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "temperature": "hot"})", "temperature",
       "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "temperature": 3})", "temperature",
       "invalid_value"},
      {Endpoint::kCompletion, R"({"prompt": "x", "max_tokens": 0})", "max_tokens", "invalid_value"},
      {Endpoint::kCompletion, R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens",
       "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "seed": "s"})", "seed", "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "stop": [1]})", "stop", "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "stop": ["a","b","c","d","e"]})", "stop",
       "invalid_value"},
      {Endpoint::kCompletion, R"({"prompt": "x", "stream": "yes"})", "stream", "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "n": 2})", "n", "unsupported"},
      {Endpoint::kCompletion, R"({"prompt": 7})", "prompt", "invalid_type"},
      {Endpoint::kCompletion, R"({"prompt": "x", "top_k": 18446744073709551615})", "top_k",
       "invalid_value"},
  };
  for (const Case& c : cases) {
    const ApiError error = error_of(c.endpoint, c.body);
    EXPECT_EQ(error.status(), 400) << c.body;
    EXPECT_EQ(error.type(), "invalid_request_error") << c.body;
    EXPECT_EQ(error.param().value_or(""), c.param) << c.body;
    EXPECT_EQ(error.code().value_or(""), c.code) << c.body;
  }
}

TEST(OpenAiResponse, ErrorShape) {
  const Json body = openai::error_body(
      ApiError(404, "no such model", "invalid_request_error", "model", "model_not_found"));
  EXPECT_EQ(body.dump(), R"({"error":{"message":"no such model","type":"invalid_request_error",)"
                         R"("param":"model","code":"model_not_found"}})");
  EXPECT_EQ(openai::error_body("boom", "server_error").dump(),
            R"({"error":{"message":"boom","type":"server_error","param":null,"code":null}})");
}

TEST(OpenAiResponse, CompletionShapes) {
  const openai::ResponseInfo info{"chatcmpl-1", "m", 1700000000};
  const Json chat =
      openai::completion_response(Endpoint::kChat, info, "Hi", StopReason::kMaxTokens, 5, 2);
  EXPECT_EQ(chat.dump(),
            R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",)"
            R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},)"
            R"("logprobs":null,"finish_reason":"length"}],)"
            R"("usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}})");
  const Json text = openai::completion_response(Endpoint::kCompletion, info, "x",
                                                StopReason::kEndOfGeneration, 1, 1);
  EXPECT_EQ(text["object"], "text_completion");
  EXPECT_EQ(text["choices"][0]["text"], "x");
  EXPECT_EQ(text["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(openai::finish_reason(StopReason::kStopString), "stop");
}

TEST(OpenAiResponse, StreamChunks) {
  const openai::ResponseInfo info{"chatcmpl-1", "m", 1};
  const Json first = openai::stream_chunk(Endpoint::kChat, info, "Hel", true, std::nullopt);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"].dump(), R"({"role":"assistant","content":"Hel"})");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const Json last =
      openai::stream_chunk(Endpoint::kChat, info, std::nullopt, false, StopReason::kMaxTokens);
  EXPECT_EQ(last["choices"][0]["delta"].dump(), "{}");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  const Json usage = openai::usage_chunk(Endpoint::kChat, info, 3, 4);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  EXPECT_EQ(openai::sse_event(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  // A model may emit bytes that are not UTF-8; the wire gets U+FFFD instead of an exception.
  EXPECT_EQ(openai::to_text(Json("a\xff")), "\"a\xEF\xBF\xBD\"");
}

class ChatSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::open(test::model_path("gguf/stories260K.gguf"));
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(model_->file()));
  }
  GenerationParams greedy(int64_t max_tokens) const {
    GenerationParams params;
    params.max_tokens = max_tokens;
    params.sampling.temperature = 0;
    return params;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(ChatSessionTest, PlainFallbackAndPrefixReuse) {
  SessionOptions options;
  options.context = 256;
  options.threads = 1;
  Session session(*model_, *tokenizer_, options);
  const ChatFormat format = select_chat_format(model_->file(), std::nullopt);
  EXPECT_TRUE(format.plain);  // stories260K ships no template
  ChatSession chat(session, *tokenizer_, format, "A story.");
  const GenerationResult first = chat.reply("Tell me about a cat.", greedy(20));
  const int64_t after_first = session.position();
  const GenerationResult second = chat.reply("And a dog?", greedy(20));
  ASSERT_EQ(chat.messages().size(), 5u);
  EXPECT_EQ(chat.messages()[2].content, first.text);
  // The second turn evaluates only what follows the kept prefix: far fewer tokens than the
  // whole conversation.
  const auto whole = tokenize_chat_prompt(
      *tokenizer_,
      ChatTemplate(format.template_source)
          .render(std::vector<ChatMessage>(chat.messages().begin(), chat.messages().end() - 1),
                  {}));
  EXPECT_LT(second.prompt_tokens, static_cast<int64_t>(whole.size()) - after_first / 2);

  // The same conversation from scratch gives the same greedy reply.
  Session fresh(*model_, *tokenizer_, options);
  const GenerationResult again = generate_reusing_prefix(fresh, whole, greedy(20), {});
  EXPECT_EQ(again.text, second.text);
}

TEST_F(ChatSessionTest, OldestTurnsAreDroppedWhenTheContextFills) {
  SessionOptions options;
  options.context = 96;
  options.threads = 1;
  Session session(*model_, *tokenizer_, options);
  ChatSession chat(session, *tokenizer_, plain_chat_format(), "Sys.");
  for (int turn = 0; turn < 6; ++turn)
    chat.reply("Tell me a story about turn " + std::to_string(turn) + ".", greedy(24));
  EXPECT_GT(chat.dropped_turns(), 0);
  EXPECT_EQ(chat.messages().front().role, "system");
  EXPECT_EQ(chat.messages()[chat.messages().size() - 2].content, "Tell me a story about turn 5.");
  EXPECT_LE(session.position(), options.context);

  const auto before = chat.messages();
  EXPECT_THROW(chat.reply(std::string(2000, 'a'), greedy(8)), Error);
  EXPECT_EQ(chat.messages().size(), before.size());  // a failed turn leaves the history alone
}

}  // namespace
}  // namespace floatllm
