// safetensors: the writer and the zero-copy reader against each other, sharded checkpoints, and
// hostile headers that must each fail with an error naming the file and the field.
#include <gtest/gtest.h>
#include <floatllm/io/safetensors.hpp>
#include <floatllm/io/safetensors_writer.hpp>

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using test::TempDir;

template <class T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

TEST(Safetensors, EveryDtypeRoundTripsThroughTheWriter) {
  TempDir dir;
  const std::vector<float> f32{1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 7.0f};
  const std::vector<uint16_t> f16{f32_to_fp16(1.5f), f32_to_fp16(-0.25f)};
  const std::vector<uint16_t> bf16{f32_to_bf16(3.0f), f32_to_bf16(-1024.0f), f32_to_bf16(0.5f)};
  const std::vector<double> f64{2.5, -1e10};
  const std::vector<int8_t> i8{-128, 127, 0};
  const std::vector<int16_t> i16{-30000};
  const std::vector<int32_t> i32{1, -2, 3, -4};
  const std::vector<int64_t> i64{-(int64_t{1} << 40)};
  const std::vector<uint8_t> u8{255, 0, 1, 2, 3};
  const std::vector<uint8_t> flags{1, 0, 1};
  const std::vector<uint32_t> u32{4000000000u};

  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "written by floatllm's test");
  // Widest elements first, as the reference writer orders them, so every tensor is aligned.
  writer.add_tensor("f64", SafetensorsDtype::F64, {2}, bytes_of(f64));
  writer.add_tensor("i64", SafetensorsDtype::I64, {}, bytes_of(i64));  // a scalar
  writer.add_tensor("f32", SafetensorsDtype::F32, {2, 3}, bytes_of(f32));
  writer.add_tensor("i32", SafetensorsDtype::I32, {2, 2}, bytes_of(i32));
  writer.add_tensor("u32", SafetensorsDtype::U32, {1}, bytes_of(u32));
  writer.add_tensor("f16", SafetensorsDtype::F16, {2}, bytes_of(f16));
  writer.add_tensor("bf16", SafetensorsDtype::BF16, {1, 3}, bytes_of(bf16));
  writer.add_tensor("i16", SafetensorsDtype::I16, {1}, bytes_of(i16));
  writer.add_tensor("i8", SafetensorsDtype::I8, {3}, bytes_of(i8));
  writer.add_tensor("u8", SafetensorsDtype::U8, {5}, bytes_of(u8));
  writer.add_tensor("flags", SafetensorsDtype::BOOL, {3}, bytes_of(flags));
  writer.add_tensor("empty", SafetensorsDtype::F32, {0, 4}, std::span<const std::byte>{});
  writer.write(dir / "all.safetensors");

  const SafetensorsFile file(dir / "all.safetensors");
  EXPECT_EQ(file.header_size() % 8, 0u);
  EXPECT_EQ(file.tensors().size(), 12u);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(file.metadata().at("note"), "written by floatllm's test");
  EXPECT_EQ(file.tensors().front().name, "f64");  // file order, not name order

  const SafetensorsTensor& t32 = file.tensor("f32");
  EXPECT_EQ(t32.shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(t32.element_count, 6u);
  EXPECT_EQ(t32.data.data(), file.bytes().data() + t32.file_offset);
  std::vector<float> read(6);
  t32.read_f32(0, read);
  EXPECT_EQ(read, f32);
  std::vector<float> tail(2);
  t32.read_f32(4, tail);
  EXPECT_EQ(tail, (std::vector<float>{1e-3f, 7.0f}));
  EXPECT_THROW(t32.read_f32(5, tail), Error);

  std::vector<float> halves(2);
  file.tensor("f16").read_f32(0, halves);
  EXPECT_EQ(halves, (std::vector<float>{1.5f, -0.25f}));
  std::vector<float> brains(3);
  file.tensor("bf16").read_f32(0, brains);
  EXPECT_EQ(brains, (std::vector<float>{3.0f, -1024.0f, 0.5f}));
  std::vector<float> doubles(2);
  file.tensor("f64").read_f32(0, doubles);
  EXPECT_EQ(doubles, (std::vector<float>{2.5f, -1e10f}));
  EXPECT_THROW(file.tensor("i32").read_f32(0, doubles), Error);

  const auto as_i32 = file.tensor("i32").as<int32_t>();
  EXPECT_EQ(std::vector<int32_t>(as_i32.begin(), as_i32.end()), i32);
  EXPECT_EQ(file.tensor("i64").shape.size(), 0u);
  EXPECT_EQ(file.tensor("i64").as<int64_t>()[0], i64[0]);
  EXPECT_EQ(file.tensor("u8").as<uint8_t>()[0], 255);
  EXPECT_EQ(file.tensor("i8").as<int8_t>()[0], -128);
  EXPECT_EQ(file.tensor("u32").as<uint32_t>()[0], 4000000000u);
  EXPECT_EQ(file.tensor("f16").half_bits()[1], f16[1]);
  EXPECT_EQ(file.tensor("flags").dtype, SafetensorsDtype::BOOL);
  EXPECT_EQ(file.tensor("empty").byte_size(), 0u);
  EXPECT_THROW(file.tensor("f32").as<int32_t>(), Error);
  EXPECT_THROW(file.tensor("f32").half_bits(), Error);
  EXPECT_THROW(file.tensor("nope"), Error);
}

TEST(Safetensors, AlignedLayoutGivesTypedSpans) {
  TempDir dir;
  const std::vector<float> values{1, 2, 3, 4};
  SafetensorsWriter writer;
  writer.add_tensor("a", SafetensorsDtype::F32, {4}, bytes_of(values));
  writer.add_tensor("b", SafetensorsDtype::F32, {2, 2}, bytes_of(values));
  writer.write(dir / "aligned.safetensors");
  const SafetensorsFile file(dir / "aligned.safetensors");
  const auto b = file.tensor("b").as<float>();
  EXPECT_EQ(std::vector<float>(b.begin(), b.end()), values);
}

TEST(Safetensors, WriterRejectsMistakes) {
  SafetensorsWriter writer;
  const std::vector<float> values{1, 2};
  EXPECT_THROW(writer.add_tensor("x", SafetensorsDtype::F32, {3}, bytes_of(values)), Error);
  EXPECT_THROW(writer.add_tensor("__metadata__", SafetensorsDtype::F32, {2}, bytes_of(values)),
               Error);
  writer.add_tensor("x", SafetensorsDtype::F32, {2}, bytes_of(values));
  EXPECT_THROW(writer.add_tensor("x", SafetensorsDtype::F32, {2}, bytes_of(values)), Error);
  EXPECT_EQ(writer.tensors().size(), 1u);

  TempDir dir;
  SafetensorsWriter short_producer;
  short_producer.add_tensor("t", SafetensorsDtype::F32, {4}, [](TensorDataSink& sink) {
    sink.write_values(std::span<const float>(std::vector<float>{1.0f}));
  });
  EXPECT_THROW(short_producer.write(dir / "t.safetensors"), Error);
  EXPECT_FALSE(fs::exists(dir / "t.safetensors"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

void write_shard(const fs::path& path, const std::vector<std::string>& names, float base) {
  SafetensorsWriter writer;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::vector<float> values{base + static_cast<float>(i), base};
    writer.add_tensor(names[i], SafetensorsDtype::F32, {2},
                      [values](TensorDataSink& sink) { sink.write_values(std::span(values)); });
  }
  writer.write(path);
}

void write_index(const fs::path& path, const json& weight_map) {
  std::ofstream(path) << json{{"metadata", {{"total_size", 24}}}, {"weight_map", weight_map}};
}

TEST(Safetensors, ShardedCheckpointThroughTheIndex) {
  TempDir dir;
  write_shard(dir / "model-00001-of-00002.safetensors", {"a", "b"}, 10);
  write_shard(dir / "model-00002-of-00002.safetensors", {"c"}, 20);
  write_index(dir / "model.safetensors.index.json", {{"a", "model-00001-of-00002.safetensors"},
                                                     {"b", "model-00001-of-00002.safetensors"},
                                                     {"c", "model-00002-of-00002.safetensors"}});

  for (const fs::path& path : {dir.path(), dir / "model.safetensors.index.json"}) {
    const SafetensorsCheckpoint checkpoint(path);
    EXPECT_EQ(checkpoint.shards().size(), 2u);
    ASSERT_EQ(checkpoint.tensors().size(), 3u);
    EXPECT_EQ(checkpoint.tensors()[2]->name, "c");
    EXPECT_EQ(checkpoint.tensor("c").as<float>()[0], 20.0f);
    EXPECT_EQ(checkpoint.tensor("b").as<float>()[0], 11.0f);
    EXPECT_EQ(checkpoint.index_metadata().at("total_size"), 24);
    EXPECT_THROW(checkpoint.tensor("d"), Error);
  }
}

TEST(Safetensors, SingleFileCheckpoints) {
  TempDir dir;
  EXPECT_THROW(SafetensorsCheckpoint{dir.path()}, Error);
  write_shard(dir / "model.safetensors", {"w"}, 1);
  const SafetensorsCheckpoint from_dir(dir.path());
  EXPECT_EQ(from_dir.tensor("w").as<float>()[1], 1.0f);
  const SafetensorsCheckpoint from_file(dir / "model.safetensors");
  EXPECT_EQ(from_file.shards().size(), 1u);
  EXPECT_TRUE(from_file.index_metadata().empty());
}

void expect_index_error(const json& weight_map, const std::string& expected) {
  TempDir dir;
  write_shard(dir / "one.safetensors", {"a", "b"}, 1);
  write_shard(dir / "two.safetensors", {"c"}, 2);
  write_index(dir / "model.safetensors.index.json", weight_map);
  try {
    const SafetensorsCheckpoint checkpoint(dir.path());
    ADD_FAILURE() << "accepted a broken index; expected: " << expected;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.safetensors.index.json"), std::string::npos)
        << e.what();
  }
}

TEST(Safetensors, BrokenIndexesAreRejected) {
  expect_index_error({{"a", "one.safetensors"}, {"b", "one.safetensors"}, {"d", "two.safetensors"}},
                     "tensor 'c' of shard 'two.safetensors' is not mapped");
  expect_index_error({{"a", "one.safetensors"}, {"b", "two.safetensors"}, {"c", "two.safetensors"}},
                     "tensor 'b' of shard 'one.safetensors' is not mapped to that shard");
  expect_index_error({{"a", "one.safetensors"},
                      {"b", "one.safetensors"},
                      {"c", "two.safetensors"},
                      {"d", "two.safetensors"}},
                     "puts tensor 'd' in shard 'two.safetensors', which does not hold it");
  expect_index_error({{"a", "../one.safetensors"}}, "not a plain file name");
  expect_index_error({{"a", 3}}, "weight_map entry 'a' is number");
  expect_index_error(json::array(), "'weight_map' is missing or not an object");

  TempDir dir;
  std::ofstream(dir / "model.safetensors.index.json")
      << "{\"weight_map\": {\"a\": \"gone.safetensors\"}}";
  EXPECT_THROW(SafetensorsCheckpoint{dir.path()}, Error);
  std::ofstream(dir / "model.safetensors.index.json") << "{\"weight_map\": ";
  EXPECT_THROW(SafetensorsCheckpoint{dir.path()}, Error);
}

// A file with the given header text (length taken from the text unless overridden) and
// `data_size` zero bytes of data.
std::vector<std::byte> hostile(const std::string& header, std::size_t data_size,
                               std::optional<uint64_t> length = std::nullopt) {
  std::vector<std::byte> bytes(8 + header.size() + data_size);
  const uint64_t n = length.value_or(header.size());
  std::memcpy(bytes.data(), &n, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

void expect_rejected(const std::vector<std::byte>& bytes, const std::string& expected) {
  try {
    const SafetensorsFile file(bytes, "hostile.safetensors");
    ADD_FAILURE() << "accepted; expected an error containing: " << expected;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("hostile.safetensors: ", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

TEST(SafetensorsHostile, LengthAndFraming) {
  expect_rejected(std::vector<std::byte>(5), "fewer than the 8-byte header length");
  expect_rejected(hostile("{}", 0, uint64_t{100'000'001}), "exceeds the limit of 100000000");
  expect_rejected(hostile("{}", 0, uint64_t{3}), "header length 3 exceeds the 2 bytes");
  expect_rejected(hostile("{}", 0, uint64_t{~uint64_t{0}}), "exceeds the limit");
  expect_rejected(hostile("", 0), "does not start with '{'");
  expect_rejected(hostile("[1,2]", 0), "does not start with '{'");
  expect_rejected(hostile("{\"a\":", 0), "header JSON (bytes 8 to 13) is invalid");
  expect_rejected(hostile("{} trailing", 0), "is invalid");
}

TEST(SafetensorsHostile, TensorEntries) {
  const std::string ok = entry("w", "F32", "[2]", "[0,8]");
  expect_rejected(hostile("{" + ok + "," + ok + "}", 8), "has the key 'w' twice");
  expect_rejected(hostile("{\"w\":[1]}", 0), "tensor 'w' is array, not an object");
  expect_rejected(hostile("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],"
                          "\"extra\":1}}",
                          8),
                  "tensor 'w' has the unknown field 'extra'");
  expect_rejected(hostile("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                  "tensor 'w' dtype: missing");
  expect_rejected(hostile("{" + entry("w", "F8_E4M3", "[2]", "[0,2]") + "}", 2),
                  "tensor 'w' dtype: 'F8_E4M3' is not supported");
  expect_rejected(hostile("{\"w\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                  "tensor 'w' dtype: missing or not a string");
  expect_rejected(hostile("{" + entry("w", "F32", "2", "[0,8]") + "}", 8),
                  "tensor 'w' shape: missing or not an array");
  expect_rejected(hostile("{" + entry("w", "F32", "[-2]", "[0,8]") + "}", 8),
                  "tensor 'w' shape[0]: -2 is not a non-negative integer");
  expect_rejected(hostile("{" + entry("w", "F32", "[2.0]", "[0,8]") + "}", 8),
                  "shape[0]: 2.0 is not a non-negative integer");
  expect_rejected(hostile("{" + entry("w", "F32", "[4294967296,4294967296]", "[0,8]") + "}", 8),
                  "tensor 'w' shape[1]: 4294967296 makes the element count overflow");
  expect_rejected(hostile("{" + entry("w", "F32", "[2]", "[0]") + "}", 8),
                  "tensor 'w' data_offsets: must be [begin, end]");
  expect_rejected(hostile("{" + entry("w", "F32", "[2]", "[8,0]") + "}", 8),
                  "tensor 'w' data_offsets: begin 8 is after end 0");
  expect_rejected(hostile("{" + entry("w", "F32", "[2]", "[0,8]") + "}", 4),
                  "tensor 'w' data_offsets: end 8 is past the data section, which holds 4 bytes");
  expect_rejected(hostile("{" + entry("w", "F32", "[3]", "[0,8]") + "}", 8),
                  "tensor 'w' data_offsets: [0, 8) holds 8 bytes but F32 [3] needs 12");
  expect_rejected(hostile("{" + entry("w", "BF16", "[2,2]", "[0,4]") + "}", 4),
                  "holds 4 bytes but BF16 [2, 2] needs 8");
}

TEST(SafetensorsHostile, LayoutOfTheDataSection) {
  expect_rejected(hostile("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                              entry("b", "F32", "[2]", "[4,12]") + "}",
                          12),
                  "tensor 'b' data_offsets: [4, 12) overlaps tensor 'a', which ends at 8");
  expect_rejected(hostile("{" + entry("a", "F32", "[2]", "[0,8]") + "," +
                              entry("b", "F32", "[2]", "[0,8]") + "}",
                          8),
                  "overlaps tensor");
  expect_rejected(hostile("{" + entry("a", "F32", "[1]", "[0,4]") + "," +
                              entry("b", "F32", "[1]", "[8,12]") + "}",
                          12),
                  "tensor 'b' data_offsets: begins at 8, leaving 4 unused bytes after tensor 'a'");
  expect_rejected(hostile("{" + entry("a", "F32", "[1]", "[4,8]") + "}", 8),
                  "leaving 4 unused bytes after the header");
  expect_rejected(hostile("{" + entry("a", "F32", "[1]", "[0,4]") + "}", 9),
                  "data section: 5 bytes after the last tensor belong to no tensor");
}

TEST(SafetensorsHostile, Metadata) {
  expect_rejected(hostile("{\"__metadata__\":[]}", 0), "'__metadata__' is not an object");
  expect_rejected(hostile("{\"__metadata__\":{\"format\":1}}", 0),
                  "'__metadata__' entry 'format' is number, not a string");
  expect_rejected(hostile("{\"__metadata__\":{\"a\":\"x\",\"a\":\"y\"}}", 0),
                  "has the key 'a' twice");
  // Keys repeat legitimately across different objects.
  const SafetensorsFile ok(
      hostile("{\"__metadata__\":{\"dtype\":\"x\"}," + entry("a", "U8", "[1]", "[0,1]") + "," +
                  entry("b", "U8", "[1]", "[1,2]") + "}  ",
              2),
      "ok");
  EXPECT_EQ(ok.metadata().at("dtype"), "x");
  EXPECT_EQ(ok.tensors().size(), 2u);
}

TEST(SafetensorsHostile, MisalignedDataIsReportedByTypedViews) {
  // One space of padding puts the F32 tensor at an offset that is not a multiple of 4.
  const std::string header = "{" + entry("w", "F32", "[1]", "[0,4]") + "} ";
  ASSERT_NE(header.size() % 4, 0u);
  std::vector<std::byte> bytes = hostile(header, 4);
  const float value = 2.5f;
  std::memcpy(bytes.data() + 8 + header.size(), &value, 4);
  const SafetensorsFile file(bytes, "misaligned");
  ASSERT_NE(reinterpret_cast<uintptr_t>(file.tensor("w").data.data()) % 4, 0u);
  EXPECT_THROW(file.tensor("w").as<float>(), Error);
  float read = 0;
  file.tensor("w").read_f32(0, std::span<float>(&read, 1));
  EXPECT_EQ(read, 2.5f);
}

}  // namespace
}  // namespace floatllm
