// A Hugging Face checkpoint directory written as the GGUF file llama.cpp's converter would write:
// its names and metadata keys (the checkpoint view of model/hf_checkpoint.hpp already uses them),
// Q/K rows permuted into adjacent pairs for `llama` files, experts stacked, tokenizer.ggml.* from
// tokenizer.json, and every tensor converted to the type a file-type mix chooses (quant_mix.hpp).
// Tensors are produced one at a time while the file is written, so the model never has to fit in
// memory.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "floatllm/io/gguf_writer.hpp"
#include "floatllm/model/hf_checkpoint.hpp"
#include "floatllm/model/quant_mix.hpp"
#include "floatllm/model/quantize_model.hpp"
#include "floatllm/tokenizer/tokenizer_json.hpp"

namespace floatllm {

namespace convert_hf_detail {

// GGUF llama row h*hd + 2i + half holds HF row h*hd + half*hd/2 + i.
inline std::vector<std::byte> pair_rows(const GgufTensor& t, int64_t heads) {
  const uint64_t row_bytes = t.row_bytes();
  const auto rows = static_cast<int64_t>(t.ne[1]);
  if (heads <= 0 || rows % heads != 0 || (rows / heads) % 2 != 0) {
    fail("tensor '", t.name, "': ", rows, " rows do not split into ", heads, " heads of even size");
  }
  const int64_t hd = rows / heads;
  std::vector<std::byte> out(t.data.size());
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      for (int64_t half = 0; half < 2; ++half) {
        const std::byte* src = t.data.data() + uint64_t(h * hd + half * hd / 2 + i) * row_bytes;
        std::copy(src, src + row_bytes, out.data() + uint64_t(h * hd + 2 * i + half) * row_bytes);
      }
    }
  }
  return out;
}

inline void write_as(TensorDataSink& sink, const GgufTensor& t, GgmlType target, ThreadPool& pool) {
  if (t.type == target) {
    sink.write(t.data);
  } else {
    quantize_model_detail::convert_rows(sink, t, target, pool);
  }
}

// Scores for a `llama` (SentencePiece) vocabulary, which merges the pair whose token scores
// highest. A tokenizer.json BPE has merge ranks instead: a token made by merge r scores -r, so
// the highest score is the lowest rank, as in the BPE it came from; tokens no merge makes score
// below all of them.
inline std::vector<float> scores_of(const TokenizerSpec& spec, std::size_t count) {
  if (spec.scores.size() == count) return spec.scores;
  std::unordered_map<std::string, std::size_t> ids;
  for (std::size_t id = 0; id < spec.tokens.size(); ++id)
    ids.emplace(spec.tokens[id], id);
  std::vector<float> scores(count, 0.0f);
  std::vector<bool> scored(count, false);
  for (std::size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto it = ids.find(spec.merges[rank].first + spec.merges[rank].second);
    if (it == ids.end() || scored[it->second]) continue;
    scores[it->second] = -static_cast<float>(rank);
    scored[it->second] = true;
  }
  for (std::size_t id = 0; id < count; ++id) {
    if (!scored[id]) scores[id] = -static_cast<float>(spec.merges.size() + id);
  }
  return scores;
}

// tokenizer.ggml.* as llama.cpp's converter writes them.
inline void set_tokenizer(GgufWriter& writer, const TokenizerSpec& spec, int64_t vocab_rows,
                          std::string_view architecture) {
  std::vector<std::string> tokens = spec.tokens;
  std::vector<int32_t> types;
  for (TokenType type : spec.types)
    types.push_back(static_cast<int32_t>(type));
  types.resize(tokens.size(), static_cast<int32_t>(TokenType::Normal));
  // Checkpoints pad the embedding beyond the vocabulary; the converter names the padding.
  for (auto id = static_cast<int64_t>(tokens.size()); id < vocab_rows; ++id) {
    tokens.push_back(concat("[PAD", id, "]"));
    types.push_back(static_cast<int32_t>(TokenType::Unused));
  }
  const bool gpt2 = spec.byte_level;
  writer.set("tokenizer.ggml.model", gpt2 ? "gpt2" : "llama");
  std::string pre = spec.pre;
  if (pre.empty() && gpt2) {
    pre = architecture.starts_with("qwen") ? "qwen2"
          : architecture == "llama"        ? "llama-bpe"
                                           : "default";
  }
  if (!pre.empty()) writer.set("tokenizer.ggml.pre", pre);
  writer.set("tokenizer.ggml.tokens", GgufMetadataValue::string_array(tokens));
  writer.set("tokenizer.ggml.token_type", GgufMetadataValue::array(types));
  if (!gpt2) {
    writer.set("tokenizer.ggml.scores", GgufMetadataValue::array(scores_of(spec, tokens.size())));
  }
  if (!spec.merges.empty()) {
    std::vector<std::string> merges;
    for (const auto& [a, b] : spec.merges)
      merges.push_back(concat(a, " ", b));
    writer.set("tokenizer.ggml.merges", GgufMetadataValue::string_array(merges));
  }
  const auto id = [&](const char* key, const std::optional<int32_t>& value) {
    if (value) writer.set(key, static_cast<uint32_t>(*value));
  };
  id("tokenizer.ggml.bos_token_id", spec.special.bos);
  id("tokenizer.ggml.eos_token_id", spec.special.eos);
  id("tokenizer.ggml.eot_token_id", spec.special.eot);
  id("tokenizer.ggml.unknown_token_id", spec.special.unk);
  id("tokenizer.ggml.padding_token_id", spec.special.pad);
  const bool adds_bos =
      !spec.prefix.empty() && spec.special.bos && spec.prefix.front() == *spec.special.bos;
  writer.set("tokenizer.ggml.add_bos_token", adds_bos);
  if (spec.chat_template) writer.set("tokenizer.chat_template", *spec.chat_template);
}

}  // namespace convert_hf_detail

struct ConvertHfOptions {
  QuantMix mix = QuantMix::F16;
  int threads = 0;  // 0: every hardware thread
};

// A GGUF writer for the checkpoint in `view`; the view must stay open until write() has finished.
inline GgufWriter make_gguf_from_hf(const HfCheckpointView& view, const std::filesystem::path& dir,
                                    const ConvertHfOptions& options = {}) {
  using namespace convert_hf_detail;
  const GgufFile& source = view.file;
  GgufWriter writer;
  writer.copy_metadata(source);
  writer.set("general.file_type", quant_mix_info(options.mix).file_type);
  writer.set("general.quantization_version", uint32_t{2});

  const auto arch = source.get<std::string>("general.architecture");
  const auto layers = source.get<uint32_t>(arch + ".block_count");
  const uint32_t experts = source.get_or<uint32_t>(arch + ".expert_count", 0);
  const auto heads = source.get<int64_t>(arch + ".attention.head_count");
  const auto kv_heads = source.get<int64_t>(arch + ".attention.head_count_kv");
  const bool has_output = source.find_tensor("output.weight") != nullptr;
  const GgufTensor& embedding = source.tensor("token_embd.weight");

  if (std::filesystem::exists(dir / "tokenizer.json")) {
    const auto config = dir / "tokenizer_config.json";
    const TokenizerSpec spec = tokenizer_spec_from_json(
        dir / "tokenizer.json", std::filesystem::exists(config) ? config : std::filesystem::path());
    set_tokenizer(writer, spec, static_cast<int64_t>(embedding.ne[1]), arch);
  }

  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const auto pool = std::make_shared<ThreadPool>(threads);
  for (const GgufTensor& tensor : source.tensors()) {
    const std::span<const uint64_t> ne(tensor.ne.data(), tensor.n_dims);
    const GgmlType target =
        choose_tensor_type(options.mix, {tensor.name, ne, layers, experts, has_output});
    if (target != tensor.type && (!can_dequantize(tensor.type) || !can_quantize(target))) {
      fail(source.source(), ": tensor '", tensor.name, "': cannot convert ",
           ggml_type_name(tensor.type), " to ", ggml_type_name(target));
    }
    int64_t pair_heads = 0;
    if (view.rotate_half_qk && tensor.name.ends_with(".attn_q.weight")) pair_heads = heads;
    if (view.rotate_half_qk && tensor.name.ends_with(".attn_k.weight")) pair_heads = kv_heads;
    writer.add_tensor(tensor.name, target, std::vector<uint64_t>(ne.begin(), ne.end()),
                      [&tensor, target, pair_heads, pool](TensorDataSink& sink) {
                        if (pair_heads > 0) {
                          const std::vector<std::byte> paired = pair_rows(tensor, pair_heads);
                          GgufTensor view_of_paired = tensor;
                          view_of_paired.data = paired;
                          write_as(sink, view_of_paired, target, *pool);
                        } else if (!tensor.expert_blocks.empty()) {
                          for (const std::byte* block : tensor.expert_blocks) {
                            GgufTensor expert = tensor;
                            expert.n_dims = 2;
                            expert.ne[2] = 1;
                            expert.element_count = tensor.ne[0] * tensor.ne[1];
                            expert.data = {block, expert.element_count == 0
                                                      ? 0
                                                      : tensor.row_bytes() * tensor.ne[1]};
                            expert.expert_blocks = {};
                            write_as(sink, expert, target, *pool);
                          }
                        } else {
                          write_as(sink, tensor, target, *pool);
                        }
                      });
  }
  return writer;
}

}  // namespace floatllm
