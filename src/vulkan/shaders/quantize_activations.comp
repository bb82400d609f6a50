// Replaces each block of activations by its 8-bit quantization d * q, as the CPU's quantized
// matmul sees them (llama.cpp's Q8_0 for 32-value weight blocks, Q8_K for the K-quants), so the
// device multiplies quantized weights with the same numbers the CPU does. One invocation per block.
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) readonly buffer Input { float x[]; };
layout(set = 0, binding = 1) writeonly buffer Output { float y[]; };

layout(push_constant) uniform Push {
  uint blocks;
  uint group;  // 32: Q8_0, 256: Q8_K
} p;

// Rounds to the nearest F16 value, ties to even (Q8_0 stores its scale as F16).
float round_to_half(float v) {
  const float a = abs(v);
  if (a < 6.103515625e-05) return sign(v) * roundEven(a * 16777216.0) / 16777216.0;
  uint bits = floatBitsToUint(v);
  bits += 0xFFFu + ((bits >> 13) & 1u);
  return uintBitsToFloat(bits & ~0x1FFFu);
}

void main() {
  const uint b = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (b >= p.blocks) return;
  const uint base = b * p.group;
  if (p.group == 32) {
    float amax = 0.0;
    for (uint i = 0; i < 32; ++i) amax = max(amax, abs(x[base + i]));
    const float id = amax != 0.0 ? 127.0 / amax : 0.0;
    const float stored = round_to_half(amax / 127.0);
    for (uint i = 0; i < 32; ++i) y[base + i] = stored * roundEven(x[base + i] * id);
    return;
  }
  float amax = 0.0;
  float signed_max = 0.0;
  for (uint i = 0; i < 256; ++i) {
    if (abs(x[base + i]) > amax) {
      amax = abs(x[base + i]);
      signed_max = x[base + i];
    }
  }
  if (amax == 0.0) {
    for (uint i = 0; i < 256; ++i) y[base + i] = 0.0;
    return;
  }
  const float iscale = -127.0 / signed_max;
  const float d = 1.0 / iscale;
  for (uint i = 0; i < 256; ++i) y[base + i] = d * min(127.0, roundEven(iscale * x[base + i]));
}
