// The kernel layer on every SIMD target compiled into the runtime-dispatch unit: each kernel
// against a plain double-precision reference, at odd sizes so every vector tail is exercised.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <hwy/targets.h>

#include "floatllm/core/tensor.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/kernels/tasks.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"
#include "random_weights.hpp"
#include "test_support.hpp"

namespace floatllm {
namespace {

const std::vector<int64_t> kOddSizes = {1, 3, 7, 15, 16, 17, 31, 33, 64, 100, 257, 1000};

std::vector<float> random_floats(std::mt19937& rng, int64_t n, float lo = -2.0f, float hi = 2.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v)
    x = dist(rng);
  return v;
}

// Runs each test once per target, with dynamic dispatch forced to that target.
class KernelsOnTarget : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override {
    hwy::SetSupportedTargetsForTest(GetParam());
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    ASSERT_STREQ(kernels::active_target(), hwy::TargetName(GetParam()));
  }
  void TearDown() override {
    hwy::SetSupportedTargetsForTest(0);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  }
  std::mt19937 rng{1234};
};

std::string target_name(const ::testing::TestParamInfo<int64_t>& info) {
  return hwy::TargetName(info.param);
}

INSTANTIATE_TEST_SUITE_P(AllTargets, KernelsOnTarget,
                         ::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()), target_name);

// AVX-512, AVX2, SSE4 and scalar are compiled in, so the binary runs on any x86-64.
TEST(KernelTargets, EveryX86LevelIsCompiled) {
#if HWY_ARCH_X86
  EXPECT_NE(HWY_TARGETS & HWY_SCALAR, 0);
  EXPECT_NE(HWY_TARGETS & HWY_SSE4, 0);
  EXPECT_NE(HWY_TARGETS & HWY_AVX2, 0);
  EXPECT_NE(HWY_TARGETS & HWY_AVX3, 0);
#endif
}

// ---- Elementwise ops and reductions ----

// |got - want| <= abs + rel * |want|, for every element.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double abs,
                  double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], abs + rel * std::fabs(want[i]))
        << what << " element " << i << " of " << got.size();
  }
}

double silu_ref(double x) {
  return x / (1.0 + std::exp(-x));
}
double gelu_tanh_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
double gelu_erf_ref(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

// Tolerances: float arithmetic (add, mul, scale) is correctly rounded, so 1 ulp relative. Highway's
// Exp and Tanh are accurate to a few ulp and the erf approximation to 1.5e-7 absolute, hence 1e-5
// relative plus 1e-6 absolute for the activations.
TEST_P(KernelsOnTarget, ElementwiseOps) {
  for (const int64_t n : kOddSizes) {
    const auto a = random_floats(rng, n, -8.0f, 8.0f);
    const auto b = random_floats(rng, n);
    std::vector<double> want(static_cast<size_t>(n));
    std::vector<float> out(static_cast<size_t>(n));
    const auto check = [&](auto&& kernel, auto&& reference, double abs, double rel,
                           const char* name) {
      for (size_t i = 0; i < want.size(); ++i)
        want[i] = reference(a[i], b[i]);
      kernel(out);
      expect_close(out, want, abs, rel, std::string(name) + " n=" + std::to_string(n));
    };
    check([&](auto& o) { kernels::silu_mul(a.data(), b.data(), n, o.data()); },
          [](double g, double u) { return silu_ref(g) * u; }, 1e-6, 1e-5, "silu_mul");
    check([&](auto& o) { kernels::gelu_tanh_mul(a.data(), b.data(), n, o.data()); },
          [](double g, double u) { return gelu_tanh_ref(g) * u; }, 1e-6, 1e-5, "gelu_tanh_mul");
    check([&](auto& o) { kernels::gelu_erf_mul(a.data(), b.data(), n, o.data()); },
          [](double g, double u) { return gelu_erf_ref(g) * u; }, 2e-6, 1e-5, "gelu_erf_mul");
    check(
        [&](auto& o) {
          o = a;
          kernels::add(o.data(), b.data(), n);
        },
        [](double x, double y) { return x + y; }, 0, 1.2e-7, "add");
    check(
        [&](auto& o) {
          o = a;
          kernels::mul(o.data(), b.data(), n);
        },
        [](double x, double y) { return x * y; }, 0, 1.2e-7, "mul");
    check(
        [&](auto& o) {
          o = a;
          kernels::scale(o.data(), n, 0.37f);
        },
        [](double x, double) { return x * static_cast<double>(0.37f); }, 0, 1.2e-7, "scale");
    check(
        [&](auto& o) {
          o = a;
          kernels::softcap(o.data(), n, 5.0f);
        },
        [](double x, double) { return 5.0 * std::tanh(x / 5.0); }, 1e-6, 1e-5, "softcap");
  }
}

TEST_P(KernelsOnTarget, GatedActivationMayWriteOverItsGate) {
  const auto gate = random_floats(rng, 37);
  const auto up = random_floats(rng, 37);
  std::vector<float> separate(37);
  kernels::silu_mul(gate.data(), up.data(), 37, separate.data());
  auto in_place = gate;
  kernels::silu_mul(in_place.data(), up.data(), 37, in_place.data());
  EXPECT_EQ(in_place, separate);
}

// Sums of n products in float: the error bound grows like n * eps * sum |a b|; 1e-6 relative to
// sum |a b| covers n = 1000 with lane-parallel accumulation.
TEST_P(KernelsOnTarget, Dot) {
  for (const int64_t n : kOddSizes) {
    const auto a = random_floats(rng, n);
    const auto b = random_floats(rng, n);
    double want = 0, magnitude = 0;
    for (int64_t i = 0; i < n; ++i) {
      want += static_cast<double>(a[i]) * b[i];
      magnitude += std::fabs(static_cast<double>(a[i]) * b[i]);
    }
    EXPECT_NEAR(kernels::dot(a.data(), b.data(), n), want, 1e-6 * magnitude + 1e-7) << n;
  }
}

TEST_P(KernelsOnTarget, RmsNormAndLayerNorm) {
  for (const int64_t n : kOddSizes) {
    const auto x = random_floats(rng, n, -3.0f, 5.0f);
    const auto w = random_floats(rng, n);
    const auto bias = random_floats(rng, n);
    double squares = 0, sum = 0;
    for (float v : x) {
      squares += static_cast<double>(v) * v;
      sum += v;
    }
    const double eps = 1e-5;
    const double inv_rms = 1.0 / std::sqrt(squares / static_cast<double>(n) + eps);
    const double mean = sum / static_cast<double>(n);
    double var = 0;
    for (float v : x)
      var += (v - mean) * (v - mean);
    const double inv_std = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);

    std::vector<float> out(static_cast<size_t>(n));
    std::vector<double> want(static_cast<size_t>(n));
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = x[i] * inv_rms * w[i];
    kernels::rms_norm(x.data(), w.data(), n, 1e-5f, out.data());
    expect_close(out, want, 1e-6, 1e-5, "rms_norm");
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = x[i] * inv_rms;
    kernels::rms_norm(x.data(), nullptr, n, 1e-5f, out.data());
    expect_close(out, want, 1e-6, 1e-5, "rms_norm without weight");
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = (x[i] - mean) * inv_std * w[i] + bias[i];
    kernels::layer_norm(x.data(), w.data(), bias.data(), n, 1e-5f, out.data());
    expect_close(out, want, 1e-5, 1e-5, "layer_norm");
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = (x[i] - mean) * inv_std;
    kernels::layer_norm(x.data(), nullptr, nullptr, n, 1e-5f, out.data());
    expect_close(out, want, 1e-5, 1e-5, "layer_norm without weight and bias");
  }
}

TEST_P(KernelsOnTarget, SoftmaxIsStable) {
  for (const int64_t n : kOddSizes) {
    auto x = random_floats(rng, n, -20.0f, 20.0f);
    x[0] = 1000.0f;  // would overflow exp without subtracting the maximum
    std::vector<double> want(x.begin(), x.end());
    const double max = *std::max_element(want.begin(), want.end());
    double sum = 0;
    for (auto& v : want)
      sum += (v = std::exp(v - max));
    for (auto& v : want)
      v /= sum;
    kernels::softmax(x.data(), n);
    expect_close(x, want, 1e-7, 1e-5, "softmax");
  }
}

// ---- RoPE ----

// llama.cpp computes the angles in float (theta_i = pos * base^(-2i/n) by repeated float
// multiplication, then the YaRN mix); at position 3000 float rounding of the angle alone moves
// the result by ~1e-4, so the reference computes the angle with the same float operations and
// everything after it (cos, sin, rotation) in double. Tolerance 1e-5: float cos/sin and products
// of values below 4 in magnitude.
std::vector<double> rope_reference(const std::vector<float>& x, int64_t n_heads, int64_t pos,
                                   const kernels::RopeParams& p) {
  const int64_t n_dims = p.rotary_dims > 0 ? p.rotary_dims : p.head_dim;
  std::vector<double> out(x.begin(), x.end());
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(n_dims));
  const bool yarn = p.yarn_orig_ctx > 0;
  double mscale = yarn ? p.yarn_attn_factor : 1.0;
  double low = 0, high = 0;
  if (yarn) {
    const auto corr = [&](double n_rot) {
      return n_dims * std::log(p.yarn_orig_ctx / (n_rot * 2 * M_PI)) / (2 * std::log(p.freq_base));
    };
    low = std::max(0.0, std::floor(corr(p.yarn_beta_fast)));
    high = std::min(static_cast<double>(n_dims - 1), std::ceil(corr(p.yarn_beta_slow)));
    if (p.yarn_ext_factor != 0) mscale *= 1.0 + 0.1 * std::log(1.0 / p.freq_scale);
  }
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < n_dims / 2; ++i) {
    const float factor = p.freq_factors ? p.freq_factors[i] : 1.0f;
    const float extrap = theta / factor;
    const float interp = p.freq_scale * extrap;
    float angle = interp;
    if (yarn && p.yarn_ext_factor != 0) {
      const double y = (static_cast<double>(i) - low) / std::max(0.001, high - low);
      const auto ramp =
          static_cast<float>((1.0 - std::min(1.0, std::max(0.0, y))) * p.yarn_ext_factor);
      angle = interp * (1 - ramp) + extrap * ramp;
    }
    theta *= theta_scale;
    const double c = std::cos(angle) * mscale, s = std::sin(angle) * mscale;
    for (int64_t h = 0; h < n_heads; ++h) {
      const bool neox = p.layout == kernels::RopeLayout::kNeox;
      const size_t a = static_cast<size_t>(h * p.head_dim + (neox ? i : 2 * i));
      const size_t b = static_cast<size_t>(h * p.head_dim + (neox ? i + n_dims / 2 : 2 * i + 1));
      const double x0 = x[a], x1 = x[b];
      out[a] = x0 * c - x1 * s;
      out[b] = x0 * s + x1 * c;
    }
  }
  return out;
}

TEST_P(KernelsOnTarget, RopeLayoutsScalingAndYarn) {
  std::vector<float> factors(32);
  for (size_t i = 0; i < factors.size(); ++i)
    factors[i] = 1.0f + static_cast<float>(i) * 0.25f;
  struct Case {
    kernels::RopeLayout layout;
    int64_t head_dim, rotary_dims;
    float base, freq_scale;
    bool with_factors;
    int64_t yarn_ctx;
  };
  const Case cases[] = {
      {kernels::RopeLayout::kInterleaved, 64, 64, 10000.0f, 1.0f, false, 0},
      {kernels::RopeLayout::kNeox, 64, 64, 10000.0f, 1.0f, false, 0},
      {kernels::RopeLayout::kNeox, 80, 32, 10000.0f, 1.0f, false, 0},  // partial rotary
      {kernels::RopeLayout::kInterleaved, 64, 64, 500000.0f, 0.25f, false, 0},
      {kernels::RopeLayout::kInterleaved, 64, 64, 500000.0f, 1.0f, true, 0},
      {kernels::RopeLayout::kNeox, 64, 64, 10000.0f, 0.25f, false, 4096},  // YaRN
  };
  for (const auto& c : cases) {
    for (const int64_t pos : {0, 1, 17, 3000}) {
      kernels::RopeParams p;
      p.layout = c.layout;
      p.head_dim = c.head_dim;
      p.rotary_dims = c.rotary_dims;
      p.freq_base = c.base;
      p.freq_scale = c.freq_scale;
      p.freq_factors = c.with_factors ? factors.data() : nullptr;
      if (c.yarn_ctx > 0) {
        p.yarn_orig_ctx = c.yarn_ctx;
        p.yarn_ext_factor = 1.0f;
        p.yarn_attn_factor = 1.1f;
      }
      auto x = random_floats(rng, 3 * c.head_dim);
      const auto want = rope_reference(x, 3, pos, p);
      kernels::rope(x.data(), 3, pos, p);
      expect_close(x, want, 1e-5, 1e-5, "rope pos " + std::to_string(pos));
    }
  }
}

// ---- Matrix products ----

// The activations the kernel multiplies: x itself for float weights, otherwise x quantized to
// Q8_0 / Q8_K exactly as the kernel does, dequantized.
std::vector<float> activations_as_used(GgmlType type, const std::vector<float>& x, int64_t cols,
                                       int64_t n_tokens) {
  const int64_t group = kernels::detail::activation_group(type);
  if (group == 0) return x;
  kernels::detail::QuantizedActivations qa;
  kernels::detail::quantize_activations(x.data(), cols, n_tokens, group, qa);
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    out[i] = qa.d[i / static_cast<size_t>(group)] * qa.q[i];
  return out;
}

const GgmlType kMatmulTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                                 GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                                 GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                 GgmlType::Q6_K};

// Every weight type against dequantize_row (llama.cpp-exact) and a double dot product:
//  (1) with the Q8 activations the kernel uses, |y - ref| <= 1e-5 * sum |w x| + 1e-6: the integer
//      sums are exact, only per-block float scaling and accumulation round. Q4_1 / Q5_1 also use
//      Q8_1's block sum s = f16(d * sum q), as llama.cpp does: its two f16 roundings add up to
//      |m| * |s| * 2^-10 per block;
//  (2) with the float activations, additionally sum |w_i| * step_i * (1/2 + 127 * 2^-11), the
//      worst case of rounding each activation to its Q8 grid (step = amax / 127) with Q8_0's scale
//      stored as f16.
// Batches run through token tiles (and 4-row tiles for float weights), single tokens through
// other code: both are checked, each token of the batch and the token computed alone.
TEST_P(KernelsOnTarget, MatmulEveryTypeMatchesDequantizedReference) {
  ThreadPool pool(2);
  for (const GgmlType type : kMatmulTypes) {
    const int64_t block = traits_of(type).block_elements;
    const int64_t cols_choices[] = {block == 1 ? 67 : 3 * block, block == 1 ? 8 : block};
    for (const int64_t cols : cols_choices) {
      for (const int64_t rows : {1, 7, 37}) {
        const int64_t n_tokens = 6;
        const auto data = test::random_matrix(rng, type, rows, cols);
        MatrixView w{type, rows, cols, data.data(), ggml_row_bytes(type, cols)};
        const auto x = random_floats(rng, cols * n_tokens);
        const auto xq = activations_as_used(type, x, cols, n_tokens);
        std::vector<float> y(static_cast<size_t>(rows * n_tokens));
        kernels::matmul(w, x.data(), n_tokens, y.data(), pool);
        std::vector<float> alone(y.size());
        for (int64_t t = 0; t < n_tokens; ++t) {
          kernels::matmul(w, x.data() + t * cols, 1, alone.data() + t * rows, pool);
        }

        std::vector<float> row(static_cast<size_t>(cols));
        const int64_t group = kernels::detail::activation_group(type);
        for (int64_t r = 0; r < rows; ++r) {
          dequantize_row(type, w.row(r), row.data(), cols);
          for (int64_t t = 0; t < n_tokens; ++t) {
            double exact = 0, used = 0, magnitude = 0, quantization = 0;
            for (int64_t c = 0; c < cols; ++c) {
              const size_t i = static_cast<size_t>(t * cols + c);
              exact += static_cast<double>(row[c]) * x[i];
              used += static_cast<double>(row[c]) * xq[i];
              magnitude += std::fabs(static_cast<double>(row[c]) * xq[i]);
              if (group > 0) {
                float amax = 0;
                const int64_t g0 = c / group * group;
                for (int64_t k = g0; k < g0 + group; ++k) {
                  amax = std::max(amax, std::fabs(x[static_cast<size_t>(t * cols + k)]));
                }
                // Half a step, plus Q8_0's f16 scale rounding (2^-11 relative) times |q| <= 127.
                const double step = amax / 127.0;
                const double scale_rounding = group == 32 ? 127.0 * std::ldexp(1.0, -11) : 0.0;
                quantization += std::fabs(row[c]) * step * (0.5 + scale_rounding);
              }
            }
            if (type == GgmlType::Q4_1 || type == GgmlType::Q5_1) {
              for (int64_t b = 0; b < cols / 32; ++b) {
                uint16_t m_bits;
                std::memcpy(&m_bits, w.row(r) + b * traits_of(type).block_bytes + 2, 2);
                double s = 0;
                for (int64_t c = 32 * b; c < 32 * b + 32; ++c) {
                  s += xq[static_cast<size_t>(t * cols + c)];
                }
                magnitude += std::fabs(fp16_to_f32(m_bits) * s) * std::ldexp(1.0, -10) * 1e5;
              }
            }
            const float got = y[static_cast<size_t>(t * rows + r)];
            const double tolerance = 1e-5 * magnitude + 1e-6;
            ASSERT_NEAR(got, used, tolerance) << ggml_type_name(type) << " " << rows << "x" << cols
                                              << " row " << r << " token " << t;
            ASSERT_NEAR(alone[static_cast<size_t>(t * rows + r)], used, tolerance)
                << ggml_type_name(type) << " single token " << t << " row " << r;
            ASSERT_NEAR(got, exact, tolerance + quantization * 1.01)
                << ggml_type_name(type) << " vs float activations, row " << r << " token " << t;
          }
        }
      }
    }
  }
}

TEST_P(KernelsOnTarget, MatmulThreadCountsAgree) {
  const auto data = test::random_matrix(rng, GgmlType::Q4_K, 53, 512);
  const MatrixView w{GgmlType::Q4_K, 53, 512, data.data(), ggml_row_bytes(GgmlType::Q4_K, 512)};
  const auto x = random_floats(rng, 512 * 3);
  std::vector<float> one(53 * 3), three(53 * 3);
  ThreadPool pool1(1), pool3(3);
  kernels::matmul(w, x.data(), 3, one.data(), pool1);
  kernels::matmul(w, x.data(), 3, three.data(), pool3);
  EXPECT_EQ(one, three);
}

// ---- Attention ----

struct AttentionCase {
  GgmlType kv_type;
  int64_t n_heads, n_kv_heads, head_dim;
  int64_t first_pos, n_tokens;
  float softcap;
  int64_t window;
};

// Naive attention in double over the K/V values as stored (dequantized), so F16 / Q8_0 storage
// error does not enter: the tolerance 2e-5 covers float scores, exp and the weighted sum.
TEST_P(KernelsOnTarget, AttentionMatchesNaiveReference) {
  const AttentionCase cases[] = {
      {GgmlType::F32, 4, 4, 16, 0, 1, 0.0f, 0},  {GgmlType::F32, 8, 2, 64, 0, 9, 0.0f, 0},
      {GgmlType::F32, 4, 1, 24, 5, 4, 0.0f, 0},  {GgmlType::F32, 4, 2, 32, 3, 7, 0.0f, 4},
      {GgmlType::F32, 4, 2, 32, 0, 6, 2.0f, 0},  {GgmlType::F16, 6, 3, 40, 2, 5, 0.0f, 0},
      {GgmlType::F16, 4, 2, 64, 10, 3, 3.0f, 5}, {GgmlType::Q8_0, 4, 2, 80, 1, 6, 0.0f, 0},
      {GgmlType::Q8_0, 8, 4, 64, 7, 2, 0.0f, 3},
  };
  ThreadPool pool(2);
  for (const auto& c : cases) {
    const int64_t kv_width = c.n_kv_heads * c.head_dim;
    const int64_t q_width = c.n_heads * c.head_dim;
    const int64_t positions = c.first_pos + c.n_tokens;
    const uint64_t row_bytes = ggml_row_bytes(c.kv_type, static_cast<uint64_t>(kv_width));
    std::vector<std::byte> k(row_bytes * positions), v(row_bytes * positions);
    std::vector<float> k_stored(static_cast<size_t>(kv_width * positions));
    std::vector<float> v_stored(k_stored.size());
    for (int64_t p = 0; p < positions; ++p) {
      const auto kr = random_floats(rng, kv_width);
      const auto vr = random_floats(rng, kv_width);
      kernels::store_kv_row(c.kv_type, kr.data(), kv_width, k.data() + p * row_bytes);
      kernels::store_kv_row(c.kv_type, vr.data(), kv_width, v.data() + p * row_bytes);
      dequantize_row(c.kv_type, k.data() + p * row_bytes, k_stored.data() + p * kv_width, kv_width);
      dequantize_row(c.kv_type, v.data() + p * row_bytes, v_stored.data() + p * kv_width, kv_width);
    }
    const auto q = random_floats(rng, q_width * c.n_tokens);
    kernels::AttentionParams params;
    params.n_heads = c.n_heads;
    params.n_kv_heads = c.n_kv_heads;
    params.head_dim = c.head_dim;
    params.scale = 3.0f / std::sqrt(static_cast<float>(c.head_dim));  // peaked enough to matter
    params.softcap = c.softcap;
    params.window = c.window;
    std::vector<float> out(q.size());
    kernels::attention(q.data(), c.n_tokens, c.first_pos,
                       kernels::KvLayerView{c.kv_type, k.data(), v.data(), row_bytes}, params,
                       out.data(), pool);

    std::vector<double> want(q.size());
    const int64_t group = c.n_heads / c.n_kv_heads;
    for (int64_t t = 0; t < c.n_tokens; ++t) {
      const int64_t pos = c.first_pos + t;
      for (int64_t h = 0; h < c.n_heads; ++h) {
        const int64_t kvh = h / group;
        std::vector<double> s;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j <= pos; ++j) {
          if (c.window > 0 && j <= pos - c.window) continue;
          double dot = 0;
          for (int64_t i = 0; i < c.head_dim; ++i) {
            dot += static_cast<double>(q[static_cast<size_t>(t * q_width + h * c.head_dim + i)]) *
                   k_stored[static_cast<size_t>(j * kv_width + kvh * c.head_dim + i)];
          }
          dot *= params.scale;
          if (c.softcap > 0) dot = c.softcap * std::tanh(dot / c.softcap);
          s.push_back(dot);
          keys.push_back(j);
        }
        const double max = *std::max_element(s.begin(), s.end());
        double sum = 0;
        for (auto& e : s)
          sum += (e = std::exp(e - max));
        for (int64_t i = 0; i < c.head_dim; ++i) {
          double acc = 0;
          for (size_t n = 0; n < s.size(); ++n) {
            acc += s[n] / sum *
                   v_stored[static_cast<size_t>(keys[n] * kv_width + kvh * c.head_dim + i)];
          }
          want[static_cast<size_t>(t * q_width + h * c.head_dim + i)] = acc;
        }
      }
    }
    expect_close(out, want, 2e-5, 2e-5,
                 std::string("attention ") + std::string(ggml_type_name(c.kv_type)) + " heads " +
                     std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads));
  }
}

// ---- Non-SIMD parts: KV storage, embedding rows, views, errors, the pool ----

// Q8_0 rounds each value to its block's grid: error at most half a step, d / 2.
TEST(Kernels, StoreKvRowQ8_0WithinHalfAStep) {
  std::mt19937 rng(7);
  const auto x = random_floats(rng, 96);
  std::vector<std::byte> row(ggml_row_bytes(GgmlType::Q8_0, 96));
  kernels::store_kv_row(GgmlType::Q8_0, x.data(), 96, row.data());
  std::vector<float> back(96);
  dequantize_row(GgmlType::Q8_0, row.data(), back.data(), 96);
  for (int b = 0; b < 3; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i)
      amax = std::max(amax, std::fabs(x[32 * b + i]));
    for (int i = 0; i < 32; ++i) {
      EXPECT_NEAR(back[32 * b + i], x[32 * b + i], amax / 127 / 2 * 1.01);
    }
  }
  EXPECT_THROW(kernels::store_kv_row(GgmlType::Q8_0, x.data(), 33, row.data()), Error);
  EXPECT_THROW(kernels::store_kv_row(GgmlType::Q4_K, x.data(), 32, row.data()), Error);
}

TEST(Kernels, GetRowDequantizesTheRow) {
  std::mt19937 rng(8);
  for (const GgmlType type : kMatmulTypes) {
    const int64_t cols = traits_of(type).block_elements == 1 ? 19 : 256;
    const auto data = test::random_matrix(rng, type, 3, cols);
    const MatrixView w{type, 3, cols, data.data(), ggml_row_bytes(type, cols)};
    std::vector<float> got(static_cast<size_t>(cols)), want(static_cast<size_t>(cols));
    kernels::get_row(w, 2, got.data());
    dequantize_row(type, w.row(2), want.data(), cols);
    EXPECT_EQ(got, want) << ggml_type_name(type);
    EXPECT_THROW(kernels::get_row(w, 3, got.data()), Error);
    EXPECT_THROW(kernels::get_row(w, -1, got.data()), Error);
  }
}

TEST(Kernels, MatmulRejectsBadInput) {
  ThreadPool pool(1);
  std::vector<std::byte> data(1024);
  std::vector<float> x(256), y(4);
  MatrixView w{GgmlType::Q8_K, 1, 256, data.data(), ggml_row_bytes(GgmlType::Q8_K, 256)};
  EXPECT_THROW(kernels::matmul(w, x.data(), 1, y.data(), pool), Error);  // not a weight type
  w = {GgmlType::Q4_0, 1, 48, data.data(), 27};
  EXPECT_THROW(kernels::matmul(w, x.data(), 1, y.data(), pool), Error);  // partial block
  w = {GgmlType::Q4_0, 1, 64, data.data(), 30};
  EXPECT_THROW(kernels::matmul(w, x.data(), 1, y.data(), pool), Error);  // wrong row_bytes
  w = {GgmlType::Q4_0, 1, 64, data.data() + 1, 36};
  EXPECT_THROW(kernels::matmul(w, x.data(), 1, y.data(), pool), Error);  // misaligned
  kernels::AttentionParams p;
  p.n_heads = 3;
  p.n_kv_heads = 2;
  p.head_dim = 8;
  kernels::KvLayerView kv{GgmlType::F32, data.data(), data.data(), 64};
  EXPECT_THROW(kernels::attention(x.data(), 1, 0, kv, p, y.data(), pool), Error);
}

TEST(Kernels, MatrixViewOfGgufTensors) {
  const GgufFile gguf(test::model_path("gguf/stories260K.gguf"));
  const GgufTensor& t = gguf.tensor("blk.0.attn_k.weight");
  const MatrixView w = MatrixView::of(t);
  EXPECT_EQ(w.rows, static_cast<int64_t>(t.ne[1]));
  EXPECT_EQ(w.cols, static_cast<int64_t>(t.ne[0]));
  EXPECT_EQ(w.row_bytes, t.row_bytes());
  EXPECT_EQ(w.data, t.data.data());
  EXPECT_THROW(MatrixView::expert(t, 0), Error);  // not 3-D
}

TEST(ThreadPool, CoversEveryIndexOnce) {
  for (const int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (const int64_t count : {0, 1, 2, 3, 7, 1000}) {
      std::vector<int> hits(static_cast<size_t>(count));
      std::vector<int> seen_threads(static_cast<size_t>(threads));
      pool.parallel_for(count, [&](int64_t begin, int64_t end, int thread) {
        ASSERT_LT(begin, end);
        seen_threads[static_cast<size_t>(thread)] = 1;
        for (int64_t i = begin; i < end; ++i)
          ++hits[static_cast<size_t>(i)];
      });
      for (int h : hits)
        ASSERT_EQ(h, 1) << threads << " threads, count " << count;
    }
  }
}

TEST(ThreadPool, ManyShortCallsAndExceptions) {
  ThreadPool pool(2);
  int64_t total = 0;
  for (int call = 0; call < 20000; ++call) {
    int64_t parts[2] = {0, 0};
    pool.parallel_for(10, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t i = begin; i < end; ++i)
        parts[thread] += i;
    });
    total += parts[0] + parts[1];
  }
  EXPECT_EQ(total, 20000 * 45);
  EXPECT_THROW(pool.parallel_for(4,
                                 [](int64_t begin, int64_t, int) {
                                   if (begin > 0) fail("worker failure");
                                 }),
               Error);
  int64_t after = 0;
  pool.parallel_for(1, [&](int64_t, int64_t end, int) { after = end; });
  EXPECT_EQ(after, 1);
  EXPECT_THROW(ThreadPool(0), Error);
}

}  // namespace
}  // namespace floatllm
