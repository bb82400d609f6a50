// Chat templates: the real templates models ship rendered against strings derived by hand from
// each template's logic, the built-in templates, every Jinja construct the interpreter supports,
// and the errors and limits that keep hostile templates harmless.
#include <gtest/gtest.h>
#include <floatllm/chat/chat_template.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

using json = nlohmann::ordered_json;

std::string hf_template(const std::string& model) {
  const auto path = test::model_path("tokenizers/" + model + "/tokenizer_config.json");
  return chat_template_from_hf_config(test::read_text(path), path.string());
}

std::string render(const std::string& source, const json& context = json::object(),
                   jinja::JinjaLimits limits = {}) {
  return jinja::Template(source, {}, limits).render(context.is_null() ? json::object() : context);
}

// The message of the error rendering throws; fails the test when it throws nothing.
std::string render_error(const std::string& source, const json& context = json::object(),
                         jinja::JinjaLimits limits = {}) {
  try {
    const std::string out = render(source, context, limits);
    ADD_FAILURE() << "expected an error from: " << source.substr(0, 200)
                  << "\nrendered: " << out.substr(0, 200);
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

const std::vector<ChatMessage> kConversation{
    {"system", "You are a helpful assistant."},
    {"user", "  What is 2+2? \n"},
    {"assistant", "4"},
    {"user", "Thanks!"},
};

// ---- the real templates ----

TEST(RealChatTemplates, Llama3FromTokenizerConfig) {
  // Each message: header, content trimmed, <|eot_id|>; BOS before the first. This template
  // appends the assistant header whatever add_generation_prompt says.
  const std::string expected =
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful "
      "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is "
      "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|><|start_header_"
      "id|>user<|end_header_id|>\n\nThanks!<|eot_id|><|start_header_id|>assistant<|end_header_id|"
      ">\n\n";
  const std::string source = hf_template("llama3");
  EXPECT_EQ(render_chat(source, kConversation, true, "<|begin_of_text|>", "<|end_of_text|>"),
            expected);
  EXPECT_EQ(render_chat(source, kConversation, false, "<|begin_of_text|>", "<|end_of_text|>"),
            expected);
}

TEST(RealChatTemplates, Qwen3PlainConversationDropsPastThinking) {
  const ChatTemplate qwen3(hf_template("qwen3"));
  const std::vector<ChatMessage> messages{
      {"system", "Be brief."},
      {"user", "Hi"},
      {"assistant", "<think>\nplan\n</think>\n\nHello!"},
      {"user", "Why?"},
  };
  // The assistant turn precedes the last user query, so only the text after </think> stays.
  const std::string expected =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n"
      "<|im_start|>assistant\n";
  ChatTemplateOptions options;
  options.eos_token = "<|im_end|>";
  EXPECT_EQ(qwen3.render(messages, options), expected);
  options.extra_context = {{"enable_thinking", false}};
  EXPECT_EQ(qwen3.render(messages, options), expected + "<think>\n\n</think>\n\n");
  options.extra_context = json::object();
  options.add_generation_prompt = false;
  EXPECT_EQ(qwen3.render(messages, options),
            expected.substr(0, expected.size() - std::string("<|im_start|>assistant\n").size()));
}

TEST(RealChatTemplates, Qwen3KeepsThinkingAfterTheLastQuery) {
  const ChatTemplate qwen3(hf_template("qwen3"));
  ChatTemplateOptions options;
  options.add_generation_prompt = false;
  // reasoning = "<think>r".split('<think>')[-1] = "r"; content = "A"; the turn follows the last
  // user query (index 0) and is the last one, so it is rebuilt with its thinking block.
  EXPECT_EQ(qwen3.render({{"user", "Q"}, {"assistant", "<think>r</think>A"}}, options),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA"
            "<|im_end|>\n");
}

TEST(RealChatTemplates, Qwen3ToolsAndToolCalls) {
  const ChatTemplate qwen3(hf_template("qwen3"));
  ChatTemplateOptions options;
  options.extra_context = {
      {"tools", json::array({{{"type", "function"},
                              {"function",
                               {{"name", "get_time"}, {"parameters", {{"type", "object"}}}}}}})}};
  EXPECT_EQ(
      qwen3.render({{"user", "Time?"}}, options),
      "<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user "
      "query.\n\nYou are provided with function signatures within <tools></tools> XML "
      "tags:\n<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_time\", "
      "\"parameters\": {\"type\": \"object\"}}}\n</tools>\n\nFor each function call, return a "
      "json object with function name and arguments within <tool_call></tool_call> XML "
      "tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
      "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nTime?<|im_end|>\n"
      "<|im_start|>assistant\n");

  const json messages = json::parse(R"([
    {"role": "user", "content": "Time?"},
    {"role": "assistant", "content": "",
     "tool_calls": [{"type": "function", "function": {"name": "get_time", "arguments": {"tz": "UTC"}}}]},
    {"role": "tool", "content": "12:00"},
    {"role": "user", "content": "Thanks"}
  ])");
  ChatTemplateOptions plain;
  plain.add_generation_prompt = false;
  EXPECT_EQ(qwen3.render_json(messages, plain),
            "<|im_start|>user\nTime?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": "
            "\"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call><|im_end|>\n"
            "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n"
            "<|im_start|>user\nThanks<|im_end|>\n");
}

TEST(RealChatTemplates, Gemma3FoldsTheSystemPromptIntoTheFirstTurn) {
  const std::string source = hf_template("gemma3");
  EXPECT_EQ(render_chat(source, kConversation, true, "<bos>", "<end_of_turn>"),
            "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nWhat is "
            "2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n<start_of_turn>user\n"
            "Thanks!<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render_chat(source, {{"user", "Hi"}}, false, "<bos>", "<end_of_turn>"),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n");

  const json parts = json::parse(
      R"([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " look "}]}])");
  ChatTemplateOptions options;
  options.bos_token = "<bos>";
  EXPECT_EQ(ChatTemplate(source).render_json(parts, options),
            "<bos><start_of_turn>user\n<start_of_image>look<end_of_turn>\n<start_of_turn>model\n");
}

TEST(RealChatTemplates, Gemma3RaisesOnRolesThatDoNotAlternate) {
  const std::string source = hf_template("gemma3");
  const size_t call = source.find("raise_exception(\"Conversation roles");
  ASSERT_NE(call, std::string::npos);
  const auto line = 1 + std::count(source.begin(), source.begin() + static_cast<long>(call), '\n');
  try {
    render_chat(source, {{"user", "a"}, {"user", "b"}}, true, "<bos>", "");
    FAIL() << "expected raise_exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "Conversation roles must alternate user/assistant/user/assistant/..."),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("line " + std::to_string(line) + ","), std::string::npos)
        << e.what();
  }
}

TEST(RealChatTemplates, Phi3FromAGguf) {
  const GgufFile gguf(test::model_path("llama.cpp-vocab/ggml-vocab-phi-3.gguf"));
  const std::optional<std::string> source = chat_template_from_gguf(gguf);
  ASSERT_TRUE(source.has_value());
  // Users get <|user|> ... <|end|> and an assistant header; the system message is ignored.
  EXPECT_EQ(render_chat(*source, kConversation, true, "<s>", "<|endoftext|>"),
            "<s><|user|>\n  What is 2+2? \n<|end|>\n<|assistant|>\n4<|end|>\n<|user|>\nThanks!"
            "<|end|>\n<|assistant|>\n");
  EXPECT_EQ(select_chat_template(gguf, std::nullopt), *source);
  EXPECT_EQ(select_chat_template(gguf, std::string("chatml")), *builtin_chat_template("chatml"));
}

TEST(RealChatTemplates, SyntheticModelsTemplatesRenderWhenPresent) {
  int with_template = 0;
  int models = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::models_dir() / "synthetic")) {
    if (entry.path().extension() != ".gguf") continue;
    ++models;
    const GgufFile gguf(entry.path());
    const auto source = chat_template_from_gguf(gguf);
    if (!source) {
      EXPECT_THROW(select_chat_template(gguf, std::nullopt), Error) << entry.path();
      continue;
    }
    ++with_template;
    const std::string out = render_chat(*source, {{"user", "ping"}}, true, "<s>", "</s>");
    EXPECT_NE(out.find("ping"), std::string::npos) << entry.path();
  }
  EXPECT_GT(models, 0);
  RecordProperty("synthetic_models_with_template", with_template);
}

// ---- built-in templates ----

TEST(BuiltinChatTemplates, RenderTheirFamiliesFormats) {
  const std::vector<ChatMessage> conversation{
      {"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
  const auto rendered = [&](std::string_view name, bool generation) {
    return render_chat(std::string(*builtin_chat_template(name)), conversation, generation, "<s>",
                       "</s>");
  };
  const std::string chatml =
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n"
      "A1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n";
  EXPECT_EQ(rendered("chatml", true), chatml + "<|im_start|>assistant\n");
  EXPECT_EQ(rendered("chatml", false), chatml);
  EXPECT_EQ(rendered("smollm", true), chatml + "<|im_start|>assistant\n");
  EXPECT_EQ(rendered("llama3", true),
            "<s><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nU1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nA1"
            "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|><|start_header_id|>"
            "assistant<|end_header_id|>\n\n");
  EXPECT_EQ(rendered("gemma", true),
            "<s><start_of_turn>user\nS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
            "<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(rendered("mistral", true), "<s>[INST] S\n\nU1 [/INST]A1</s>[INST] U2 [/INST]");
  EXPECT_EQ(rendered("phi3", false),
            "<|system|>\nS<|end|>\n<|user|>\nU1<|end|>\n<|assistant|>\nA1<|end|>\n<|user|>\nU2"
            "<|end|>\n");
  EXPECT_EQ(builtin_chat_template_names().size(), 6u);
  EXPECT_FALSE(builtin_chat_template("vicuna").has_value());
}

TEST(BuiltinChatTemplates, ResolveNamesFilesAndConfigs) {
  EXPECT_EQ(resolve_chat_template("gemma"), *builtin_chat_template("gemma"));
  const auto config = test::model_path("tokenizers/llama3/tokenizer_config.json");
  EXPECT_EQ(resolve_chat_template(config.string()), hf_template("llama3"));
  try {
    resolve_chat_template("no-such-template");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chatml, llama3, gemma, mistral, phi3, smollm"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(chat_template_from_hf_config(
                R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                      {"name": "default", "template": "D"}]})"),
            "D");
  EXPECT_THROW(chat_template_from_hf_config(R"({"bos_token": "<s>"})"), Error);
  EXPECT_THROW(chat_template_from_hf_config("not json"), Error);
  // The Mistral tokenizer_config ships no template: the user must pick one.
  EXPECT_THROW(hf_template("mistral-v0.1"), Error);
}

// ---- Jinja constructs ----

TEST(Jinja, VariablesAttributesAndIndexes) {
  const json context = json::parse(
      R"({"name": "Ann", "user": {"age": 7, "tags": ["a", "b"]}, "items": [10, 20, 30]})");
  EXPECT_EQ(render("Hi {{ name }}!", context), "Hi Ann!");
  EXPECT_EQ(render("{{ user.age }} {{ user['age'] }} {{ user.tags[1] }} {{ items[-1] }}", context),
            "7 7 b 30");
  EXPECT_EQ(render("[{{ missing }}][{{ user.nothing }}][{{ items[9] }}]", context), "[][][]");
  EXPECT_EQ(
      render("{{ items[1:] }} {{ items[::-1] }} {{ 'hello'[1:4] }} {{ 'héllo'[1] }}", context),
      "[20, 30] [30, 20, 10] ell é");
  EXPECT_EQ(render("{{ user.tags.0 }}", context), "a");
}

TEST(Jinja, LiteralsAndPythonPrinting) {
  EXPECT_EQ(
      render("{{ 'a' \"b\" }} {{ 42 }} {{ 1_000 }} {{ 2.5 }} {{ 1.0 }} {{ 1e20 }} {{ 1e-5 }}"),
      "ab 42 1000 2.5 1.0 1e+20 1e-05");
  EXPECT_EQ(render("{{ true }} {{ False }} {{ none }} {{ None }}"), "True False None None");
  EXPECT_EQ(render("{{ [1, 'x', none, true, 0.5] }} {{ {'k': 'v', 'n': [1]} }}"),
            "[1, 'x', None, True, 0.5] {'k': 'v', 'n': [1]}");
  EXPECT_EQ(render("{{ (1, 2) }} {{ (1,) }} {{ () }} {{ [1, 2,] }}"), "(1, 2) (1,) () [1, 2]");
  EXPECT_EQ(render("{{ \"it's\" }} {{ [\"it's\", 'say \"hi\"', 'a\\nb'] }}"),
            "it's [\"it's\", 'say \"hi\"', 'a\\nb']");
  EXPECT_EQ(render("{{ '\\x41\\u00e9\\t|' }}"), "A\xC3\xA9\t|");
}

TEST(Jinja, Operators) {
  EXPECT_EQ(render("{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 10 / 4 }} {{ 10 // 4 }} {{ -10 // 4 }} "
                   "{{ 10 % -3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2.0 }} {{ -2 ** 2 }}"),
            "3 -3 12 2.5 2 -3 -2 2 1024 3.0 4");
  EXPECT_EQ(
      render("{{ 'a' + 'b' }} {{ 'ab' * 3 }} {{ [1] + [2] }} {{ [0] * 3 }} {{ 'x' ~ 1 ~ none }}"),
      "ab ababab [1, 2] [0, 0, 0] x1None");
  EXPECT_EQ(render("{{ 1 == 1.0 }} {{ 1 != 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' <= 'b' }} "
                   "{{ [1, 2] == [1, 2] }} {{ true == 1 }}"),
            "True True True False True True True");
  EXPECT_EQ(render("{{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} "
                   "{{ 'z' in missing }}"),
            "True True True True False");
  EXPECT_EQ(render("{{ not 1 == 2 }} {{ true and 'x' }} {{ 0 or 'y' }} {{ none and 1 }} "
                   "{{ not (true and false) }}"),
            "True x y None True");
  EXPECT_EQ(render("{{ 'a' if 1 else 'b' }} {{ 'a' if 0 else 'b' }} [{{ 'a' if 0 }}]"), "a b []");
  EXPECT_EQ(
      render(
          "{{ 2 * 3 + 4 }} {{ 2 + 3 * 4 }} {{ (2 + 3) * 4 }} {{ (1 + 2) ~ 3 }} {{ 'a' ~ 2 * 3 }}"),
      "10 14 20 33 a6");
}

TEST(Jinja, IfElifElse) {
  const std::string source =
      "{% if x is none %}none{% elif x > 1 %}big{% elif x == 1 %}one{% else %}small{% endif %}";
  EXPECT_EQ(render(source, {{"x", 5}}), "big");
  EXPECT_EQ(render(source, {{"x", 1}}), "one");
  EXPECT_EQ(render(source, {{"x", nullptr}}), "none");
  EXPECT_EQ(render(source, {{"x", 0}}), "small");
  EXPECT_EQ(
      render(
          "{% if [] %}a{% endif %}{% if {} %}b{% endif %}{% if '' %}c{% endif %}"
          "{% if 0.0 %}d{% endif %}{% if undefined_thing %}e{% endif %}{% if ' ' %}f{% endif %}"),
      "f");
}

TEST(Jinja, ForLoops) {
  const json context = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
                   "{{ loop.revindex0 }}{{ loop.length }}{{ x }}{% if loop.first %}F{% endif %}"
                   "{% if loop.last %}L{% endif %};{% endfor %}",
                   context),
            "10323aF;21213b;32103cL;");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.previtem | default('-') }}{{ loop.nextitem | "
                   "default('-') }} {% endfor %}",
                   context),
            "-b ac b- ");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in missing %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(
      render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}"),
      "2/2 4/2 ");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(render("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}"), "ab");
  EXPECT_EQ(render("{% for c in 'hé' %}[{{ c }}]{% endfor %}"), "[h][é]");
  EXPECT_EQ(render("{% for x in [1, 2, 3, 4, 5] %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(render("{% for i in range(2) %}{% for j in range(2) %}{{ i }}{{ j }}"
                   "{{ loop.index }} {% endfor %}{% endfor %}"),
            "001 012 101 112 ");
  EXPECT_EQ(render("{{ range(3) }} {{ range(1, 7, 2) }} {{ range(3, 0, -1) }}"),
            "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
}

TEST(Jinja, SetScopesAndNamespaces) {
  // Assignments inside a loop body are local to its iteration; `if` does not open a scope.
  EXPECT_EQ(render("{% set n = 0 %}{% for i in range(3) %}{% set n = n + 1 %}{{ n }}{% endfor %}"
                   "{{ n }}"),
            "1110");
  EXPECT_EQ(render("{% if true %}{% set v = 'in' %}{% endif %}{{ v }}"), "in");
  EXPECT_EQ(render("{% set ns = namespace(total=0, seen=false) %}{% for i in [1, 2, 3] %}"
                   "{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }} {{ ns.seen }}"),
            "6 False");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = (3, 4) %}{{ t[0] + t[1] }}"),
            "12 7");
  EXPECT_EQ(render("{% set block %}x={{ 1 + 1 }}{% endset %}[{{ block }}]"), "[x=2]");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!"
                   "{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }} "
                   "{{ greet(greeting='Yo', name='Z') }}"),
            "Hello, Bob! Hi, Al! Yo, Z!");
  // Macros see the template's top-level variables, not the caller's locals.
  EXPECT_EQ(render("{% set top = 'T' %}{% macro m() %}{{ top }}{{ local }}{% endmacro %}"
                   "{% for local in [1] %}{{ m() }}{% endfor %}"),
            "T");
  EXPECT_EQ(render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}"
                   "{% endif %}{% endmacro %}{{ fact(5) }}"),
            "120");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(render("[{{ '  a b \n' | trim }}] {{ 'Hi' | lower }} {{ 'hi' | upper }} "
                   "{{ 'hELLO' | capitalize }} {{ \"don't stop-me\" | title }}"),
            "[a b] hi HI Hello Don't Stop-Me");
  EXPECT_EQ(render("{{ 'héllo' | length }} {{ [1, 2] | length }} {{ {'a': 1} | count }} "
                   "{{ 'ÀÉ' | lower }} {{ 'éa' | upper }}"),
            "5 2 1 àé ÉA");
  EXPECT_EQ(render("{{ [1, 2, 3] | join('-') }} {{ ['a', 'b'] | join }} "
                   "{{ [{'n': 'x'}, {'n': 'y'}] | join(', ', attribute='n') }}"),
            "1-2-3 ab x, y");
  EXPECT_EQ(
      render("{{ missing | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} "
             "{{ none | default('d') }} {{ 0 | d(5) }}"),
      "d  d None 0");
  EXPECT_EQ(render("{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} "
                   "[{{ [] | first }}]"),
            "1 3 a []");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | items | list }} {{ {'b': 1, 'a': 2} | dictsort }}"),
            "[('b', 1), ('a', 2)] [('a', 2), ('b', 1)]");
  EXPECT_EQ(render("{{ 'a-b-a' | replace('a', 'x') }} {{ 'aaa' | replace('a', 'b', 2) }} "
                   "{{ 12 | string ~ '!' }} {{ [1, 'a'] | string }}"),
            "x-b-x bba 12! [1, 'a']");
  EXPECT_EQ(render("{{ {'a': 1, 'b': [1, 2.5, 'x\\ny'], 'c': none, 'd': true} | tojson }}"),
            "{\"a\": 1, \"b\": [1, 2.5, \"x\\ny\"], \"c\": null, \"d\": true}");
  EXPECT_EQ(render("{{ {'a': {'b': [1, {}]}, 'e': []} | tojson(indent=2) }}"),
            "{\n  \"a\": {\n    \"b\": [\n      1,\n      {}\n    ]\n  },\n  \"e\": []\n}");
  EXPECT_EQ(render("{{ 'é\\u0001\"' | tojson }}"), "\"é\\u0001\\\"\"");
  EXPECT_EQ(render("{{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [1, 2, 2, 1] | unique | "
                   "list }} {{ [1, 2] | reverse | list }} {{ 'abc' | reverse }}"),
            "[1, 2, 3] ['A', 'b', 'c'] [1, 2] [2, 1] cba");
  EXPECT_EQ(
      render("{{ [{'a': 1}, {'a': 2}] | map(attribute='a') | list }} {{ [1, 2] | map('string') "
             "| join('+') }}"),
      "[1, 2] 1+2");
  EXPECT_EQ(
      render("{{ [{'r': 'u'}, {'r': 'a'}, {'r': 'u'}] | selectattr('r', 'equalto', 'u') | list "
             "| length }} {{ [1, 2, 3, 4] | select('even') | list }} {{ [1, 2, 3, 4] | "
             "reject('odd') | list }} {{ [{'a': 0}, {'a': 1}] | rejectattr('a') | list }}"),
      "2 [2, 4] [2, 4] [{'a': 0}]");
  EXPECT_EQ(render("{{ -3 | abs }} {{ 3.7 | int }} {{ '42' | int }} {{ 'x' | int(5) }} "
                   "{{ '2.5' | float }} {{ 2.675 | round(2) }} {{ 2.5 | round }} {{ 3 | float }}"),
            "3 3 42 5 2.5 2.67 2.0 3.0");
  EXPECT_EQ(render("{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}"),
            "a\n  b\n\n  c|  a\n  b");
  EXPECT_EQ(render("{{ [1, 2, 3] | sum }} {{ [1, 5, 3] | max }} {{ [4, 2, 8] | min }} "
                   "{{ 'a b  c' | wordcount }} {{ '<a>' | e }} {{ 'x' | safe }}"),
            "6 5 2 3 &lt;a&gt; x");
}

TEST(Jinja, FormattingFilters) {
  EXPECT_EQ(render("{{ '%s-%d|%5.2f|%-4s|%r|%%|%03d' % ('a', 7, 3.14159, 'b', 'q', 5) }} "
                   "{{ '%s' % 'x' }} {{ '%s %s' | format(1, none) }} [{{ 'ab' | center(7) }}]"),
            "a-7| 3.14|b   |'q'|%|005 x 1 None [   ab  ]");
  EXPECT_EQ(
      render("{% set ns = namespace(k='v') %}{{ ns | attr('k') }}[{{ {'k': 1} | attr('k') }}]"),
      "v[]");
  EXPECT_EQ(render("{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "aba");
  EXPECT_NE(render_error("{{ '%s %s' % ('a',) }}").find("not enough arguments"), std::string::npos);
}

TEST(Jinja, Tests) {
  EXPECT_EQ(
      render("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 1 is number }} "
             "{{ 1 is integer }} {{ 1.0 is float }} {{ 'a' is string }} {{ true is boolean }}"),
      "False True True True True True True True");
  EXPECT_EQ(render("{{ [] is iterable }} {{ {} is mapping }} {{ 'a' is sequence }} {{ 4 is even }} "
                   "{{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(2) }}"),
            "True True True True True True False");
  EXPECT_EQ(render("{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 2 is eq 2 }} "
                   "{{ 2 is ne 2 }} {{ 5 is lt 7 }} {{ 5 is ge 7 }} {{ 1 is in [1] }}"),
            "True False True True False True False True");
  EXPECT_EQ(render("{{ 'abc' is lower }} {{ 'aBc' is upper }} {{ x is not defined }} "
                   "{{ 1 is not string }} {{ x is callable }} {{ range is callable }} "
                   "{{ strftime_now is defined }}"),
            "True False True True False True True");
}

TEST(Jinja, StringDictAndListMethods) {
  EXPECT_EQ(render("[{{ '  a  '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ ' a '.lstrip() }}]"
                   "[{{ ' a '.rstrip() }}][{{ '\\n\\nx\\n'.lstrip('\\n') }}]"),
            "[a][a][a ][ a][x\n]");
  EXPECT_EQ(render("{{ 'a  b c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} "
                   "{{ '  a  b  '.split(none, 1) }} {{ 'x</think>y'.split('</think>')[-1] }}"),
            "['a', 'b', 'c'] ['a', 'b', '', 'c'] ['a', 'b,c'] ['a', 'b  '] y");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} "
                   "{{ 'Hi'.upper() }} {{ 'Hi'.lower() }} {{ 'hello world'.title() }} "
                   "{{ 'aaa'.replace('a', 'b') }} {{ 'ab'.replace('', '-') }}"),
            "True True HI hi Hello World bbb -a-b-");
  EXPECT_EQ(render("{{ 'abc'.find('c') }} {{ 'abc'.find('z') }} {{ 'a-b-a'.count('a') }} "
                   "{{ ', '.join(['x', 'y']) }} {{ 'a\\nb\\r\\nc'.splitlines() }}"),
            "2 -1 2 x, y ['a', 'b', 'c']");
  EXPECT_EQ(render("{{ d.items() | list }} {{ d.keys() }} {{ d.values() }} {{ d.get('a') }} "
                   "{{ d.get('z') }} {{ d.get('z', 0) }}",
                   {{"d", {{"a", 1}, {"b", 2}}}}),
            "[('a', 1), ('b', 2)] ['a', 'b'] [1, 2] 1 None 0");
}

TEST(Jinja, WhitespaceControl) {
  // HF's settings: trim_blocks and lstrip_blocks; a single trailing newline is dropped.
  EXPECT_EQ(render("  {% if true %}\n  indented\n  {% endif %}\nend\n"), "  indented\nend");
  EXPECT_EQ(render("{%- if true -%}   x   {%- endif -%}   y"), "xy");
  EXPECT_EQ(render("a {# comment #} b {#- trimmed -#} c"), "a  bc");
  EXPECT_EQ(render("{% for i in [1, 2] %}\n    {{ i }}\n{% endfor %}\n"), "    1\n    2\n");
  EXPECT_EQ(render("  {%+ if true %}keep{% endif %}"), "  keep");
  EXPECT_EQ(render("   {{ 'var' }}   {% if false %}no{% else %}\nyes\n{% endif %}"),
            "   var   yes\n");
  EXPECT_EQ(render("a\n{{- ' b' }}\n{{ 'c' -}}\n d"), "a b\ncd");
  EXPECT_EQ(render("{{ {'a': {'b': 1}} }}"), "{'a': {'b': 1}}");
}

TEST(Jinja, GenerationBlockRendersItsBody) {
  EXPECT_EQ(render("{% generation %}reply{% endgeneration %}"), "reply");
}

// ---- errors and limits ----

TEST(JinjaErrors, SyntaxErrorsNameTheirPlace) {
  EXPECT_NE(render_error("Hi {{ name").find("line 1, column 4: unterminated '{{'"),
            std::string::npos);
  EXPECT_NE(render_error("a\n\n  {% if x").find("line 3, column 3: unterminated '{%'"),
            std::string::npos);
  EXPECT_NE(render_error("{# open").find("unterminated comment"), std::string::npos);
  EXPECT_NE(render_error("{{ 'abc }}").find("unterminated string literal"), std::string::npos);
  EXPECT_NE(render_error("{% if x %}yes").find("missing {% endif %}"), std::string::npos);
  EXPECT_NE(render_error("{% for x in y %}").find("missing {% endfor %}"), std::string::npos);
  EXPECT_NE(render_error("{% endif %}").find("unexpected tag 'endif'"), std::string::npos);
  EXPECT_NE(
      render_error("line1\n{{ foo | nope }}").find("line 2, column 10: unknown filter 'nope'"),
      std::string::npos);
  EXPECT_NE(render_error("{{ x is weird }}").find("unknown test 'weird'"), std::string::npos);
  EXPECT_NE(render_error("{% include 'x' %}").find("'include' tag is not supported"),
            std::string::npos);
  EXPECT_NE(render_error("{{ 1 + }}").find("expected an expression"), std::string::npos);
  EXPECT_NE(render_error("{{ a b }}").find("expected '}}'"), std::string::npos);
  EXPECT_NE(render_error("{% break %}").find("outside a for loop"), std::string::npos);
  EXPECT_NE(render_error("{{ 99999999999999999999 }}").find("does not fit"), std::string::npos);
  EXPECT_NE(render_error("{{ $ }}").find("unexpected character '$'"), std::string::npos);
}

TEST(JinjaErrors, RuntimeErrorsNameTheirPlace) {
  const std::string raised =
      render_error("ok\n  {{ raise_exception('Bad role: ' ~ role) }}", {{"role", "robot"}});
  EXPECT_NE(raised.find("line 2"), std::string::npos) << raised;
  EXPECT_NE(raised.find("Bad role: robot"), std::string::npos) << raised;
  EXPECT_NE(render_error("{{ x.y }}").find("undefined"), std::string::npos);
  EXPECT_NE(render_error("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(render_error("{{ 'a' + 1 }}").find("unsupported operand types for +"),
            std::string::npos);
  EXPECT_NE(render_error("{{ 1 < 'a' }}").find("'<' is not supported"), std::string::npos);
  EXPECT_NE(render_error("{{ 9223372036854775807 + 1 }}").find("integer overflow"),
            std::string::npos);
  EXPECT_NE(render_error("{% for x in 5 %}{% endfor %}").find("not iterable"), std::string::npos);
  EXPECT_NE(render_error("{{ 'abc'.nope() }}").find("has no method 'nope'"), std::string::npos);
  EXPECT_NE(render_error("{% set x = 1 %}{% set x.a = 2 %}").find("not a namespace"),
            std::string::npos);
  EXPECT_NE(render_error("{% set ns = namespace() %}{% set ns.self = ns %}").find("namespace"),
            std::string::npos);
  EXPECT_NE(render_error("{{ undefined_function() }}").find("'undefined_function' is undefined"),
            std::string::npos);
  EXPECT_NE(render_error("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").find("takes 1 arguments"),
            std::string::npos);
  EXPECT_NE(render_error("{{ [1, 2][::0] }}").find("slice step cannot be zero"), std::string::npos);
}

TEST(JinjaErrors, LimitsStopHostileTemplates) {
  jinja::JinjaLimits small;
  small.max_loop_iterations = 1000;
  EXPECT_NE(render_error("{% for i in range(10000) %}{% endfor %}", {}, small)
                .find("range exceeds the limit of 1000"),
            std::string::npos);
  EXPECT_NE(render_error("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}"
                         "{% endfor %}",
                         {}, small)
                .find("loop iteration limit of 1000"),
            std::string::npos);
  EXPECT_EQ(render("{% for i in range(999) %}{% endfor %}done", {}, small), "done");

  small.max_output_bytes = 1000;
  EXPECT_NE(render_error("{% for i in range(600) %}ab{% endfor %}", {}, small)
                .find("output exceeds the limit of 1000 bytes"),
            std::string::npos);
  EXPECT_NE(render_error("{{ 'x' * 100000 }}", {}, small).find("string repetition exceeds"),
            std::string::npos);
  EXPECT_NE(render_error("{% set ns = namespace(s='x') %}{% for i in range(20) %}"
                         "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                         {}, small)
                .find("over the limit of 1000"),
            std::string::npos);

  jinja::JinjaLimits work;
  work.max_work = 100000;
  EXPECT_NE(
      render_error("{% for i in range(100000) %}{{ i }}{% endfor %}", {}, work).find("work limit"),
      std::string::npos);

  EXPECT_NE(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
                .find("macro calls nest deeper than 64"),
            std::string::npos);
  EXPECT_NE(render_error("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}")
                .find("nests deeper than"),
            std::string::npos);
  EXPECT_NE(render_error("{{ " + std::string(5000, '[') + std::string(5000, ']') + " }}")
                .find("nests deeper than"),
            std::string::npos);
  EXPECT_NE(render_error("{% set ns = namespace(x=[]) %}{% for i in range(300) %}"
                         "{% set ns.x = [ns.x] %}{% endfor %}")
                .find("nests deeper than 256"),
            std::string::npos);
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i)
    chain += " + 1";
  EXPECT_NE(render_error(chain + " }}").find("expression nests deeper than 256"),
            std::string::npos);
  std::string attributes = "{{ x";
  for (int i = 0; i < 100000; ++i)
    attributes += ".a";
  EXPECT_NE(render_error(attributes + " }}").find("expression nests deeper than"),
            std::string::npos);
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 100000; ++i)
    filters += " | trim";
  EXPECT_NE(render_error(filters + " }}").find("expression nests deeper than"), std::string::npos);
  // Macros recursing through deep expressions hit the evaluation depth bound first.
  std::string deep = "f(n + 1)";
  for (int i = 0; i < 60; ++i)
    deep = "(" + deep + " + 0)";
  EXPECT_NE(render_error("{% macro f(n) %}{{ " + deep + " }}{% endmacro %}{{ f(0) }}")
                .find("template evaluation nests deeper than 600"),
            std::string::npos);
  std::string nested_ifs;
  for (int i = 0; i < 300; ++i)
    nested_ifs += "{% if true %}";
  EXPECT_NE(render_error(nested_ifs).find("nests deeper than"), std::string::npos);
}

TEST(JinjaErrors, ChatTemplateErrorsSayWhoFailed) {
  try {
    render_chat("{% for m in messages %}{{ m.content | bogus }}{% endfor %}", {{"user", "x"}}, true,
                "", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "chat template: template line 1, column 39: unknown filter 'bogus'");
  }
}

}  // namespace
}  // namespace floatllm
