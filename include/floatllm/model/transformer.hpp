// The forward pass of every supported architecture, in one place. An architecture is a policy
// (model/policies/) whose compile-time features switch the optional steps below on or off.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/model/model.hpp"
#include "floatllm/model/policy.hpp"

namespace floatllm {

template <class Policy>
class Transformer final : public Model {
 public:
  Transformer(GgufFile file, ModelConfig config) : Model(std::move(file), std::move(config)) {
    Policy::configure(config_, file_);
    if (!config_.rope_layout) config_.rope_layout = Policy::kRopeLayout;
    find_tensors();
  }

  std::string_view architecture_name() const override { return Policy::kName; }

  ArchitectureFeatures features() const override {
    ArchitectureFeatures f = features_of<Policy>();
    f.rope_layout = *config_.rope_layout;
    return f;
  }

  void forward(std::span<const int32_t> tokens, int64_t first_pos, ForwardContext& ctx,
               std::span<float> logits, LogitsFor which) const override {
    const ModelConfig& c = config_;
    const auto n = static_cast<int64_t>(tokens.size());
    check_batch(tokens, first_pos, ctx, logits, which);
    Workspace& ws = ctx.workspace;
    WeightSource& weights = ctx.weights;
    const Taps taps{ctx.trace, n, first_pos};

    weights.begin_layer(kEmbeddingLayer);
    const MatrixView embedding = matrix(weights, *tensors_.token_embedding);
    for (int64_t t = 0; t < n; ++t) {
      float* x = ws.x.get() + t * c.dim;
      kernels::get_row(embedding, tokens[static_cast<std::size_t>(t)], x);
      if constexpr (Policy::kScaleEmbedding) kernels::scale(x, c.dim, c.embedding_scale);
    }
    weights.end_layer(kEmbeddingLayer);
    taps(kEmbeddingLayer, "embedding", ws.x.get(), c.dim);

    for (int64_t layer = 0; layer < c.n_layers; ++layer) {
      if (ctx.backend != nullptr && ctx.backend->runs_layer(layer)) {
        ctx.backend->run_layer(layer, ws.x.get(), n, first_pos);
      } else {
        weights.begin_layer(layer);
        attention_block(layer, n, first_pos, ctx, taps);
        ffn_block(layer, n, ctx, taps);
        weights.end_layer(layer);
      }
      taps(layer, "layer_out", ws.x.get(), c.dim);
    }

    if (which == LogitsFor::kNone) return;
    const int64_t first_row = which == LogitsFor::kAllTokens ? 0 : n - 1;
    const int64_t rows = n - first_row;
    weights.begin_layer(c.n_layers);
    const float* norm = vector_data(weights, tensors_.output_norm);
    for (int64_t r = 0; r < rows; ++r) {
      kernels::rms_norm(ws.x.get() + (first_row + r) * c.dim, norm, c.dim, c.norm_eps,
                        ws.final_norm.get() + r * c.dim);
    }
    output_head(weights, ws.final_norm.get(), rows, logits.data(), ctx.pool);
    weights.end_layer(c.n_layers);
    if (c.final_softcap > 0) kernels::softcap(logits.data(), rows * c.vocab_size, c.final_softcap);
    Taps{ctx.trace, rows, first_pos + first_row}(c.n_layers, "logits", logits.data(), c.vocab_size);
  }

 private:
  static constexpr int64_t kEmbeddingLayer = -1;

  // Reports a [n_tokens][width] activation to the trace, if one is attached.
  struct Taps {
    Trace* trace;
    int64_t rows;
    int64_t first_pos;
    void operator()(int64_t layer, std::string_view point, const float* values,
                    int64_t width) const {
      if (trace != nullptr) trace->tap(layer, point, values, rows, width, first_pos);
    }
  };

  void check_batch(std::span<const int32_t> tokens, int64_t first_pos, const ForwardContext& ctx,
                   std::span<float> logits, LogitsFor which) const {
    const auto n = static_cast<int64_t>(tokens.size());
    const KvCache& cache = ctx.cache;
    const Workspace& ws = ctx.workspace;
    if (n == 0) fail("forward pass of an empty batch");
    if (n > ws.max_batch())
      fail("batch of ", n, " tokens exceeds the workspace's ", ws.max_batch());
    if (first_pos < 0 || first_pos + n > cache.context()) {
      fail("positions ", first_pos, "..", first_pos + n - 1, " exceed the context of ",
           cache.context(), " tokens");
    }
    for (int32_t token : tokens) {
      if (token < 0 || token >= config_.vocab_size) {
        fail("token id ", token, " is outside the vocabulary of ", config_.vocab_size);
      }
    }
    const int64_t rows = which == LogitsFor::kAllTokens ? n : (which == LogitsFor::kNone ? 0 : 1);
    if (static_cast<int64_t>(logits.size()) < rows * config_.vocab_size) {
      fail("logits buffer of ", logits.size(), " floats is smaller than ", rows, " x ",
           config_.vocab_size);
    }
  }

  // logits = output · final_norm, in blocks of rows when the weight source streams the head in
  // pieces; each logit is the same dot product either way.
  void output_head(WeightSource& weights, const float* in, int64_t rows, float* logits,
                   ThreadPool& pool) const {
    const GgufTensor& head = *tensors_.output;
    const int64_t vocab = config_.vocab_size;
    const int64_t block = std::clamp<int64_t>(weights.row_block(head), 1, vocab);
    if (block == vocab) {
      kernels::matmul(matrix(weights, head), in, rows, logits, pool);
      return;
    }
    std::vector<float> part(rows > 1 ? static_cast<std::size_t>(rows * block) : 0);
    for (int64_t first = 0; first < vocab; first += block) {
      const int64_t count = std::min(block, vocab - first);
      const MatrixView piece{head.type, count, static_cast<int64_t>(head.ne[0]),
                             weights.rows(head, first, count), head.row_bytes()};
      if (rows == 1) {
        kernels::matmul(piece, in, 1, logits + first, pool);
        continue;
      }
      kernels::matmul(piece, in, rows, part.data(), pool);
      for (int64_t r = 0; r < rows; ++r) {
        std::copy(part.begin() + r * count, part.begin() + (r + 1) * count,
                  logits + r * vocab + first);
      }
    }
  }

  void attention_block(int64_t layer, int64_t n, int64_t first_pos, ForwardContext& ctx,
                       const Taps& taps) const {
    const ModelConfig& c = config_;
    Workspace& ws = ctx.workspace;
    WeightSource& weights = ctx.weights;
    ThreadPool& pool = ctx.pool;
    const LayerTensors& lt = tensors_.layers[static_cast<std::size_t>(layer)];
    const LayerConfig& lc = c.layers[static_cast<std::size_t>(layer)];
    float* x = ws.x.get();
    float* xn = ws.xn.get();
    float* q = ws.q.get();
    float* k = ws.k.get();
    float* v = ws.v.get();

    const float* norm = vector_data(weights, lt.attn_norm);
    for (int64_t t = 0; t < n; ++t) {
      kernels::rms_norm(x + t * c.dim, norm, c.dim, c.norm_eps, xn + t * c.dim);
    }
    taps(layer, "attn_norm", xn, c.dim);

    kernels::matmul(matrix(weights, *lt.attn_q), xn, n, q, pool);
    kernels::matmul(matrix(weights, *lt.attn_k), xn, n, k, pool);
    kernels::matmul(matrix(weights, *lt.attn_v), xn, n, v, pool);
    if constexpr (Policy::kQkvBias) {
      add_to_rows(q, n, c.q_width(), vector_data(weights, lt.attn_q_bias));
      add_to_rows(k, n, c.kv_width(), vector_data(weights, lt.attn_k_bias));
      add_to_rows(v, n, c.v_width(), vector_data(weights, lt.attn_v_bias));
    }
    if constexpr (Policy::kFullQkNorm) {
      norm_rows(q, n, c.q_width(), vector_data(weights, lt.attn_q_norm));
      norm_rows(k, n, c.kv_width(), vector_data(weights, lt.attn_k_norm));
    }
    if constexpr (Policy::kQkNorm) {
      norm_rows(q, n * c.n_heads, c.head_dim, vector_data(weights, lt.attn_q_norm));
      norm_rows(k, n * c.n_kv_heads, c.head_dim, vector_data(weights, lt.attn_k_norm));
    }
    taps(layer, "q", q, c.q_width());
    taps(layer, "k", k, c.kv_width());
    taps(layer, "v", v, c.v_width());

    kernels::RopeParams rope;
    rope.layout = *c.rope_layout;
    rope.head_dim = c.head_dim;
    rope.rotary_dims = c.rope_dims;
    rope.freq_base = lc.rope_base;
    rope.freq_factors = vector_data(weights, tensors_.rope_factors);
    rope.freq_scale = lc.rope_freq_scale;
    if (c.rope_scaling == RopeScaling::kYarn) {
      rope.yarn_ext_factor = 1.0f;
      rope.yarn_orig_ctx = c.rope_original_context;
    }
    kernels::KvLayerView kv = ctx.cache.layer(layer);
    for (int64_t t = 0; t < n; ++t) {
      const int64_t pos = first_pos + t;
      kernels::rope(q + t * c.q_width(), c.n_heads, pos, rope);
      kernels::rope(k + t * c.kv_width(), c.n_kv_heads, pos, rope);
      kernels::store_kv_row(kv.type, k + t * c.kv_width(), c.kv_width(),
                            kv.k + static_cast<uint64_t>(pos) * kv.row_bytes);
      kernels::store_kv_row(kv.type, v + t * c.v_width(), c.v_width(),
                            kv.v + static_cast<uint64_t>(pos) * kv.row_bytes);
    }
    taps(layer, "q_rope", q, c.q_width());

    kernels::AttentionParams params;
    params.n_heads = c.n_heads;
    params.n_kv_heads = c.n_kv_heads;
    params.head_dim = c.head_dim;
    params.scale = c.attention_scale;
    params.softcap = c.attention_softcap;
    params.window = lc.sliding_window ? c.sliding_window : 0;
    kernels::attention(q, n, first_pos, kv, params, ws.attention.get(), pool);
    taps(layer, "attention", ws.attention.get(), c.q_width());

    float* projected = ws.projected.get();
    kernels::matmul(matrix(weights, *lt.attn_output), ws.attention.get(), n, projected, pool);
    if constexpr (Policy::kPostNorms) {
      norm_rows(projected, n, c.dim, vector_data(weights, lt.post_attention_norm));
    }
    taps(layer, "attn_out", projected, c.dim);
    kernels::add(x, projected, n * c.dim);
  }

  void ffn_block(int64_t layer, int64_t n, ForwardContext& ctx, const Taps& taps) const {
    const ModelConfig& c = config_;
    Workspace& ws = ctx.workspace;
    WeightSource& weights = ctx.weights;
    ThreadPool& pool = ctx.pool;
    const LayerTensors& lt = tensors_.layers[static_cast<std::size_t>(layer)];
    float* x = ws.x.get();
    float* xn = ws.xn.get();
    const float* norm = vector_data(weights, lt.ffn_norm);
    for (int64_t t = 0; t < n; ++t) {
      kernels::rms_norm(x + t * c.dim, norm, c.dim, c.norm_eps, xn + t * c.dim);
    }
    taps(layer, "ffn_norm", xn, c.dim);

    float* out = ws.ffn_out.get();
    if constexpr (Policy::kMoE) {
      experts(layer, n, ws, weights, pool);
      if constexpr (Policy::kSharedExpert) shared_expert(layer, n, ws, weights, pool);
    } else {
      gated_ffn(matrix(weights, *lt.ffn_gate), matrix(weights, *lt.ffn_up),
                matrix(weights, *lt.ffn_down), xn, n, ws, out, pool);
    }
    if constexpr (Policy::kPostNorms)
      norm_rows(out, n, c.dim, vector_data(weights, lt.post_ffn_norm));
    taps(layer, "ffn_out", out, c.dim);
    kernels::add(x, out, n * c.dim);
  }

  // out = down(act(gate · in) * (up · in)) for `n` rows of `in`.
  void gated_ffn(const MatrixView& gate, const MatrixView& up, const MatrixView& down,
                 const float* in, int64_t n, Workspace& ws, float* out, ThreadPool& pool) const {
    float* g = ws.gate.get();
    float* u = ws.up.get();
    kernels::matmul(gate, in, n, g, pool);
    kernels::matmul(up, in, n, u, pool);
    const int64_t width = n * gate.rows;
    if constexpr (Policy::kActivation == FfnActivation::kSilu) {
      kernels::silu_mul(g, u, width, g);
    } else {
      kernels::gelu_tanh_mul(g, u, width, g);
    }
    kernels::matmul(down, g, n, out, pool);
  }

  // Routes each token to its top experts and runs each chosen expert once over all the tokens
  // that chose it, so an expert's weights are read once per batch.
  void experts(int64_t layer, int64_t n, Workspace& ws, WeightSource& weights,
               ThreadPool& pool) const {
    const ModelConfig& c = config_;
    const LayerTensors& lt = tensors_.layers[static_cast<std::size_t>(layer)];
    const int64_t n_experts = c.expert_count;
    const int64_t k = c.experts_used;
    float* router = ws.router.get();
    kernels::matmul(matrix(weights, *lt.ffn_router), ws.xn.get(), n, router, pool);

    struct Assignment {
      int64_t token;
      float weight;
    };
    std::vector<std::vector<Assignment>> by_expert(static_cast<std::size_t>(n_experts));
    std::vector<int64_t> order(static_cast<std::size_t>(n_experts));
    std::vector<float> chosen(static_cast<std::size_t>(k));
    for (int64_t t = 0; t < n; ++t) {
      float* scores = router + t * n_experts;
      if constexpr (!Policy::kSoftmaxAfterTopK) kernels::softmax(scores, n_experts);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
        return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
      });
      for (int64_t i = 0; i < k; ++i)
        chosen[static_cast<std::size_t>(i)] = scores[order[i]];
      if constexpr (Policy::kSoftmaxAfterTopK) kernels::softmax(chosen.data(), k);
      if (c.normalize_expert_weights.value_or(Policy::kNormalizeExpertWeights)) {
        const float sum = std::accumulate(chosen.begin(), chosen.end(), 0.0f);
        for (float& w : chosen)
          w /= sum;
      }
      for (int64_t i = 0; i < k; ++i) {
        by_expert[static_cast<std::size_t>(order[i])].push_back(
            {t, chosen[static_cast<std::size_t>(i)]});
      }
    }

    float* out = ws.ffn_out.get();
    std::fill(out, out + n * c.dim, 0.0f);
    float* in = ws.expert_in.get();
    float* expert_out = ws.expert_out.get();
    for (int64_t e = 0; e < n_experts; ++e) {
      const auto& group = by_expert[static_cast<std::size_t>(e)];
      if (group.empty()) continue;
      const auto m = static_cast<int64_t>(group.size());
      for (int64_t i = 0; i < m; ++i) {
        const float* row = ws.xn.get() + group[static_cast<std::size_t>(i)].token * c.dim;
        std::copy(row, row + c.dim, in + i * c.dim);
      }
      gated_ffn(expert_matrix(weights, *lt.ffn_gate_experts, e),
                expert_matrix(weights, *lt.ffn_up_experts, e),
                expert_matrix(weights, *lt.ffn_down_experts, e), in, m, ws, expert_out, pool);
      for (int64_t i = 0; i < m; ++i) {
        const Assignment& a = group[static_cast<std::size_t>(i)];
        float* dst = out + a.token * c.dim;
        const float* src = expert_out + i * c.dim;
        for (int64_t d = 0; d < c.dim; ++d)
          dst[d] += a.weight * src[d];
      }
    }
  }

  // The always-on expert of Qwen-MoE, scaled per token by sigmoid(router_shared · x).
  void shared_expert(int64_t layer, int64_t n, Workspace& ws, WeightSource& weights,
                     ThreadPool& pool) const {
    const ModelConfig& c = config_;
    const LayerTensors& lt = tensors_.layers[static_cast<std::size_t>(layer)];
    float* shared = ws.expert_out.get();
    gated_ffn(matrix(weights, *lt.ffn_gate_shared), matrix(weights, *lt.ffn_up_shared),
              matrix(weights, *lt.ffn_down_shared), ws.xn.get(), n, ws, shared, pool);
    const float* gate = vector_data(weights, lt.ffn_router_shared);
    float* out = ws.ffn_out.get();
    for (int64_t t = 0; t < n; ++t) {
      const float logit = kernels::dot(gate, ws.xn.get() + t * c.dim, c.dim);
      const float scale = 1.0f / (1.0f + std::exp(-logit));
      for (int64_t d = 0; d < c.dim; ++d)
        out[t * c.dim + d] += scale * shared[t * c.dim + d];
    }
  }

  void add_to_rows(float* rows, int64_t n, int64_t width, const float* bias) const {
    for (int64_t t = 0; t < n; ++t)
      kernels::add(rows + t * width, bias, width);
  }

  // RMS-normalizes `n` rows of `width` values in place.
  void norm_rows(float* rows, int64_t n, int64_t width, const float* weight) const {
    for (int64_t r = 0; r < n; ++r) {
      kernels::rms_norm(rows + r * width, weight, width, config_.norm_eps, rows + r * width);
    }
  }

  void find_tensors() {
    ModelConfig& c = config_;
    const TensorFinder find(file_);
    const GgufTensor* embedding = file_.find_tensor("token_embd.weight");
    if (embedding == nullptr) fail(file_.source(), ": missing tensor 'token_embd.weight'");
    c.vocab_size = static_cast<int64_t>(embedding->ne[1]);
    const ArchKeys keys(file_, c.architecture);
    if (keys.has("vocab_size") && keys.get<int64_t>("vocab_size") != c.vocab_size) {
      fail(file_.source(), ": metadata says ", keys.get<int64_t>("vocab_size"),
           " tokens but token_embd.weight has ", c.vocab_size);
    }
    tensors_.token_embedding = matrix_tensor(find, "token_embd.weight", c.dim, c.vocab_size);
    tensors_.output_norm = find.vector("output_norm.weight", c.dim, true);
    tensors_.output = file_.find_tensor("output.weight") != nullptr
                          ? matrix_tensor(find, "output.weight", c.dim, c.vocab_size)
                          : tensors_.token_embedding;
    tensors_.rope_factors = find.vector("rope_freqs.weight", c.rope_dims / 2, false);

    tensors_.layers.resize(static_cast<std::size_t>(c.n_layers));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      LayerTensors& t = tensors_.layers[static_cast<std::size_t>(l)];
      const std::string p = concat("blk.", l, ".");
      t.attn_norm = find.vector(p + "attn_norm.weight", c.dim, true);
      t.attn_q = matrix_tensor(find, p + "attn_q.weight", c.dim, c.q_width());
      t.attn_k = matrix_tensor(find, p + "attn_k.weight", c.dim, c.kv_width());
      t.attn_v = matrix_tensor(find, p + "attn_v.weight", c.dim, c.v_width());
      t.attn_output = matrix_tensor(find, p + "attn_output.weight", c.q_width(), c.dim);
      if constexpr (Policy::kQkvBias) {
        t.attn_q_bias = find.vector(p + "attn_q.bias", c.q_width(), true);
        t.attn_k_bias = find.vector(p + "attn_k.bias", c.kv_width(), true);
        t.attn_v_bias = find.vector(p + "attn_v.bias", c.v_width(), true);
      }
      if constexpr (Policy::kQkNorm) {
        t.attn_q_norm = find.vector(p + "attn_q_norm.weight", c.head_dim, true);
        t.attn_k_norm = find.vector(p + "attn_k_norm.weight", c.head_dim, true);
      }
      if constexpr (Policy::kFullQkNorm) {
        t.attn_q_norm = find.vector(p + "attn_q_norm.weight", c.q_width(), true);
        t.attn_k_norm = find.vector(p + "attn_k_norm.weight", c.kv_width(), true);
      }
      if constexpr (Policy::kPostNorms) {
        t.post_attention_norm = find.vector(p + "post_attention_norm.weight", c.dim, true);
        t.post_ffn_norm = find.vector(p + "post_ffw_norm.weight", c.dim, true);
      }
      t.ffn_norm = find.vector(p + "ffn_norm.weight", c.dim, true);
      if constexpr (Policy::kMoE) {
        t.ffn_router = matrix_tensor(find, p + "ffn_gate_inp.weight", c.dim, c.expert_count);
        t.ffn_gate_experts =
            expert_tensor(find, p + "ffn_gate_exps.weight", c.dim, c.expert_ffn_dim);
        t.ffn_up_experts = expert_tensor(find, p + "ffn_up_exps.weight", c.dim, c.expert_ffn_dim);
        t.ffn_down_experts =
            expert_tensor(find, p + "ffn_down_exps.weight", c.expert_ffn_dim, c.dim);
      } else {
        t.ffn_gate = matrix_tensor(find, p + "ffn_gate.weight", c.dim, c.ffn_dim);
        t.ffn_up = matrix_tensor(find, p + "ffn_up.weight", c.dim, c.ffn_dim);
        t.ffn_down = matrix_tensor(find, p + "ffn_down.weight", c.ffn_dim, c.dim);
      }
      if constexpr (Policy::kSharedExpert) {
        const int64_t shared = c.shared_expert_ffn_dim;
        t.ffn_gate_shared = matrix_tensor(find, p + "ffn_gate_shexp.weight", c.dim, shared);
        t.ffn_up_shared = matrix_tensor(find, p + "ffn_up_shexp.weight", c.dim, shared);
        t.ffn_down_shared = matrix_tensor(find, p + "ffn_down_shexp.weight", shared, c.dim);
        t.ffn_router_shared = find.vector(p + "ffn_gate_inp_shexp.weight", c.dim, true);
      }
    }
  }

  const GgufTensor* matrix_tensor(const TensorFinder& find, const std::string& name, int64_t cols,
                                  int64_t rows) const {
    return computable(find.required(name, {cols, rows}));
  }

  const GgufTensor* expert_tensor(const TensorFinder& find, const std::string& name, int64_t cols,
                                  int64_t rows) const {
    return computable(find.required(name, {cols, rows, config_.expert_count}));
  }

  const GgufTensor* computable(const GgufTensor* t) const {
    if (!kernels::matmul_supports(t->type)) {
      fail(file_.source(), ": tensor '", t->name, "' is ", ggml_type_name(t->type),
           ", a type floatllm cannot compute with yet");
    }
    return t;
  }
};

}  // namespace floatllm
