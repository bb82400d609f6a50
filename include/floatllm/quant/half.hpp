// Conversions between float and the 16-bit float formats GGUF files store: IEEE binary16 (f16)
// and bfloat16 (bf16), both kept as raw uint16_t bits.
//
// Plain bit manipulation, constexpr, identical on every platform. Narrowing rounds to nearest,
// ties to even, exactly as IEEE 754 and the F16C instructions ggml uses on x86.
#pragma once

#include <bit>
#include <cstdint>

namespace floatllm {

constexpr float fp16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;

  if (exponent == 0x1f) {  // inf; NaN keeps its payload and comes out quiet, as F16C does
    const uint32_t quiet = mantissa != 0 ? 0x400000u : 0u;
    return std::bit_cast<float>(sign | 0x7f800000u | quiet | (mantissa << 13));
  }
  if (exponent != 0) {  // normal: only the exponent bias changes (15 -> 127)
    return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }
  if (mantissa == 0) return std::bit_cast<float>(sign);

  // Subnormal f16 (mantissa * 2^-24) is a normal f32: shift the leading one into the hidden bit.
  uint32_t f32_exponent = 113;  // the exponent of 2^-14 once the mantissa is normalized
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --f32_exponent;
  }
  return std::bit_cast<float>(sign | (f32_exponent << 23) | ((mantissa & 0x3ffu) << 13));
}

namespace half_detail {

// Shifts `value` right by `shift` bits (1..31), rounding to nearest with ties to even.
constexpr uint32_t shift_right_round_even(uint32_t value, uint32_t shift) {
  const uint32_t kept = value >> shift;
  const uint32_t dropped = value & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  const bool round_up = dropped > halfway || (dropped == halfway && (kept & 1u) != 0);
  return kept + (round_up ? 1u : 0u);
}

}  // namespace half_detail

constexpr uint16_t f32_to_fp16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;

  if (magnitude > 0x7f800000u) {  // NaN: quieted, top payload bits kept (what F16C does)
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  // 65520 is halfway between 65504 (largest f16, odd mantissa) and 65536: ties go up to inf.
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);

  const uint32_t exponent = magnitude >> 23;
  if (exponent >= 113) {  // normal f16; a carry out of the mantissa correctly bumps the exponent
    const uint32_t rebased = magnitude - (112u << 23);
    return static_cast<uint16_t>(sign | half_detail::shift_right_round_even(rebased, 13));
  }
  // Subnormal f16 (or zero): the result is round(|value| * 2^24). Below 2^-25 that is 0, and f32
  // subnormals are far below it.
  if (exponent < 102) return sign;
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign |
                               half_detail::shift_right_round_even(significand, 126 - exponent));
}

constexpr float bf16_to_f32(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}

// Round to nearest even; NaN keeps its sign and top payload bits and is forced quiet, as ggml does.
constexpr uint16_t f32_to_bf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

}  // namespace floatllm
