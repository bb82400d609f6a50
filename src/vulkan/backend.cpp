// VulkanBackend: the blocks of a transformer on a Vulkan device, step for step the math of
// Transformer<Policy>::attention_block and ffn_block (model/transformer.hpp), with the policy's
// features read at run time from Model::features().
//
// Mixture of experts: the router runs on the device (softmax too when it comes before top-k);
// its probabilities are read back and the top-k choice is made on the host exactly as the CPU
// does it, then each chosen expert runs on the device over the tokens routed to it.
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <numeric>
#include <span>
#include <thread>
#include <vector>

#include "compute.hpp"
#include "floatllm/backend/device_memory.hpp"
#include "floatllm/backend/vulkan/vulkan_backend.hpp"
#include "floatllm/core/error.hpp"
#include "floatllm/model/model.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"
#include "ops.hpp"
#include "uploader.hpp"

namespace floatllm::vulkan {

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// A block's weights on the device.
struct Layer {
  Buffer attn_norm, q_bias, k_bias, v_bias, q_norm, k_norm, post_attention_norm, ffn_norm,
      post_ffn_norm;
  DeviceMatrix q, k, v, o, gate, up, down, router, gate_shared, up_shared, down_shared,
      router_shared;
  std::vector<DeviceMatrix> gate_experts, up_experts, down_experts;
};

// The weights of the first `count` blocks (and the RoPE frequency factors) on the device, placed at
// once and uploaded block after block on a thread of their own, so the first forward pass can
// start on block 0 while later blocks are still on their way. Backends made by Backend::share()
// read the same Blocks.
class Blocks {
 public:
  Blocks(const Model& model, std::shared_ptr<Context> context, int64_t count)
      : model_(model), context_(std::move(context)), count_(count) {
    check_ranges();
    // Every buffer is placed before the first upload, so a device that cannot hold them fails
    // here rather than on the upload thread.
    const ModelTensors& tensors = model.tensors();
    for (int64_t l = 0; l < count_; ++l)
      allocate_layer(tensors.layers[static_cast<std::size_t>(l)], layers_.emplace_back());
    if (const GgufTensor* factors = tensors.rope_factors) {
      rope_factors_ = allocate(factors->byte_size(), "RoPE frequency factors");
      Uploader uploader(*context_);
      uploader.upload(rope_factors_, factors->data.data(), factors->byte_size());
      uploader.finish();
    }
    uploads_ = std::thread([this] { upload_layers(); });
  }

  ~Blocks() {
    stop_ = true;
    uploads_.join();
  }

  uint64_t bytes() const { return bytes_; }
  const std::shared_ptr<Context>& context_handle() const { return context_; }
  const Buffer* rope_factors() const { return rope_factors_ ? &rope_factors_ : nullptr; }

  // Block `layer`, once it is on the device.
  const Layer& wait_for(int64_t layer) {
    std::unique_lock lock(upload_mutex_);
    upload_done_.wait(lock, [&] { return uploaded_ > layer || upload_error_ != nullptr; });
    if (uploaded_ <= layer) std::rethrow_exception(upload_error_);
    return layers_[static_cast<std::size_t>(layer)];
  }

 private:
  // Refuses a matrix larger than one shader binding can address.
  void check_ranges() const {
    const uint64_t max_range = context_->device.limits().maxStorageBufferRange;
    for (int64_t l = 0; l < count_; ++l) {
      for (const GgufTensor* t : model_.tensors().layers[static_cast<std::size_t>(l)].all()) {
        const uint64_t one = device_memory_detail::matrix_bytes(*t);
        if (one > max_range) {
          fail("Vulkan backend: tensor '", t->name, "' needs ", one / kMiB,
               " MiB on the device, more than one shader binding can address on '",
               context_->device.info().name, "' (", max_range / kMiB, " MiB)");
        }
      }
    }
  }

  Buffer allocate(uint64_t bytes, std::string_view what) {
    Buffer buffer = context_->device_memory.allocate(bytes, what);
    bytes_ += bytes;
    return buffer;
  }

  // Calls vector(tensor, buffer) for each norm and bias of a block and matrix(tensor, slice,
  // device_matrix) for each of its matrices (every expert's slice of a stacked tensor).
  template <class Vector, class Matrix>
  static void for_each_tensor(const LayerTensors& t, Layer& d, Vector&& vector, Matrix&& matrix) {
    const auto one = [&](const GgufTensor* tensor, Buffer& out) {
      if (tensor != nullptr) vector(*tensor, out);
    };
    const auto dense = [&](const GgufTensor* tensor, DeviceMatrix& out) {
      if (tensor != nullptr) matrix(*tensor, 0, out);
    };
    const auto experts = [&](const GgufTensor* tensor, std::vector<DeviceMatrix>& out) {
      if (tensor == nullptr) return;
      out.resize(tensor->ne[2]);
      for (uint64_t e = 0; e < tensor->ne[2]; ++e)
        matrix(*tensor, e, out[e]);
    };
    one(t.attn_norm, d.attn_norm);
    one(t.attn_q_bias, d.q_bias);
    one(t.attn_k_bias, d.k_bias);
    one(t.attn_v_bias, d.v_bias);
    one(t.attn_q_norm, d.q_norm);
    one(t.attn_k_norm, d.k_norm);
    one(t.post_attention_norm, d.post_attention_norm);
    one(t.ffn_norm, d.ffn_norm);
    one(t.post_ffn_norm, d.post_ffn_norm);
    dense(t.attn_q, d.q);
    dense(t.attn_k, d.k);
    dense(t.attn_v, d.v);
    dense(t.attn_output, d.o);
    dense(t.ffn_gate, d.gate);
    dense(t.ffn_up, d.up);
    dense(t.ffn_down, d.down);
    dense(t.ffn_router, d.router);
    dense(t.ffn_gate_shared, d.gate_shared);
    dense(t.ffn_up_shared, d.up_shared);
    dense(t.ffn_down_shared, d.down_shared);
    dense(t.ffn_router_shared, d.router_shared);
    experts(t.ffn_gate_experts, d.gate_experts);
    experts(t.ffn_up_experts, d.up_experts);
    experts(t.ffn_down_experts, d.down_experts);
  }

  // Places a block's buffers; matrices of a type no shader reads get room for F32.
  void allocate_layer(const LayerTensors& t, Layer& d) {
    for_each_tensor(
        t, d,
        [&](const GgufTensor& tensor, Buffer& out) {
          out = allocate(tensor.byte_size(), tensor.name);
        },
        [&](const GgufTensor& tensor, uint64_t, DeviceMatrix& m) {
          m.format = device_format(tensor.type);
          m.activation_group = activation_group(tensor.type);
          m.rows = static_cast<uint32_t>(tensor.ne[1]);
          m.cols = static_cast<uint32_t>(tensor.ne[0]);
          m.row_bytes = static_cast<uint32_t>(ggml_row_bytes(ggml_type_of(m.format), tensor.ne[0]));
          m.buffer = allocate(device_memory_detail::matrix_bytes(tensor), tensor.name);
        });
  }

  void upload_layers() {
    try {
      Uploader uploader(*context_);
      const ModelTensors& tensors = model_.tensors();
      for (int64_t l = 0; l < count_ && !stop_; ++l) {
        const LayerTensors& block = tensors.layers[static_cast<std::size_t>(l)];
        upload_layer(uploader, block, layers_[static_cast<std::size_t>(l)]);
        uploader.finish();
        release_host_pages(block);
        const std::lock_guard guard(upload_mutex_);
        uploaded_ = l + 1;
        upload_done_.notify_all();
      }
    } catch (...) {
      const std::lock_guard guard(upload_mutex_);
      upload_error_ = std::current_exception();
      upload_done_.notify_all();
    }
  }

  // The host reads a device block's weights only to upload them: their pages of the model's
  // mapping are dropped afterwards, so they stay out of the process's resident memory as the
  // memory plan assumes (a later read pages them in again from the file).
  void release_host_pages(const LayerTensors& block) const {
    const std::span<const std::byte> mapped = model_.file().mapping().bytes();
    const auto begin = reinterpret_cast<std::uintptr_t>(mapped.data());
    for (const GgufTensor* t : block.all()) {
      const auto at = reinterpret_cast<std::uintptr_t>(t->data.data());
      if (at < begin || at + t->byte_size() > begin + mapped.size()) continue;
      model_.file().mapping().advise(at - begin, t->byte_size(), MADV_DONTNEED);
    }
  }

  void upload_layer(Uploader& up, const LayerTensors& t, Layer& d) {
    for_each_tensor(
        t, d,
        [&](const GgufTensor& tensor, Buffer& out) {
          up.upload(out, tensor.data.data(), tensor.byte_size());
        },
        [&](const GgufTensor& tensor, uint64_t slice, DeviceMatrix& m) {
          upload_matrix(up, tensor, slice, m);
        });
  }

  // Matrix `slice` of a tensor (the expert, or 0), converted when no shader reads its type.
  static void upload_matrix(Uploader& up, const GgufTensor& t, uint64_t slice,
                            const DeviceMatrix& m) {
    const GgmlType stored = ggml_type_of(m.format);
    const uint64_t src_row_bytes = t.row_bytes();
    const std::byte* src = t.data.data() + slice * src_row_bytes * m.rows;
    if (stored == t.type) {
      up.upload(m.buffer, src, src_row_bytes * m.rows);
      return;
    }
    std::vector<float> row(m.cols);
    const auto cols = static_cast<int64_t>(m.cols);
    up.upload(m.buffer, m.rows, m.row_bytes, [&](uint64_t first, uint64_t count, std::byte* out) {
      for (uint64_t r = 0; r < count; ++r) {
        dequantize_row(t.type, src + (first + r) * src_row_bytes, row.data(), cols);
        std::byte* dst = out + r * m.row_bytes;
        if (stored == GgmlType::F32) {
          std::memcpy(dst, row.data(), m.row_bytes);
          continue;
        }
        for (int64_t i = 0; i < cols; ++i) {
          const uint16_t half = f32_to_fp16(row[static_cast<std::size_t>(i)]);
          std::memcpy(dst + 2 * i, &half, 2);
        }
      }
    });
  }

  const Model& model_;
  std::shared_ptr<Context> context_;
  int64_t count_ = 0;
  uint64_t bytes_ = 0;
  std::vector<Layer> layers_;
  Buffer rope_factors_;

  std::mutex upload_mutex_;
  std::condition_variable upload_done_;
  int64_t uploaded_ = 0;
  std::exception_ptr upload_error_;
  std::atomic<bool> stop_{false};
  std::thread uploads_;
};

// One block's K and V on the device: every session has its own.
struct LayerCache {
  Buffer k, v;
};

class VulkanBackend final : public Backend {
 public:
  VulkanBackend(const Model& model, const VulkanOptions& options)
      : VulkanBackend(model, options, nullptr) {}

  // A backend with its own KV cache and activations over the blocks of `blocks` (shared), or
  // over blocks of its own when `blocks` is null.
  VulkanBackend(const Model& model, const VulkanOptions& options, std::shared_ptr<Blocks> blocks)
      : model_(model),
        config_(model.config()),
        features_(model.features()),
        options_(options),
        context_(blocks ? blocks->context_handle() : shared_context(options.device)),
        stream_(*context_) {
    const ModelConfig& c = config_;
    n_layers_ = options.layers < 0 ? c.n_layers : std::min(options.layers, c.n_layers);
    if (options.context <= 0)
      fail("Vulkan backend: context must be positive, got ", options.context);
    if (options.max_batch <= 0) fail("Vulkan backend: max_batch must be positive");
    if (options.kv_type != GgmlType::F16 && options.kv_type != GgmlType::F32) {
      fail("Vulkan backend: KV cache type ", ggml_type_name(options.kv_type),
           " is not supported on the device (use f16 or f32)");
    }
    kv_f16_ = options.kv_type == GgmlType::F16;
    if (c.head_dim > kMaxHeadDim) {
      fail("Vulkan backend: heads of ", c.head_dim, " values exceed the attention shader's ",
           kMaxHeadDim);
    }
    if (kv_f16_ && c.kv_width() % 2 != 0) {
      fail("Vulkan backend: an F16 KV cache needs an even row width; this model's is ",
           c.kv_width());
    }
    check_fits(blocks != nullptr);
    blocks_ = blocks ? std::move(blocks) : std::make_shared<Blocks>(model, context_, n_layers_);
    allocate_activations();
    const uint64_t cache_bytes = static_cast<uint64_t>(options.context) *
                                 static_cast<uint64_t>(c.kv_width()) * (kv_f16_ ? 2 : 4);
    for (int64_t l = 0; l < n_layers_; ++l) {
      LayerCache& cache = caches_.emplace_back();
      cache.k = allocate(cache_bytes, "the KV cache");
      cache.v = allocate(cache_bytes, "the KV cache");
    }
  }

  const DeviceInfo& device() const override { return context_->device.info(); }
  int64_t layers() const override { return n_layers_; }
  uint64_t device_bytes() const override { return blocks_->bytes() + allocated_bytes_; }

  std::unique_ptr<Backend> share() const override {
    return std::make_unique<VulkanBackend>(model_, options_, blocks_);
  }

  bool runs_layer(int64_t layer) const override { return layer >= 0 && layer < n_layers_; }

  void run_layer(int64_t layer, float* x, int64_t n, int64_t first_pos) override {
    if (!runs_layer(layer)) fail("Vulkan backend: block ", layer, " is not on the device");
    if (n <= 0 || first_pos < 0 || first_pos + n > options_.context) {
      fail("Vulkan backend: positions ", first_pos, "..", first_pos + n - 1,
           " exceed the device KV cache of ", options_.context, " positions");
    }
    const Layer& weights = blocks_->wait_for(layer);
    const LayerCache& cache = caches_[static_cast<std::size_t>(layer)];
    for (int64_t start = 0; start < n; start += options_.max_batch) {
      const int64_t count = std::min(options_.max_batch, n - start);
      run_batch(weights, cache, layer, x + start * config_.dim, static_cast<uint32_t>(count),
                static_cast<uint32_t>(first_pos + start));
    }
  }

 private:
  // Refuses, before anything is placed, blocks that cannot fit the device: all of them, or with
  // `shared_weights` only this backend's KV cache and activations.
  void check_fits(bool shared_weights) {
    DeviceMemoryRequest request;
    request.layers = n_layers_;
    request.context = options_.context;
    request.batch = options_.max_batch;
    request.kv_type = options_.kv_type;
    const DeviceMemory need = device_memory_needed(model_, request);
    const uint64_t heap = context_->device_memory.heap_bytes();
    const uint64_t total = shared_weights ? need.kv_cache + need.activations : need.total();
    if (total > heap) {
      fail("Vulkan backend: too little device memory on '", device().name, "': ", n_layers_,
           " blocks need ", total / kMiB, " MiB (weights ",
           shared_weights ? 0 : need.weights / kMiB, ", KV cache ", need.kv_cache / kMiB,
           ", activations ", need.activations / kMiB, ") but its heap has ", heap / kMiB,
           " MiB; put fewer layers on the device");
    }
  }

  int64_t ffn_width() const { return widest_ffn(config_); }

  // Device memory of this backend alone; device_bytes() adds it to the blocks'.
  Buffer allocate(uint64_t bytes, std::string_view what) {
    Buffer buffer = context_->device_memory.allocate(bytes, what);
    allocated_bytes_ += bytes;
    return buffer;
  }

  void allocate_activations() {
    const ModelConfig& c = config_;
    MemoryPool& host = context_->host_memory;
    const auto b = static_cast<uint64_t>(options_.max_batch);
    const auto floats = [&](int64_t width) { return b * static_cast<uint64_t>(width) * 4; };
    x_ = allocate(floats(c.dim), "activations");
    xn_ = allocate(floats(c.dim), "activations");
    q_ = allocate(floats(c.q_width()), "activations");
    k_ = allocate(floats(c.kv_width()), "activations");
    v_ = allocate(floats(c.kv_width()), "activations");
    attention_ = allocate(floats(c.q_width()), "activations");
    projected_ = allocate(floats(c.dim), "activations");
    gate_ = allocate(floats(ffn_width()), "activations");
    up_ = allocate(floats(ffn_width()), "activations");
    ffn_out_ = allocate(floats(c.dim), "activations");
    quantized_ =
        allocate(floats(std::max({c.dim, c.q_width(), ffn_width()})), "quantized activations");
    staging_x_ = host.allocate(floats(c.dim), "the residual stream's staging buffer");
    if (features_.moe) {
      router_ = allocate(floats(c.expert_count), "activations");
      expert_in_ = allocate(floats(c.dim), "activations");
      expert_out_ = allocate(floats(c.dim), "activations");
      router_host_ = host.allocate(floats(c.expert_count), "router read-back");
      route_index_ = host.allocate(floats(c.experts_used), "routing");
      route_weight_ = host.allocate(floats(c.experts_used), "routing");
    }
    if (features_.shared_expert) {
      shared_logit_ = allocate(floats(1), "activations");
      identity_ = host.allocate(floats(1), "routing");
      auto* index = reinterpret_cast<uint32_t*>(identity_.mapped());
      std::iota(index, index + b, 0u);
    }
  }

  void run_batch(const Layer& d, const LayerCache& cache, int64_t layer, float* x, uint32_t n,
                 uint32_t first_pos) {
    const ModelConfig& c = config_;
    const LayerConfig& lc = c.layers[static_cast<std::size_t>(layer)];
    const auto dim = static_cast<uint32_t>(c.dim);
    const auto qw = static_cast<uint32_t>(c.q_width());
    const auto kvw = static_cast<uint32_t>(c.kv_width());
    const auto heads = static_cast<uint32_t>(c.n_heads);
    const auto kv_heads = static_cast<uint32_t>(c.n_kv_heads);
    const auto head_dim = static_cast<uint32_t>(c.head_dim);
    const uint64_t x_bytes = uint64_t{n} * dim * 4;
    CommandStream& s = stream_;

    std::memcpy(staging_x_.mapped(), x, x_bytes);
    s.copy(staging_x_, 0, x_, 0, x_bytes);

    ops::rms_norm(s, x_, &d.attn_norm, n, dim, c.norm_eps, xn_);
    ops::matmul(s, d.q, xn_, n, q_, &quantized_);
    ops::matmul(s, d.k, xn_, n, k_, &quantized_);
    ops::matmul(s, d.v, xn_, n, v_, &quantized_);
    if (features_.qkv_bias) {
      ops::add(s, q_, d.q_bias, uint64_t{n} * qw, qw);
      ops::add(s, k_, d.k_bias, uint64_t{n} * kvw, kvw);
      ops::add(s, v_, d.v_bias, uint64_t{n} * kvw, kvw);
    }
    if (features_.full_qk_norm) {
      ops::rms_norm(s, q_, &d.q_norm, n, qw, c.norm_eps, q_);
      ops::rms_norm(s, k_, &d.k_norm, n, kvw, c.norm_eps, k_);
    }
    if (features_.qk_norm) {
      ops::rms_norm(s, q_, &d.q_norm, n * heads, head_dim, c.norm_eps, q_);
      ops::rms_norm(s, k_, &d.k_norm, n * kv_heads, head_dim, c.norm_eps, k_);
    }

    RopeConfig rope;
    rope.head_dim = head_dim;
    rope.rotary_dims = static_cast<uint32_t>(c.rope_dims);
    rope.neox = features_.rope_layout == kernels::RopeLayout::kNeox;
    rope.freq_base = lc.rope_base;
    if (c.rope_scaling != RopeScaling::kNone) rope.freq_scale = 1.0f / c.rope_scale_factor;
    if (c.rope_scaling == RopeScaling::kYarn) {
      rope.yarn_ext_factor = 1.0f;
      rope.yarn_orig_ctx = static_cast<uint32_t>(c.rope_original_context);
    }
    const Buffer* factors = blocks_->rope_factors();
    ops::rope(s, q_, n, heads, first_pos, rope, factors);
    ops::rope(s, k_, n, kv_heads, first_pos, rope, factors);
    ops::store_kv(s, k_, n, kvw, first_pos, kv_f16_, cache.k);
    ops::store_kv(s, v_, n, kvw, first_pos, kv_f16_, cache.v);

    AttentionConfig attention;
    attention.n_heads = heads;
    attention.n_kv_heads = kv_heads;
    attention.head_dim = head_dim;
    attention.scale = c.attention_scale;
    attention.softcap = c.attention_softcap;
    attention.window = lc.sliding_window ? static_cast<uint32_t>(c.sliding_window) : 0;
    attention.kv_f16 = kv_f16_;
    ops::attention(s, q_, n, first_pos, cache.k, cache.v, attention, attention_);
    ops::matmul(s, d.o, attention_, n, projected_, &quantized_);
    if (features_.post_norms) {
      ops::rms_norm(s, projected_, &d.post_attention_norm, n, dim, c.norm_eps, projected_);
    }
    ops::add(s, x_, projected_, uint64_t{n} * dim, uint64_t{n} * dim);

    ops::rms_norm(s, x_, &d.ffn_norm, n, dim, c.norm_eps, xn_);
    if (features_.moe) {
      experts(d, n);
    } else {
      gated_ffn(d.gate, d.up, d.down, xn_, n, ffn_out_);
    }
    if (features_.post_norms) {
      ops::rms_norm(s, ffn_out_, &d.post_ffn_norm, n, dim, c.norm_eps, ffn_out_);
    }
    ops::add(s, x_, ffn_out_, uint64_t{n} * dim, uint64_t{n} * dim);

    s.copy(x_, 0, staging_x_, 0, x_bytes);
    s.finish();
    std::memcpy(x, staging_x_.mapped(), x_bytes);
  }

  // out = down(act(gate · in) * (up · in)) for n rows of `in`.
  void gated_ffn(const DeviceMatrix& gate, const DeviceMatrix& up, const DeviceMatrix& down,
                 const Buffer& in, uint32_t n, const Buffer& out) {
    ops::matmul(stream_, gate, in, n, gate_, &quantized_);
    ops::matmul(stream_, up, in, n, up_, &quantized_);
    ops::glu(stream_, gate_, up_, uint64_t{n} * gate.rows,
             features_.activation == FfnActivation::kGeluTanh);
    ops::matmul(stream_, down, gate_, n, out, &quantized_);
  }

  void experts(const Layer& d, uint32_t n) {
    const ModelConfig& c = config_;
    const auto n_experts = static_cast<uint32_t>(c.expert_count);
    const auto k = static_cast<uint32_t>(c.experts_used);
    const auto dim = static_cast<uint32_t>(c.dim);
    CommandStream& s = stream_;
    ops::matmul(s, d.router, xn_, n, router_, &quantized_);
    if (!features_.softmax_after_top_k) ops::softmax(s, router_, n, n_experts);
    s.copy(router_, 0, router_host_, 0, uint64_t{n} * n_experts * 4);
    s.finish();

    // Top-k per token as the CPU forward pass chooses (ties to the lower expert id), grouped by
    // expert so that each expert runs once over its tokens.
    const auto* scores = reinterpret_cast<const float*>(router_host_.mapped());
    std::vector<std::vector<std::pair<uint32_t, float>>> by_expert(n_experts);
    std::vector<uint32_t> order(n_experts);
    std::vector<float> chosen(k);
    for (uint32_t t = 0; t < n; ++t) {
      const float* row = scores + uint64_t{t} * n_experts;
      std::iota(order.begin(), order.end(), 0u);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](uint32_t a, uint32_t b) {
        return row[a] > row[b] || (row[a] == row[b] && a < b);
      });
      for (uint32_t i = 0; i < k; ++i)
        chosen[i] = row[order[i]];
      if (features_.softmax_after_top_k) {
        const float top = chosen[0];
        float sum = 0;
        for (float& w : chosen)
          sum += (w = std::exp(w - top));
        for (float& w : chosen)
          w /= sum;
      }
      if (c.normalize_expert_weights.value_or(features_.normalize_expert_weights)) {
        const float sum = std::accumulate(chosen.begin(), chosen.end(), 0.0f);
        for (float& w : chosen)
          w /= sum;
      }
      for (uint32_t i = 0; i < k; ++i)
        by_expert[order[i]].emplace_back(t, chosen[i]);
    }

    auto* index = reinterpret_cast<uint32_t*>(route_index_.mapped());
    auto* weight = reinterpret_cast<float*>(route_weight_.mapped());
    s.fill_zero(ffn_out_, uint64_t{n} * dim * 4);
    uint32_t first = 0;
    for (uint32_t e = 0; e < n_experts; ++e) {
      const auto& group = by_expert[e];
      if (group.empty()) continue;
      const auto m = static_cast<uint32_t>(group.size());
      for (uint32_t i = 0; i < m; ++i) {
        index[first + i] = group[i].first;
        weight[first + i] = group[i].second;
      }
      ops::gather_rows(s, xn_, route_index_, first, m, dim, expert_in_);
      gated_ffn(d.gate_experts[e], d.up_experts[e], d.down_experts[e], expert_in_, m, expert_out_);
      ops::scale_add_rows(s, expert_out_, route_index_, route_weight_, first, m, dim, false,
                          ffn_out_);
      first += m;
    }
    if (features_.shared_expert) {
      gated_ffn(d.gate_shared, d.up_shared, d.down_shared, xn_, n, expert_out_);
      ops::matmul(s, d.router_shared, xn_, n, shared_logit_, &quantized_);
      ops::scale_add_rows(s, expert_out_, identity_, shared_logit_, 0, n, dim, true, ffn_out_);
    }
  }

  const Model& model_;
  const ModelConfig& config_;
  const ArchitectureFeatures features_;
  const VulkanOptions options_;
  int64_t n_layers_ = 0;
  bool kv_f16_ = true;
  uint64_t allocated_bytes_ = 0;

  std::shared_ptr<Context> context_;
  CommandStream stream_;
  std::shared_ptr<Blocks> blocks_;
  std::vector<LayerCache> caches_;
  Buffer x_, xn_, q_, k_, v_, attention_, projected_, gate_, up_, ffn_out_, router_, expert_in_,
      expert_out_, shared_logit_, quantized_;
  Buffer staging_x_, router_host_, route_index_, route_weight_, identity_;
};

}  // namespace

std::unique_ptr<Backend> make_backend(const Model& model, const VulkanOptions& options) {
  return std::make_unique<VulkanBackend>(model, options);
}

}  // namespace floatllm::vulkan
