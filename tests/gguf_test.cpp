// The GGUF view on real files and on hand-built files that use every metadata type.
#include <gtest/gtest.h>
#include <floatllm/io/gguf.hpp>

#include <filesystem>
#include <numeric>
#include <set>

#include "gguf_builder.hpp"
#include "test_support.hpp"

namespace floatllm {
namespace {

using test::GgufBuilder;

TEST(Gguf, Stories260KHeaderMatchesManifest) {
  const GgufFile gguf(test::model_path("gguf/stories260K.gguf"));
  EXPECT_EQ(gguf.version(), 3u);
  EXPECT_EQ(gguf.alignment(), 32u);
  EXPECT_EQ(gguf.metadata().size(), 19u);
  EXPECT_EQ(gguf.tensors().size(), 48u);
  EXPECT_EQ(gguf.data_offset(), 14176u);
  EXPECT_EQ(gguf.file_size() - gguf.data_offset(), 1171200u);
  for (const GgufTensor& tensor : gguf.tensors())
    EXPECT_EQ(tensor.type, GgmlType::F32);

  EXPECT_EQ(gguf.get<std::string_view>("general.architecture"), "llama");
  EXPECT_EQ(gguf.get<uint32_t>("llama.block_count"), 5u);
  EXPECT_EQ(gguf.get<uint32_t>("llama.embedding_length"), 64u);
  EXPECT_EQ(gguf.get<int64_t>("llama.attention.head_count"), 8);
  EXPECT_FLOAT_EQ(gguf.get<float>("llama.attention.layer_norm_rms_epsilon"), 1e-5f);
  EXPECT_FALSE(gguf.get_optional<float>("llama.rope.freq_base").has_value());
  EXPECT_EQ(gguf.get_or<float>("llama.rope.freq_base", 10000.0f), 10000.0f);
  EXPECT_EQ(gguf.get<uint32_t>("tokenizer.ggml.seperator_token_id"), 0xFFFFFFFFu);
}

TEST(Gguf, Stories260KTensorsAreViewsIntoTheMapping) {
  const GgufFile gguf(test::model_path("gguf/stories260K.gguf"));
  const GgufTensor& embd = gguf.tensor("token_embd.weight");
  EXPECT_EQ(embd.n_dims, 2u);
  EXPECT_EQ(embd.ne[0], 64u);
  EXPECT_EQ(embd.ne[1], 512u);
  EXPECT_EQ(embd.element_count, 64u * 512u);
  EXPECT_EQ(embd.byte_size(), 64u * 512u * 4u);
  EXPECT_EQ(embd.row_count(), 512u);
  EXPECT_EQ(embd.data.data(), gguf.bytes().data() + embd.file_offset);
  EXPECT_EQ(embd.file_offset % 32, 0u);
  const std::span<const float> values = embd.as<float>();
  EXPECT_EQ(values.size(), embd.element_count);
  float first = 0;
  std::memcpy(&first, gguf.bytes().data() + embd.file_offset, sizeof first);
  EXPECT_EQ(values[0], first);

  EXPECT_EQ(gguf.tensor("blk.0.attn_k.weight").ne[1], 32u);
  EXPECT_EQ(gguf.tensor("blk.4.ffn_down.weight").ne[0], 172u);
  EXPECT_EQ(gguf.find_tensor("blk.5.attn_q.weight"), nullptr);
  EXPECT_THROW(gguf.tensor("no.such.tensor"), Error);
  EXPECT_THROW(embd.as<int32_t>(), Error);
}

TEST(Gguf, Stories260KVocabularyArraysIterateWithoutCopies) {
  const GgufFile gguf(test::model_path("gguf/stories260K.gguf"));
  const GgufArray tokens = gguf.get_array("tokenizer.ggml.tokens");
  EXPECT_EQ(tokens.element_type(), GgufType::STRING);
  ASSERT_EQ(tokens.size(), 512u);
  const std::vector<std::string_view> pieces = tokens.strings();
  EXPECT_EQ(pieces[0], "<unk>");
  EXPECT_EQ(pieces[1], "<s>");
  EXPECT_EQ(pieces[2], "</s>");
  EXPECT_EQ(pieces[3], "<0x00>");
  const auto* begin = gguf.bytes().data();
  const auto* end = begin + gguf.file_size();
  for (std::string_view piece : pieces) {
    EXPECT_GE(reinterpret_cast<const std::byte*>(piece.data()), begin);
    EXPECT_LE(reinterpret_cast<const std::byte*>(piece.data() + piece.size()), end);
  }
  EXPECT_EQ(std::distance(tokens.begin(), tokens.end()), 512);

  const GgufArray scores = gguf.get_array("tokenizer.ggml.scores");
  EXPECT_EQ(scores.element_type(), GgufType::FLOAT32);
  const std::vector<float> score_values = scores.to_vector<float>();
  EXPECT_FLOAT_EQ(*std::max_element(score_values.begin(), score_values.end()), 0.0f);
  EXPECT_FLOAT_EQ(*std::min_element(score_values.begin(), score_values.end()), -252.0f);

  const std::vector<int32_t> types =
      gguf.get_array("tokenizer.ggml.token_type").to_vector<int32_t>();
  EXPECT_EQ(std::count(types.begin(), types.end(), 6), 256);
  EXPECT_EQ(std::count(types.begin(), types.end(), 1), 253);
  EXPECT_EQ(types[0], 2);
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(scores.at<float>(0), score_values[0]);
  EXPECT_THROW(scores.at<float>(512), Error);
  EXPECT_THROW(tokens.at<int>(0), Error);
}

TEST(Gguf, TypedAccessNamesTheKeyOnMismatch) {
  const GgufFile gguf(test::model_path("gguf/stories260K.gguf"));
  try {
    (void)gguf.get<uint32_t>("general.architecture");
    FAIL() << "reading a string as a number must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
  }
  try {
    (void)gguf.get<uint32_t>("llama.missing_key");
    FAIL() << "a missing key must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama.missing_key"), std::string::npos);
  }
  // 0xFFFFFFFF does not fit an int32: an exact conversion or an error, never a wrapped value.
  EXPECT_THROW(gguf.get<int32_t>("tokenizer.ggml.seperator_token_id"), Error);
  EXPECT_THROW(gguf.get<bool>("llama.block_count"), Error);
  EXPECT_THROW(gguf.get_array("llama.block_count"), Error);
}

TEST(Gguf, EveryModelInTheSharedFolderOpens) {
  std::size_t opened = 0;
  std::set<GgmlType> types_seen;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(test::models_dir())) {
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().string());
    const GgufFile gguf(entry.path());
    EXPECT_EQ(gguf.version(), 3u);
    EXPECT_TRUE(gguf.contains("general.architecture"));
    uint64_t total = 0;
    for (const GgufTensor& tensor : gguf.tensors()) {
      EXPECT_EQ(tensor.byte_size(), tensor.row_bytes() * tensor.row_count()) << tensor.name;
      EXPECT_LE(tensor.file_offset + tensor.byte_size(), gguf.file_size());
      total += tensor.byte_size();
      types_seen.insert(tensor.type);
    }
    if (!gguf.tensors().empty()) {
      EXPECT_LE(gguf.data_offset() + total, gguf.file_size());
    }
    ++opened;
  }
  EXPECT_GE(opened, 45u);
  for (GgmlType type :
       {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
        GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
        GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    EXPECT_TRUE(types_seen.contains(type)) << ggml_type_name(type);
  }
}

TEST(Gguf, LlamaTinyRandomHasNineF16AndThreeF32Tensors) {
  const GgufFile gguf(test::model_path("gguf/llama-2-tiny-random.gguf"));
  int f16 = 0;
  int f32 = 0;
  for (const GgufTensor& tensor : gguf.tensors()) {
    f16 += tensor.type == GgmlType::F16;
    f32 += tensor.type == GgmlType::F32;
  }
  EXPECT_EQ(f16, 9);
  EXPECT_EQ(f32, 3);
  EXPECT_EQ(gguf.get<uint32_t>("general.file_type"), 1u);
  EXPECT_EQ(gguf.get_array("tokenizer.ggml.tokens").size(), 32000u);
}

TEST(Gguf, QuantizedTensorSizesFollowTheBlockGeometry) {
  const GgufFile gguf(test::model_path("synthetic/tiny-llama-kq-q4_k_m.gguf"));
  bool saw_q4_k = false;
  for (const GgufTensor& tensor : gguf.tensors()) {
    if (tensor.type != GgmlType::Q4_K) continue;
    saw_q4_k = true;
    EXPECT_EQ(tensor.ne[0] % 256, 0u);
    EXPECT_EQ(tensor.byte_size(), tensor.element_count / 256 * 144);
  }
  EXPECT_TRUE(saw_q4_k);
}

TEST(Gguf, GgmlTypeTableIsConsistent) {
  std::set<uint32_t> ids;
  std::set<std::string_view> names;
  for (const GgmlTypeTraits& traits : kGgmlTypes) {
    EXPECT_TRUE(ids.insert(static_cast<uint32_t>(traits.type)).second);
    EXPECT_TRUE(names.insert(traits.name).second);
    EXPECT_EQ(ggml_type_from_name(traits.name), traits.type);
    EXPECT_GT(traits.block_bytes, 0u);
  }
  EXPECT_EQ(ggml_type_from_name("q4_k"), GgmlType::Q4_K);
  EXPECT_FALSE(ggml_type_from_name("Q4_K_M").has_value());
  EXPECT_FALSE(ggml_type_traits(4).has_value());
  EXPECT_EQ(traits_of(GgmlType::Q6_K).block_bytes, 210u);
  EXPECT_EQ(traits_of(GgmlType::Q8_K).block_bytes, 292u);
  EXPECT_EQ(traits_of(GgmlType::IQ4_XS).block_bytes, 136u);
}

// A v2 file written by hand with every value type, nested arrays and a custom alignment.
std::vector<std::byte> every_value_type_file(uint32_t version) {
  GgufBuilder b;
  b.header(/*tensors=*/2, /*kvs=*/16, version);
  b.key("u8", 0).put<uint8_t>(200);
  b.key("i8", 1).put<int8_t>(-5);
  b.key("u16", 2).put<uint16_t>(60000);
  b.key("i16", 3).put<int16_t>(-30000);
  b.key("u32", 4).put<uint32_t>(4000000000u);
  b.key("i32", 5).put<int32_t>(-7);
  b.key("f32", 6).put<float>(0.5f);
  b.key("bool", 7).put<uint8_t>(1);
  b.key("str", 8).str("hello \xe2\x96\x81 world");
  b.key("u64", 10).put<uint64_t>(uint64_t{1} << 40);
  b.key("i64", 11).put<int64_t>(-(int64_t{1} << 40));
  b.key("f64", 12).put<double>(2.25);
  b.key("general.alignment", 4).put<uint32_t>(64);
  b.key("arr.str", 9).put<uint32_t>(8).put<uint64_t>(3).str("a").str("").str("ccc");
  b.key("arr.arr", 9).put<uint32_t>(9).put<uint64_t>(2);
  b.put<uint32_t>(4).put<uint64_t>(2).put<uint32_t>(1).put<uint32_t>(2);
  b.put<uint32_t>(8).put<uint64_t>(1).str("nested");
  b.key("arr.empty", 9).put<uint32_t>(6).put<uint64_t>(0);
  b.tensor_info("a", {4, 2}, 0, 0);
  b.tensor_info("b", {32}, 8, 64);
  b.pad_to(64);
  for (int i = 0; i < 8; ++i)
    b.put<float>(static_cast<float>(i));
  b.zeros(32);                        // padding to the next 64-byte boundary
  b.put<uint16_t>(0x3c00).zeros(32);  // one Q8_0 block: d = 1.0, 32 zero quants
  return std::move(b.bytes());
}

TEST(Gguf, HandBuiltFileWithEveryValueType) {
  for (uint32_t version : {2u, 3u}) {
    const auto bytes = every_value_type_file(version);
    const GgufFile gguf(bytes, "hand-built");
    EXPECT_EQ(gguf.version(), version);
    EXPECT_EQ(gguf.get<uint8_t>("u8"), 200);
    EXPECT_EQ(gguf.get<int8_t>("i8"), -5);
    EXPECT_EQ(gguf.get<uint16_t>("u16"), 60000);
    EXPECT_EQ(gguf.get<int16_t>("i16"), -30000);
    EXPECT_EQ(gguf.get<uint32_t>("u32"), 4000000000u);
    EXPECT_EQ(gguf.get<int32_t>("i32"), -7);
    EXPECT_THROW(gguf.get<uint32_t>("i32"), Error);
    EXPECT_EQ(gguf.get<float>("f32"), 0.5f);
    EXPECT_TRUE(gguf.get<bool>("bool"));
    EXPECT_EQ(gguf.get<std::string>("str"), "hello \xe2\x96\x81 world");
    EXPECT_EQ(gguf.get<uint64_t>("u64"), uint64_t{1} << 40);
    EXPECT_EQ(gguf.get<int64_t>("i64"), -(int64_t{1} << 40));
    EXPECT_THROW(gguf.get<int32_t>("i64"), Error);
    EXPECT_EQ(gguf.get<double>("f64"), 2.25);
    EXPECT_THROW(gguf.get<int>("f64"), Error);
    EXPECT_EQ(gguf.alignment(), 64u);

    const auto strings = gguf.get_array("arr.str").strings();
    ASSERT_EQ(strings.size(), 3u);
    EXPECT_EQ(strings[0], "a");
    EXPECT_EQ(strings[1], "");
    EXPECT_EQ(strings[2], "ccc");

    const GgufArray nested = gguf.get_array("arr.arr");
    ASSERT_EQ(nested.size(), 2u);
    auto it = nested.begin();
    const GgufArray first = (*it).as_array();
    EXPECT_EQ(first.to_vector<uint32_t>(), (std::vector<uint32_t>{1, 2}));
    ++it;
    EXPECT_EQ((*it).as_array().strings(), (std::vector<std::string_view>{"nested"}));
    ++it;
    EXPECT_TRUE(it == nested.end());
    EXPECT_TRUE(gguf.get_array("arr.empty").empty());

    EXPECT_EQ(gguf.data_offset() % 64, 0u);
    const auto a = gguf.tensor("a").as<float>();
    ASSERT_EQ(a.size(), 8u);
    EXPECT_EQ(std::accumulate(a.begin(), a.end(), 0.0f), 28.0f);
    const GgufTensor& b = gguf.tensor("b");
    EXPECT_EQ(b.type, GgmlType::Q8_0);
    EXPECT_EQ(b.byte_size(), 34u);
    EXPECT_EQ(b.file_offset, gguf.data_offset() + 64);
  }
}

}  // namespace
}  // namespace floatllm
