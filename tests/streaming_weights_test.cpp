// A streamed run gives bit-identical logits to a fully mapped run, for dense and mixture-of-experts
// models, whatever is streamed, however small the ring and the expert cache, with direct or
// buffered reads; and the ring reads each streamed layer once per batch.
#include <gtest/gtest.h>
#include <floatllm/model/registry.hpp>
#include <floatllm/runtime/streaming_weights.hpp>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

// Logits of a 7-token prompt (every position) followed by 5 greedy decode steps.
std::vector<float> run(const Model& model, WeightSource& weights) {
  const ModelConfig& c = model.config();
  const std::vector<int32_t> prompt{1, 5, 9, 2, 7, 3, 11};
  const auto n = static_cast<int64_t>(prompt.size());
  const int64_t steps = 5;
  KvCache cache(c, n + steps, GgmlType::F16);
  Workspace workspace(c, n);
  ThreadPool pool(2);
  ForwardContext context{cache, workspace, weights, pool};
  std::vector<float> all(static_cast<std::size_t>((n + steps) * c.vocab_size));
  model.forward(prompt, 0, context, all, LogitsFor::kAllTokens);
  for (int64_t s = 0; s < steps; ++s) {
    const float* last = all.data() + (n + s - 1) * c.vocab_size;
    const auto token = static_cast<int32_t>(std::max_element(last, last + c.vocab_size) - last);
    model.forward({&token, 1}, n + s, context,
                  std::span<float>(all).subspan(static_cast<std::size_t>((n + s) * c.vocab_size)),
                  LogitsFor::kLastToken);
  }
  return all;
}

uint64_t largest_read(const WeightLayout& layout, int64_t n_layers) {
  uint64_t largest = 0;
  for (int64_t l = 0; l <= n_layers; ++l)
    largest = std::max(largest, layout.unit(l).read_bytes);
  return largest;
}

struct Variant {
  std::string name;
  StreamingOptions options;
};

std::vector<Variant> variants(const Model& model) {
  const int64_t n = model.config().n_layers;
  const bool moe = model.config().is_moe();
  const WeightLayout layout = WeightLayout::of(model, moe);
  const uint64_t largest = largest_read(layout, n);
  uint64_t expert_entry = 0;
  for (const ExpertLayout& e : layout.experts)
    expert_entry = std::max(expert_entry, e.read_bytes_per_expert);
  std::vector<Variant> list;
  const auto add = [&](std::string name, std::vector<bool> streamed, uint64_t ring, bool buffered,
                       uint64_t chunk) {
    Variant v{std::move(name), {}};
    v.options.streamed = std::move(streamed);
    v.options.ring_bytes = ring;
    v.options.stream_experts = moe;
    v.options.expert_cache_bytes = 2 * expert_entry;  // the smallest cache that works
    v.options.io.allow_direct = !buffered;
    v.options.io.chunk_bytes = chunk;
    v.options.io.threads = 3;
    list.push_back(std::move(v));
  };
  const std::vector<bool> all(static_cast<std::size_t>(n + 1), true);
  std::vector<bool> alternate(static_cast<std::size_t>(n + 1));
  for (std::size_t i = 0; i < alternate.size(); ++i)
    alternate[i] = i % 2 == 1;
  add("all layers, ring of one layer", all, largest, false, 1 << 20);
  add("all layers, ring of three layers, small chunks", all, 3 * largest, false, 8192);
  add("odd layers and head", alternate, 2 * largest, false, 1 << 20);
  add("all layers, buffered reads", all, 2 * largest, true, 1 << 20);
  // The head in pieces of about a third of its rows, in a ring sized for the other layers.
  uint64_t largest_layer = 0;
  for (int64_t l = 0; l < n; ++l)
    largest_layer = std::max(largest_layer, layout.unit(l).read_bytes);
  const GgufTensor& head = *model.tensors().output;
  const int64_t third = static_cast<int64_t>(head.ne[1]) / 3 + 1;
  const uint64_t piece = make_row_piece(n, head, 0, third).read_bytes;
  add("head in three pieces", all, std::max(largest_layer, 2 * piece), false, 1 << 20);
  list.back().options.head_rows_per_piece = third;
  return list;
}

class StreamingMatchesMapped : public testing::TestWithParam<std::string> {};

TEST_P(StreamingMatchesMapped, BitIdenticalLogits) {
  const auto model = Model::open(test::model_path(GetParam()));
  MappedWeightSource mapped;
  const std::vector<float> expected = run(*model, mapped);
  for (Variant& v : variants(*model)) {
    StreamingWeightSource streamed(*model, v.options);
    const std::vector<float> got = run(*model, streamed);
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0)
        << v.name << ": streamed logits differ from mapped ones";
    const StreamingStats stats = streamed.stats();
    EXPECT_GT(stats.bytes_read, 0u) << v.name;
    if (model->config().is_moe()) {
      EXPECT_GT(stats.expert_misses, 0) << v.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    SharedModels, StreamingMatchesMapped,
    testing::Values("gguf/stories260K.gguf", "synthetic/tiny-llama-f32.gguf",
                    "synthetic/tiny-llama-kq-q4_k_m.gguf", "synthetic/tiny-llama-f16.gguf",
                    "synthetic/tiny-mixtral-q8_0.gguf", "synthetic/tiny-qwen2moe-q8_0.gguf",
                    "synthetic/tiny-qwen3moe-q8_0.gguf", "synthetic/tiny-olmoe-q8_0.gguf",
                    "synthetic/tiny-gemma3-q8_0.gguf"),
    [](const testing::TestParamInfo<std::string>& info) {
      std::string name = std::filesystem::path(info.param).stem().string();
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name;
    });

// Counts what the forward pass asks of its source, to check the ring's reads against it.
TEST(StreamingWeights, ReadsEachStreamedLayerOncePerBatch) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama-f32.gguf"));
  const int64_t n = model->config().n_layers;
  StreamingOptions options;
  options.streamed.assign(static_cast<std::size_t>(n + 1), true);
  const WeightLayout layout = WeightLayout::of(*model, false);
  // Room for every layer: prefetch runs a full token ahead, and nothing is read twice.
  uint64_t total = 0;
  for (int64_t l = 0; l <= n; ++l)
    total += layout.unit(l).read_bytes;
  options.ring_bytes = total;
  StreamingWeightSource streamed(*model, options);
  run(*model, streamed);
  // One prompt batch and five decode steps each need every streamed layer once; prefetch reads
  // ahead into the sixth token's layers (at most one ring's worth) and discards nothing.
  const StreamingStats stats = streamed.stats();
  EXPECT_GE(stats.layers_loaded, 6 * (n + 1));
  EXPECT_LE(stats.layers_loaded, 7 * (n + 1));
  EXPECT_EQ(stats.layers_discarded, 0);
  EXPECT_LE(stats.bytes_read, 7 * total);
  EXPECT_TRUE(streamed.direct_io()) << "O_DIRECT was refused by the file system of the models";
}

// Streamed layers' bytes come from the ring, never from the mapping; resident ones from the
// mapping; expert slices from the expert cache.
TEST(StreamingWeights, HandsOutRingBytesForStreamedLayersOnly) {
  const auto model = Model::open(test::model_path("synthetic/tiny-mixtral-q8_0.gguf"));
  const int64_t n = model->config().n_layers;
  ASSERT_GE(n, 2);
  StreamingOptions options = variants(*model).front().options;
  options.streamed.assign(static_cast<std::size_t>(n + 1), false);
  options.streamed[1] = true;
  StreamingWeightSource streamed(*model, options);
  const std::span<const std::byte> file = model->file().bytes();
  const auto in_file = [&](const std::byte* p) {
    return p >= file.data() && p < file.data() + file.size();
  };
  for (int64_t l = 0; l < 2; ++l) {
    const LayerTensors& lt = model->tensors().layers[static_cast<std::size_t>(l)];
    streamed.begin_layer(l);
    // Resident layer 0 is the source's own copy too: mapped pages could be reclaimed and
    // faulted in again under a memory limit.
    const std::byte* q = streamed.data(*lt.attn_q);
    EXPECT_FALSE(in_file(q)) << "layer " << l;
    EXPECT_EQ(std::memcmp(q, lt.attn_q->data.data(), lt.attn_q->byte_size()), 0);
    const std::byte* expert = streamed.expert_data(*lt.ffn_up_experts, 1);
    EXPECT_FALSE(in_file(expert));
    const uint64_t slice = ExpertLayout::slice_bytes(*lt.ffn_up_experts);
    EXPECT_EQ(std::memcmp(expert, lt.ffn_up_experts->data.data() + slice, slice), 0);
    streamed.end_layer(l);
  }
}

TEST(StreamingWeights, RefusesARingSmallerThanALayer) {
  const auto model = Model::open(test::model_path("synthetic/tiny-llama-f32.gguf"));
  StreamingOptions options;
  options.streamed.assign(static_cast<std::size_t>(model->config().n_layers + 1), true);
  options.ring_bytes = 4096;
  EXPECT_THROW(StreamingWeightSource(*model, options), Error);
  options.streamed.pop_back();
  options.ring_bytes = 1 << 30;
  EXPECT_THROW(StreamingWeightSource(*model, options), Error);
}

// A forward pass stopped between layers (the watchdog's way) leaves the source usable, and the
// next run gives the same answers.
TEST(StreamingWeights, RecoversFromAForwardPassStoppedMidway) {
  const auto model = Model::open(test::model_path("synthetic/tiny-mixtral-q8_0.gguf"));
  MappedWeightSource mapped;
  const std::vector<float> expected = run(*model, mapped);
  StreamingOptions options = variants(*model).front().options;
  int calls = 0;
  bool armed = true;
  options.before_layer = [&] {
    if (armed && ++calls == 3) throw Error("simulated memory pressure");
  };
  StreamingWeightSource streamed(*model, options);
  EXPECT_THROW(run(*model, streamed), Error);
  armed = false;
  const std::vector<float> got = run(*model, streamed);
  EXPECT_EQ(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace floatllm
