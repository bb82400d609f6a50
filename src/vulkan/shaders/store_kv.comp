// Appends n_tokens rows of `width` values to a KV cache at position first_pos, as F32 or F16.
#version 450

layout(local_size_x = 64) in;

layout(constant_id = 0) const uint KV_F16 = 0;

layout(set = 0, binding = 0) readonly buffer Source { float src[]; };
layout(set = 0, binding = 1) writeonly buffer Cache { uint cache[]; };

layout(push_constant) uniform Push {
  uint n_tokens;
  uint width;  // even
  uint first_pos;
} p;

// f32 -> f16 bits rounding to nearest even, as the CPU's KV cache does (packHalf2x16 leaves the
// rounding to the driver).
uint half_bits(float value) {
  const uint bits = floatBitsToUint(value);
  const uint sign = (bits >> 16) & 0x8000u;
  const uint magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;      // NaN
  if (magnitude >= 0x477FF000u) return sign | 0x7C00u;     // rounds beyond 65504: infinity
  if (magnitude >= 0x38800000u) {                          // normal f16
    const uint rounded = magnitude + 0xFFFu + ((magnitude >> 13) & 1u);
    return sign | ((rounded - 0x38000000u) >> 13);
  }
  // Subnormal f16: multiples of 2^-24, rounded to even.
  return sign | uint(roundEven(uintBitsToFloat(magnitude) * 16777216.0));
}

void main() {
  const uint per_word = KV_F16 != 0 ? 2 : 1;
  const uint words = p.width / per_word;
  const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (id >= p.n_tokens * words) return;
  const uint t = id / words;
  const uint i = (id % words) * per_word;
  const uint dst = (p.first_pos + t) * words + i / per_word;
  if (KV_F16 != 0) {
    cache[dst] = half_bits(src[t * p.width + i]) | (half_bits(src[t * p.width + i + 1]) << 16);
  } else {
    cache[dst] = floatBitsToUint(src[t * p.width + i]);
  }
}
