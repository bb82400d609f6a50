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

void main() {
  const uint per_word = KV_F16 != 0 ? 2 : 1;
  const uint words = p.width / per_word;
  const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (id >= p.n_tokens * words) return;
  const uint t = id / words;
  const uint i = (id % words) * per_word;
  const uint dst = (p.first_pos + t) * words + i / per_word;
  if (KV_F16 != 0) {
    cache[dst] = packHalf2x16(vec2(src[t * p.width + i], src[t * p.width + i + 1]));
  } else {
    cache[dst] = floatBitsToUint(src[t * p.width + i]);
  }
}
