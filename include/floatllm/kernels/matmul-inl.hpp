// Per-target matrix products over GGML weights. Included once per SIMD target via all-inl.hpp.
//
// Quantized weights meet Q8 activations in exact integer dot products, llama.cpp's vec_dot
// arithmetic: a block's int32 sum is converted to float once and scaled by d_weight * d_act, and
// the format's minimum or offset terms come from the activation block sums. Two ways to get the
// integer sums:
//  - portable (every target, the only one on SCALAR): weights decoded in registers into 16-bit
//    lanes with their sub-block scales multiplied in (|scale * q| <= 4096 for every format),
//    times int16-widened activations in 16x16->32-bit multiply-adds (pmaddwd);
//  - x86 SIMD targets, for the 2- to 6-bit formats: weights stay unsigned bytes and meet int8
//    activations in pmaddubsw, whose 16-bit pair sums take the sub-block scales in pmaddwd —
//    half the multiplies, which is what bounds decoding on a core.
// Q8_0 stays on the portable path (its signed bytes would need a sign trick; it is memory-bound
// already).
//
// Prompt batches: a tile of kTokenTile tokens shares each decoded weight vector (float weights
// also share each activation vector across 4 rows), and rows are walked in blocks of kRowBlock so
// a block's weights stay in L1/L2 while every token tile passes over them: each weight byte comes
// from memory once per matmul.
#if defined(FLOATLLM_KERNELS_MATMUL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef FLOATLLM_KERNELS_MATMUL_INL_H_
#undef FLOATLLM_KERNELS_MATMUL_INL_H_
#else
#define FLOATLLM_KERNELS_MATMUL_INL_H_
#endif

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include "floatllm/kernels/tasks.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"

HWY_BEFORE_NAMESPACE();
namespace floatllm::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 16-bit lanes, at most one 32-value block per vector.
using D16 = hn::CappedTag<int16_t, 32>;
using V16 = hn::Vec<D16>;
using D32 = hn::Repartition<int32_t, D16>;
using V32 = hn::Vec<D32>;
using DF32 = hn::Repartition<float, D16>;
using VF32 = hn::Vec<DF32>;
using DU8 = hn::Rebind<uint8_t, D16>;
using DI8 = hn::Rebind<int8_t, D16>;

inline constexpr int kTokenTile = 4;
inline constexpr int64_t kRowBlock = 16;

// Whether one int16 vector holds a whole 32-value block (AVX-512).
#ifdef FLOATLLM_BLOCK_PER_VECTOR
#undef FLOATLLM_BLOCK_PER_VECTOR
#endif
#ifdef FLOATLLM_K4_BYTES
#undef FLOATLLM_K4_BYTES
#endif
#if HWY_MAX_BYTES >= 64
#define FLOATLLM_BLOCK_PER_VECTOR 1
#else
#define FLOATLLM_BLOCK_PER_VECTOR 0
#endif

HWY_INLINE V16 load_u8(const uint8_t* p) {
  return hn::PromoteTo(D16(), hn::LoadU(DU8(), p));
}

// Lanes covering values [l0, l0 + lanes) of a 32-value span whose first 16 values use scale
// `lo` and last 16 use `hi`.
HWY_INLINE V16 scale_pair(int lo, int hi, size_t l0) {
  const D16 d16;
#if FLOATLLM_BLOCK_PER_VECTOR
  (void)l0;
  const hn::Half<D16> dh;
  return hn::Combine(d16, hn::Set(dh, static_cast<int16_t>(hi)),
                     hn::Set(dh, static_cast<int16_t>(lo)));
#else
  return hn::Set(d16, static_cast<int16_t>(l0 < 16 ? lo : hi));
#endif
}

// Lane i holds bit i % 16: tests the fifth bits of Q5_0 / Q5_1.
alignas(64) inline constexpr int16_t kLaneBits[32] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, -32768,
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, -32768};

// 0 or 16 per lane from the 32 high bits `qh` of values [off, off + lanes).
HWY_INLINE V16 q5_high(uint32_t qh, size_t off) {
  const D16 d16;
#if FLOATLLM_BLOCK_PER_VECTOR
  (void)off;
  const hn::Half<D16> dh;
  const V16 words = hn::Combine(d16, hn::Set(dh, static_cast<int16_t>(qh >> 16)),
                                hn::Set(dh, static_cast<int16_t>(qh & 0xffff)));
#else
  const V16 words = hn::Set(d16, static_cast<int16_t>((qh >> (off & 16)) & 0xffff));
#endif
  const V16 bits = hn::LoadU(d16, kLaneBits + (off % 16));
  return hn::IfThenElseZero(hn::TestBit(words, bits), hn::Set(d16, 16));
}

// Calls fn(offset, int16 weights) over the 32 values of a 4-bit block (low nibbles are values
// 0..15, high nibbles 16..31), subtracting `bias`.
template <class Fn>
HWY_INLINE void visit_nibbles32(const uint8_t* qs, int16_t bias, const uint8_t* qh, const Fn& fn) {
  const D16 d16;
  const V16 mask = hn::Set(d16, 15);
  const V16 vbias = hn::Set(d16, bias);
  uint32_t high = 0;
  if (qh != nullptr) std::memcpy(&high, qh, 4);
#if FLOATLLM_BLOCK_PER_VECTOR
  const hn::Half<D16> dh;
  const auto bytes = hn::PromoteTo(dh, hn::LoadU(hn::Rebind<uint8_t, decltype(dh)>(), qs));
  V16 w = hn::Combine(d16, hn::ShiftRight<4>(bytes), hn::And(bytes, hn::Set(dh, 15)));
  if (qh != nullptr) w = hn::Or(w, q5_high(high, 0));
  fn(size_t{0}, hn::Sub(w, vbias));
#else
  for (size_t off = 0; off < 16; off += hn::Lanes(d16)) {
    const V16 bytes = load_u8(qs + off);
    V16 lo = hn::And(bytes, mask);
    V16 hi = hn::ShiftRight<4>(bytes);
    if (qh != nullptr) {
      lo = hn::Or(lo, q5_high(high, off));
      hi = hn::Or(hi, q5_high(high, off + 16));
    }
    fn(off, hn::Sub(lo, vbias));
    fn(off + 16, hn::Sub(hi, vbias));
  }
#endif
  (void)mask;
}

// f16 -> f32 for block scales: one F16C instruction where the target has it.
HWY_INLINE float f16(f16_bits bits) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(bits);
#else
  return fp16_to_f32(bits);
#endif
}

// ---- One format per struct: block layout, in-register decoding, scales, minimum terms ----
//
// prepare(block) decodes the block's scalars into an Info once; visit(block, info, fn) calls
// fn(value offset in the block, V16 scaled weights); info.d scales the block's integer sum.
// Formats with kMins > 0 subtract info.dmin * d_act * (mins . activation sums), the sums taken
// over the kValues / kMins values each min applies to (min_sums); kScalarMin formats add
// info.m * Q8_1's s.

struct ScaleOnly {
  float d;
};

struct FormatQ8_0 {
  using Block = BlockQ8_0;
  using Info = ScaleOnly;
  static constexpr int64_t kValues = 32;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) { return {f16(b.d)}; }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    const D16 d16;
    for (size_t off = 0; off < 32; off += hn::Lanes(d16)) {
      fn(off, hn::PromoteTo(d16, hn::LoadU(DI8(), b.qs + off)));
    }
  }
};

struct FormatQ4_0 {
  using Block = BlockQ4_0;
  using Info = ScaleOnly;
  static constexpr int64_t kValues = 32;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) { return {f16(b.d)}; }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    visit_nibbles32(b.qs, 8, nullptr, fn);
  }
};

struct FormatQ5_0 {
  using Block = BlockQ5_0;
  using Info = ScaleOnly;
  static constexpr int64_t kValues = 32;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) { return {f16(b.d)}; }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    visit_nibbles32(b.qs, 16, b.qh, fn);
  }
};

struct ScaleAndMin {
  float d;
  float m;
};

struct FormatQ4_1 {
  using Block = BlockQ4_1;
  using Info = ScaleAndMin;
  static constexpr int64_t kValues = 32;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = true;
  static HWY_INLINE Info prepare(const Block& b) { return {f16(b.d), f16(b.m)}; }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    visit_nibbles32(b.qs, 0, nullptr, fn);
  }
};

struct FormatQ5_1 {
  using Block = BlockQ5_1;
  using Info = ScaleAndMin;
  static constexpr int64_t kValues = 32;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = true;
  static HWY_INLINE Info prepare(const Block& b) { return {f16(b.d), f16(b.m)}; }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    visit_nibbles32(b.qs, 0, b.qh, fn);
  }
};

// Q2_K and Q3_K share a layout: value 128c + 32j + l comes from bits 2j of q[32c + l] and uses
// sub-block scale 8c + 2j + l / 16.
struct FormatQ2_K {
  using Block = BlockQ2_K;
  struct Info {
    float d;
    float dmin;
    uint8_t mins[16];
  };
  static constexpr int64_t kValues = 256;
  static constexpr int kMins = 16;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) {
    Info info{f16(b.d), f16(b.dmin), {}};
    for (int j = 0; j < 16; ++j)
      info.mins[j] = static_cast<uint8_t>(b.scales[j] >> 4);
    return info;
  }
  static HWY_INLINE const int16_t* min_sums(const detail::QuantizedActivations& qa, int64_t t,
                                            int64_t g) {
    return qa.bsums_row(t) + 16 * g;
  }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    const D16 d16;
    const V16 three = hn::Set(d16, 3);
    for (int c = 0; c < 2; ++c) {
      for (size_t l0 = 0; l0 < 32; l0 += hn::Lanes(d16)) {
        const V16 q = load_u8(b.qs + 32 * c + l0);
        for (int j = 0; j < 4; ++j) {
          const int s = 8 * c + 2 * j;
          const V16 sc = scale_pair(b.scales[s] & 15, b.scales[s + 1] & 15, l0);
          const V16 v = hn::And(hn::ShiftRightSame(q, 2 * j), three);
          fn(static_cast<size_t>(128 * c + 32 * j) + l0, hn::Mul(v, sc));
        }
      }
    }
  }
};

struct FormatQ3_K {
  using Block = BlockQ3_K;
  struct Info {
    float d;
    int scales[16];
  };
  static constexpr int64_t kValues = 256;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) {
    Info info{f16(b.d), {}};
    for (int s = 0; s < 16; ++s)
      info.scales[s] = unpack_q3_k_scale(b.scales, s);
    return info;
  }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info& info, const Fn& fn) {
    const D16 d16;
    const V16 three = hn::Set(d16, 3);
    const V16 four = hn::Set(d16, 4);
    for (int c = 0; c < 2; ++c) {
      for (size_t l0 = 0; l0 < 32; l0 += hn::Lanes(d16)) {
        const V16 q = load_u8(b.qs + 32 * c + l0);
        const V16 h = load_u8(b.hmask + l0);
        for (int j = 0; j < 4; ++j) {
          const int s = 8 * c + 2 * j;
          const V16 sc = scale_pair(info.scales[s], info.scales[s + 1], l0);
          const V16 bit = hn::Set(d16, static_cast<int16_t>(1 << (4 * c + j)));
          const V16 low = hn::And(hn::ShiftRightSame(q, 2 * j), three);
          const V16 v = hn::Sub(low, hn::IfThenZeroElse(hn::TestBit(h, bit), four));
          fn(static_cast<size_t>(128 * c + 32 * j) + l0, hn::Mul(v, sc));
        }
      }
    }
  }
};

// Q4_K / Q5_K: eight 6-bit scales and mins in 12 bytes (see unpack_k_scale_min), unpacked four
// at a time with 32-bit masks.
struct K4Info {
  float d;
  float dmin;
  uint8_t scales[8];
  uint8_t mins[8];
};

static_assert(std::endian::native == std::endian::little,
              "K-quant scale unpacking assumes little-endian words");

HWY_INLINE K4Info prepare_k4(f16_bits d, f16_bits dmin, const uint8_t (&packed)[12]) {
  uint32_t w[3];
  std::memcpy(w, packed, 12);
  const uint32_t scales_lo = w[0] & 0x3f3f3f3fu;
  const uint32_t mins_lo = w[1] & 0x3f3f3f3fu;
  const uint32_t scales_hi = (w[2] & 0x0f0f0f0fu) | (((w[0] >> 6) & 0x03030303u) << 4);
  const uint32_t mins_hi = ((w[2] >> 4) & 0x0f0f0f0fu) | (((w[1] >> 6) & 0x03030303u) << 4);
  // One 8-byte store each: the kernels load all 8 bytes at once, and a load assembled from two
  // smaller stores cannot be forwarded from them (a stall of a dozen cycles per block).
  const uint64_t scales = scales_lo | uint64_t{scales_hi} << 32;
  const uint64_t mins = mins_lo | uint64_t{mins_hi} << 32;
  K4Info info{f16(d), f16(dmin), {}, {}};
  std::memcpy(info.scales, &scales, 8);
  std::memcpy(info.mins, &mins, 8);
  return info;
}

// Value 64c + l (l < 32) is the low nibble of qs[32c + l] (sub-block 2c), value 64c + 32 + l its
// high nibble (sub-block 2c + 1); Q5_K's fifth bits are bits 2c, 2c + 1 of qh[l].
template <bool kFiveBits, class Fn>
HWY_INLINE void visit_k4(const uint8_t* qs, const uint8_t* qh, const K4Info& info, const Fn& fn) {
  const D16 d16;
  const V16 mask = hn::Set(d16, 15);
  const V16 one = hn::Set(d16, 1);
  for (int c = 0; c < 4; ++c) {
    const V16 sc_lo = hn::Set(d16, info.scales[2 * c]);
    const V16 sc_hi = hn::Set(d16, info.scales[2 * c + 1]);
    for (size_t l0 = 0; l0 < 32; l0 += hn::Lanes(d16)) {
      const V16 bytes = load_u8(qs + 32 * c + l0);
      V16 lo = hn::And(bytes, mask);
      V16 hi = hn::ShiftRight<4>(bytes);
      if constexpr (kFiveBits) {
        const V16 h = load_u8(qh + l0);
        lo = hn::Or(lo, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c), one)));
        hi = hn::Or(hi, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c + 1), one)));
      }
      fn(static_cast<size_t>(64 * c) + l0, hn::Mul(lo, sc_lo));
      fn(static_cast<size_t>(64 * c + 32) + l0, hn::Mul(hi, sc_hi));
    }
  }
  (void)one;
  (void)qh;
}

struct FormatQ4_K {
  using Block = BlockQ4_K;
  using Info = K4Info;
  static constexpr int64_t kValues = 256;
  static constexpr int kMins = 8;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) { return prepare_k4(b.d, b.dmin, b.scales); }
  static HWY_INLINE const int16_t* min_sums(const detail::QuantizedActivations& qa, int64_t t,
                                            int64_t g) {
    return qa.bsums32_row(t) + 8 * g;
  }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info& info, const Fn& fn) {
    visit_k4<false>(b.qs, nullptr, info, fn);
  }
};

struct FormatQ5_K {
  using Block = BlockQ5_K;
  using Info = K4Info;
  static constexpr int64_t kValues = 256;
  static constexpr int kMins = 8;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) { return prepare_k4(b.d, b.dmin, b.scales); }
  static HWY_INLINE const int16_t* min_sums(const detail::QuantizedActivations& qa, int64_t t,
                                            int64_t g) {
    return qa.bsums32_row(t) + 8 * g;
  }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info& info, const Fn& fn) {
    visit_k4<true>(b.qs, b.qh, info, fn);
  }
};

// Q6_K: per 128 values (half n), value 128n + 32m + l takes the low (m = 0, 1) or high (m = 2, 3)
// nibble of ql[64n + 32(m % 2) + l] and bits 2m of qh[32n + l]; scale 8n + 2m + l / 16.
struct FormatQ6_K {
  using Block = BlockQ6_K;
  using Info = ScaleOnly;
  static constexpr int64_t kValues = 256;
  static constexpr int kMins = 0;
  static constexpr bool kScalarMin = false;
  static HWY_INLINE Info prepare(const Block& b) { return {f16(b.d)}; }
  template <class Fn>
  static HWY_INLINE void visit(const Block& b, const Info&, const Fn& fn) {
    const D16 d16;
    const V16 mask = hn::Set(d16, 15);
    const V16 three = hn::Set(d16, 3);
    const V16 bias = hn::Set(d16, 32);
    for (int n = 0; n < 2; ++n) {
      const int8_t* sc = b.scales + 8 * n;
      for (size_t l0 = 0; l0 < 32; l0 += hn::Lanes(d16)) {
        const V16 a = load_u8(b.ql + 64 * n + l0);
        const V16 c = load_u8(b.ql + 64 * n + 32 + l0);
        const V16 h = load_u8(b.qh + 32 * n + l0);
        const V16 nib[4] = {hn::And(a, mask), hn::And(c, mask), hn::ShiftRight<4>(a),
                            hn::ShiftRight<4>(c)};
        for (int m = 0; m < 4; ++m) {
          const V16 high = hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * m), three));
          const V16 v = hn::Sub(hn::Or(nib[m], high), bias);
          fn(static_cast<size_t>(128 * n + 32 * m) + l0,
             hn::Mul(v, scale_pair(sc[2 * m], sc[2 * m + 1], l0)));
        }
      }
    }
  }
};

// Accumulates factor * (mins . sums) over blocks in vector lanes; summed once per row.
template <int kCount>
struct MinTerms {
  using D = hn::CappedTag<int16_t, kCount>;
  using DI = hn::Repartition<int32_t, D>;
  using DF = hn::Repartition<float, D>;
  hn::Vec<DF> acc;  // zeroed by clear(): implicit constructors lack the target attributes

  HWY_INLINE void clear() { acc = hn::Zero(DF()); }

  template <class Byte>
  HWY_INLINE void add(const Byte* mins, const int16_t* sums, float factor) {
    const D d;
    const DI di;
    const hn::Rebind<Byte, D> du8;
    for (size_t k = 0; k < static_cast<size_t>(kCount); k += hn::Lanes(d)) {
      auto unused = hn::Zero(di);
      const auto m = hn::PromoteTo(d, hn::LoadU(du8, mins + k));
      const auto dot =
          hn::ReorderWidenMulAccumulate(di, m, hn::LoadU(d, sums + k), hn::Zero(di), unused);
      acc = hn::MulAdd(hn::ConvertTo(DF(), dot), hn::Set(DF(), factor), acc);
    }
  }
  HWY_INLINE float total() const { return hn::GetLane(hn::SumOfLanes(DF(), acc)); }
};

// Asks for the cache lines of `block` moved `ahead` bytes on (0: nothing). Decoding passes the
// row size, so the next row is read while this one is computed: two streams in flight per core
// instead of the hardware prefetcher's one, which is what reaching the read bandwidth takes.
template <class Block>
HWY_INLINE void prefetch_ahead(const Block* block, uint64_t ahead) {
  if (ahead == 0) return;
  const auto* first = reinterpret_cast<const std::byte*>(block) + ahead;
  for (uint64_t at = 0; at < sizeof(Block); at += 64)
    hwy::Prefetch(first + at);
}

// results[t] = row . activations of token t0 + t, for t < T.
template <class Format, int T>
HWY_INLINE void dot_quant_row(const typename Format::Block* blocks, int64_t n_blocks,
                              const detail::QuantizedActivations& qa, int64_t t0, float* results,
                              uint64_t ahead) {
  const D16 d16;
  const D32 d32;
  const DF32 df;
  // Two float accumulators per token, for even and odd blocks, in straight-line code so both
  // stay in registers: one chain would wait out the multiply-add latency at every block (Q8_0
  // decoding is bound by it). Prompt tiles sum in the same order, so batched and token-by-token
  // logits stay equal.
  VF32 even[T];
  VF32 odd[T];
  float corr[T][2];
  MinTerms<(Format::kMins > 0 ? Format::kMins : 8)> mins[T];
  const int16_t* act[T];
  const float* act_d[T];
  for (int t = 0; t < T; ++t) {
    even[t] = hn::Zero(df);
    odd[t] = hn::Zero(df);
    corr[t][0] = corr[t][1] = 0.0f;
    mins[t].clear();
    act[t] = qa.q_row(t0 + t);
    act_d[t] = qa.d_row(t0 + t);
  }
  const auto block_into = [&](int64_t g, int chain, VF32(&facc)[T]) HWY_ATTR {
    prefetch_ahead(blocks + g, ahead);
    const auto& block = blocks[g];
    const typename Format::Info info = Format::prepare(block);
    V32 iacc[T];
    const int16_t* base[T];
    for (int t = 0; t < T; ++t) {
      iacc[t] = hn::Zero(d32);
      base[t] = act[t] + g * Format::kValues;
    }
    Format::visit(block, info, [&](size_t off, V16 w) HWY_ATTR {
      for (int t = 0; t < T; ++t) {
        V32 unused = hn::Zero(d32);
        iacc[t] =
            hn::ReorderWidenMulAccumulate(d32, w, hn::LoadU(d16, base[t] + off), iacc[t], unused);
      }
    });
    for (int t = 0; t < T; ++t) {
      facc[t] = hn::MulAdd(hn::ConvertTo(df, iacc[t]), hn::Set(df, info.d * act_d[t][g]), facc[t]);
      if constexpr (Format::kMins > 0) {
        mins[t].add(info.mins, Format::min_sums(qa, t0 + t, g), -info.dmin * act_d[t][g]);
      }
      if constexpr (Format::kScalarMin) corr[t][chain] += info.m * qa.s_row(t0 + t)[g];
    }
  };
  int64_t g = 0;
  for (; g + 2 <= n_blocks; g += 2) {
    block_into(g, 0, even);
    block_into(g + 1, 1, odd);
  }
  if (g < n_blocks) block_into(g, 0, even);
  for (int t = 0; t < T; ++t) {
    results[t] =
        hn::GetLane(hn::SumOfLanes(df, hn::Add(even[t], odd[t]))) + corr[t][0] + corr[t][1];
    if constexpr (Format::kMins > 0) results[t] += mins[t].total();
  }
}

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_SSSE3
// Q4_K / Q5_K on x86 SIMD targets: the weights stay unsigned bytes (q <= 31) and meet the int8
// activations in pmaddubsw (u8 x i8 -> pairwise i16 sums, at most 2 * 31 * 127, no saturation),
// whose i16 sums then take the sub-block scale in pmaddwd. That is half the multiplies of the
// 16-bit path, which is what bounds Q4_K decoding on one core.
#define FLOATLLM_K4_BYTES 1

using D8 = hn::CappedTag<uint8_t, 64>;
using V8 = hn::Vec<D8>;
using DS8 = hn::Repartition<int8_t, D8>;
using DP16 = hn::Repartition<int16_t, D8>;
using DP32 = hn::Repartition<int32_t, D8>;
using DPF = hn::Repartition<float, D8>;

HWY_INLINE hn::Vec<DP16> maddubs(V8 u, hn::Vec<DS8> s) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
  return hn::Vec<DP16>{_mm512_maddubs_epi16(u.raw, s.raw)};
#elif HWY_TARGET == HWY_AVX2
  return hn::Vec<DP16>{_mm256_maddubs_epi16(u.raw, s.raw)};
#else
  return hn::Vec<DP16>{_mm_maddubs_epi16(u.raw, s.raw)};
#endif
}

template <bool kFiveBits, int T>
HWY_INLINE void dot_k4_bytes(
    const typename std::conditional_t<kFiveBits, BlockQ5_K, BlockQ4_K>* blocks, int64_t n_blocks,
    const detail::QuantizedActivations& qa, int64_t t0, float* results, uint64_t ahead) {
  const D8 d8;
  const DS8 ds8;
  const DP16 d16;
  const DP32 d32;
  const DPF df;
  constexpr size_t kLanes = hn::MaxLanes(D8());
  const V8 mask = hn::Set(d8, 15);
  const V8 one = hn::Set(d8, 1);
  hn::Vec<DPF> facc[T];
  MinTerms<8> mins[T];
  const int8_t* act[T];
  const float* act_d[T];
  // Q4_K with a block per vector takes 64 bytes (128 values) per load, its low and high nibbles
  // meeting the activations in q8_pairs' order: half the unpacking of 32-byte loads.
  constexpr bool kPairs = FLOATLLM_BLOCK_PER_VECTOR && !kFiveBits && kLanes >= 64;
  for (int t = 0; t < T; ++t) {
    facc[t] = hn::Zero(df);
    mins[t].clear();
    act[t] = kPairs ? qa.q8_pairs_row(t0 + t) : qa.q8_row(t0 + t);
    act_d[t] = qa.d_row(t0 + t);
  }
#if FLOATLLM_BLOCK_PER_VECTOR
  // Byte indices: lanes 0..15 (bytes 0..31) take scale 2c, lanes 16..31 scale 2c + 1; 0x80 zeroes
  // the high byte of each 16-bit lane.
  hn::Vec<D8> scale_index[4];
  for (int c = 0; c < 4; ++c) {
    alignas(64) uint8_t index[64];
    for (int i = 0; i < 64; ++i) {
      index[i] = (i % 2 != 0) ? 0x80 : static_cast<uint8_t>(2 * c + (i >= 32 ? 1 : 0));
    }
    scale_index[c] = hn::Load(d8, index);
  }
  // For kPairs: pair p's low nibbles are sub-blocks 4p (bytes 0..31) and 4p + 2, its high
  // nibbles 4p + 1 and 4p + 3.
  hn::Vec<D8> pair_index[2][2];
  for (int p = 0; p < 2; ++p) {
    for (int high = 0; high < 2; ++high) {
      alignas(64) uint8_t index[64];
      for (int i = 0; i < 64; ++i) {
        index[i] = (i % 2 != 0) ? 0x80 : static_cast<uint8_t>(4 * p + high + (i >= 32 ? 2 : 0));
      }
      pair_index[p][high] = hn::Load(d8, index);
    }
  }
#endif
  for (int64_t g = 0; g < n_blocks; ++g) {
    prefetch_ahead(blocks + g, ahead);
    const auto& b = blocks[g];
    const K4Info info = prepare_k4(b.d, b.dmin, b.scales);
    hn::Vec<DP32> iacc[T];
    for (int t = 0; t < T; ++t)
      iacc[t] = hn::Zero(d32);
    const auto accumulate = [&](size_t off, V8 w, hn::Vec<DP16> scales) HWY_ATTR {
      for (int t = 0; t < T; ++t) {
        const auto pairs = maddubs(w, hn::LoadU(ds8, act[t] + g * 256 + off));
        hn::Vec<DP32> unused = hn::Zero(d32);
        iacc[t] = hn::ReorderWidenMulAccumulate(d32, pairs, scales, iacc[t], unused);
      }
    };
#if FLOATLLM_BLOCK_PER_VECTOR
    // The 8 scales in every 8-byte lane; pshufb picks scale 2c or 2c + 1 into each 16-bit lane.
    uint64_t scale_word;
    std::memcpy(&scale_word, info.scales, 8);
    const auto scale_bytes = hn::BitCast(d8, hn::Set(hn::Repartition<uint64_t, D8>(), scale_word));
#endif
#if FLOATLLM_BLOCK_PER_VECTOR
    if constexpr (kPairs) {
      for (int p = 0; p < 2; ++p) {
        const V8 bytes = hn::LoadU(d8, b.qs + 64 * p);
        const auto lo_scales =
            hn::BitCast(d16, hn::TableLookupBytes(scale_bytes, pair_index[p][0]));
        const auto hi_scales =
            hn::BitCast(d16, hn::TableLookupBytes(scale_bytes, pair_index[p][1]));
        accumulate(static_cast<size_t>(128 * p), hn::And(bytes, mask), lo_scales);
        accumulate(static_cast<size_t>(128 * p + 64), hn::ShiftRight<4>(bytes), hi_scales);
      }
    }
#endif
    for (int c = 0; c < (kPairs ? 0 : 4); ++c) {
      const auto sc_lo = static_cast<int16_t>(info.scales[2 * c]);
      const auto sc_hi = static_cast<int16_t>(info.scales[2 * c + 1]);
      if constexpr (kLanes >= 64) {
        // One vector holds the 64 values of pair c: low nibbles then high nibbles.
        const hn::Half<D8> dh;
        const auto bytes = hn::LoadU(dh, b.qs + 32 * c);
        auto lo = hn::And(bytes, hn::Set(dh, 15));
        auto hi = hn::ShiftRight<4>(bytes);
        if constexpr (kFiveBits) {
          const auto h = hn::LoadU(dh, b.qh);
          const auto bit = hn::Set(dh, 1);
          lo = hn::Or(lo, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c), bit)));
          hi = hn::Or(hi, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c + 1), bit)));
        }
#if FLOATLLM_BLOCK_PER_VECTOR
        const auto scales = hn::BitCast(d16, hn::TableLookupBytes(scale_bytes, scale_index[c]));
#else
        const hn::Half<DP16> dh16;
        const auto scales = hn::Combine(d16, hn::Set(dh16, sc_hi), hn::Set(dh16, sc_lo));
#endif
        accumulate(static_cast<size_t>(64 * c), hn::Combine(d8, hi, lo), scales);
      } else {
        for (size_t l0 = 0; l0 < 32; l0 += kLanes) {
          const V8 bytes = hn::LoadU(d8, b.qs + 32 * c + l0);
          V8 lo = hn::And(bytes, mask);
          V8 hi = hn::And(hn::ShiftRight<4>(bytes), mask);
          if constexpr (kFiveBits) {
            const V8 h = hn::LoadU(d8, b.qh + l0);
            lo = hn::Or(lo, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c), one)));
            hi = hn::Or(hi, hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * c + 1), one)));
          }
          accumulate(static_cast<size_t>(64 * c) + l0, lo, hn::Set(d16, sc_lo));
          accumulate(static_cast<size_t>(64 * c + 32) + l0, hi, hn::Set(d16, sc_hi));
        }
      }
    }
    for (int t = 0; t < T; ++t) {
      facc[t] = hn::MulAdd(hn::ConvertTo(df, iacc[t]), hn::Set(df, info.d * act_d[t][g]), facc[t]);
      mins[t].add(info.mins, qa.bsums32_row(t0 + t) + 8 * g, -info.dmin * act_d[t][g]);
    }
  }
  for (int t = 0; t < T; ++t) {
    results[t] = hn::GetLane(hn::SumOfLanes(df, facc[t])) + mins[t].total();
  }
  (void)mask;
  (void)one;
}

// Q6_K on x86 SIMD targets: q in 0..63 as unsigned bytes in pmaddubsw (at most 2 * 63 * 127),
// signed sub-block scales in pmaddwd, and the -32 offset folded out as
// -32 * d * d_act * sum(scale_j * bsum_j).
// Q2_K / Q3_K on x86 SIMD targets: value 128c + 32j + l is bits 2j of qs[32c + l] (plus, for
// Q3_K, bit 4c + j of hmask[l] as +4), unsigned bytes in pmaddubsw, sub-block scales (per 16
// values) in pmaddwd. Q2_K subtracts dmin * (mins . bsums); Q3_K's stored values are q - 4, so
// it subtracts 4 * d * (scales . bsums).
template <bool kThree, int T>
HWY_INLINE void dot_k23_bytes(const std::conditional_t<kThree, BlockQ3_K, BlockQ2_K>* blocks,
                              int64_t n_blocks, const detail::QuantizedActivations& qa, int64_t t0,
                              float* results, uint64_t ahead) {
  const D8 d8;
  const DS8 ds8;
  const DP16 d16;
  const DP32 d32;
  const DPF df;
  constexpr size_t kLanes = hn::MaxLanes(D8());
  const V8 three = hn::Set(d8, 3);
  const V8 one = hn::Set(d8, 1);
  hn::Vec<DPF> facc[T];
  MinTerms<16> terms[T];
  const int8_t* act[T];
  const float* act_d[T];
  for (int t = 0; t < T; ++t) {
    facc[t] = hn::Zero(df);
    terms[t].clear();
    act[t] = qa.q8_row(t0 + t);
    act_d[t] = qa.d_row(t0 + t);
  }
#if FLOATLLM_BLOCK_PER_VECTOR
  hn::Vec<D8> scale_index[2];
  for (int p = 0; p < 2; ++p) {
    alignas(64) uint8_t index[64];
    for (int i = 0; i < 64; ++i) {
      index[i] = static_cast<uint8_t>(2 * (4 * p + i / 16) + i % 2);
    }
    scale_index[p] = hn::Load(d8, index);
  }
#endif
  for (int64_t g = 0; g < n_blocks; ++g) {
    prefetch_ahead(blocks + g, ahead);
    const auto& b = blocks[g];
    const float d = f16(b.d);
    alignas(16) int16_t scales[16];
    int8_t mins[16];
    float min_factor;
    if constexpr (kThree) {
      // unpack_q3_k_scale for all 16 at once: low nibbles from bytes 0..7, top bit pairs from
      // bytes 8..11, four scales per 32-bit word.
      uint32_t w[4];
      std::memcpy(w, b.scales, 12);
      const uint32_t top = w[2];
      w[2] = ((w[0] >> 4) & 0x0f0f0f0fu) | (((top >> 4) & 0x03030303u) << 4);
      w[3] = ((w[1] >> 4) & 0x0f0f0f0fu) | (((top >> 6) & 0x03030303u) << 4);
      w[0] = (w[0] & 0x0f0f0f0fu) | ((top & 0x03030303u) << 4);
      w[1] = (w[1] & 0x0f0f0f0fu) | (((top >> 2) & 0x03030303u) << 4);
      uint8_t biased[16];
      std::memcpy(biased, w, 16);
      for (int j = 0; j < 16; ++j) {
        scales[j] = static_cast<int16_t>(biased[j] - 32);
        mins[j] = static_cast<int8_t>(biased[j] - 32);
      }
      min_factor = -4.0f * d;
    } else {
      for (int j = 0; j < 16; ++j) {
        scales[j] = static_cast<int16_t>(b.scales[j] & 15);
        mins[j] = static_cast<int8_t>(b.scales[j] >> 4);
      }
      min_factor = -f16(b.dmin);
    }
    hn::Vec<DP32> iacc[T];
    for (int t = 0; t < T; ++t)
      iacc[t] = hn::Zero(d32);
    const auto accumulate = [&](size_t off, V8 w, hn::Vec<DP16> sc) HWY_ATTR {
      for (int t = 0; t < T; ++t) {
        const auto pairs = maddubs(w, hn::LoadU(ds8, act[t] + g * 256 + off));
        hn::Vec<DP32> unused = hn::Zero(d32);
        iacc[t] = hn::ReorderWidenMulAccumulate(d32, pairs, sc, iacc[t], unused);
      }
    };
    for (int c = 0; c < 2; ++c) {
#if FLOATLLM_BLOCK_PER_VECTOR
      const hn::Half<D8> dh;
      const auto q = hn::LoadU(dh, b.qs + 32 * c);
      const auto scale_words =
          hn::BitCast(d8, hn::LoadDup128(hn::Repartition<int16_t, D8>(), scales + 8 * c));
      for (int p = 0; p < 2; ++p) {
        auto lo = hn::And(hn::ShiftRightSame(q, 4 * p), hn::Set(dh, 3));
        auto hi = hn::And(hn::ShiftRightSame(q, 4 * p + 2), hn::Set(dh, 3));
        if constexpr (kThree) {
          const auto h = hn::LoadU(dh, b.hmask);
          const int bit = 4 * c + 2 * p;
          lo = hn::Or(lo, hn::ShiftLeft<2>(hn::And(hn::ShiftRightSame(h, bit), hn::Set(dh, 1))));
          hi =
              hn::Or(hi, hn::ShiftLeft<2>(hn::And(hn::ShiftRightSame(h, bit + 1), hn::Set(dh, 1))));
        }
        accumulate(static_cast<size_t>(128 * c + 64 * p), hn::Combine(d8, hi, lo),
                   hn::BitCast(d16, hn::TableLookupBytes(scale_words, scale_index[p])));
      }
#else
      for (size_t l0 = 0; l0 < 32; l0 += kLanes) {
        const V8 q = hn::LoadU(d8, b.qs + 32 * c + l0);
        for (int j = 0; j < 4; ++j) {
          V8 v = hn::And(hn::ShiftRightSame(q, 2 * j), three);
          if constexpr (kThree) {
            const V8 h = hn::LoadU(d8, b.hmask + l0);
            v = hn::Or(v, hn::ShiftLeft<2>(hn::And(hn::ShiftRightSame(h, 4 * c + j), one)));
          }
          const int s = 8 * c + 2 * j;
          hn::Vec<DP16> sc;
          if constexpr (kLanes >= 32) {
            const hn::Half<DP16> dh16;
            sc = hn::Combine(d16, hn::Set(dh16, scales[s + 1]), hn::Set(dh16, scales[s]));
          } else {
            sc = hn::Set(d16, scales[s + (l0 >= 16 ? 1 : 0)]);
          }
          accumulate(static_cast<size_t>(128 * c + 32 * j) + l0, v, sc);
        }
      }
#endif
    }
    for (int t = 0; t < T; ++t) {
      facc[t] = hn::MulAdd(hn::ConvertTo(df, iacc[t]), hn::Set(df, d * act_d[t][g]), facc[t]);
      terms[t].add(mins, qa.bsums_row(t0 + t) + 16 * g, min_factor * act_d[t][g]);
    }
  }
  for (int t = 0; t < T; ++t) {
    results[t] = hn::GetLane(hn::SumOfLanes(df, facc[t])) + terms[t].total();
  }
  (void)kLanes;
  (void)three;
  (void)one;
}

template <int T>
HWY_INLINE void dot_q6_k_bytes(const BlockQ6_K* blocks, int64_t n_blocks,
                               const detail::QuantizedActivations& qa, int64_t t0, float* results,
                               uint64_t ahead) {
  const D8 d8;
  const DS8 ds8;
  const DP16 d16;
  const DP32 d32;
  const DPF df;
  constexpr size_t kLanes = hn::MaxLanes(D8());
  const V8 mask = hn::Set(d8, 15);
  const V8 three = hn::Set(d8, 3);
  hn::Vec<DPF> facc[T];
  MinTerms<16> offsets[T];
  const int8_t* act[T];
  const float* act_d[T];
  for (int t = 0; t < T; ++t) {
    facc[t] = hn::Zero(df);
    offsets[t].clear();
    act[t] = qa.q8_row(t0 + t);
    act_d[t] = qa.d_row(t0 + t);
  }
#if FLOATLLM_BLOCK_PER_VECTOR
  // 16-bit lane k of 128-bit block j takes scale 4p + j (p = which 64 values of a half).
  hn::Vec<D8> scale_index[2];
  for (int p = 0; p < 2; ++p) {
    alignas(64) uint8_t index[64];
    for (int i = 0; i < 64; ++i) {
      index[i] = static_cast<uint8_t>(2 * (4 * p + i / 16) + i % 2);
    }
    scale_index[p] = hn::Load(d8, index);
  }
#endif
  for (int64_t g = 0; g < n_blocks; ++g) {
    prefetch_ahead(blocks + g, ahead);
    const BlockQ6_K& b = blocks[g];
    const float d = f16(b.d);
    hn::Vec<DP32> iacc[T];
    for (int t = 0; t < T; ++t)
      iacc[t] = hn::Zero(d32);
    const auto accumulate = [&](size_t off, V8 w, hn::Vec<DP16> scales) HWY_ATTR {
      for (int t = 0; t < T; ++t) {
        const auto pairs = maddubs(w, hn::LoadU(ds8, act[t] + g * 256 + off));
        hn::Vec<DP32> unused = hn::Zero(d32);
        iacc[t] = hn::ReorderWidenMulAccumulate(d32, pairs, scales, iacc[t], unused);
      }
    };
    for (int n = 0; n < 2; ++n) {
      const int8_t* sc = b.scales + 8 * n;
#if FLOATLLM_BLOCK_PER_VECTOR
      // Values 128n + 0..63 are the low nibbles of ql[64n .. 64n + 63], values 64..127 the high
      // ones; their top bits are bit pairs 0..3 of qh[32n + l].
      // Widened in a register and stored once: a 16-byte load cannot be forwarded from eight
      // 2-byte stores (a stall per half block).
      alignas(16) int16_t wide[8];
      hn::Store(hn::PromoteTo(hn::Full128<int16_t>(), hn::LoadU(hn::Full64<int8_t>(), sc)),
                hn::Full128<int16_t>(), wide);
      const auto scale_words =
          hn::BitCast(d8, hn::LoadDup128(hn::Repartition<int16_t, D8>(), wide));
      const V8 ql = hn::LoadU(d8, b.ql + 64 * n);
      const hn::Half<D8> dh;
      const auto qh = hn::LoadU(dh, b.qh + 32 * n);
      const V8 h01 = hn::Combine(d8, hn::ShiftRight<2>(qh), qh);
      const V8 h23 = hn::Combine(d8, hn::ShiftRight<6>(qh), hn::ShiftRight<4>(qh));
      const V8 w01 = hn::Or(hn::And(ql, mask), hn::ShiftLeft<4>(hn::And(h01, three)));
      const V8 w23 = hn::Or(hn::ShiftRight<4>(ql), hn::ShiftLeft<4>(hn::And(h23, three)));
      accumulate(static_cast<size_t>(128 * n), w01,
                 hn::BitCast(d16, hn::TableLookupBytes(scale_words, scale_index[0])));
      accumulate(static_cast<size_t>(128 * n + 64), w23,
                 hn::BitCast(d16, hn::TableLookupBytes(scale_words, scale_index[1])));
#else
      for (size_t l0 = 0; l0 < 32; l0 += kLanes) {
        const V8 a = hn::LoadU(d8, b.ql + 64 * n + l0);
        const V8 c = hn::LoadU(d8, b.ql + 64 * n + 32 + l0);
        const V8 h = hn::LoadU(d8, b.qh + 32 * n + l0);
        const V8 nib[4] = {hn::And(a, mask), hn::And(c, mask), hn::And(hn::ShiftRight<4>(a), mask),
                           hn::And(hn::ShiftRight<4>(c), mask)};
        for (int m = 0; m < 4; ++m) {
          const V8 high = hn::ShiftLeft<4>(hn::And(hn::ShiftRightSame(h, 2 * m), three));
          hn::Vec<DP16> scales;
          if constexpr (kLanes >= 32) {
            const hn::Half<DP16> dh16;
            scales = hn::Combine(d16, hn::Set(dh16, static_cast<int16_t>(sc[2 * m + 1])),
                                 hn::Set(dh16, static_cast<int16_t>(sc[2 * m])));
          } else {
            scales = hn::Set(d16, static_cast<int16_t>(sc[2 * m + (l0 >= 16 ? 1 : 0)]));
          }
          accumulate(static_cast<size_t>(128 * n + 32 * m) + l0, hn::Or(nib[m], high), scales);
        }
      }
#endif
    }
    for (int t = 0; t < T; ++t) {
      facc[t] = hn::MulAdd(hn::ConvertTo(df, iacc[t]), hn::Set(df, d * act_d[t][g]), facc[t]);
      offsets[t].add(b.scales, qa.bsums_row(t0 + t) + 16 * g, -32.0f * d * act_d[t][g]);
    }
  }
  for (int t = 0; t < T; ++t) {
    results[t] = hn::GetLane(hn::SumOfLanes(df, facc[t])) + offsets[t].total();
  }
  (void)kLanes;
}

// The 32-value 4/5-bit formats on x86 SIMD targets: q in 0..31 as unsigned bytes in pmaddubsw,
// pairs summed by pmaddwd with ones; the -8 / -16 offsets of Q4_0 / Q5_0 become
// -offset * sum(a) from the activation block sums, Q4_1 / Q5_1's minimum adds m * s as before.
using DB = hn::CappedTag<uint8_t, 32>;  // one block of 32 values (two halves below 256 bits)
using DBS = hn::Repartition<int8_t, DB>;
using DB16 = hn::Repartition<int16_t, DB>;
using DB32 = hn::Repartition<int32_t, DB>;
using DBF = hn::Repartition<float, DB>;

HWY_INLINE hn::Vec<DB16> maddubs32(hn::Vec<DB> u, hn::Vec<DBS> s) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
  return hn::Vec<DB16>{_mm256_maddubs_epi16(u.raw, s.raw)};
#else
  return hn::Vec<DB16>{_mm_maddubs_epi16(u.raw, s.raw)};
#endif
}

// 16 (or 0) per lane from bit (off + lane) of the block's 32 high bits.
HWY_INLINE hn::Vec<DB> fifth_bits(uint32_t qh, size_t off) {
  const DB d;
  alignas(32) static constexpr uint8_t kByteOfBit[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1,
                                                         1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                                         2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  alignas(32) static constexpr uint8_t kBitOfByte[32] = {
      1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
      1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  // Every 32-bit lane holds qh, so each 128-bit block can pick any of its 4 bytes.
  const auto words = hn::BitCast(d, hn::Set(hn::Repartition<uint32_t, DB>(), qh));
  const auto bytes = hn::TableLookupBytes(words, hn::LoadU(d, kByteOfBit + off));
  const auto bits = hn::LoadU(d, kBitOfByte + off);
  return hn::IfThenElseZero(hn::TestBit(bytes, bits), hn::Set(d, 16));
}

template <class Block, int kOffset, bool kFiveBits, bool kMin, int T>
HWY_INLINE void dot_legacy_bytes(const Block* blocks, int64_t n_blocks,
                                 const detail::QuantizedActivations& qa, int64_t t0, float* results,
                                 uint64_t ahead) {
  const DB d8;
  const DBS ds8;
  const DB16 d16;
  const DB32 d32;
  const DBF df;
  constexpr size_t kLanes = hn::MaxLanes(DB());
  const auto mask = hn::Set(d8, 15);
  const auto ones = hn::Set(d16, 1);
  // Even and odd blocks in two accumulators, as dot_quant_row does: an 18-byte block is too
  // little work to hide a multiply-add's latency.
  hn::Vec<DBF> even[T];
  hn::Vec<DBF> odd[T];
  float corr[T][2];
  const int8_t* act[T];
  const float* act_d[T];
  const int16_t* act_sums[T];
  for (int t = 0; t < T; ++t) {
    even[t] = hn::Zero(df);
    odd[t] = hn::Zero(df);
    corr[t][0] = corr[t][1] = 0.0f;
    act[t] = qa.q8_row(t0 + t);
    act_d[t] = qa.d_row(t0 + t);
    act_sums[t] = qa.bsums32_row(t0 + t);
  }
  const auto block_into = [&](int64_t g, int chain, hn::Vec<DBF>(&facc)[T]) HWY_ATTR {
    prefetch_ahead(blocks + g, ahead);
    const Block& b = blocks[g];
    const float d = f16(b.d);
    uint32_t qh = 0;
    if constexpr (kFiveBits) std::memcpy(&qh, b.qh, 4);
    hn::Vec<DB32> iacc[T];
    for (int t = 0; t < T; ++t)
      iacc[t] = hn::Zero(d32);
    const auto accumulate = [&](size_t off, hn::Vec<DB> w) HWY_ATTR {
      for (int t = 0; t < T; ++t) {
        const auto pairs = maddubs32(w, hn::LoadU(ds8, act[t] + g * 32 + off));
        hn::Vec<DB32> unused = hn::Zero(d32);
        iacc[t] = hn::ReorderWidenMulAccumulate(d32, pairs, ones, iacc[t], unused);
      }
    };
    if constexpr (kLanes >= 32) {
      const hn::Half<DB> dh;
      const auto bytes = hn::LoadU(dh, b.qs);
      auto w = hn::Combine(d8, hn::ShiftRight<4>(bytes), hn::And(bytes, hn::Set(dh, 15)));
      if constexpr (kFiveBits) w = hn::Or(w, fifth_bits(qh, 0));
      accumulate(0, w);
    } else {
      const auto bytes = hn::LoadU(d8, b.qs);
      auto lo = hn::And(bytes, mask);
      auto hi = hn::And(hn::ShiftRight<4>(bytes), mask);
      if constexpr (kFiveBits) {
        lo = hn::Or(lo, fifth_bits(qh, 0));
        hi = hn::Or(hi, fifth_bits(qh, 16));
      }
      accumulate(0, lo);
      accumulate(16, hi);
    }
    for (int t = 0; t < T; ++t) {
      const float scale = d * act_d[t][g];
      facc[t] = hn::MulAdd(hn::ConvertTo(df, iacc[t]), hn::Set(df, scale), facc[t]);
      if constexpr (kOffset != 0) {
        corr[t][chain] -= scale * static_cast<float>(kOffset * act_sums[t][g]);
      }
      if constexpr (kMin) corr[t][chain] += f16(b.m) * qa.s_row(t0 + t)[g];
    }
  };
  int64_t g = 0;
  for (; g + 2 <= n_blocks; g += 2) {
    block_into(g, 0, even);
    block_into(g + 1, 1, odd);
  }
  if (g < n_blocks) block_into(g, 0, even);
  for (int t = 0; t < T; ++t)
    results[t] =
        hn::GetLane(hn::SumOfLanes(df, hn::Add(even[t], odd[t]))) + corr[t][0] + corr[t][1];
  (void)mask;
}
#else
#define FLOATLLM_K4_BYTES 0
#endif

// Walks rows in blocks and tokens in tiles; calls dot(row, t0, count, results).
template <class Dot>
HWY_INLINE void for_row_token_tiles(const detail::MatmulTask& task, int64_t r0, int64_t r1,
                                    const Dot& dot) {
  const int64_t rows = task.w.rows;
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t re = std::min(r1, rb + kRowBlock);
    for (int64_t t0 = 0; t0 < task.n_tokens; t0 += kTokenTile) {
      const int count = static_cast<int>(std::min<int64_t>(kTokenTile, task.n_tokens - t0));
      for (int64_t r = rb; r < re; ++r) {
        float results[kTokenTile] = {};
        dot(r, t0, count, results);
        for (int t = 0; t < count; ++t)
          task.y[(t0 + t) * rows + r] = results[t];
      }
    }
  }
}

// One row against tokens t0 .. t0 + T - 1 with the fastest code this target has for Format.
template <class Format, int T>
HWY_INLINE void dot_row_tile(const typename Format::Block* blocks, int64_t n_blocks,
                             const detail::QuantizedActivations& qa, int64_t t0, float* results,
                             uint64_t ahead) {
#if FLOATLLM_K4_BYTES
  if constexpr (std::is_same_v<Format, FormatQ4_K> || std::is_same_v<Format, FormatQ5_K>) {
    return dot_k4_bytes<std::is_same_v<Format, FormatQ5_K>, T>(blocks, n_blocks, qa, t0, results,
                                                               ahead);
  } else if constexpr (std::is_same_v<Format, FormatQ2_K> || std::is_same_v<Format, FormatQ3_K>) {
    return dot_k23_bytes<std::is_same_v<Format, FormatQ3_K>, T>(blocks, n_blocks, qa, t0, results,
                                                                ahead);
  } else if constexpr (std::is_same_v<Format, FormatQ6_K>) {
    return dot_q6_k_bytes<T>(blocks, n_blocks, qa, t0, results, ahead);
  } else if constexpr (std::is_same_v<Format, FormatQ4_0> || std::is_same_v<Format, FormatQ4_1> ||
                       std::is_same_v<Format, FormatQ5_0> || std::is_same_v<Format, FormatQ5_1>) {
    constexpr int kOffset = std::is_same_v<Format, FormatQ4_0>   ? 8
                            : std::is_same_v<Format, FormatQ5_0> ? 16
                                                                 : 0;
    constexpr bool kFive = std::is_same_v<Format, FormatQ5_0> || std::is_same_v<Format, FormatQ5_1>;
    return dot_legacy_bytes<typename Format::Block, kOffset, kFive, Format::kScalarMin, T>(
        blocks, n_blocks, qa, t0, results, ahead);
  } else {
    return dot_quant_row<Format, T>(blocks, n_blocks, qa, t0, results, ahead);
  }
#else
  return dot_quant_row<Format, T>(blocks, n_blocks, qa, t0, results, ahead);
#endif
}

// Full tiles of kTokenTile tokens share each decoded weight vector; a partial tile (the last
// tokens of a batch) goes token by token, which keeps the number of instantiations (and the
// dispatch unit's compile time) down.
template <class Format>
HWY_NOINLINE void matmul_quant_rows(const detail::MatmulTask& task, int64_t r0, int64_t r1) {
  using Block = typename Format::Block;
  const int64_t n_blocks = task.w.cols / Format::kValues;
  const detail::QuantizedActivations& qa = *task.qa;
  for_row_token_tiles(task, r0, r1, [&](int64_t r, int64_t t0, int count, float* results) HWY_ATTR {
    const auto* blocks = reinterpret_cast<const Block*>(task.w.row(r));
    if (count == kTokenTile)
      return dot_row_tile<Format, kTokenTile>(blocks, n_blocks, qa, t0, results, 0);
    // Decoding: each row is read once, so the next one is asked for meanwhile.
    const uint64_t ahead = task.n_tokens == count && r + 1 < r1 ? task.w.row_bytes : 0;
    for (int t = 0; t < count; ++t)
      dot_row_tile<Format, 1>(blocks, n_blocks, qa, t0 + t, results + t, t == 0 ? ahead : 0);
  });
}

// ---- Float weights ----

HWY_INLINE hn::Vec<hn::ScalableTag<float>> load_float(const float* p) {
  return hn::LoadU(hn::ScalableTag<float>(), p);
}
HWY_INLINE hn::Vec<hn::ScalableTag<float>> load_float(const hwy::float16_t* p) {
  const hn::ScalableTag<float> df;
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::float16_t, decltype(df)>(), p));
}
HWY_INLINE hn::Vec<hn::ScalableTag<float>> load_float(const hwy::bfloat16_t* p) {
  const hn::ScalableTag<float> df;
  return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, decltype(df)>(), p));
}

HWY_INLINE float scalar_float(const float* p) {
  return *p;
}
HWY_INLINE float scalar_float(const hwy::float16_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return fp16_to_f32(bits);
}
HWY_INLINE float scalar_float(const hwy::bfloat16_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return bf16_to_f32(bits);
}

// One row against T tokens. The summation order per (row, token) is the one dot_float_4xT uses:
// one accumulator stepped a vector at a time, then the scalar tail. A row's result therefore does
// not depend on whether it was computed in a tile or alone, so splitting a matrix into row
// pieces (the streaming runtime's output head) gives bit-identical logits.
template <class Src, int T>
HWY_INLINE void dot_float_row(const Src* w, int64_t cols, const float* x, int64_t t0,
                              float* results) {
  const hn::ScalableTag<float> df;
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  using VF = hn::Vec<decltype(df)>;
  VF acc[T];
  const float* xt[T];
  for (int t = 0; t < T; ++t) {
    acc[t] = hn::Zero(df);
    xt[t] = x + (t0 + t) * cols;
  }
  int64_t i = 0;
  for (; i + lanes <= cols; i += lanes) {
    const VF wv = load_float(w + i);
    for (int t = 0; t < T; ++t)
      acc[t] = hn::MulAdd(wv, hn::LoadU(df, xt[t] + i), acc[t]);
  }
  for (int t = 0; t < T; ++t) {
    float sum = hn::GetLane(hn::SumOfLanes(df, acc[t]));
    for (int64_t j = i; j < cols; ++j)
      sum += scalar_float(w + j) * xt[t][j];
    results[t] = sum;
  }
}

// Four rows times T tokens, each (row, token) summed in dot_float_row's order. For prompt tiles
// (T = 4) 8 loads serve 16 multiply-adds, half of what one row at a time loads; for decoding
// (T = 1) the four rows are four independent FMA chains and four streams from memory, which is
// what two cores need to reach the machine's read bandwidth (one stream each reaches about 70%).
template <class Src, int T>
HWY_INLINE void dot_float_4xT(const Src* const* w, int64_t cols, const float* x, int64_t t0,
                              float (*results)[kTokenTile], uint64_t ahead) {
  const hn::ScalableTag<float> df;
  const auto lanes = static_cast<int64_t>(hn::Lanes(df));
  using VF = hn::Vec<decltype(df)>;
  VF acc[4][T];
  const float* xt[T];
  for (int t = 0; t < T; ++t)
    xt[t] = x + (t0 + t) * cols;
  for (auto& row : acc) {
    for (auto& a : row)
      a = hn::Zero(df);
  }
  int64_t i = 0;
  for (; i + lanes <= cols; i += lanes) {
    if (ahead != 0) {
      for (int r = 0; r < 4; ++r)
        hwy::Prefetch(reinterpret_cast<const std::byte*>(w[r] + i) + ahead);
    }
    const VF w0 = load_float(w[0] + i);
    const VF w1 = load_float(w[1] + i);
    const VF w2 = load_float(w[2] + i);
    const VF w3 = load_float(w[3] + i);
    for (int t = 0; t < T; ++t) {
      const VF xv = hn::LoadU(df, xt[t] + i);
      acc[0][t] = hn::MulAdd(w0, xv, acc[0][t]);
      acc[1][t] = hn::MulAdd(w1, xv, acc[1][t]);
      acc[2][t] = hn::MulAdd(w2, xv, acc[2][t]);
      acc[3][t] = hn::MulAdd(w3, xv, acc[3][t]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    for (int t = 0; t < T; ++t) {
      float sum = hn::GetLane(hn::SumOfLanes(df, acc[r][t]));
      for (int64_t j = i; j < cols; ++j)
        sum += scalar_float(w[r] + j) * xt[t][j];
      results[r][t] = sum;
    }
  }
}

// Rows [r0, r1) against tokens t0 .. t0 + T - 1: four rows at a time, then the rest one by one.
template <class Src, int T>
HWY_INLINE void float_rows_tile(const detail::MatmulTask& task, int64_t r0, int64_t r1,
                                int64_t t0) {
  const int64_t cols = task.w.cols;
  const int64_t rows = task.w.rows;
  const auto row_of = [&](int64_t r) { return reinterpret_cast<const Src*>(task.w.row(r)); };
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) {
    const Src* w[4] = {row_of(r), row_of(r + 1), row_of(r + 2), row_of(r + 3)};
    float results[4][kTokenTile];
    // Decoding: the next four rows are asked for while these are computed.
    const uint64_t ahead = T == 1 && r + 8 <= r1 ? 4 * task.w.row_bytes : 0;
    dot_float_4xT<Src, T>(w, cols, task.x, t0, results, ahead);
    for (int k = 0; k < 4; ++k) {
      for (int t = 0; t < T; ++t)
        task.y[(t0 + t) * rows + r + k] = results[k][t];
    }
  }
  for (; r < r1; ++r) {
    float results[kTokenTile] = {};
    dot_float_row<Src, T>(row_of(r), cols, task.x, t0, results);
    for (int t = 0; t < T; ++t)
      task.y[(t0 + t) * rows + r] = results[t];
  }
}

// Full tiles of kTokenTile tokens, and the tokens of a partial tile (decoding: the only one) one
// at a time.
template <class Src>
HWY_NOINLINE void matmul_float_rows(const detail::MatmulTask& task, int64_t r0, int64_t r1) {
  for (int64_t rb = r0; rb < r1; rb += kRowBlock) {
    const int64_t re = std::min(r1, rb + kRowBlock);
    for (int64_t t0 = 0; t0 < task.n_tokens; t0 += kTokenTile) {
      const int count = static_cast<int>(std::min<int64_t>(kTokenTile, task.n_tokens - t0));
      if (count == kTokenTile) {
        float_rows_tile<Src, kTokenTile>(task, rb, re, t0);
      } else {
        for (int t = 0; t < count; ++t)
          float_rows_tile<Src, 1>(task, rb, re, t0 + t);
      }
    }
  }
}

// ---- Entry point (HWY_EXPORTed in the runtime-dispatch build) ----

// Rows [r0, r1) of task.y for every token; the caller validated type and shapes.
inline void matmul_rows_impl(const detail::MatmulTask& task, int64_t r0, int64_t r1) {
  switch (task.w.type) {
    case GgmlType::F32:
      return matmul_float_rows<float>(task, r0, r1);
    case GgmlType::F16:
      return matmul_float_rows<hwy::float16_t>(task, r0, r1);
    case GgmlType::BF16:
      return matmul_float_rows<hwy::bfloat16_t>(task, r0, r1);
    case GgmlType::Q4_0:
      return matmul_quant_rows<FormatQ4_0>(task, r0, r1);
    case GgmlType::Q4_1:
      return matmul_quant_rows<FormatQ4_1>(task, r0, r1);
    case GgmlType::Q5_0:
      return matmul_quant_rows<FormatQ5_0>(task, r0, r1);
    case GgmlType::Q5_1:
      return matmul_quant_rows<FormatQ5_1>(task, r0, r1);
    case GgmlType::Q8_0:
      return matmul_quant_rows<FormatQ8_0>(task, r0, r1);
    case GgmlType::Q2_K:
      return matmul_quant_rows<FormatQ2_K>(task, r0, r1);
    case GgmlType::Q3_K:
      return matmul_quant_rows<FormatQ3_K>(task, r0, r1);
    case GgmlType::Q4_K:
      return matmul_quant_rows<FormatQ4_K>(task, r0, r1);
    case GgmlType::Q5_K:
      return matmul_quant_rows<FormatQ5_K>(task, r0, r1);
    case GgmlType::Q6_K:
      return matmul_quant_rows<FormatQ6_K>(task, r0, r1);
    default:
      return;
  }
}

}  // namespace floatllm::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // toggle guard
