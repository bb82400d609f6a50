// Rotary position embedding in place, one invocation per rotated pair, as llama.cpp's rope with
// linear scaling, per-frequency factors and YaRN (corr_low/corr_high/mscale from the host).
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) buffer Values { float x[]; };
layout(set = 0, binding = 1) readonly buffer Factors { float factors[]; };

layout(push_constant) uniform Push {
  uint n_tokens;
  uint n_heads;
  uint head_dim;
  uint rotary_dims;
  uint first_pos;
  uint neox;
  uint has_factors;
  float freq_base;
  float freq_scale;
  float ext_factor;
  float mscale;
  float corr_low;
  float corr_high;
} p;

void main() {
  const uint pairs = p.rotary_dims / 2;
  const uint id = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (id >= p.n_tokens * p.n_heads * pairs) return;
  const uint i = id % pairs;
  const uint head = (id / pairs) % p.n_heads;
  const uint t = id / (pairs * p.n_heads);
  const float pos = float(p.first_pos + t);

  float theta_extrap = pos * pow(p.freq_base, -2.0 * float(i) / float(p.rotary_dims));
  if (p.has_factors != 0) theta_extrap /= factors[i];
  const float theta_interp = p.freq_scale * theta_extrap;
  float theta = theta_interp;
  if (p.ext_factor != 0.0) {
    const float y = (float(i) - p.corr_low) / max(0.001, p.corr_high - p.corr_low);
    const float ramp = (1.0 - clamp(y, 0.0, 1.0)) * p.ext_factor;
    theta = theta_interp * (1.0 - ramp) + theta_extrap * ramp;
  }
  const float c = cos(theta) * p.mscale;
  const float s = sin(theta) * p.mscale;

  const uint base = (t * p.n_heads + head) * p.head_dim;
  const uint a = base + (p.neox != 0 ? i : 2 * i);
  const uint b = p.neox != 0 ? a + pairs : a + 1;
  const float x0 = x[a];
  const float x1 = x[b];
  x[a] = x0 * c - x1 * s;
  x[b] = x0 * s + x1 * c;
}
