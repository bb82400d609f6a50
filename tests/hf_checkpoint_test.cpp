// Hugging Face checkpoint directories as models: each shared synthetic GGUF model is written back
// as an HF checkpoint (names inverse-mapped, Llama Q/K rows un-permuted to rotate-half order,
// Gemma norms minus one, experts split into one tensor each, config.json from the metadata), and
// the directory must give the GGUF's logits and greedy ids. Hostile config.json files give
// errors that name the key.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "floatllm/floatllm.hpp"
#include "floatllm/io/safetensors_writer.hpp"
#include "floatllm/model/convert_hf.hpp"
#include "floatllm/model/hf_checkpoint.hpp"
#include "test_support.hpp"

namespace floatllm {
namespace {

using nlohmann::json;

// The HF name of a GGUF tensor (the inverse of hf_detail::map_tensor_name) or "" to skip it.
std::string hf_name(std::string_view gguf, bool gemma, bool mixtral, int64_t expert) {
  static const std::map<std::string_view, std::string_view> kLayer{
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"post_attention_norm.weight", "post_attention_layernorm.weight"},
      {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"},
      {"ffn_gate_shexp.weight", "mlp.shared_expert.gate_proj.weight"},
      {"ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight"},
      {"ffn_down_shexp.weight", "mlp.shared_expert.down_proj.weight"},
      {"ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight"},
  };
  if (gguf == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf == "output_norm.weight") return "model.norm.weight";
  if (gguf == "output.weight") return "lm_head.weight";
  if (!gguf.starts_with("blk.")) return "";
  const std::size_t dot = gguf.find('.', 4);
  const std::string prefix = concat("model.layers.", gguf.substr(4, dot - 4), ".");
  const std::string_view rest = gguf.substr(dot + 1);
  if (rest == "ffn_norm.weight") {
    return prefix +
           (gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight");
  }
  if (rest == "ffn_gate_inp.weight") {
    return prefix + (mixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight");
  }
  const std::string experts = mixtral ? concat("block_sparse_moe.experts.", expert, ".")
                                      : concat("mlp.experts.", expert, ".");
  if (rest == "ffn_gate_exps.weight")
    return prefix + experts + (mixtral ? "w1.weight" : "gate_proj.weight");
  if (rest == "ffn_up_exps.weight")
    return prefix + experts + (mixtral ? "w3.weight" : "up_proj.weight");
  if (rest == "ffn_down_exps.weight")
    return prefix + experts + (mixtral ? "w2.weight" : "down_proj.weight");
  const auto it = kLayer.find(rest);
  return it == kLayer.end() ? "" : prefix + std::string(it->second);
}

// GGUF llama files hold Q/K rows of each head as adjacent pairs; HF holds them as two halves.
std::vector<float> unpermute_rows(std::span<const float> w, int64_t heads, int64_t cols) {
  const int64_t rows = static_cast<int64_t>(w.size()) / cols;
  const int64_t hd = rows / heads;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t half = 0; half < 2; ++half) {
      for (int64_t i = 0; i < hd / 2; ++i) {
        const float* src = w.data() + (h * hd + 2 * i + half) * cols;
        std::copy(src, src + cols, out.data() + (h * hd + half * hd / 2 + i) * cols);
      }
    }
  }
  return out;
}

struct Written {
  std::filesystem::path dir;
  std::vector<std::vector<float>> buffers;
};

// Writes `gguf` (an F32 synthetic model) as an HF checkpoint directory.
void write_hf(const GgufFile& gguf, const std::filesystem::path& dir,
              const std::string& model_type) {
  std::filesystem::create_directories(dir);
  const std::string arch = gguf.get<std::string>("general.architecture");
  const auto key = [&](std::string_view k) { return concat(arch, ".", k); };
  const bool gemma = arch.starts_with("gemma");
  const bool llama = arch == "llama";
  const bool mixtral = model_type == "mixtral";
  const auto heads = gguf.get<int64_t>(key("attention.head_count"));
  const auto kv_heads = gguf.get_or<int64_t>(key("attention.head_count_kv"), heads);
  const auto dim = gguf.get<int64_t>(key("embedding_length"));
  const auto head_dim = gguf.get_or<int64_t>(key("attention.key_length"), dim / heads);

  json config = {
      {"model_type", model_type},
      {"hidden_size", dim},
      {"num_attention_heads", heads},
      {"num_key_value_heads", kv_heads},
      {"head_dim", head_dim},
      {"num_hidden_layers", gguf.get<int64_t>(key("block_count"))},
      {"vocab_size", gguf.tensor("token_embd.weight").ne[1]},
      {"max_position_embeddings", gguf.get_or<int64_t>(key("context_length"), 2048)},
      {"rms_norm_eps", gguf.get_or<float>(key("attention.layer_norm_rms_epsilon"), 1e-5f)},
      {"rope_theta", gguf.get_or<float>(key("rope.freq_base"), 10000.0f)}};
  const auto copy_int = [&](std::string_view gguf_key, const char* hf) {
    if (gguf.contains(key(gguf_key))) config[hf] = gguf.get<int64_t>(key(gguf_key));
  };
  const auto copy_float = [&](std::string_view gguf_key, const char* hf) {
    if (gguf.contains(key(gguf_key))) config[hf] = gguf.get<float>(key(gguf_key));
  };
  copy_int("feed_forward_length", "intermediate_size");
  copy_int("expert_count", mixtral ? "num_local_experts" : "num_experts");
  copy_int("expert_used_count", "num_experts_per_tok");
  copy_int("expert_feed_forward_length", "moe_intermediate_size");
  copy_int("expert_shared_feed_forward_length", "shared_expert_intermediate_size");
  copy_int("attention.sliding_window", "sliding_window");
  copy_float("attn_logit_softcapping", "attn_logit_softcapping");
  copy_float("final_logit_softcapping", "final_logit_softcapping");
  copy_float("rope.freq_base_swa", "rope_local_base_freq");
  if (gguf.contains(key("expert_weights_norm"))) {
    config["norm_topk_prob"] = gguf.get<bool>(key("expert_weights_norm"));
  }
  if (gguf.contains(key("rope.scaling.type"))) {
    config["rope_scaling"] = {{"rope_type", gguf.get<std::string>(key("rope.scaling.type"))},
                              {"factor", gguf.get<float>(key("rope.scaling.factor"))}};
  }
  std::ofstream(dir / "config.json") << config.dump(2);

  SafetensorsWriter writer;
  std::deque<std::vector<float>> owned;
  for (const GgufTensor& t : gguf.tensors()) {
    ASSERT_EQ(t.type, GgmlType::F32) << t.name;
    const std::span<const float> values = t.as<float>();
    const int64_t cols = static_cast<int64_t>(t.ne[0]);
    const int64_t rows = static_cast<int64_t>(t.ne[1]);
    const int64_t experts = static_cast<int64_t>(t.ne[2]);
    for (int64_t e = 0; e < experts; ++e) {
      const std::string name = hf_name(t.name, gemma, mixtral, e);
      if (name.empty()) continue;
      std::vector<float> data(values.begin() + e * rows * cols,
                              values.begin() + (e + 1) * rows * cols);
      if (llama && t.name.ends_with("attn_q.weight")) data = unpermute_rows(data, heads, cols);
      if (llama && t.name.ends_with("attn_k.weight")) data = unpermute_rows(data, kv_heads, cols);
      if (gemma && t.name.ends_with("norm.weight")) {
        for (float& v : data)
          v -= 1.0f;
      }
      std::vector<uint64_t> shape{uint64_t(rows), uint64_t(cols)};
      if (t.n_dims == 1) shape = {uint64_t(cols)};
      if (name.ends_with("shared_expert_gate.weight")) shape = {1, uint64_t(cols)};
      const std::vector<float>& kept = owned.emplace_back(std::move(data));
      writer.add_tensor(name, SafetensorsDtype::F32, shape,
                        std::as_bytes(std::span<const float>(kept)));
    }
  }
  writer.write(dir / "model.safetensors");
}

std::vector<float> all_logits(const Model& model, std::span<const int32_t> tokens) {
  const ModelConfig& config = model.config();
  const auto n = static_cast<int64_t>(tokens.size());
  KvCache cache(config, n, GgmlType::F32);
  Workspace workspace(config, n);
  MappedWeightSource weights;
  ThreadPool pool(1);
  std::vector<float> logits(static_cast<std::size_t>(n * config.vocab_size));
  ForwardContext context{cache, workspace, weights, pool};
  model.forward(tokens, 0, context, logits, LogitsFor::kAllTokens);
  return logits;
}

struct Case {
  const char* file;
  const char* model_type;
};

class HfCheckpointTest : public ::testing::TestWithParam<Case> {};

// Same weights, same math: only the order of additions could differ, and it does not (the
// un-permuted rows in the NeoX layout pair the same values), so logits agree to F32 rounding of
// the attention's reordered sums, well inside 1e-5 of logits of order 1.
TEST_P(HfCheckpointTest, SameLogitsAsItsGguf) {
  const Case c = GetParam();
  const auto path = test::model_path(concat("synthetic/", c.file));
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
  const auto dir = std::filesystem::path(::testing::TempDir()) / concat("hf-", c.file);
  std::filesystem::remove_all(dir);
  {
    const GgufFile gguf(path);
    write_hf(gguf, dir, c.model_type);
  }
  const auto reference = Model::open(path);
  const auto hf = Model::open(dir);
  ASSERT_EQ(hf->config().vocab_size, reference->config().vocab_size);
  ASSERT_EQ(hf->architecture_name(), reference->architecture_name());
  std::vector<int32_t> tokens;
  for (int32_t i = 0; i < 12; ++i)
    tokens.push_back((i * 37 + 5) % static_cast<int32_t>(reference->config().vocab_size));
  const std::vector<float> want = all_logits(*reference, tokens);
  const std::vector<float> got = all_logits(*hf, tokens);
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, double(std::fabs(want[i] - got[i])));
  EXPECT_LT(worst, 1e-5) << c.file;
  const int64_t vocab = reference->config().vocab_size;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    const auto argmax = [&](const std::vector<float>& l) {
      return std::max_element(l.begin() + t * vocab, l.begin() + (t + 1) * vocab) - l.begin();
    };
    EXPECT_EQ(argmax(got), argmax(want)) << "token " << t;
  }
  std::filesystem::remove_all(dir);
}

// convert(dir) at F32 is the original file again: the same tensors under the same names and
// shapes, byte for byte (Llama's Q/K permuted back, experts stacked, Gemma's norms plus one; the
// subtraction and addition of 1 round, so those are compared within one ulp of 1).
TEST_P(HfCheckpointTest, ConvertGivesTheOriginalTensors) {
  const Case c = GetParam();
  const auto path = test::model_path(concat("synthetic/", c.file));
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " missing";
  const auto dir = std::filesystem::path(::testing::TempDir()) / concat("hf-convert-", c.file);
  const auto out = std::filesystem::path(::testing::TempDir()) / concat("converted-", c.file);
  std::filesystem::remove_all(dir);
  const GgufFile original(path);
  write_hf(original, dir, c.model_type);
  {
    const HfCheckpointView view = open_hf_checkpoint(dir);
    make_gguf_from_hf(view, dir, {QuantMix::F32, 1}).write(out);
  }
  const GgufFile converted(out);
  EXPECT_EQ(converted.get<std::string>("general.architecture"),
            original.get<std::string>("general.architecture"));
  ASSERT_EQ(converted.tensors().size(), original.tensors().size());
  for (const GgufTensor& want : original.tensors()) {
    const GgufTensor* got = converted.find_tensor(want.name);
    ASSERT_NE(got, nullptr) << want.name;
    EXPECT_EQ(got->ne, want.ne) << want.name;
    ASSERT_EQ(got->type, GgmlType::F32) << want.name;
    const auto a = want.as<float>();
    const auto b = got->as<float>();
    ASSERT_EQ(a.size(), b.size());
    const bool plus_one =
        std::string_view(c.model_type).starts_with("gemma") && want.name.ends_with("norm.weight");
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_NEAR(a[i], b[i], plus_one ? 2.4e-7f * std::max(1.0f, std::fabs(a[i])) : 0.0f)
          << want.name << "[" << i << "]";
    }
  }
  std::filesystem::remove_all(dir);
  std::filesystem::remove(out);
}

INSTANTIATE_TEST_SUITE_P(Synthetic, HfCheckpointTest,
                         ::testing::Values(Case{"tiny-llama-f32.gguf", "llama"},
                                           Case{"tiny-qwen2-f32.gguf", "qwen2"},
                                           Case{"tiny-qwen3-f32.gguf", "qwen3"},
                                           Case{"tiny-gemma2-f32.gguf", "gemma2"},
                                           Case{"tiny-gemma3-f32.gguf", "gemma3_text"},
                                           Case{"tiny-mixtral-f32.gguf", "mixtral"},
                                           Case{"tiny-qwen2moe-f32.gguf", "qwen2_moe"},
                                           Case{"tiny-qwen3moe-f32.gguf", "qwen3_moe"},
                                           Case{"tiny-olmoe-f32.gguf", "olmoe"}));

void expect_config_error(const json& config, const std::string& fragment) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "hf-hostile";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.json") << config.dump();
  try {
    Model::open(dir);
    ADD_FAILURE() << "no error for " << config.dump();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(HfCheckpointHostile, ConfigErrorsNameTheKey) {
  const json good = {{"model_type", "llama"},  {"hidden_size", 64}, {"num_attention_heads", 4},
                     {"num_hidden_layers", 2}, {"vocab_size", 100}, {"intermediate_size", 128}};
  json missing = good;
  missing.erase("hidden_size");
  expect_config_error(missing, "missing key 'hidden_size'");
  json wrong = good;
  wrong["num_attention_heads"] = "four";
  expect_config_error(wrong, "'num_attention_heads' is \"four\", not an integer");
  json negative = good;
  negative["num_hidden_layers"] = -3;
  expect_config_error(negative, "not a plausible size");
  json unknown = good;
  unknown["model_type"] = "gpt_neox";
  expect_config_error(unknown, "model_type 'gpt_neox' is not supported");
  json scaling = good;
  scaling["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  expect_config_error(scaling, "unsupported rope_scaling type 'dynamic'");
  expect_config_error(good, "model.safetensors");  // no weights next to the config
}

// Tensors whose shapes do not fit config.json are refused by name at load time.
TEST(HfCheckpointHostile, InconsistentShapes) {
  const auto path = test::model_path("synthetic/tiny-qwen3-f32.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP();
  const auto dir = std::filesystem::path(::testing::TempDir()) / "hf-shapes";
  std::filesystem::remove_all(dir);
  {
    const GgufFile gguf(path);
    write_hf(gguf, dir, "qwen3");
  }
  std::ifstream in(dir / "config.json");
  json config = json::parse(in);
  config["intermediate_size"] = config["intermediate_size"].get<int64_t>() + 1;
  std::ofstream(dir / "config.json") << config.dump();
  try {
    Model::open(dir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ffn_gate.weight' has shape"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(dir);
}

// tokenizer.json -> tokenizer.ggml.* -> a tokenizer that encodes like the tokenizer.json one:
// Qwen 3 as a byte-level `gpt2` vocabulary, Mistral as a `llama` one whose scores come from the
// merge ranks. (Runs of spaces are left out for Mistral: there SentencePiece's score order and
// the fast tokenizer's merge ranks legitimately differ, "▁▁" + "spaces" vs "▁" + "▁spaces".)
TEST(HfCheckpointTokenizer, GgufMetadataEncodesLikeTokenizerJson) {
  const std::string text = "Hello world! It's 2026: naïve café, 12345 tokens\n\tindented text";
  for (const auto& [name, arch] :
       {std::pair{"qwen3", "qwen3"}, std::pair{"mistral-v0.1", "llama"}}) {
    const auto dir = test::model_path(concat("tokenizers/", name));
    if (!std::filesystem::exists(dir / "tokenizer.json")) continue;
    const Tokenizer from_json = Tokenizer::from_file(dir);
    const TokenizerSpec spec =
        tokenizer_spec_from_json(dir / "tokenizer.json", dir / "tokenizer_config.json");
    GgufWriter writer;
    writer.set("general.architecture", arch);
    convert_hf_detail::set_tokenizer(writer, spec, static_cast<int64_t>(spec.tokens.size()), arch);
    const auto out = std::filesystem::path(::testing::TempDir()) / concat("tok-", name, ".gguf");
    writer.write(out);
    const Tokenizer from_gguf = Tokenizer::from_gguf(GgufFile(out));
    EXPECT_EQ(from_gguf.encode(text), from_json.encode(text)) << name;
    std::filesystem::remove(out);
  }
}

// Llama 3 frequency factors: the three bands of llama.cpp's converter.
TEST(HfCheckpointConfig, Llama3RopeFactors) {
  const hf_detail::Config config(json::object(), "config.json");
  const json scaling = {{"rope_type", "llama3"},
                        {"factor", 8.0},
                        {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 8192}};
  const std::vector<float> f = hf_detail::llama3_rope_factors(config, scaling, 128, 500000.0f);
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(f.front(), 1.0f);  // highest frequency: wavelength 2π, far below 8192 / 4
  EXPECT_EQ(f.back(), 8.0f);   // lowest: wavelength ≫ 8192
  for (std::size_t i = 1; i < f.size(); ++i)
    EXPECT_GE(f[i], f[i - 1]);
  // A frequency in the blended band: index 30, freq = 500000^(-60/128), by the formula.
  const double freq = std::pow(500000.0, -60.0 / 128.0);
  const double wavelength = 2 * std::numbers::pi / freq;
  ASSERT_GT(wavelength, 2048.0);
  ASSERT_LT(wavelength, 8192.0);
  const double smooth = (8192.0 / wavelength - 1.0) / 3.0;
  EXPECT_NEAR(f[30], 1.0 / ((1 - smooth) / 8.0 + smooth), 1e-5);
}

}  // namespace
}  // namespace floatllm
