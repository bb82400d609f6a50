// Reads the reference outputs of an independent engine (llama.cpp) from shared/models: the
// `<stem>.<prompt>.ref.json` files described in MANIFEST.md.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace floatllm::test {

struct ReferenceLogits {
  int64_t pos = 0;
  int32_t argmax = 0;
  std::vector<std::pair<int32_t, float>> top;  // best first
  std::vector<float> all;                      // empty unless the file has the full vector
};

struct Reference {
  std::string model;
  std::string prompt;
  std::string kv_type;
  int64_t vocab_size = 0;
  std::vector<int32_t> tokens;
  std::vector<ReferenceLogits> prompt_logits;
  std::vector<int32_t> greedy_tokens;
  std::vector<ReferenceLogits> greedy_steps;  // logits that chose each greedy token
  std::string greedy_text;
};

inline ReferenceLogits read_logits(const nlohmann::json& j) {
  ReferenceLogits r;
  if (j.contains("pos")) r.pos = j.at("pos").get<int64_t>();
  if (j.contains("argmax")) r.argmax = j.at("argmax").get<int32_t>();
  if (j.contains("token") && !j.contains("argmax")) r.argmax = j.at("token").get<int32_t>();
  for (const auto& pair : j.at("top"))
    r.top.emplace_back(pair[0].get<int32_t>(), pair[1].get<float>());
  if (j.contains("logits")) r.all = j.at("logits").get<std::vector<float>>();
  return r;
}

inline Reference read_reference(const std::filesystem::path& path) {
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in);
  Reference r;
  r.model = j.at("model").get<std::string>();
  r.prompt = j.at("prompt").get<std::string>();
  r.kv_type = j.value("kv_type", "f32");
  r.vocab_size = j.at("n_vocab").get<int64_t>();
  r.tokens = j.at("tokens").get<std::vector<int32_t>>();
  for (const auto& p : j.at("prompt_logits"))
    r.prompt_logits.push_back(read_logits(p));
  const auto& greedy = j.at("greedy");
  r.greedy_tokens = greedy.at("tokens").get<std::vector<int32_t>>();
  r.greedy_text = greedy.value("text", "");
  for (const auto& s : greedy.at("steps"))
    r.greedy_steps.push_back(read_logits(s));
  return r;
}

}  // namespace floatllm::test
