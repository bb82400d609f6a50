// Random-weight models with the exact tensor names, shapes and metadata that llama.cpp GGUF files
// of real models carry, for benchmarks and memory tests that need size rather than knowledge.
//
// Weights are seeded and reproducible: every row draws from its own generator, keyed by the
// seed, the tensor and the row, so the result does not depend on the thread count. Values are
// approximately N(0, 1/fan_in) (standard deviation 1/sqrt(row length), from a sum of four
// uniforms: cheap, bounded at 3.5 sigma, close to normal for this purpose); norm weights are
// 1 + N(0, 0.02^2); Llama 3 models get their real rope_freqs factors. Block-quantized tensors are
// assembled from a pool of quantized random blocks (see BlockPools), because running the
// quantizer's scale search on every value would take minutes. Data is generated while the
// file is written, a batch of rows at a time on all threads, so memory stays at a few tens of
// megabytes whatever the model's size. The tokenizer section is copied from a real vocabulary
// and padded or cut to the model's vocabulary size.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/io/gguf_writer.hpp"
#include "floatllm/model/quant_mix.hpp"
#include "floatllm/quant/quantize.hpp"

namespace floatllm {

// Where a synthetic model takes its tokenizer from (paths relative to the shared models folder).
enum class SyntheticVocab : uint8_t { Llama3, Qwen2, Gemma, LlamaSentencePiece };

constexpr std::string_view default_vocab_file(SyntheticVocab vocab) {
  switch (vocab) {
    case SyntheticVocab::Llama3:
      return "synthetic/tiny-llama3-q8_0.gguf";  // the real 128256-token Llama 3 vocabulary
    case SyntheticVocab::Qwen2:
      return "synthetic/tiny-qwen3-f32.gguf";  // a small qwen2-style byte-level BPE
    case SyntheticVocab::Gemma:
      return "synthetic/tiny-gemma2-f32.gguf";  // a small SentencePiece vocabulary
    case SyntheticVocab::LlamaSentencePiece:
      return "llama.cpp-vocab/ggml-vocab-llama-spm.gguf";  // 32000 tokens, Mixtral's size
  }
  return {};
}

struct SyntheticModelSpec {
  std::string name;          // e.g. "llama-3.2-1b"
  std::string architecture;  // GGUF general.architecture: llama, qwen3, gemma2
  uint32_t vocab_size = 0;
  uint32_t embedding_length = 0;
  uint32_t block_count = 0;
  uint32_t head_count = 0;
  uint32_t head_count_kv = 0;
  uint32_t head_dim = 0;
  uint32_t feed_forward_length = 0;
  uint32_t context_length = 0;
  float rope_freq_base = 10000.0f;
  float rms_epsilon = 1e-5f;
  bool tied_embeddings = false;  // no output.weight: token_embd is also the output projection
  uint32_t expert_count = 0;
  uint32_t expert_used_count = 0;
  // Llama 3 RoPE scaling, stored by llama.cpp as the rope_freqs.weight tensor; 0 = none.
  float rope_scaling_factor = 0.0f;
  float rope_low_freq_factor = 1.0f;
  float rope_high_freq_factor = 4.0f;
  uint32_t rope_original_context = 8192;
  bool qk_norm = false;        // qwen3: attn_q_norm / attn_k_norm per head
  bool gemma2_extras = false;  // post-attention/post-FFN norms, sliding window, soft-capping
  uint32_t sliding_window = 0;
  float attn_logit_softcapping = 0.0f;
  float final_logit_softcapping = 0.0f;
  SyntheticVocab vocab = SyntheticVocab::Llama3;
};

namespace synthetic_detail {

inline SyntheticModelSpec llama_3_2_1b(std::string name) {
  SyntheticModelSpec s;
  s.name = std::move(name);
  s.architecture = "llama";
  s.vocab_size = 128256;
  s.embedding_length = 2048;
  s.block_count = 16;
  s.head_count = 32;
  s.head_count_kv = 8;
  s.head_dim = 64;
  s.feed_forward_length = 8192;
  s.context_length = 131072;
  s.rope_freq_base = 500000.0f;
  s.rms_epsilon = 1e-5f;
  s.tied_embeddings = true;
  s.rope_scaling_factor = 32.0f;
  s.vocab = SyntheticVocab::Llama3;
  return s;
}

inline SyntheticModelSpec llama_3_1_8b() {
  SyntheticModelSpec s = llama_3_2_1b("llama-3.1-8b");
  s.embedding_length = 4096;
  s.block_count = 32;
  s.head_dim = 128;
  s.feed_forward_length = 14336;
  s.tied_embeddings = false;
  s.rope_scaling_factor = 8.0f;
  return s;
}

inline SyntheticModelSpec qwen3_0_6b() {
  SyntheticModelSpec s;
  s.name = "qwen3-0.6b";
  s.architecture = "qwen3";
  s.vocab_size = 151936;
  s.embedding_length = 1024;
  s.block_count = 28;
  s.head_count = 16;
  s.head_count_kv = 8;
  s.head_dim = 128;
  s.feed_forward_length = 3072;
  s.context_length = 40960;
  s.rope_freq_base = 1000000.0f;
  s.rms_epsilon = 1e-6f;
  s.tied_embeddings = true;
  s.qk_norm = true;
  s.vocab = SyntheticVocab::Qwen2;
  return s;
}

inline SyntheticModelSpec gemma_2_2b() {
  SyntheticModelSpec s;
  s.name = "gemma-2-2b";
  s.architecture = "gemma2";
  s.vocab_size = 256000;
  s.embedding_length = 2304;
  s.block_count = 26;
  s.head_count = 8;
  s.head_count_kv = 4;
  s.head_dim = 256;
  s.feed_forward_length = 9216;
  s.context_length = 8192;
  s.rope_freq_base = 10000.0f;
  s.rms_epsilon = 1e-6f;
  s.tied_embeddings = true;
  s.gemma2_extras = true;
  s.sliding_window = 4096;
  s.attn_logit_softcapping = 50.0f;
  s.final_logit_softcapping = 30.0f;
  s.vocab = SyntheticVocab::Gemma;
  return s;
}

inline SyntheticModelSpec mixtral_8x7b() {
  SyntheticModelSpec s;
  s.name = "mixtral-8x7b";
  s.architecture = "llama";
  s.vocab_size = 32000;
  s.embedding_length = 4096;
  s.block_count = 32;
  s.head_count = 32;
  s.head_count_kv = 8;
  s.head_dim = 128;
  s.feed_forward_length = 14336;
  s.context_length = 32768;
  s.rope_freq_base = 1000000.0f;
  s.rms_epsilon = 1e-5f;
  s.expert_count = 8;
  s.expert_used_count = 2;
  s.vocab = SyntheticVocab::LlamaSentencePiece;
  return s;
}

// A quarter of every layer's weights: width, FFN and head counts halved, head size and layer
// count kept, so kernels see the real head geometry. The vocabulary stays real.
inline SyntheticModelSpec mini(SyntheticModelSpec s) {
  s.name += "-mini";
  s.embedding_length /= 2;
  s.feed_forward_length /= 2;
  s.head_count = std::max(1u, s.head_count / 2);
  s.head_count_kv = std::max(1u, s.head_count_kv / 2);
  return s;
}

}  // namespace synthetic_detail

inline std::vector<SyntheticModelSpec> synthetic_models() {
  using namespace synthetic_detail;
  std::vector<SyntheticModelSpec> bases{llama_3_2_1b("llama-3.2-1b"), llama_3_1_8b(), qwen3_0_6b(),
                                        gemma_2_2b(), mixtral_8x7b()};
  std::vector<SyntheticModelSpec> all;
  for (const auto& base : bases) {
    all.push_back(base);
    all.push_back(mini(base));
  }
  // The shape the benchmarks are quoted for: exactly Llama 3.2 1B.
  all.push_back(llama_3_2_1b("llama-1b-bench"));
  return all;
}

inline SyntheticModelSpec synthetic_model(std::string_view name) {
  std::string known;
  for (auto& spec : synthetic_models()) {
    if (spec.name == name) return spec;
    known += (known.empty() ? "" : ", ") + spec.name;
  }
  fail("unknown synthetic model '", name, "'; known: ", known);
}

// One tensor of a synthetic model and how its values are drawn.
struct SyntheticTensor {
  enum class Fill : uint8_t { Weight, Norm, RopeFreqs };
  std::string name;
  std::vector<uint64_t> ne;  // GGML order
  Fill fill;
};

inline std::vector<SyntheticTensor> synthetic_tensors(const SyntheticModelSpec& s) {
  using Fill = SyntheticTensor::Fill;
  const uint64_t dim = s.embedding_length;
  const uint64_t q_dim = uint64_t{s.head_count} * s.head_dim;
  const uint64_t kv_dim = uint64_t{s.head_count_kv} * s.head_dim;
  const uint64_t ffn = s.feed_forward_length;
  std::vector<SyntheticTensor> tensors;
  tensors.push_back({"token_embd.weight", {dim, s.vocab_size}, Fill::Weight});
  if (s.rope_scaling_factor > 0) {
    tensors.push_back({"rope_freqs.weight", {s.head_dim / 2}, Fill::RopeFreqs});
  }
  for (uint32_t layer = 0; layer < s.block_count; ++layer) {
    const std::string blk = "blk." + std::to_string(layer) + ".";
    tensors.push_back({blk + "attn_norm.weight", {dim}, Fill::Norm});
    tensors.push_back({blk + "attn_q.weight", {dim, q_dim}, Fill::Weight});
    tensors.push_back({blk + "attn_k.weight", {dim, kv_dim}, Fill::Weight});
    tensors.push_back({blk + "attn_v.weight", {dim, kv_dim}, Fill::Weight});
    tensors.push_back({blk + "attn_output.weight", {q_dim, dim}, Fill::Weight});
    if (s.qk_norm) {
      tensors.push_back({blk + "attn_q_norm.weight", {s.head_dim}, Fill::Norm});
      tensors.push_back({blk + "attn_k_norm.weight", {s.head_dim}, Fill::Norm});
    }
    if (s.gemma2_extras) tensors.push_back({blk + "post_attention_norm.weight", {dim}, Fill::Norm});
    tensors.push_back({blk + "ffn_norm.weight", {dim}, Fill::Norm});
    if (s.expert_count > 0) {
      const uint64_t experts = s.expert_count;
      tensors.push_back({blk + "ffn_gate_inp.weight", {dim, experts}, Fill::Weight});
      tensors.push_back({blk + "ffn_gate_exps.weight", {dim, ffn, experts}, Fill::Weight});
      tensors.push_back({blk + "ffn_up_exps.weight", {dim, ffn, experts}, Fill::Weight});
      tensors.push_back({blk + "ffn_down_exps.weight", {ffn, dim, experts}, Fill::Weight});
    } else {
      tensors.push_back({blk + "ffn_gate.weight", {dim, ffn}, Fill::Weight});
      tensors.push_back({blk + "ffn_up.weight", {dim, ffn}, Fill::Weight});
      tensors.push_back({blk + "ffn_down.weight", {ffn, dim}, Fill::Weight});
    }
    if (s.gemma2_extras) tensors.push_back({blk + "post_ffw_norm.weight", {dim}, Fill::Norm});
  }
  tensors.push_back({"output_norm.weight", {dim}, Fill::Norm});
  if (!s.tied_embeddings) tensors.push_back({"output.weight", {dim, s.vocab_size}, Fill::Weight});
  return tensors;
}

// Llama 3's per-frequency RoPE divisors: high frequencies keep theta, low frequencies are
// slowed by the scaling factor, and the band between is interpolated smoothly.
inline std::vector<float> llama3_rope_factors(const SyntheticModelSpec& s) {
  std::vector<float> factors(s.head_dim / 2);
  const double low_wavelength = s.rope_original_context / double{s.rope_low_freq_factor};
  const double high_wavelength = s.rope_original_context / double{s.rope_high_freq_factor};
  for (std::size_t i = 0; i < factors.size(); ++i) {
    const double frequency =
        std::pow(double{s.rope_freq_base}, -2.0 * static_cast<double>(i) / s.head_dim);
    const double wavelength = 2 * std::numbers::pi / frequency;
    if (wavelength < high_wavelength) {
      factors[i] = 1.0f;
    } else if (wavelength > low_wavelength) {
      factors[i] = s.rope_scaling_factor;
    } else {
      const double smooth = (s.rope_original_context / wavelength - s.rope_low_freq_factor) /
                            (s.rope_high_freq_factor - s.rope_low_freq_factor);
      factors[i] = static_cast<float>(1.0 / ((1 - smooth) / s.rope_scaling_factor + smooth));
    }
  }
  return factors;
}

namespace synthetic_detail {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t hash_name(std::string_view name) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (char c : name)
    hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return hash;
}

// Fills `row` with approximately normal values of mean `mean` and deviation `sigma`: four
// uniform 16-bit integers (mean 32767.5, variance ~65536^2 / 12 each) sum to mean 131070 and
// variance 65536^2 / 3, so the sum is centred and scaled by sqrt(3) / 65536.
inline void fill_normal(std::span<float> row, uint64_t seed, float mean, float sigma) {
  uint64_t state = seed;
  const float scale = sigma * std::sqrt(3.0f) / 65536.0f;
  const float offset = 4 * 32767.5f;
  for (float& value : row) {
    const uint64_t bits = splitmix64(state);
    const auto sum = static_cast<float>((bits & 0xffff) + ((bits >> 16) & 0xffff) +
                                        ((bits >> 32) & 0xffff) + (bits >> 48));
    value = mean + (sum - offset) * scale;
  }
}

// Runs body(begin, end) over [0, count) split among `threads` threads; rethrows the first
// exception any of them raised.
template <class Body>
void split_among_threads(uint64_t count, int threads, const Body& body) {
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto guarded = [&](uint64_t begin, uint64_t end) {
    try {
      body(begin, end);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
    }
  };
  const uint64_t used = std::max<uint64_t>(1, std::min<uint64_t>(threads, count));
  std::vector<std::thread> helpers;
  for (uint64_t t = 1; t < used; ++t)
    helpers.emplace_back(guarded, count * t / used, count * (t + 1) / used);
  guarded(0, count / used);
  for (auto& helper : helpers)
    helper.join();
  if (failure) std::rethrow_exception(failure);
}

// Quantizing is the slow part of synthesis (Q4_K's scale search costs ~100 ns per value), so
// block-quantized tensors draw each block at random from a pool of properly quantized blocks of
// N(0, 1/row_length) values: every value still follows the distribution, only the blocks repeat
// (1 in kPoolBlocks chance per pair), and a 1B model is assembled at memory speed.
inline constexpr uint64_t kPoolBlocks = 4096;

class BlockPools {
 public:
  BlockPools(uint64_t seed, int threads) : seed_(seed), threads_(threads) {}

  std::span<const std::byte> get(GgmlType type, uint64_t row_length) {
    const auto key = std::make_pair(type, row_length);
    auto it = pools_.find(key);
    if (it == pools_.end()) it = pools_.emplace(key, make(type, row_length)).first;
    return it->second;
  }

 private:
  std::vector<std::byte> make(GgmlType type, uint64_t row_length) const {
    const GgmlTypeTraits& traits = traits_of(type);
    std::vector<std::byte> pool(kPoolBlocks * traits.block_bytes);
    const float sigma = 1.0f / std::sqrt(static_cast<float>(row_length));
    const uint64_t pool_seed = seed_ ^ (static_cast<uint64_t>(type) << 56) ^ row_length;
    split_among_threads(kPoolBlocks, threads_, [&](uint64_t begin, uint64_t end) {
      std::vector<float> values(traits.block_elements);
      for (uint64_t b = begin; b < end; ++b) {
        fill_normal(values, pool_seed + b * 0x2545f4914f6cdd1dull, 0.0f, sigma);
        quantize_row(type, values.data(), pool.data() + b * traits.block_bytes,
                     traits.block_elements);
      }
    });
    return pool;
  }

  uint64_t seed_;
  int threads_;
  std::map<std::pair<GgmlType, uint64_t>, std::vector<std::byte>> pools_;
};

// Generates one tensor a batch of rows at a time (about 16 MiB of output per batch), the rows of
// a batch split among threads, and hands each batch to the sink.
inline void generate(TensorDataSink& sink, GgmlType type, const std::vector<uint64_t>& ne,
                     bool norm, uint64_t tensor_seed, int threads, BlockPools& pools) {
  const uint64_t row_length = ne[0];
  uint64_t rows = 1;
  for (std::size_t d = 1; d < ne.size(); ++d)
    rows *= ne[d];
  const GgmlTypeTraits& traits = traits_of(type);
  const uint64_t row_bytes = ggml_row_bytes(type, row_length);
  const float mean = norm ? 1.0f : 0.0f;
  const float sigma = norm ? 0.02f : 1.0f / std::sqrt(static_cast<float>(row_length));
  const bool from_pool = traits.block_elements > 1;
  const std::span<const std::byte> pool =
      from_pool ? pools.get(type, row_length) : std::span<const std::byte>{};
  const uint64_t batch_rows = std::max<uint64_t>(1, (uint64_t{16} << 20) / row_bytes);
  std::vector<std::byte> batch(std::min(rows, batch_rows) * row_bytes);
  for (uint64_t first = 0; first < rows; first += batch_rows) {
    const uint64_t count = std::min(batch_rows, rows - first);
    split_among_threads(count, threads, [&](uint64_t begin, uint64_t end) {
      std::vector<float> row(from_pool ? 0 : row_length);
      for (uint64_t r = begin; r < end; ++r) {
        const uint64_t row_seed = tensor_seed + (first + r) * 0x632be59bd9b4e019ull;
        std::byte* out = batch.data() + r * row_bytes;
        if (from_pool) {
          uint64_t state = row_seed;
          for (uint64_t b = 0; b < row_length / traits.block_elements; ++b) {
            const uint64_t pick = splitmix64(state) % kPoolBlocks;
            std::memcpy(out + b * traits.block_bytes, pool.data() + pick * traits.block_bytes,
                        traits.block_bytes);
          }
        } else {
          fill_normal(row, row_seed, mean, sigma);
          quantize_row(type, row.data(), out, static_cast<int64_t>(row_length));
        }
      }
    });
    sink.write(std::span<const std::byte>(batch.data(), count * row_bytes));
  }
}

// Adjusts the tokenizer.* metadata of a vocabulary file to `vocab_size` tokens: extra ids become
// unused "[PAD<id>]" tokens (score -1000, as llama.cpp's converter pads); a smaller model keeps
// the first ids, the merges among them, and special ids that still exist.
inline void copy_tokenizer(const GgufFile& vocab, uint32_t vocab_size, GgufWriter& writer) {
  const auto tokens_value = vocab.find("tokenizer.ggml.tokens");
  if (!tokens_value) fail(vocab.source(), ": no tokenizer.ggml.tokens to copy a vocabulary from");
  const std::vector<std::string_view> source_tokens = tokens_value->as_array().strings();
  const std::size_t kept = std::min<std::size_t>(source_tokens.size(), vocab_size);
  std::vector<std::string> tokens(source_tokens.begin(), source_tokens.begin() + kept);
  for (std::size_t id = kept; id < vocab_size; ++id)
    tokens.push_back("[PAD" + std::to_string(id) + "]");

  for (const auto& entry : vocab.metadata()) {
    const std::string_view key = entry.key;
    if (!key.starts_with("tokenizer.")) continue;
    if (key == "tokenizer.ggml.tokens") {
      writer.set(key, GgufMetadataValue::string_array(tokens));
    } else if (key == "tokenizer.ggml.scores") {
      std::vector<float> scores = entry.value.as_array().to_vector<float>();
      scores.resize(vocab_size, -1000.0f);
      writer.set(key, GgufMetadataValue::array(scores));
    } else if (key == "tokenizer.ggml.token_type") {
      std::vector<int32_t> types = entry.value.as_array().to_vector<int32_t>();
      types.resize(vocab_size, 5);  // llama.cpp's LLAMA_TOKEN_TYPE_UNUSED
      writer.set(key, GgufMetadataValue::array(types));
    } else if (key == "tokenizer.ggml.merges" && kept < source_tokens.size()) {
      const std::unordered_set<std::string_view> known(tokens.begin(), tokens.end());
      std::vector<std::string_view> merges;
      for (const std::string_view merge : entry.value.as_array().strings()) {
        const std::size_t space = merge.find(' ');
        if (space == std::string_view::npos) continue;
        const std::string joined =
            std::string(merge.substr(0, space)) + std::string(merge.substr(space + 1));
        if (known.contains(merge.substr(0, space)) && known.contains(merge.substr(space + 1)) &&
            known.contains(joined)) {
          merges.push_back(merge);
        }
      }
      writer.set(key, GgufMetadataValue::string_array(merges));
    } else if (key.ends_with("_token_id") && gguf_is_integer(entry.value.type()) &&
               entry.value.as<double>() >= vocab_size) {
      continue;
    } else {
      writer.set(key, GgufMetadataValue::copy_of(entry.value));
    }
  }
}

}  // namespace synthetic_detail

struct SynthesisOptions {
  uint64_t seed = 0;
  int threads = 0;  // 0: every hardware thread
};

// A writer holding the model's metadata and tensor producers; nothing is generated until its
// write() runs. The vocabulary is copied, so `vocab` need not outlive the writer.
inline GgufWriter make_synthetic_model(const SyntheticModelSpec& spec, QuantMix mix,
                                       const GgufFile& vocab, const SynthesisOptions& options) {
  using synthetic_detail::copy_tokenizer;
  GgufWriter writer;
  const std::string& arch = spec.architecture;
  auto key = [&arch](std::string_view suffix) { return arch + "." + std::string(suffix); };
  writer.set("general.architecture", arch);
  writer.set("general.name", spec.name + " (synthetic random weights)");
  writer.set("general.file_type", quant_mix_info(mix).file_type);
  if (quant_mix_is_quantized(mix)) writer.set("general.quantization_version", uint32_t{2});
  writer.set(key("context_length"), spec.context_length);
  writer.set(key("embedding_length"), spec.embedding_length);
  writer.set(key("block_count"), spec.block_count);
  writer.set(key("feed_forward_length"), spec.feed_forward_length);
  writer.set(key("attention.head_count"), spec.head_count);
  writer.set(key("attention.head_count_kv"), spec.head_count_kv);
  writer.set(key("rope.freq_base"), spec.rope_freq_base);
  writer.set(key("attention.layer_norm_rms_epsilon"), spec.rms_epsilon);
  writer.set(key("vocab_size"), spec.vocab_size);
  writer.set(key("rope.dimension_count"), spec.head_dim);
  if (spec.head_dim * spec.head_count != spec.embedding_length) {
    writer.set(key("attention.key_length"), spec.head_dim);
    writer.set(key("attention.value_length"), spec.head_dim);
  }
  if (spec.expert_count > 0) {
    writer.set(key("expert_count"), spec.expert_count);
    writer.set(key("expert_used_count"), spec.expert_used_count);
  }
  if (spec.gemma2_extras) {
    writer.set(key("attention.sliding_window"), spec.sliding_window);
    writer.set(key("attn_logit_softcapping"), spec.attn_logit_softcapping);
    writer.set(key("final_logit_softcapping"), spec.final_logit_softcapping);
  }
  copy_tokenizer(vocab, spec.vocab_size, writer);

  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const auto tensors = synthetic_tensors(spec);
  const auto pools = std::make_shared<synthetic_detail::BlockPools>(options.seed, threads);
  for (const SyntheticTensor& tensor : tensors) {
    const TensorTypeQuery query{tensor.name, tensor.ne, spec.block_count, spec.expert_count,
                                !spec.tied_embeddings};
    const GgmlType type = choose_tensor_type(mix, query);
    const uint64_t tensor_seed = options.seed ^ synthetic_detail::hash_name(tensor.name);
    if (tensor.fill == SyntheticTensor::Fill::RopeFreqs) {
      writer.add_tensor(tensor.name, type, tensor.ne, [spec](TensorDataSink& sink) {
        const std::vector<float> factors = llama3_rope_factors(spec);
        sink.write_values(std::span<const float>(factors));
      });
      continue;
    }
    const bool norm = tensor.fill == SyntheticTensor::Fill::Norm;
    writer.add_tensor(
        tensor.name, type, tensor.ne,
        [type, ne = tensor.ne, norm, tensor_seed, threads, pools](TensorDataSink& sink) {
          synthetic_detail::generate(sink, type, ne, norm, tensor_seed, threads, *pools);
        });
  }
  return writer;
}

}  // namespace floatllm
