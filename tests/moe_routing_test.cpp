// Mixture-of-experts layers: decoding a token reads only the experts its router chose, and a
// prompt batch reads each chosen expert once.
#include <gtest/gtest.h>
#include <floatllm/floatllm.hpp>

#include <map>
#include <set>

#include "test_support.hpp"

namespace floatllm {
namespace {

// Passes everything to the mapped source and records which experts of which tensor were read.
class CountingWeights final : public WeightSource {
 public:
  void begin_layer(int64_t layer) override { mapped_.begin_layer(layer); }
  void end_layer(int64_t layer) override { mapped_.end_layer(layer); }
  const std::byte* data(const GgufTensor& tensor) override { return mapped_.data(tensor); }
  const std::byte* expert_data(const GgufTensor& tensor, int64_t expert) override {
    ++reads_[std::string(tensor.name)][expert];
    return mapped_.expert_data(tensor, expert);
  }
  void clear() { reads_.clear(); }
  const std::map<std::string, std::map<int64_t, int>>& reads() const { return reads_; }

 private:
  MappedWeightSource mapped_;
  std::map<std::string, std::map<int64_t, int>> reads_;
};

class MoeRouting : public testing::TestWithParam<std::string> {};

TEST_P(MoeRouting, DecodeReadsOnlyTheChosenExperts) {
  const auto model = Model::open(test::model_path("synthetic/" + GetParam() + ".gguf"));
  const ModelConfig& c = model->config();
  ASSERT_TRUE(c.is_moe());
  ASSERT_LT(c.experts_used, c.expert_count);
  KvCache cache(c, 64, GgmlType::F32);
  Workspace workspace(c, 16);
  CountingWeights weights;
  ThreadPool pool(2);
  ForwardContext context{cache, workspace, weights, pool};
  std::vector<float> logits(static_cast<std::size_t>(c.vocab_size));

  const std::vector<int32_t> prompt{1, 17, 42, 99, 7, 300, 12, 5};
  model->forward(prompt, 0, context, logits, LogitsFor::kLastToken);
  // A batch reads each expert at most once per expert tensor, however many tokens chose it.
  for (const auto& [name, experts] : weights.reads()) {
    for (const auto& [expert, count] : experts)
      EXPECT_EQ(count, 1) << name << " expert " << expert;
  }

  for (int step = 0; step < 4; ++step) {
    weights.clear();
    const int32_t token = 23 + step;
    model->forward({&token, 1}, static_cast<int64_t>(prompt.size()) + step, context, logits,
                   LogitsFor::kLastToken);
    // Per layer: the gate, up and down stacks, each read for exactly experts_used experts.
    std::size_t tensors = 0;
    for (const auto& [name, experts] : weights.reads()) {
      ++tensors;
      EXPECT_EQ(static_cast<int64_t>(experts.size()), c.experts_used) << name;
      for (const auto& [expert, count] : experts) {
        EXPECT_EQ(count, 1) << name;
        EXPECT_LT(expert, c.expert_count);
      }
    }
    EXPECT_EQ(tensors, static_cast<std::size_t>(3 * c.n_layers));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, MoeRouting,
                         testing::Values("tiny-mixtral-f32", "tiny-qwen2moe-f32",
                                         "tiny-qwen3moe-q8_0", "tiny-olmoe-f32"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace floatllm
