// The GGML tensor types that GGUF files carry: ids, names and block geometry.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace floatllm {

// Ids are fixed by the GGUF format. Gaps are ids that ggml retired; files never use them.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;
  uint32_t block_elements;  // values per block; 1 for plain scalar types
  uint32_t block_bytes;     // bytes per block
};

inline constexpr uint32_t kQK_K = 256;  // super-block size of the K-quants and most IQ types

inline constexpr std::array<GgmlTypeTraits, 32> kGgmlTypes{{
    {GgmlType::F32, "F32", 1, 4},
    {GgmlType::F16, "F16", 1, 2},
    {GgmlType::Q4_0, "Q4_0", 32, 2 + 16},
    {GgmlType::Q4_1, "Q4_1", 32, 2 + 2 + 16},
    {GgmlType::Q5_0, "Q5_0", 32, 2 + 4 + 16},
    {GgmlType::Q5_1, "Q5_1", 32, 2 + 2 + 4 + 16},
    {GgmlType::Q8_0, "Q8_0", 32, 2 + 32},
    {GgmlType::Q8_1, "Q8_1", 32, 2 + 2 + 32},
    {GgmlType::Q2_K, "Q2_K", kQK_K, 16 + 64 + 2 + 2},
    {GgmlType::Q3_K, "Q3_K", kQK_K, 32 + 64 + 12 + 2},
    {GgmlType::Q4_K, "Q4_K", kQK_K, 2 + 2 + 12 + 128},
    {GgmlType::Q5_K, "Q5_K", kQK_K, 2 + 2 + 12 + 32 + 128},
    {GgmlType::Q6_K, "Q6_K", kQK_K, 128 + 64 + 16 + 2},
    {GgmlType::Q8_K, "Q8_K", kQK_K, 4 + 256 + 32},
    {GgmlType::IQ2_XXS, "IQ2_XXS", kQK_K, 2 + 64},
    {GgmlType::IQ2_XS, "IQ2_XS", kQK_K, 2 + 64 + 8},
    {GgmlType::IQ3_XXS, "IQ3_XXS", kQK_K, 2 + 96},
    {GgmlType::IQ1_S, "IQ1_S", kQK_K, 2 + 32 + 16},
    {GgmlType::IQ4_NL, "IQ4_NL", 32, 2 + 16},
    {GgmlType::IQ3_S, "IQ3_S", kQK_K, 2 + 64 + 8 + 32 + 4},
    {GgmlType::IQ2_S, "IQ2_S", kQK_K, 2 + 64 + 8 + 8},
    {GgmlType::IQ4_XS, "IQ4_XS", kQK_K, 2 + 2 + 4 + 128},
    {GgmlType::I8, "I8", 1, 1},
    {GgmlType::I16, "I16", 1, 2},
    {GgmlType::I32, "I32", 1, 4},
    {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},
    {GgmlType::IQ1_M, "IQ1_M", kQK_K, 32 + 16 + 8},
    {GgmlType::BF16, "BF16", 1, 2},
    {GgmlType::TQ1_0, "TQ1_0", kQK_K, 48 + 4 + 2},
    {GgmlType::TQ2_0, "TQ2_0", kQK_K, 64 + 2},
    {GgmlType::MXFP4, "MXFP4", 32, 1 + 16},
}};

// Returns the traits of a raw type id, or nothing for ids no GGML version defines.
constexpr std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t id) {
  for (const auto& traits : kGgmlTypes) {
    if (static_cast<uint32_t>(traits.type) == id) return traits;
  }
  return std::nullopt;
}

constexpr const GgmlTypeTraits& traits_of(GgmlType type) {
  for (const auto& traits : kGgmlTypes) {
    if (traits.type == type) return traits;
  }
  return kGgmlTypes[0];  // unreachable for valid enumerators
}

constexpr std::string_view ggml_type_name(GgmlType type) {
  return traits_of(type).name;
}

constexpr std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  for (const auto& traits : kGgmlTypes) {
    if (traits.name.size() != name.size()) continue;
    bool equal = true;
    for (std::size_t i = 0; i < name.size(); ++i) {
      const char a = traits.name[i];
      char b = name[i];
      if (b >= 'a' && b <= 'z') b = static_cast<char>(b - 'a' + 'A');
      equal = equal && a == b;
    }
    if (equal) return traits.type;
  }
  return std::nullopt;
}

// Bytes of a row of `elements` values; `elements` must be a multiple of the block size.
constexpr uint64_t ggml_row_bytes(GgmlType type, uint64_t elements) {
  const auto& traits = traits_of(type);
  return elements / traits.block_elements * traits.block_bytes;
}

}  // namespace floatllm
