// The memory plan of a run: what every component of a session costs, which layers (and experts)
// stay resident and which are streamed from disk, and how fast decoding will be as a result.
//
// Everything the process causes counts against the budget: resident weights (mapped pages of the
// file, or copies read once when anything streams), the streaming ring, the expert cache, the KV
// cache, activations, the tokenizer, the page cache the run touches (the file's header and
// embedding rows) and a fixed allowance for the program itself. The plan keeps as much of the model
// resident as fits after the rest, streams the remainder through a ring large enough for the
// largest streamed layer, and refuses a budget that cannot work, naming the smallest that can,
// before any weights are read.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "floatllm/backend/device_memory.hpp"
#include "floatllm/core/error.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/model/model.hpp"
#include "floatllm/runtime/direct_reader.hpp"
#include "floatllm/runtime/kv_cache.hpp"
#include "floatllm/runtime/memory_budget.hpp"
#include "floatllm/runtime/streaming_weights.hpp"
#include "floatllm/runtime/weight_layout.hpp"

namespace floatllm {

// How fast this machine moves bytes: disk reads as the streaming executor does them, and memory
// reads as the matrix kernels do them.
struct DeviceSpeeds {
  double disk_bytes_per_second = 0;
  double memory_bytes_per_second = 0;
  // Weight bytes per second the matrix kernels get through on this model's weights with the
  // run's threads: the compute side of a token, as loaded as the machine is now (0: unknown,
  // memory speed stands in).
  double compute_bytes_per_second = 0;
  bool measured = false;

  // The above, plus the matrix kernels timed on one of the model's first layer's weights.
  static DeviceSpeeds measure(const Model& model, const DirectReader::Options& io, int threads) {
    DeviceSpeeds speeds = measure(model.file().mapping().path(), io);
    speeds.compute_bytes_per_second = measure_matmul_bytes_per_second(model, io, threads);
    return speeds;
  }

  // Matrix x vector over the first layer's largest matrix, read into a buffer of its own: the
  // mapping's pages would stay behind in the page cache, outside the plan.
  static double measure_matmul_bytes_per_second(const Model& model, const DirectReader::Options& io,
                                                int threads) {
    if (model.tensors().layers.empty() || model.file().mapping().path().empty()) return 0;
    const LayerTensors& first = model.tensors().layers.front();
    const GgufTensor* weight = first.ffn_down != nullptr ? first.ffn_down : first.attn_output;
    if (weight == nullptr || !kernels::matmul_supports(weight->type)) return 0;
    const WeightUnit unit = make_weight_unit(0, {weight});
    AlignedBuffer bytes(unit.read_bytes);
    {
      DirectReader reader(model.file().mapping().path(), io);
      std::vector<DirectReader::Range> ranges;
      for (const FileExtent& e : unit.extents)
        ranges.push_back({e.offset, e.length, bytes.data() + e.buffer_offset});
      reader.wait(reader.submit(ranges));
    }
    ThreadPool pool(std::max(threads, 1));
    MatrixView w = MatrixView::of(*weight);
    w.data = bytes.data() + unit.tensors.front().buffer_offset;
    std::vector<float> x(static_cast<std::size_t>(w.cols), 0.5f);
    std::vector<float> y(static_cast<std::size_t>(w.rows));
    kernels::matmul(w, x.data(), 1, y.data(), pool);  // warms the pool
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto start = std::chrono::steady_clock::now();
      kernels::matmul(w, x.data(), 1, y.data(), pool);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (seconds > 0) best = std::max(best, static_cast<double>(weight->byte_size()) / seconds);
    }
    return best;
  }

  // About a quarter of a second: 64 MiB read from the model file with O_DIRECT, and a few
  // passes over a 16 MiB buffer.
  static DeviceSpeeds measure(const std::filesystem::path& model, const DirectReader::Options& io) {
    DeviceSpeeds speeds;
    speeds.disk_bytes_per_second = measure_read_bytes_per_second(model, io);
    speeds.memory_bytes_per_second = measure_memory_read_bytes_per_second();
    speeds.measured = true;
    return speeds;
  }

  static double measure_memory_read_bytes_per_second() {
    constexpr std::size_t kWords = (16 << 20) / sizeof(uint64_t);
    std::vector<uint64_t> words(kWords);
    for (std::size_t i = 0; i < kWords; ++i)
      words[i] = i;
    uint64_t sum = 0;
    double best = 0;
    for (int pass = 0; pass < 4; ++pass) {
      const auto start = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < kWords; i += 4)
        sum += words[i] ^ words[i + 1] ^ words[i + 2] ^ words[i + 3];
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (seconds > 0) best = std::max(best, static_cast<double>(kWords * 8) / seconds);
    }
    // Keeps the loop from being optimized away.
    volatile uint64_t sink = sum;
    static_cast<void>(sink);
    return best;
  }
};

// More sessions than this over one model are a mistake, not a plan (and would overflow sizes).
inline constexpr int64_t kMaxPlanSlots = 1 << 16;

struct PlanRequest {
  uint64_t budget = 0;
  int64_t context = 2048;  // 0 = the model's trained context
  GgmlType kv_type = GgmlType::F16;
  int64_t batch = 512;
  int threads = 0;  // per slot; 0 = one per hardware thread
  // Sessions sharing the weights (floatllm serve --parallel): each has its own KV cache,
  // activations and threads; the weights, the ring, the tokenizer and the program are shared.
  int64_t slots = 1;
  // The first `gpu_layers` blocks run on a device (--gpu-layers; negative or more than the
  // model's: all): their weights leave the host's placement and count as device memory.
  int64_t gpu_layers = 0;
  DirectReader::Options io;
};

// Bytes of each part of a session.
struct MemoryComponents {
  uint64_t resident_weights = 0;  // layers that stay in memory
  uint64_t streaming_ring = 0;    // buffers streamed layers are read into
  uint64_t expert_cache = 0;      // experts of MoE layers read on demand
  uint64_t kv_cache = 0;          // of every slot
  uint64_t activations = 0;       // workspace, logits, kernel scratch of every slot
  uint64_t tokenizer = 0;
  uint64_t page_cache = 0;      // the file's header and the embedding rows a batch touches
  uint64_t program = 0;         // code, libraries, heap and thread stacks
  uint64_t device_staging = 0;  // host-visible memory of a device backend: staging, read-backs

  uint64_t total() const {
    return resident_weights + streaming_ring + expert_cache + kv_cache + activations + tokenizer +
           page_cache + program + device_staging;
  }
};

struct LayerPlacement {
  int64_t layer = 0;  // n_layers = the output head
  uint64_t bytes = 0;
  uint64_t read_bytes = 0;
  bool streamed = false;
  uint64_t piece_bytes = 0;  // a head streamed in pieces: the read of one piece (else read_bytes)
  bool on_device = false;    // runs on the device backend: no host bytes, never streamed
};

class MemoryPlan {
 public:
  // Fixed cost of the floatllm program itself (code, libraries, allocator arenas, what the
  // components above leave out), calibrated on `floatllm run` of 1B-shape models: measured peaks
  // were 4.4-5.1 MiB above the plan with 12 MiB here.
  static constexpr uint64_t kProgramBytes = 17 << 20;
  static constexpr uint64_t kThreadBytes = 256 << 10;

  uint64_t budget = 0;
  std::string model_path;
  uint64_t model_bytes = 0;  // tensor data of the whole file
  int64_t context = 0;
  int64_t batch = 0;
  int threads = 0;  // per slot
  int64_t slots = 1;
  GgmlType kv_type = GgmlType::F16;
  MemoryComponents components;         // the host's
  DeviceMemory device;                 // on the device (--gpu-layers), apart from the host budget
  std::vector<LayerPlacement> layers;  // 0 .. n_layers (the head last)
  bool experts_streamed = false;
  int64_t expert_cache_entries = 0;
  int64_t total_experts = 0;
  uint64_t ring_bytes = 0;
  int64_t head_rows_per_piece = 0;  // a streamed head larger than a slot is read in pieces
  int64_t ring_slots = 0;           // streamed layers the ring holds at once
  int64_t prefetch_depth = 0;       // layers read ahead while one is computed
  uint64_t streamed_bytes_per_token = 0;
  uint64_t minimum_budget = 0;
  bool drop_embedding_pages = true;
  DirectReader::Options io;
  DeviceSpeeds speeds;
  double predicted_io_seconds_per_token = 0;
  double predicted_compute_seconds_per_token = 0;
  double predicted_tokens_per_second = 0;

  int64_t streamed_layer_count() const {
    return std::count_if(layers.begin(), layers.end(), [](const auto& l) { return l.streamed; });
  }
  bool streams() const { return streamed_layer_count() > 0 || experts_streamed; }

  // The settings of the StreamingWeightSource that carries the plan out.
  StreamingOptions streaming_options() const {
    StreamingOptions o;
    for (const LayerPlacement& l : layers) {
      o.streamed.push_back(l.streamed);
      o.on_device.push_back(l.on_device);
    }
    o.ring_bytes = ring_bytes;
    o.head_rows_per_piece = head_rows_per_piece;
    o.drop_embedding_pages = drop_embedding_pages;
    o.stream_experts = experts_streamed;
    o.expert_cache_bytes = components.expert_cache;
    o.io = io;
    return o;
  }

  std::string describe() const {
    std::ostringstream out;
    const auto row = [&](std::string_view name, uint64_t bytes) {
      out << "  " << name << std::string(20 - name.size(), ' ') << format_bytes(bytes) << "\n";
    };
    out << "memory plan for " << model_path << " (" << format_bytes(model_bytes)
        << " of weights), context " << context << ", batch " << batch << ", " << threads
        << " threads, KV " << ggml_type_name(kv_type);
    if (slots > 1) out << ", " << slots << " slots (a KV cache, activations and threads each)";
    out << "\n";
    row("resident weights", components.resident_weights);
    row("streaming ring", components.streaming_ring);
    if (total_experts > 0) row("expert cache", components.expert_cache);
    row("KV cache", components.kv_cache);
    row("activations", components.activations);
    row("tokenizer", components.tokenizer);
    row("page cache", components.page_cache);
    row("program", components.program);
    if (components.device_staging > 0) row("device staging", components.device_staging);
    out << "  total               " << format_bytes(components.total()) << " of a "
        << format_bytes(budget) << " budget (smallest that works: " << format_bytes(minimum_budget)
        << ")\n";
    if (device.layers > 0) {
      out << "  device              " << format_bytes(device.total()) << " for " << device.layers
          << " layers (weights " << format_bytes(device.weights) << ", KV cache "
          << format_bytes(device.kv_cache) << ", activations " << format_bytes(device.activations)
          << "), not in the budget\n";
    }
    const int64_t n = static_cast<int64_t>(layers.size()) - 1;
    out << "  layers              " << (n + 1 - streamed_layer_count() - device.layers) << " of "
        << n + 1 << " resident (output head included)";
    if (device.layers > 0) out << ", " << device.layers << " on the device";
    if (streamed_layer_count() > 0) {
      out << ", streamed: " << streamed_list() << "\n";
      out << "  ring                " << ring_slots << " layer slots, prefetch depth "
          << prefetch_depth << ", " << io.threads << " reads of " << format_bytes(io.chunk_bytes)
          << " in flight\n";
    } else {
      out << "\n";
    }
    if (total_experts > 0) {
      out << "  experts             "
          << (experts_streamed
                  ? concat("streamed; LRU cache of ", expert_cache_entries, " of ", total_experts)
                  : std::string("resident"))
          << "\n";
    }
    out << "  read per token      " << format_bytes(streamed_bytes_per_token) << "\n";
    if (speeds.measured) {
      out << "  disk                " << format_speed(speeds.disk_bytes_per_second)
          << " (O_DIRECT, measured), memory " << format_speed(speeds.memory_bytes_per_second);
      if (speeds.compute_bytes_per_second > 0)
        out << ", matmul " << format_speed(speeds.compute_bytes_per_second);
      out << "\n";
      out.setf(std::ios::fixed);
      out.precision(2);
      out << "  predicted decode    " << predicted_tokens_per_second << " tokens/s (I/O "
          << predicted_io_seconds_per_token * 1e3 << " ms, compute "
          << predicted_compute_seconds_per_token * 1e3 << " ms per token)\n";
    }
    return out.str();
  }

  nlohmann::json to_json() const {
    nlohmann::json j;
    j["model"] = model_path;
    j["model_bytes"] = model_bytes;
    j["budget_bytes"] = budget;
    j["minimum_budget_bytes"] = minimum_budget;
    j["context"] = context;
    j["batch"] = batch;
    j["threads"] = threads;
    j["slots"] = slots;
    j["kv_type"] = std::string(ggml_type_name(kv_type));
    j["components"] = {{"resident_weights", components.resident_weights},
                       {"streaming_ring", components.streaming_ring},
                       {"expert_cache", components.expert_cache},
                       {"kv_cache", components.kv_cache},
                       {"activations", components.activations},
                       {"tokenizer", components.tokenizer},
                       {"page_cache", components.page_cache},
                       {"program", components.program},
                       {"device_staging", components.device_staging},
                       {"total", components.total()}};
    j["device"] = {{"layers", device.layers},
                   {"weights", device.weights},
                   {"kv_cache", device.kv_cache},
                   {"activations", device.activations},
                   {"total", device.total()}};
    nlohmann::json placement = nlohmann::json::array();
    for (const LayerPlacement& l : layers) {
      placement.push_back({{"layer", l.layer},
                           {"bytes", l.bytes},
                           {"read_bytes", l.read_bytes},
                           {"streamed", l.streamed},
                           {"on_device", l.on_device}});
    }
    j["layers"] = placement;
    j["experts"] = {{"total", total_experts},
                    {"streamed", experts_streamed},
                    {"cache_entries", expert_cache_entries}};
    j["ring"] = {{"bytes", ring_bytes},
                 {"slots", ring_slots},
                 {"prefetch_depth", prefetch_depth},
                 {"io_threads", io.threads},
                 {"io_chunk_bytes", io.chunk_bytes}};
    j["streamed_bytes_per_token"] = streamed_bytes_per_token;
    if (speeds.measured) {
      j["disk_bytes_per_second"] = speeds.disk_bytes_per_second;
      j["memory_bytes_per_second"] = speeds.memory_bytes_per_second;
      j["matmul_bytes_per_second"] = speeds.compute_bytes_per_second;
      j["predicted_tokens_per_second"] = predicted_tokens_per_second;
      j["predicted_io_seconds_per_token"] = predicted_io_seconds_per_token;
      j["predicted_compute_seconds_per_token"] = predicted_compute_seconds_per_token;
    }
    return j;
  }

 private:
  std::string streamed_list() const {
    // Ranges "3-15, head" rather than every number.
    std::string list;
    const int64_t head = static_cast<int64_t>(layers.size()) - 1;
    std::size_t i = 0;
    while (i < layers.size()) {
      if (!layers[i].streamed) {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j + 1 < layers.size() && layers[j + 1].streamed && layers[j + 1].layer != head)
        ++j;
      if (!list.empty()) list += ", ";
      if (layers[i].layer == head) {
        list += "head";
      } else {
        list += j > i ? concat(layers[i].layer, "-", layers[j].layer) : concat(layers[i].layer);
      }
      i = j + 1;
    }
    return list;
  }

  static std::string format_speed(double bytes_per_second) {
    return format_bytes(static_cast<uint64_t>(bytes_per_second)) + "/s";
  }
};

namespace memory_plan_detail {

// The activations a session allocates for batches of `batch` tokens: the Workspace buffers, the
// logits, the kernels' quantized copies of the activations (int16, int8 and Q4_K's interleaved
// int8) and their per-thread attention scores.
inline uint64_t activation_bytes(const ModelConfig& c, int64_t batch, int64_t context,
                                 int threads) {
  const auto u = [](int64_t v) { return static_cast<uint64_t>(std::max<int64_t>(v, 1)); };
  const int64_t ffn = std::max({c.ffn_dim, c.expert_ffn_dim, c.shared_expert_ffn_dim});
  const uint64_t widths = u(c.dim) * 7 + u(c.q_width()) * 2 + u(c.kv_width()) + u(c.v_width()) +
                          u(std::max(c.dim, c.q_width())) + u(ffn) * 2 + u(c.expert_count);
  const uint64_t workspace = widths * u(batch) * sizeof(float);
  const uint64_t logits = u(c.vocab_size) * 16;  // the session's, a copy, the sampler's
  const uint64_t quantized = u(batch) * u(std::max({c.dim, ffn, c.q_width()})) * 4;
  const uint64_t scores = u(threads) * u(context) * sizeof(float) * 2;
  return workspace + logits + quantized + scores;
}

inline uint64_t page_span(uint64_t bytes) {
  return align_up(bytes, kDirectIoAlignment) + kDirectIoAlignment;
}

// Seconds per decoded token when `streamed` layers go through a ring of `ring` bytes.
struct Prediction {
  double io = 0;
  double compute = 0;
  double total = 0;
};

inline Prediction predict(const std::vector<LayerPlacement>& layers, uint64_t ring,
                          uint64_t expert_read_per_token, uint64_t expert_bytes_per_token,
                          const DeviceSpeeds& speeds) {
  Prediction p;
  const double disk = std::max(speeds.disk_bytes_per_second, 1.0);
  const double memory =
      std::max(speeds.compute_bytes_per_second > 0
                   ? std::min(speeds.compute_bytes_per_second, speeds.memory_bytes_per_second)
                   : speeds.memory_bytes_per_second,
               1.0);
  std::vector<const LayerPlacement*> streamed;
  double touched = static_cast<double>(expert_bytes_per_token);
  double read = static_cast<double>(expert_read_per_token);
  for (const LayerPlacement& l : layers) {
    touched += static_cast<double>(l.bytes);
    if (l.streamed) {
      streamed.push_back(&l);
      read += static_cast<double>(l.read_bytes);
    }
  }
  p.io = read / disk;
  p.compute = touched / memory;
  p.total = std::max(p.io, p.compute);
  // Where a layer and the next streamed one do not fit in the ring together, the next read waits
  // for this layer's compute: that time does not overlap.
  for (std::size_t i = 0; i < streamed.size(); ++i) {
    const LayerPlacement& now = *streamed[i];
    const LayerPlacement& next = *streamed[(i + 1) % streamed.size()];
    const auto piece = [](const LayerPlacement& l) {
      return l.piece_bytes > 0 ? l.piece_bytes : l.read_bytes;
    };
    if (streamed.size() == 1 || piece(now) + piece(next) > ring) {
      p.total += static_cast<double>(now.bytes) / memory;
    }
  }
  return p;
}

}  // namespace memory_plan_detail

// Plans a session of `model` under `request.budget`. Throws, naming the smallest budget that
// works, when the budget is too small. `speeds` (measured or assumed) only shape the prediction
// and the choice between equally small plans.
inline MemoryPlan plan_memory(const Model& model, const PlanRequest& request,
                              const DeviceSpeeds& speeds) {
  namespace d = memory_plan_detail;
  const ModelConfig& c = model.config();
  MemoryPlan plan;
  plan.budget = request.budget;
  plan.model_path = model.file().source();
  plan.context = request.context == 0 ? c.context_length : request.context;
  if (plan.context <= 0) fail("context length must be positive, got ", plan.context);
  plan.batch = std::clamp<int64_t>(request.batch, 1, plan.context);
  plan.threads = request.threads > 0
                     ? request.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  plan.kv_type = request.kv_type;
  if (request.slots < 1 || request.slots > kMaxPlanSlots) {
    fail("a plan needs 1 to ", kMaxPlanSlots, " slots, got ", request.slots);
  }
  plan.slots = request.slots;
  plan.io = request.io;
  plan.speeds = speeds;
  for (const GgufTensor& t : model.file().tensors())
    plan.model_bytes += t.byte_size();

  const WeightLayout layout = WeightLayout::of(model, true);
  const auto n = static_cast<int64_t>(layout.layers.size());

  const auto slots = static_cast<uint64_t>(plan.slots);
  MemoryComponents fixed;
  fixed.kv_cache = slots * KvCache::bytes_needed(c, plan.context, plan.kv_type);
  fixed.activations = slots * d::activation_bytes(c, plan.batch, plan.context, plan.threads);
  // Token strings, scores and merges are copied out of the header into tables, and what building
  // them leaves in the allocator's heap stays resident: measured at about three times the header
  // for 128k-token vocabularies.
  fixed.tokenizer = 3 * model.file().data_offset();
  const uint64_t embedding_rows =
      static_cast<uint64_t>(std::min<int64_t>(plan.batch, c.vocab_size)) *
      d::page_span(layout.embedding.tensors.front().tensor->row_bytes());
  fixed.page_cache = model.file().data_offset() + embedding_rows;
  for (const GgufTensor* t : layout.global)
    fixed.page_cache += d::page_span(t->byte_size());
  fixed.program = MemoryPlan::kProgramBytes + (slots * static_cast<uint64_t>(plan.threads) +
                                               static_cast<uint64_t>(request.io.threads)) *
                                                  MemoryPlan::kThreadBytes;

  if (request.gpu_layers != 0) {
    DeviceMemoryRequest on_device;
    on_device.layers = request.gpu_layers;
    on_device.context = plan.context;
    on_device.batch = plan.batch;
    on_device.kv_type = device_kv_type(plan.kv_type);
    plan.device = device_memory_needed(model, on_device);
    // The slots share the weights on the device; each has its own KV cache and activations there.
    plan.device.kv_cache *= static_cast<uint64_t>(plan.slots);
    plan.device.activations *= static_cast<uint64_t>(plan.slots);
    if (plan.device.layers > 0) fixed.device_staging = kDeviceStagingBytes;
  }

  // Units the plan places: the layers without their experts, and the head. Blocks on the device
  // take no host memory once uploaded (the backend drops their pages of the mapping).
  std::vector<LayerPlacement> units;
  for (int64_t l = 0; l <= n; ++l) {
    const WeightUnit& u = layout.unit(l);
    if (l < plan.device.layers) {
      units.push_back({l, 0, 0, false, 0, true});
    } else {
      units.push_back({l, u.tensor_bytes, u.read_bytes, false, 0});
    }
  }
  uint64_t dense_bytes = 0;
  uint64_t dense_read_bytes = 0;  // what the layers take when read into memory of our own
  uint64_t largest_read = 0;
  for (const LayerPlacement& u : units) {
    dense_bytes += u.bytes;
    dense_read_bytes += u.read_bytes;
    // The head is not counted: it can be read in pieces as small as the ring needs.
    if (u.layer < n) largest_read = std::max(largest_read, u.read_bytes);
  }
  // With every block on the device the head is all the host may stream: in pieces, through a
  // ring the size of a block's read, as it would be with the blocks on the host.
  uint64_t head_slot = 0;
  if (n > 0 && plan.device.layers == n) {
    for (int64_t l = 0; l < n; ++l)
      head_slot = std::max(head_slot, layout.unit(l).read_bytes);
    largest_read = head_slot;
  }

  // Experts: all resident with the rest when everything fits; otherwise read on demand into a
  // cache that holds at least the experts one token uses in a layer, plus one being read.
  uint64_t expert_entry = 0;
  int64_t experts_used = std::max<int64_t>(c.experts_used, 1);
  uint64_t all_experts = 0;
  for (std::size_t l = static_cast<std::size_t>(plan.device.layers); l < layout.experts.size();
       ++l) {
    const ExpertLayout& e = layout.experts[l];
    expert_entry = std::max(expert_entry, e.read_bytes_per_expert);
    plan.total_experts += e.count;
    all_experts += e.bytes_per_expert * static_cast<uint64_t>(e.count);
  }
  const uint64_t min_expert_cache =
      expert_entry * static_cast<uint64_t>(std::max<int64_t>(experts_used + 1, 2));

  const uint64_t fixed_total = fixed.total();
  plan.minimum_budget = fixed_total + largest_read + (expert_entry > 0 ? min_expert_cache : 0);
  const auto refuse = [&]() -> MemoryPlan {
    const std::string slot_text =
        plan.slots > 1 ? concat(" in each of ", plan.slots, " slots") : std::string();
    fail("a memory budget of ", format_bytes(request.budget), " is too small for ", plan.model_path,
         " at a context of ", plan.context, " tokens", slot_text, ": the smallest that works is ",
         format_bytes(plan.minimum_budget), " (KV cache ", format_bytes(fixed.kv_cache),
         ", activations ", format_bytes(fixed.activations), ", largest layer ",
         format_bytes(largest_read), ", the rest ",
         format_bytes(plan.minimum_budget - fixed.kv_cache - fixed.activations - largest_read),
         "); a smaller context (-c)", plan.slots > 1 ? ", fewer slots (--parallel)" : "",
         " or KV type (--kv-type q8_0) lowers it");
  };
  if (request.budget < plan.minimum_budget) return refuse();

  const uint64_t for_weights = request.budget - fixed_total;
  const GgufTensor* head_tensor = model.tensors().output;
  const auto head_piece_rows = [&](uint64_t ring) {
    const int64_t half = rows_fitting(*head_tensor, ring / 2);
    return half > 0 ? half : rows_fitting(*head_tensor, ring);
  };
  plan.components = fixed;
  plan.drop_embedding_pages = true;

  if (dense_bytes + all_experts <= for_weights) {
    plan.layers = units;
    plan.components.resident_weights = dense_bytes + all_experts;
    plan.drop_embedding_pages = !layout.tied_output;
    const auto p = d::predict(plan.layers, 0, 0, all_experts, speeds);
    plan.predicted_io_seconds_per_token = p.io;
    plan.predicted_compute_seconds_per_token = p.compute;
    plan.predicted_tokens_per_second = p.total > 0 ? 1 / p.total : 0;
    return plan;
  }

  // Experts stream: reserve their minimum cache now; whatever the layers leave goes to it after.
  const bool stream_experts = expert_entry > 0;
  const uint64_t expert_reserve = stream_experts ? min_expert_cache : 0;
  const uint64_t for_dense = for_weights - expert_reserve;

  // Try every ring size that is a whole number of some layer's reads; keep the fastest plan.
  std::set<uint64_t> slot_sizes;
  for (const LayerPlacement& u : units) {
    if (!u.on_device) slot_sizes.insert(u.read_bytes);
  }
  if (head_slot > 0) slot_sizes.insert(head_slot);
  std::optional<std::vector<LayerPlacement>> best;
  uint64_t best_ring = 0;
  d::Prediction best_prediction;
  uint64_t best_used = 0;
  const double experts_per_token =
      static_cast<double>(experts_used) * static_cast<double>(n - plan.device.layers);
  for (uint64_t slot : slot_sizes) {
    for (uint64_t slots = 1; slots <= 4; ++slots) {
      const uint64_t ring = slot * slots;
      if (ring > for_dense) break;
      std::vector<LayerPlacement> placed = units;
      uint64_t resident = dense_read_bytes;
      // Stream the largest eligible layers first: fewest layers for the bytes that must go.
      std::vector<std::size_t> order(placed.size());
      for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i;
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return placed[a].bytes > placed[b].bytes;
      });
      // The head may be larger than a slot: it is then read in pieces of half the ring.
      const int64_t piece_rows = head_piece_rows(ring);
      for (std::size_t i : order) {
        if (resident + ring <= for_dense) break;
        const bool is_head = placed[i].layer == n;
        if (placed[i].on_device) continue;
        if (placed[i].read_bytes > slot && !(is_head && piece_rows > 0)) continue;
        placed[i].streamed = true;
        if (is_head && placed[i].read_bytes > slot) {
          placed[i].piece_bytes = make_row_piece(n, *head_tensor, 0, piece_rows).read_bytes;
        }
        resident -= placed[i].read_bytes;
      }
      if (resident + ring > for_dense) continue;
      const bool any_streamed =
          std::any_of(placed.begin(), placed.end(), [](const auto& p) { return p.streamed; });
      const uint64_t ring_used = any_streamed ? ring : 0;
      // What is left after the layers enlarges the expert cache.
      const uint64_t cache = stream_experts ? for_weights - resident - ring_used : 0;
      const double cached_entries =
          expert_entry > 0 ? static_cast<double>(cache / expert_entry) : 0;
      const double hit =
          plan.total_experts > 0
              ? std::min(1.0, cached_entries / static_cast<double>(plan.total_experts))
              : 0;
      const double expert_bytes_per_token =
          n > 0 && plan.total_experts > 0 ? experts_per_token * static_cast<double>(all_experts) /
                                                static_cast<double>(plan.total_experts)
                                          : 0;
      const auto expert_read =
          static_cast<uint64_t>(experts_per_token * static_cast<double>(expert_entry) * (1 - hit));
      const auto p = d::predict(placed, ring_used, expert_read,
                                static_cast<uint64_t>(expert_bytes_per_token), speeds);
      const uint64_t used = resident + ring_used;
      if (!best || p.total < best_prediction.total * 0.999 ||
          (p.total <= best_prediction.total * 1.001 && used < best_used)) {
        best = placed;
        best_ring = ring_used;
        best_prediction = p;
        best_used = used;
      }
      if (!any_streamed) break;
    }
  }
  if (!best) return refuse();

  plan.layers = *best;
  // Budget the layers leave over deepens the ring (dense models; MoE gives it to the expert
  // cache): more layers read ahead absorb the jitter of the disk and of the compute.
  if (!stream_experts && best_ring > 0) {
    uint64_t resident = 0;
    uint64_t streamed_reads = 0;
    for (const LayerPlacement& l : plan.layers)
      (l.streamed ? streamed_reads : resident) += l.read_bytes;
    const uint64_t deeper =
        align_down(std::min(for_dense - resident, streamed_reads), kDirectIoAlignment);
    if (deeper > best_ring) {
      best_ring = deeper;
      for (LayerPlacement& l : plan.layers) {
        if (l.piece_bytes > 0)
          l.piece_bytes = make_row_piece(n, *head_tensor, 0, head_piece_rows(best_ring)).read_bytes;
      }
      best_prediction = d::predict(plan.layers, best_ring, 0, 0, speeds);
    }
  }
  plan.ring_bytes = best_ring;
  plan.components.streaming_ring = best_ring;
  plan.components.resident_weights = 0;
  uint64_t largest_streamed = 0;
  for (const LayerPlacement& l : plan.layers) {
    if (l.streamed) {
      plan.streamed_bytes_per_token += l.read_bytes;
      if (l.piece_bytes > 0) {
        plan.head_rows_per_piece = head_piece_rows(best_ring);
        continue;
      }
      largest_streamed = std::max(largest_streamed, l.read_bytes);
    } else {
      plan.components.resident_weights += l.read_bytes;
    }
  }
  if (layout.tied_output && !plan.layers.back().streamed) plan.drop_embedding_pages = false;
  if (largest_streamed > 0) {
    plan.ring_slots = static_cast<int64_t>(best_ring / largest_streamed);
    // With a single slot the next layer's read can still start in the ring's spare bytes when it
    // is smaller, but no whole layer is read ahead.
    plan.prefetch_depth = std::max<int64_t>(plan.ring_slots - 1, 0);
  }
  if (stream_experts) {
    plan.experts_streamed = true;
    const uint64_t cache = for_weights - plan.components.resident_weights - best_ring;
    plan.expert_cache_entries =
        std::min<int64_t>(static_cast<int64_t>(cache / expert_entry), plan.total_experts);
    plan.components.expert_cache = static_cast<uint64_t>(plan.expert_cache_entries) * expert_entry;
    const double hit = static_cast<double>(plan.expert_cache_entries) /
                       static_cast<double>(std::max<int64_t>(plan.total_experts, 1));
    plan.streamed_bytes_per_token +=
        static_cast<uint64_t>(experts_per_token * static_cast<double>(expert_entry) * (1 - hit));
  }
  plan.predicted_io_seconds_per_token = best_prediction.io;
  plan.predicted_compute_seconds_per_token = best_prediction.compute;
  plan.predicted_tokens_per_second = best_prediction.total > 0 ? 1 / best_prediction.total : 0;
  return plan;
}

}  // namespace floatllm
