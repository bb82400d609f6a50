// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, one workgroup per row. In place is fine.
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) readonly buffer Input { float x[]; };
layout(set = 0, binding = 1) readonly buffer Weight { float weight[]; };
layout(set = 0, binding = 2) buffer Output { float y[]; };

layout(push_constant) uniform Push {
  uint rows;
  uint width;
  float eps;
  uint has_weight;
} p;

shared float partial[64];

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (r >= p.rows) return;
  const uint base = r * p.width;
  float sum = 0.0;
  for (uint i = tid; i < p.width; i += 64) sum += x[base + i] * x[base + i];
  partial[tid] = sum;
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (tid < stride) partial[tid] += partial[tid + stride];
    barrier();
  }
  const float scale = 1.0 / sqrt(partial[0] / float(p.width) + p.eps);
  for (uint i = tid; i < p.width; i += 64) {
    const float value = x[base + i] * scale;
    y[base + i] = p.has_weight != 0 ? value * weight[i] : value;
  }
}
