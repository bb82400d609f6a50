// dst[i] = src[index[first + i]] for `rows` rows of `width` floats: the tokens routed to one expert.
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) readonly buffer Source { float src[]; };
layout(set = 0, binding = 1) readonly buffer Index { uint index[]; };
layout(set = 0, binding = 2) writeonly buffer Destination { float dst[]; };

layout(push_constant) uniform Push {
  uint rows;
  uint width;
  uint first;
} p;

void main() {
  const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (id >= p.rows * p.width) return;
  const uint i = id / p.width;
  const uint d = id % p.width;
  dst[id] = src[index[p.first + i] * p.width + d];
}
