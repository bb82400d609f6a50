// The GGUF writer, checked by reading its files back with GgufFile: every metadata type, tensor
// alignment and streaming, atomic replacement, and byte-identical copies of every shared model.
#include <gtest/gtest.h>
#include <floatllm/io/gguf_writer.hpp>

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

std::vector<std::byte> iota_bytes(std::size_t count, int start = 0) {
  std::vector<std::byte> bytes(count);
  for (std::size_t i = 0; i < count; ++i)
    bytes[i] = static_cast<std::byte>((start + static_cast<int>(i) * 7) & 0xff);
  return bytes;
}

TEST(GgufWriter, EveryScalarTypeRoundTrips) {
  TempDir dir;
  GgufWriter writer;
  writer.set("u8", uint8_t{200});
  writer.set("i8", int8_t{-100});
  writer.set("u16", uint16_t{60000});
  writer.set("i16", int16_t{-30000});
  writer.set("u32", uint32_t{4000000000u});
  writer.set("i32", int32_t{-2000000000});
  writer.set("u64", uint64_t{18000000000000000000ull});
  writer.set("i64", int64_t{-9000000000000000000ll});
  writer.set("f32", 1.5f);
  writer.set("f64", -2.25e300);
  writer.set("yes", true);
  writer.set("no", false);
  writer.set("text", "héllo\nworld");
  writer.set("empty", "");
  writer.write(dir / "scalars.gguf");

  const GgufFile gguf(dir / "scalars.gguf");
  EXPECT_EQ(gguf.version(), 3u);
  ASSERT_EQ(gguf.metadata().size(), 14u);
  EXPECT_EQ(gguf.metadata()[0].key, "u8");
  EXPECT_EQ(gguf.require("u8").type(), GgufType::UINT8);
  EXPECT_EQ(gguf.get<uint8_t>("u8"), 200);
  EXPECT_EQ(gguf.require("i8").type(), GgufType::INT8);
  EXPECT_EQ(gguf.get<int8_t>("i8"), -100);
  EXPECT_EQ(gguf.require("u16").type(), GgufType::UINT16);
  EXPECT_EQ(gguf.get<uint16_t>("u16"), 60000);
  EXPECT_EQ(gguf.require("i16").type(), GgufType::INT16);
  EXPECT_EQ(gguf.get<int16_t>("i16"), -30000);
  EXPECT_EQ(gguf.require("u32").type(), GgufType::UINT32);
  EXPECT_EQ(gguf.get<uint32_t>("u32"), 4000000000u);
  EXPECT_EQ(gguf.require("i32").type(), GgufType::INT32);
  EXPECT_EQ(gguf.get<int32_t>("i32"), -2000000000);
  EXPECT_EQ(gguf.require("u64").type(), GgufType::UINT64);
  EXPECT_EQ(gguf.get<uint64_t>("u64"), 18000000000000000000ull);
  EXPECT_EQ(gguf.require("i64").type(), GgufType::INT64);
  EXPECT_EQ(gguf.get<int64_t>("i64"), -9000000000000000000ll);
  EXPECT_EQ(gguf.require("f32").type(), GgufType::FLOAT32);
  EXPECT_EQ(gguf.get<float>("f32"), 1.5f);
  EXPECT_EQ(gguf.require("f64").type(), GgufType::FLOAT64);
  EXPECT_EQ(gguf.get<double>("f64"), -2.25e300);
  EXPECT_TRUE(gguf.get<bool>("yes"));
  EXPECT_FALSE(gguf.get<bool>("no"));
  EXPECT_EQ(gguf.get<std::string_view>("text"), "héllo\nworld");
  EXPECT_EQ(gguf.get<std::string_view>("empty"), "");
  EXPECT_TRUE(gguf.tensors().empty());
}

TEST(GgufWriter, ArraysOfEveryKindRoundTrip) {
  TempDir dir;
  GgufWriter writer;
  const std::vector<float> scores{0.5f, -1.0f, std::numeric_limits<float>::infinity()};
  const std::vector<int32_t> types{1, 2, 3, 6};
  const std::vector<uint64_t> big{0, ~uint64_t{0}};
  const std::vector<std::string> tokens{"<s>", "", std::string("a\0b", 3), "Ġthe"};
  writer.set("scores", GgufMetadataValue::array(scores));
  writer.set("types", GgufMetadataValue::array(types));
  writer.set("big", GgufMetadataValue::array(big));
  writer.set("tokens", GgufMetadataValue::string_array(tokens));
  writer.set("none", GgufMetadataValue::array(std::vector<double>{}));
  const std::vector<GgufMetadataValue> rows{GgufMetadataValue::array(std::vector<int16_t>{1, -2}),
                                            GgufMetadataValue::array(std::vector<double>{3.5}),
                                            GgufMetadataValue::string_array(tokens)};
  writer.set("nested", GgufMetadataValue::array_of(GgufType::ARRAY, rows));
  const std::vector<GgufMetadataValue> deeper{GgufMetadataValue::array_of(GgufType::ARRAY, rows),
                                              GgufMetadataValue::array_of(GgufType::ARRAY, {})};
  writer.set("deeper", GgufMetadataValue::array_of(GgufType::ARRAY, deeper));
  writer.write(dir / "arrays.gguf");

  const GgufFile gguf(dir / "arrays.gguf");
  EXPECT_EQ(gguf.get_array("scores").element_type(), GgufType::FLOAT32);
  EXPECT_EQ(gguf.get_array("scores").to_vector<float>(), scores);
  EXPECT_EQ(gguf.get_array("types").element_type(), GgufType::INT32);
  EXPECT_EQ(gguf.get_array("types").to_vector<int32_t>(), types);
  EXPECT_EQ(gguf.get_array("big").to_vector<uint64_t>(), big);
  const auto strings = gguf.get_array("tokens").strings();
  ASSERT_EQ(strings.size(), tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i)
    EXPECT_EQ(strings[i], tokens[i]);
  EXPECT_TRUE(gguf.get_array("none").empty());
  EXPECT_EQ(gguf.get_array("none").element_type(), GgufType::FLOAT64);

  const GgufArray nested = gguf.get_array("nested");
  ASSERT_EQ(nested.element_type(), GgufType::ARRAY);
  ASSERT_EQ(nested.size(), 3u);
  auto it = nested.begin();
  EXPECT_EQ((*it).as_array().to_vector<int16_t>(), (std::vector<int16_t>{1, -2}));
  ++it;
  EXPECT_EQ((*it).as_array().to_vector<double>(), std::vector<double>{3.5});
  ++it;
  EXPECT_EQ((*it).as_array().strings().size(), tokens.size());
  EXPECT_EQ((*it).as_array().strings()[3], "Ġthe");

  const GgufArray deep = gguf.get_array("deeper");
  ASSERT_EQ(deep.size(), 2u);
  EXPECT_EQ((*deep.begin()).as_array().size(), 3u);
  EXPECT_TRUE((*std::next(deep.begin())).as_array().empty());
}

TEST(GgufWriter, BoolArraysAreOneBytePerElement) {
  TempDir dir;
  GgufWriter writer;
  const bool flags[] = {true, false, true};
  writer.set("flags", GgufMetadataValue::array(std::span<const bool>(flags)));
  writer.write(dir / "bools.gguf");
  const GgufFile gguf(dir / "bools.gguf");
  EXPECT_EQ(gguf.get_array("flags").to_vector<bool>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(gguf.require("flags").byte_size(), 12u + 3u);
}

TEST(GgufWriter, MixedNestedElementTypesAreRejected) {
  const std::vector<GgufMetadataValue> mixed{GgufMetadataValue::string("a"),
                                             GgufMetadataValue::of(uint32_t{1})};
  EXPECT_THROW(GgufMetadataValue::array_of(GgufType::STRING, mixed), Error);
}

TEST(GgufWriter, SetReplacesInPlaceAndRemoveDrops) {
  TempDir dir;
  GgufWriter writer;
  writer.set("a", uint32_t{1});
  writer.set("b", "two");
  writer.set("c", 3.0f);
  writer.set("a", "one");
  EXPECT_TRUE(writer.remove("b"));
  EXPECT_FALSE(writer.remove("b"));
  writer.set("d", int64_t{4});
  writer.write(dir / "keys.gguf");
  const GgufFile gguf(dir / "keys.gguf");
  ASSERT_EQ(gguf.metadata().size(), 3u);
  EXPECT_EQ(gguf.metadata()[0].key, "a");
  EXPECT_EQ(gguf.get<std::string_view>("a"), "one");
  EXPECT_EQ(gguf.metadata()[1].key, "c");
  EXPECT_EQ(gguf.metadata()[2].key, "d");
  EXPECT_FALSE(gguf.contains("b"));
}

TEST(GgufWriter, TensorsAreAlignedAndStreamedInPieces) {
  for (const uint32_t alignment : {32u, 64u, 1u, 4096u}) {
    TempDir dir;
    GgufWriter writer;
    if (alignment != 32) writer.set_alignment(alignment);
    writer.set("general.architecture", "test");
    const auto a = iota_bytes(3 * 4, 1);      // F32 [3]: 12 bytes, needs padding
    const auto b = iota_bytes(2 * 34, 5);     // Q8_0 [32, 2]
    const auto c = iota_bytes(5 * 7 * 2, 9);  // F16 [5, 7]
    writer.add_tensor("a", GgmlType::F32, {3}, std::span<const std::byte>(a));
    writer.add_tensor("b", GgmlType::Q8_0, {32, 2}, [&](TensorDataSink& sink) {
      for (std::size_t i = 0; i < b.size(); i += 5)
        sink.write(
            std::span<const std::byte>(b).subspan(i, std::min<std::size_t>(5, b.size() - i)));
    });
    writer.add_tensor("c", GgmlType::F16, {5, 7, 1, 1}, std::span<const std::byte>(c));
    writer.write(dir / "tensors.gguf");

    const GgufFile gguf(dir / "tensors.gguf");
    EXPECT_EQ(gguf.alignment(), alignment);
    ASSERT_EQ(gguf.tensors().size(), 3u);
    const std::vector<const std::vector<std::byte>*> expected{&a, &b, &c};
    for (std::size_t i = 0; i < 3; ++i) {
      const GgufTensor& tensor = gguf.tensors()[i];
      EXPECT_EQ(tensor.file_offset % alignment, 0u) << tensor.name;
      ASSERT_EQ(tensor.data.size(), expected[i]->size()) << tensor.name;
      EXPECT_TRUE(std::equal(tensor.data.begin(), tensor.data.end(), expected[i]->begin()))
          << tensor.name;
    }
    EXPECT_EQ(gguf.tensor("b").type, GgmlType::Q8_0);
    EXPECT_EQ(gguf.tensor("b").ne[1], 2u);
    EXPECT_EQ(gguf.tensor("c").n_dims, 4u);
    EXPECT_EQ(gguf.file_size(), gguf.data_offset() + writer.data_bytes());
  }
}

TEST(GgufWriter, BadTensorDescriptionsAreRejected) {
  GgufWriter writer;
  const auto none = [](TensorDataSink&) {};
  EXPECT_THROW(writer.add_tensor("q", GgmlType::Q8_0, {31}, none), Error);
  EXPECT_THROW(writer.add_tensor("five", GgmlType::F32, {1, 1, 1, 1, 1}, none), Error);
  EXPECT_THROW(writer.add_tensor("zero", GgmlType::F32, std::vector<uint64_t>{}, none), Error);
  EXPECT_THROW(writer.add_tensor("", GgmlType::F32, {1}, none), Error);
  EXPECT_THROW(writer.add_tensor("huge", GgmlType::F32, {1ull << 40, 1ull << 40}, none), Error);
  writer.add_tensor("x", GgmlType::F32, {1}, none);
  EXPECT_THROW(writer.add_tensor("x", GgmlType::F32, {1}, none), Error);
  const auto bytes = iota_bytes(8);
  EXPECT_THROW(writer.add_tensor("short", GgmlType::F32, {3}, std::span<const std::byte>(bytes)),
               Error);
  EXPECT_EQ(writer.tensors().size(), 1u);
  EXPECT_THROW(writer.set_alignment(48), Error);
  writer.set("general.alignment", uint64_t{64});
  EXPECT_THROW((void)writer.alignment(), Error);
}

TEST(GgufWriter, FailedWriteLeavesTheOldFileAndNoTemporary) {
  TempDir dir;
  const fs::path path = dir / "model.gguf";
  {
    GgufWriter good;
    good.set("general.name", "old");
    good.write(path);
  }
  const auto before = test::read_bytes(path);

  GgufWriter short_producer;
  short_producer.set("general.name", "new");
  short_producer.add_tensor("t", GgmlType::F32, {4}, [](TensorDataSink& sink) {
    const float two[2] = {1, 2};
    sink.write_values(std::span<const float>(two));
  });
  try {
    short_producer.write(path);
    FAIL() << "a producer that wrote 8 of 16 bytes was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wrote 8 of its 16 bytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'t'"), std::string::npos) << e.what();
  }

  GgufWriter long_producer;
  long_producer.add_tensor("t", GgmlType::F32, {1}, [](TensorDataSink& sink) {
    const float two[2] = {1, 2};
    sink.write_values(std::span<const float>(two));
  });
  EXPECT_THROW(long_producer.write(path), Error);

  GgufWriter throwing;
  throwing.add_tensor("t", GgmlType::F32, {1}, [](TensorDataSink&) { fail("source broke"); });
  EXPECT_THROW(throwing.write(path), Error);

  EXPECT_EQ(test::read_bytes(path), before);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.gguf"});
  EXPECT_THROW(GgufWriter().write(dir / "no-such-dir" / "x.gguf"), Error);
}

TEST(GgufWriter, ProgressReportsEveryByteInOrder) {
  TempDir dir;
  GgufWriter writer;
  const auto a = iota_bytes(100 * 4);
  writer.add_tensor("a", GgmlType::F32, {100}, std::span<const std::byte>(a));
  writer.add_tensor("b", GgmlType::F32, {10}, [&](TensorDataSink& sink) {
    for (int i = 0; i < 10; ++i)
      sink.write(std::span<const std::byte>(a).subspan(static_cast<std::size_t>(i) * 4, 4));
  });
  std::vector<GgufWriteProgress> seen;
  writer.write(dir / "p.gguf", [&](const GgufWriteProgress& p) { seen.push_back(p); });
  ASSERT_FALSE(seen.empty());
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].bytes_done, seen[i - 1].bytes_done);
    EXPECT_GE(seen[i].tensor_index, seen[i - 1].tensor_index);
  }
  EXPECT_EQ(seen.back().bytes_done, seen.back().bytes_total);
  EXPECT_EQ(seen.back().bytes_total, 416u + 64u);  // 400 -> 416 and 40 -> 64 with padding
  EXPECT_EQ(seen.back().tensor_name, "b");
  EXPECT_EQ(seen.back().tensor_count, 2u);
}

std::vector<fs::path> shared_gguf_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(test::models_dir())) {
    if (entry.is_regular_file() && entry.path().extension() == ".gguf")
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Copying a file through the writer keeps every key, value and tensor byte. When the source
// stores tensors in info order with minimal padding, as llama.cpp's writer does, the whole
// file comes out byte-identical.
TEST(GgufWriter, CopiesOfEverySharedModelAreIdentical) {
  const auto files = shared_gguf_files();
  ASSERT_GE(files.size(), 40u);
  TempDir dir;
  int identical_files = 0;
  for (const fs::path& path : files) {
    SCOPED_TRACE(path.string());
    const GgufFile source(path);
    GgufWriter writer;
    writer.copy_metadata(source);
    for (const GgufTensor& tensor : source.tensors())
      writer.copy_tensor(tensor);
    const fs::path copy_path = dir / "copy.gguf";
    writer.write(copy_path);

    const GgufFile copy(copy_path);
    EXPECT_EQ(copy.alignment(), source.alignment());
    ASSERT_EQ(copy.metadata().size(), source.metadata().size());
    for (std::size_t i = 0; i < source.metadata().size(); ++i) {
      const auto& a = source.metadata()[i];
      const auto& b = copy.metadata()[i];
      ASSERT_EQ(a.key, b.key);
      ASSERT_EQ(a.value.type(), b.value.type()) << a.key;
      const GgufMetadataValue va = GgufMetadataValue::copy_of(a.value);
      const GgufMetadataValue vb = GgufMetadataValue::copy_of(b.value);
      const auto ea = va.encoded();
      const auto eb = vb.encoded();
      ASSERT_TRUE(std::equal(ea.begin(), ea.end(), eb.begin(), eb.end())) << a.key;
      EXPECT_EQ(a.value.byte_size(), b.value.byte_size()) << a.key;
    }
    ASSERT_EQ(copy.tensors().size(), source.tensors().size());
    for (std::size_t i = 0; i < source.tensors().size(); ++i) {
      const GgufTensor& a = source.tensors()[i];
      const GgufTensor& b = copy.tensors()[i];
      ASSERT_EQ(a.name, b.name);
      EXPECT_EQ(a.type, b.type) << a.name;
      EXPECT_EQ(a.n_dims, b.n_dims) << a.name;
      EXPECT_EQ(a.ne, b.ne) << a.name;
      ASSERT_EQ(a.data.size(), b.data.size()) << a.name;
      EXPECT_EQ(std::memcmp(a.data.data(), b.data.data(), a.data.size()), 0) << a.name;
    }
    const auto original = test::read_bytes(path);
    const auto copied = test::read_bytes(copy_path);
    if (original == copied) {
      ++identical_files;
    } else {
      const auto diff =
          std::mismatch(original.begin(), original.end(), copied.begin(), copied.end());
      ADD_FAILURE() << "the copy differs from byte " << (diff.first - original.begin())
                    << "; sizes " << original.size() << " and " << copied.size();
    }
  }
  // Every shared file was written by llama.cpp's gguf writer, which lays files out as ours does.
  EXPECT_EQ(identical_files, static_cast<int>(files.size()));
}

}  // namespace
}  // namespace floatllm
