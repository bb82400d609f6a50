// libFuzzer target for the Jinja interpreter: any input is parsed and, if it parses, rendered
// against a small chat context under tight limits. It must either render or raise
// floatllm::Error, never crash, hang or grow without bound.
#include <floatllm/chat/jinja.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi <think>x</think> there"},
      {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]}
    ],
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>"
  })");
  floatllm::jinja::JinjaLimits limits;
  limits.max_output_bytes = 1 << 16;
  limits.max_loop_iterations = 10000;
  limits.max_work = 2'000'000;
  limits.max_call_depth = 16;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  try {
    const floatllm::jinja::Template parsed(source, {}, limits);
    (void)parsed.render(context);
  } catch (const floatllm::Error&) {
  }
  return 0;
}
