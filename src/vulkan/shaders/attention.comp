// Causal attention over the device KV cache, one workgroup per (query head, token). Keys go by in
// tiles of 64 with a running maximum and sum (online softmax), so no score matrix is stored and
// any context length works. Query head h reads KV head h / (n_heads / n_kv_heads).
#version 450

layout(local_size_x = 64) in;

layout(constant_id = 0) const uint KV_F16 = 0;  // else F32
const uint MAX_HEAD_DIM = 512;

layout(set = 0, binding = 0) readonly buffer Query { float q[]; };
layout(set = 0, binding = 1) readonly buffer Keys { uint k[]; };
layout(set = 0, binding = 2) readonly buffer Values { uint v[]; };
layout(set = 0, binding = 3) writeonly buffer Output { float o[]; };

layout(push_constant) uniform Push {
  uint n_heads;
  uint n_kv_heads;
  uint head_dim;
  uint first_pos;
  uint window;  // > 0: the query at position p sees keys (p - window, p]
  float scale;
  float softcap;  // > 0: score = softcap * tanh(score / softcap), before the mask
} p;

shared float query[MAX_HEAD_DIM];
shared float weights[64];
shared float reduction[64];

float cache_value(bool keys, uint index) {
  const uint word = KV_F16 != 0 ? index >> 1 : index;
  const uint bits = keys ? k[word] : v[word];
  if (KV_F16 != 0) return unpackHalf2x16(bits)[index & 1u];
  return uintBitsToFloat(bits);
}

// tanh without the overflow of exp(2x) for large |x|.
float stable_tanh(float x) {
  const float e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}

float reduce_max(uint tid, float value) {
  reduction[tid] = value;
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (tid < stride) reduction[tid] = max(reduction[tid], reduction[tid + stride]);
    barrier();
  }
  const float result = reduction[0];
  barrier();
  return result;
}

float reduce_sum(uint tid, float value) {
  reduction[tid] = value;
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (tid < stride) reduction[tid] += reduction[tid + stride];
    barrier();
  }
  const float result = reduction[0];
  barrier();
  return result;
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint head = gl_WorkGroupID.x;
  const uint t = gl_WorkGroupID.y;
  const uint pos = p.first_pos + t;
  const uint kv_head = head / (p.n_heads / p.n_kv_heads);
  const uint kv_width = p.n_kv_heads * p.head_dim;
  const uint q_base = (t * p.n_heads + head) * p.head_dim;
  for (uint d = tid; d < p.head_dim; d += 64) query[d] = q[q_base + d];
  barrier();

  const uint first = p.window > 0 && pos + 1 > p.window ? pos + 1 - p.window : 0;
  const uint dims_per_thread = (p.head_dim + 63) / 64;
  float acc[MAX_HEAD_DIM / 64];
  for (uint j = 0; j < MAX_HEAD_DIM / 64; ++j) acc[j] = 0.0;
  float running_max = -1.0 / 0.0;
  float running_sum = 0.0;

  for (uint tile = first; tile <= pos; tile += 64) {
    const uint key = tile + tid;
    float score = -1.0 / 0.0;
    if (key <= pos) {
      const uint base = key * kv_width + kv_head * p.head_dim;
      float dot = 0.0;
      for (uint d = 0; d < p.head_dim; ++d) dot += query[d] * cache_value(true, base + d);
      score = dot * p.scale;
      if (p.softcap > 0.0) score = p.softcap * stable_tanh(score / p.softcap);
    }
    // Key `tile` is always visible, so the tile maximum is finite.
    const float new_max = max(running_max, reduce_max(tid, score));
    const float correction = exp(running_max - new_max);
    const float weight = key <= pos ? exp(score - new_max) : 0.0;
    weights[tid] = weight;
    running_sum = running_sum * correction + reduce_sum(tid, weight);
    running_max = new_max;
    const uint keys = min(64u, pos + 1 - tile);
    for (uint j = 0; j < dims_per_thread; ++j) {
      const uint d = tid + 64 * j;
      if (d >= p.head_dim) break;
      float sum = 0.0;
      for (uint i = 0; i < keys; ++i) {
        sum += weights[i] * cache_value(false, (tile + i) * kv_width + kv_head * p.head_dim + d);
      }
      acc[j] = acc[j] * correction + sum;
    }
    barrier();
  }

  for (uint j = 0; j < dims_per_thread; ++j) {
    const uint d = tid + 64 * j;
    if (d < p.head_dim) o[q_base + d] = acc[j] / running_sum;
  }
}
