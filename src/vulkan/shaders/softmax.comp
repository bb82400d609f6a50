// Softmax of each row in place, one workgroup per row; the maximum is subtracted first.
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) buffer Values { float x[]; };

layout(push_constant) uniform Push {
  uint rows;
  uint width;
} p;

shared float reduction[64];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (r >= p.rows) return;
  const uint base = r * p.width;
  float m = -1.0 / 0.0;
  for (uint i = tid; i < p.width; i += 64) m = max(m, x[base + i]);
  reduction[tid] = m;
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (tid < stride) reduction[tid] = max(reduction[tid], reduction[tid + stride]);
    barrier();
  }
  m = reduction[0];
  barrier();
  float sum = 0.0;
  for (uint i = tid; i < p.width; i += 64) {
    const float e = exp(x[base + i] - m);
    x[base + i] = e;
    sum += e;
  }
  reduction[tid] = sum;
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (tid < stride) reduction[tid] += reduction[tid + stride];
    barrier();
  }
  const float inverse = 1.0 / reduction[0];
  for (uint i = tid; i < p.width; i += 64) x[base + i] *= inverse;
}
