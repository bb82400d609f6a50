// out[index[first + i]] += f(weight[first + i]) * src[i], f = identity or sigmoid: an expert's
// output weighted by its routing weight, or the shared expert scaled by its sigmoid gate. Within
// one dispatch every destination row appears at most once.
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) readonly buffer Source { float src[]; };
layout(set = 0, binding = 1) readonly buffer Index { uint index[]; };
layout(set = 0, binding = 2) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 3) buffer Output { float out_rows[]; };

layout(push_constant) uniform Push {
  uint rows;
  uint width;
  uint first;
  uint sigmoid;
} p;

void main() {
  const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (id >= p.rows * p.width) return;
  const uint i = id / p.width;
  const uint d = id % p.width;
  float w = weight[p.first + i];
  if (p.sigmoid != 0) w = 1.0 / (1.0 + exp(-w));
  out_rows[index[p.first + i] * p.width + d] += w * src[id];
}
