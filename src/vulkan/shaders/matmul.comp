// y[t][r] = sum_c W[r][c] * x[t][c]: weights in their GGUF bytes, read as 32-bit words so that no
// 8- or 16-bit storage feature is needed. Each workgroup owns one row and TOKENS tokens: it
// decodes each 32-value chunk of the row once and multiplies it with every token's activations.
#version 450

layout(local_size_x = 64) in;

layout(constant_id = 0) const uint WEIGHT_TYPE = 0;  // WeightFormat in pipelines.hpp
layout(constant_id = 1) const uint TOKENS = 1;

const uint F32 = 0;
const uint F16 = 1;
const uint Q8_0 = 2;
const uint Q4_K = 3;
const uint Q6_K = 4;

layout(set = 0, binding = 0) readonly buffer Weights { uint w[]; };
layout(set = 0, binding = 1) readonly buffer Input { float x[]; };
layout(set = 0, binding = 2) writeonly buffer Output { float y[]; };

layout(push_constant) uniform Push {
  uint rows;
  uint cols;
  uint row_bytes;
  uint n_tokens;
} p;

shared float partial[64 * TOKENS];

uint byte_at(uint offset) { return (w[offset >> 2] >> ((offset & 3u) << 3)) & 0xFFu; }

// offset must be even.
float half_at(uint offset) { return unpackHalf2x16(w[offset >> 2] >> ((offset & 2u) << 3)).x; }

int signed_byte_at(uint offset) { return bitfieldExtract(int(byte_at(offset)), 0, 8); }

// Values 32 * chunk .. 32 * chunk + count - 1 of the row starting at byte `row`.
void decode(uint row, uint chunk, uint count, out float v[32]) {
  if (WEIGHT_TYPE == F32) {
    for (uint i = 0; i < count; ++i) v[i] = uintBitsToFloat(w[(row >> 2) + 32 * chunk + i]);
  } else if (WEIGHT_TYPE == F16) {
    for (uint i = 0; i < count; ++i) v[i] = half_at(row + 2 * (32 * chunk + i));
  } else if (WEIGHT_TYPE == Q8_0) {
    const uint block = row + 34 * chunk;
    const float d = half_at(block);
    for (uint i = 0; i < 32; ++i) v[i] = d * float(signed_byte_at(block + 2 + i));
  } else if (WEIGHT_TYPE == Q4_K) {
    // 144-byte super-blocks: d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles.
    const uint block = row + 144 * (chunk / 8);
    const uint sub = chunk % 8;
    const float d = half_at(block);
    const float dmin = half_at(block + 2);
    const uint scales = block + 4;
    uint scale, minimum;
    if (sub < 4) {
      scale = byte_at(scales + sub) & 63u;
      minimum = byte_at(scales + sub + 4) & 63u;
    } else {
      scale = (byte_at(scales + sub + 4) & 0xFu) | ((byte_at(scales + sub - 4) >> 6) << 4);
      minimum = (byte_at(scales + sub + 4) >> 4) | ((byte_at(scales + sub) >> 6) << 4);
    }
    const float s = d * float(scale);
    const float m = dmin * float(minimum);
    const uint qs = block + 16 + 32 * (sub / 2);
    const uint shift = 4 * (sub % 2);
    for (uint i = 0; i < 32; ++i) v[i] = s * float((byte_at(qs + i) >> shift) & 0xFu) - m;
  } else if (WEIGHT_TYPE == Q6_K) {
    // 210-byte super-blocks: 128 bytes of low nibbles, 64 of high bit pairs, 16 int8 scales, d.
    const uint block = row + 210 * (chunk / 8);
    const uint half_block = (chunk % 8) / 4;
    const uint pass = chunk % 4;
    const float d = half_at(block + 208);
    const uint ql = block + 64 * half_block + 32 * (pass % 2);
    const uint qh = block + 128 + 32 * half_block;
    const uint scales = block + 192 + 8 * half_block + 2 * pass;
    for (uint i = 0; i < 32; ++i) {
      const uint low = (byte_at(ql + i) >> (4 * (pass / 2))) & 0xFu;
      const uint high = (byte_at(qh + i) >> (2 * pass)) & 3u;
      const float s = d * float(signed_byte_at(scales + i / 16));
      v[i] = s * float(int(low | (high << 4)) - 32);
    }
  }
}

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  const uint first_token = gl_WorkGroupID.z * TOKENS;
  if (r >= p.rows) return;  // uniform across the workgroup

  float acc[TOKENS];
  for (uint t = 0; t < TOKENS; ++t) acc[t] = 0.0;
  const uint chunks = (p.cols + 31) / 32;
  const uint row = r * p.row_bytes;
  float v[32];
  for (uint c = tid; c < chunks; c += 64) {
    const uint count = min(32u, p.cols - 32 * c);
    decode(row, c, count, v);
    for (uint t = 0; t < TOKENS; ++t) {
      if (first_token + t >= p.n_tokens) break;
      const uint base = (first_token + t) * p.cols + 32 * c;
      float sum = 0.0;
      for (uint i = 0; i < count; ++i) sum += v[i] * x[base + i];
      acc[t] += sum;
    }
  }

  for (uint t = 0; t < TOKENS; ++t) partial[t * 64 + tid] = acc[t];
  barrier();
  for (uint stride = 32; stride > 0; stride >>= 1) {
    if (tid < stride) {
      for (uint t = 0; t < TOKENS; ++t) partial[t * 64 + tid] += partial[t * 64 + tid + stride];
    }
    barrier();
  }
  if (tid < TOKENS && first_token + tid < p.n_tokens) {
    y[(first_token + tid) * p.rows + r] = partial[tid * 64];
  }
}
