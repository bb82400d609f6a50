// acc[i] += src[i % period]: the residual add (period = n) and a bias on every row (period = width).
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) buffer Accumulator { float acc[]; };
layout(set = 0, binding = 1) readonly buffer Source { float src[]; };

layout(push_constant) uniform Push {
  uint n;
  uint period;
} p;

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (i >= p.n) return;
  acc[i] += src[i % p.period];
}
