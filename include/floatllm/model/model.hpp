// A loaded model: its file, configuration and tensors, and the forward pass of its architecture
// behind one virtual call per batch.
#pragma once

#include <hwy/aligned_allocator.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>

#include "floatllm/backend/layer_backend.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/model/config.hpp"
#include "floatllm/model/policy.hpp"
#include "floatllm/model/trace.hpp"
#include "floatllm/model/weights.hpp"
#include "floatllm/runtime/kv_cache.hpp"

namespace floatllm {

class Workspace;

// Which logits a forward pass writes: none (prefill of a chunk that is not the last), the last
// token's (generation), or every token's (tests and perplexity).
enum class LogitsFor { kNone, kLastToken, kAllTokens };

// Everything a forward pass works with besides the model: per-session state and services.
struct ForwardContext {
  KvCache& cache;
  Workspace& workspace;
  WeightSource& weights;
  ThreadPool& pool;
  Trace* trace = nullptr;
  LayerBackend* backend = nullptr;  // runs the blocks it owns instead of the CPU
};

// Scratch activations of one session, sized for batches of up to `max_batch` tokens. Kept apart
// from the model so that several sessions can share one model.
class Workspace {
 public:
  Workspace(const ModelConfig& c, int64_t max_batch) : max_batch_(max_batch) {
    const int64_t ffn = std::max({c.ffn_dim, c.expert_ffn_dim, c.shared_expert_ffn_dim});
    const auto alloc = [&](int64_t width) {
      return hwy::AllocateAligned<float>(
          static_cast<std::size_t>(std::max<int64_t>(1, max_batch * width)));
    };
    x = alloc(c.dim);
    xn = alloc(c.dim);
    q = alloc(c.q_width());
    k = alloc(c.kv_width());
    v = alloc(c.v_width());
    attention = alloc(c.q_width());
    projected = alloc(std::max(c.dim, c.q_width()));
    gate = alloc(ffn);
    up = alloc(ffn);
    ffn_out = alloc(c.dim);
    router = alloc(std::max<int64_t>(c.expert_count, 1));
    expert_in = alloc(c.dim);
    expert_out = alloc(c.dim);
    final_norm = alloc(c.dim);
  }

  int64_t max_batch() const { return max_batch_; }

  hwy::AlignedFreeUniquePtr<float[]> x, xn, q, k, v, attention, projected, gate, up, ffn_out,
      router, expert_in, expert_out, final_norm;

 private:
  int64_t max_batch_;
};

class Model {
 public:
  virtual ~Model() = default;

  const ModelConfig& config() const { return config_; }
  const GgufFile& file() const { return file_; }
  const ModelTensors& tensors() const { return tensors_; }
  virtual std::string_view architecture_name() const = 0;
  virtual ArchitectureFeatures features() const = 0;

  // Runs `tokens` at positions first_pos, first_pos + 1, ...: stores their keys and values in
  // the context's cache and writes the requested logits (vocab_size per token) to `logits`.
  virtual void forward(std::span<const int32_t> tokens, int64_t first_pos, ForwardContext& context,
                       std::span<float> logits, LogitsFor which) const = 0;

  // Opens a GGUF model or a Hugging Face checkpoint directory and picks its architecture's
  // implementation (model/registry.hpp).
  static std::unique_ptr<Model> open(const std::filesystem::path& path);

 protected:
  Model(GgufFile file, ModelConfig config) : file_(std::move(file)), config_(std::move(config)) {}

  GgufFile file_;
  ModelConfig config_;
  ModelTensors tensors_;
};

}  // namespace floatllm
