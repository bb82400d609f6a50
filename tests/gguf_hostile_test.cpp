// Truncated, corrupted and hand-crafted hostile GGUF files: each must give a floatllm::Error that
// names the field and the byte offset, and never crash (this suite also runs under ASan/UBSan).
#include <gtest/gtest.h>
#include <floatllm/io/gguf.hpp>

#include <random>
#include <string>

#include "gguf_builder.hpp"
#include "test_support.hpp"

namespace floatllm {
namespace {

using test::GgufBuilder;

// Opens `bytes` and returns the error message, or fails the test when it opens.
std::string open_error(const std::vector<std::byte>& bytes) {
  try {
    GgufFile gguf(bytes, "hostile.gguf");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected the file to be rejected";
  return {};
}

void expect_error(const std::vector<std::byte>& bytes, const std::string& field,
                  const std::string& detail) {
  const std::string message = open_error(bytes);
  EXPECT_NE(message.find(field), std::string::npos) << message;
  EXPECT_NE(message.find(detail), std::string::npos) << message;
  EXPECT_NE(message.find("hostile.gguf"), std::string::npos) << message;
}

TEST(GgufHostile, TruncationAtEveryHeaderOffsetAndThroughTheData) {
  const auto full = test::read_bytes(test::model_path("gguf/stories260K.gguf"));
  ASSERT_EQ(full.size(), 1185376u);
  std::vector<std::size_t> cuts;
  for (std::size_t cut = 0; cut < 14176; ++cut)
    cuts.push_back(cut);  // the whole header
  for (std::size_t cut = 14176; cut < full.size(); cut += 4099)
    cuts.push_back(cut);
  cuts.push_back(full.size() - 1);
  for (std::size_t cut : cuts) {
    const std::vector<std::byte> truncated(full.begin(), full.begin() + cut);
    try {
      GgufFile gguf(truncated, "hostile.gguf");
      ADD_FAILURE() << "a file truncated to " << cut << " bytes was accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("byte offset"), std::string::npos) << cut << ": " << message;
    }
  }
}

TEST(GgufHostile, RandomCorruptionNeverCrashes) {
  const auto full = test::read_bytes(test::model_path("gguf/stories260K.gguf"));
  std::mt19937_64 rng(1234);
  std::uniform_int_distribution<std::size_t> header_pos(0, 14175);
  std::uniform_int_distribution<int> byte(0, 255);
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto corrupted = full;
    const int flips = 1 + trial % 4;
    for (int f = 0; f < flips; ++f)
      corrupted[header_pos(rng)] = std::byte(byte(rng));
    try {
      GgufFile gguf(corrupted, "hostile.gguf");
      // Accepted files must still be internally consistent.
      for (const GgufTensor& t : gguf.tensors()) {
        ASSERT_LE(t.file_offset + t.byte_size(), corrupted.size());
      }
      for (const auto& entry : gguf.metadata())
        (void)entry.value.byte_size();
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

TEST(GgufHostile, BadMagic) {
  GgufBuilder b;
  b.header(0, 0);
  b.bytes()[0] = std::byte{'X'};
  expect_error(b.bytes(), "magic at byte offset 0", "58 47 55 46");
}

TEST(GgufHostile, UnsupportedVersions) {
  expect_error(GgufBuilder().header(0, 0, 1).bytes(), "version at byte offset 4", "1 is not");
  expect_error(GgufBuilder().header(0, 0, 4).bytes(), "version at byte offset 4", "4 is not");
  expect_error(GgufBuilder().header(0, 0, 0x03000000).bytes(), "version", "big-endian");
}

TEST(GgufHostile, CountsBeyondTheFile) {
  expect_error(GgufBuilder().header(0, uint64_t{1} << 60).bytes(),
               "metadata count at byte offset 16", "cannot fit");
  expect_error(GgufBuilder().header(uint64_t{1} << 40, 0).bytes(), "tensor count at byte offset 8",
               "cannot fit");
  GgufBuilder array;
  array.header(0, 1).key("big", 9).put<uint32_t>(4).put<uint64_t>(uint64_t{1} << 62);
  expect_error(array.bytes(), "metadata 'big' element count at byte offset 43", "cannot fit");
}

TEST(GgufHostile, StringLengthBeyondTheFile) {
  GgufBuilder key;
  key.header(0, 1).put<uint64_t>(1000).zeros(16);
  expect_error(key.bytes(), "metadata key #0 at byte offset 24", "string length 1000");
  GgufBuilder value;
  value.header(0, 1).key("name", 8).put<uint64_t>(~uint64_t{0});
  expect_error(value.bytes(), "metadata 'name' at byte offset 40", "string length");
}

TEST(GgufHostile, UnknownValueTypeAndDuplicateKey) {
  GgufBuilder type;
  type.header(0, 1).key("k", 13).put<uint32_t>(0);
  expect_error(type.bytes(), "metadata 'k' type at byte offset 33", "unknown value type id 13");
  GgufBuilder twice;
  twice.header(0, 2).key("k", 4).put<uint32_t>(1).key("k", 4).put<uint32_t>(2);
  expect_error(twice.bytes(), "metadata key #1 at byte offset 41", "duplicate key 'k'");
}

TEST(GgufHostile, ArraysNestedTooDeep) {
  GgufBuilder b;
  b.header(0, 1).key("deep", 9);
  for (int level = 0; level < 100; ++level)
    b.put<uint32_t>(9).put<uint64_t>(1);
  b.put<uint32_t>(4).put<uint64_t>(0);
  expect_error(b.bytes(), "metadata 'deep'", "nested deeper");
}

TEST(GgufHostile, BadAlignment) {
  GgufBuilder b;
  b.header(0, 1).key("general.alignment", 4).put<uint32_t>(48);
  expect_error(b.bytes(), "general.alignment", "not a power of two");
  GgufBuilder zero;
  zero.header(0, 1).key("general.alignment", 4).put<uint32_t>(0);
  expect_error(zero.bytes(), "general.alignment", "not a power of two");
}

// A one-tensor file whose tensor info the caller describes; data follows at the alignment.
std::vector<std::byte> one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                                  std::size_t data_bytes) {
  GgufBuilder b;
  b.header(1, 0).tensor_info("t", std::move(ne), type, offset).pad_to(32).zeros(data_bytes);
  return std::move(b.bytes());
}

TEST(GgufHostile, ValidOneTensorFileOpens) {
  const auto bytes = one_tensor({4}, 0, 0, 16);
  const GgufFile gguf(bytes, "ok.gguf");
  EXPECT_EQ(gguf.tensor("t").element_count, 4u);
}

TEST(GgufHostile, ShapeProductOverflows) {
  expect_error(one_tensor({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 16),
               "tensor 't' ne[1] at byte offset 45", "overflow");
  expect_error(one_tensor({~uint64_t{0}}, 0, 0, 16), "tensor 't' ne[0] at byte offset 37",
               "overflow");
}

TEST(GgufHostile, DimensionCountOutOfRange) {
  expect_error(one_tensor({}, 0, 0, 16), "tensor 't' n_dims at byte offset 33", "0 is not in");
  expect_error(one_tensor({1, 1, 1, 1, 1}, 0, 0, 16), "n_dims", "5 is not in 1..4");
}

TEST(GgufHostile, UnknownTensorType) {
  expect_error(one_tensor({4}, 4, 0, 16), "tensor 't' type at byte offset 45",
               "unknown GGML type id 4");
  expect_error(one_tensor({4}, 1000, 0, 16), "tensor 't' type", "unknown GGML type id 1000");
}

TEST(GgufHostile, RowNotAMultipleOfTheBlock) {
  expect_error(one_tensor({33}, 8, 0, 64), "tensor 't' ne[0]", "multiple of the block size 32");
}

TEST(GgufHostile, TensorDataOutsideTheFile) {
  expect_error(one_tensor({4}, 0, 0, 15), "tensor 't' offset at byte offset 49", "outside");
  expect_error(one_tensor({4}, 0, 32, 16), "tensor 't' offset", "outside");
  expect_error(one_tensor({4}, 0, ~uint64_t{0} / 32 * 32, 16), "tensor 't' offset", "outside");
}

TEST(GgufHostile, MisalignedTensorOffset) {
  expect_error(one_tensor({4}, 0, 4, 32), "tensor 't' offset at byte offset 49",
               "not a multiple of the 32-byte alignment");
}

TEST(GgufHostile, DuplicateAndOverlappingTensors) {
  GgufBuilder twice;
  twice.header(2, 0).tensor_info("t", {4}, 0, 0).tensor_info("t", {4}, 0, 32).pad_to(32).zeros(64);
  expect_error(twice.bytes(), "tensor #1 name at byte offset 57", "duplicate tensor name 't'");
  GgufBuilder overlap;
  overlap.header(2, 0)
      .tensor_info("a", {16}, 0, 0)
      .tensor_info("b", {4}, 0, 32)
      .pad_to(32)
      .zeros(64);
  expect_error(overlap.bytes(), "tensor 'b' offset", "overlaps tensor 'a'");
}

TEST(GgufHostile, MisalignedTypedSpanIsRefused) {
  GgufBuilder b;
  b.header(1, 1).key("general.alignment", 4).put<uint32_t>(1);
  b.tensor_info("t", {2}, 0, 1).zeros(16);
  const GgufFile gguf(b.bytes(), "hostile.gguf");
  const GgufTensor& t = gguf.tensor("t");
  if (reinterpret_cast<uintptr_t>(t.data.data()) % alignof(float) != 0) {
    EXPECT_THROW(t.as<float>(), Error);
  } else {
    EXPECT_EQ(t.as<float>().size(), 2u);
  }
}

}  // namespace
}  // namespace floatllm
