// Gated activation in place: gate[i] = act(gate[i]) * up[i], act = SiLU or tanh-approximate GELU.
#version 450

layout(local_size_x = 64) in;

layout(set = 0, binding = 0) buffer Gate { float gate[]; };
layout(set = 0, binding = 1) readonly buffer Up { float up[]; };

layout(push_constant) uniform Push {
  uint n;
  uint gelu;
} p;

void main() {
  const uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 64;
  if (i >= p.n) return;
  const float g = gate[i];
  float activated;
  if (p.gelu != 0) {
    const float inner = 0.7978845608028654 * (g + 0.044715 * g * g * g);
    const float e = exp(-2.0 * abs(inner));
    activated = 0.5 * g * (1.0 + sign(inner) * (1.0 - e) / (1.0 + e));
  } else {
    activated = g / (1.0 + exp(-g));
  }
  gate[i] = activated * up[i];
}
