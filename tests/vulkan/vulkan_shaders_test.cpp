// Each compute shader of the Vulkan backend against a scalar reference in double precision, on
// random inputs at odd sizes, on whatever device Vulkan offers (lavapipe in CI).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numbers>
#include <random>
#include <vector>

#include "compute.hpp"
#include "floatllm/backend/vulkan/vulkan_backend.hpp"
#include "floatllm/core/error.hpp"
#include "floatllm/kernels/kernels.hpp"
#include "floatllm/kernels/tasks.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/half.hpp"
#include "ops.hpp"
#include "uploader.hpp"

namespace floatllm::vulkan {
namespace {

// One device for the whole program: creating one takes a while on lavapipe.
Context& context() {
  static Context instance;
  return instance;
}

template <class T>
Buffer host_buffer(const std::vector<T>& values) {
  Buffer buffer = context().host_memory.allocate(values.size() * sizeof(T), "test input");
  std::memcpy(buffer.mapped(), values.data(), values.size() * sizeof(T));
  return buffer;
}

Buffer host_floats(std::size_t count) {
  return host_buffer(std::vector<float>(count, 0.0f));
}

std::vector<float> read_floats(const Buffer& buffer, std::size_t count) {
  std::vector<float> values(count);
  std::memcpy(values.data(), buffer.mapped(), count * sizeof(float));
  return values;
}

std::vector<float> random_floats(std::size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> values(count);
  for (float& v : values)
    v = dist(rng);
  return values;
}

// Random blocks of a quantized type whose f16 scales are small finite numbers, the rest random.
std::vector<std::byte> random_weights(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  const uint64_t row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(cols));
  std::vector<std::byte> bytes(row_bytes * static_cast<uint64_t>(rows));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const auto put_half = [&](std::size_t offset, float v) {
    const uint16_t h = f32_to_fp16(v);
    std::memcpy(bytes.data() + offset, &h, 2);
  };
  if (type == GgmlType::F32) {
    for (std::size_t i = 0; i < bytes.size(); i += 4) {
      const float v = value(rng);
      std::memcpy(bytes.data() + i, &v, 4);
    }
    return bytes;
  }
  if (type == GgmlType::F16) {
    for (std::size_t i = 0; i < bytes.size(); i += 2)
      put_half(i, value(rng));
    return bytes;
  }
  for (std::byte& b : bytes)
    b = static_cast<std::byte>(rng() & 0xFF);
  const uint64_t block_bytes = traits_of(type).block_bytes;
  for (uint64_t block = 0; block < bytes.size(); block += block_bytes) {
    switch (type) {
      case GgmlType::Q8_0:
        put_half(block, scale(rng));
        break;
      case GgmlType::Q4_K:
        put_half(block, scale(rng));
        put_half(block + 2, scale(rng));
        break;
      case GgmlType::Q6_K:
        put_half(block + 208, scale(rng));
        break;
      default:
        ADD_FAILURE() << "no generator for " << ggml_type_name(type);
    }
  }
  return bytes;
}

TEST(VulkanDevice, ListsTheDeviceTheTestsRunOn) {
  const auto devices = list_devices();
  ASSERT_FALSE(devices.empty())
      << "no Vulkan device: install Mesa's lavapipe (mesa-vulkan-drivers)";
  for (const DeviceInfo& d : devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.memory_bytes, 0u);
  }
  EXPECT_FALSE(context().device.info().name.empty());
}

TEST(VulkanDevice, RefusesAMissingDeviceIndex) {
  try {
    Context missing(1000);
    FAIL() << "device 1000 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("device 1000 does not exist"), std::string::npos)
        << e.what();
  }
}

TEST(VulkanMemory, RefusesMoreThanTheHeapWithAClearMessage) {
  MemoryPool& pool = context().device_memory;
  try {
    pool.allocate(pool.heap_bytes() + 1, "an oversized test buffer");
    FAIL() << "an allocation beyond the heap succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too little device memory"), std::string::npos)
        << e.what();
  }
}

TEST(VulkanMemory, ReusesFreedRanges) {
  MemoryPool& pool = context().device_memory;
  const uint64_t before = pool.allocated_bytes();
  for (int i = 0; i < 20; ++i) {
    Buffer a = pool.allocate(uint64_t{5} << 20, "a");
    Buffer b = pool.allocate(uint64_t{7} << 20, "b");
  }
  EXPECT_LE(pool.allocated_bytes(), before + MemoryPool::kChunkBytes);
}

TEST(VulkanUploader, CopiesRowsAndBytesAcrossStagingBuffers) {
  Context& c = context();
  // More than two staging buffers' worth, so slots are reused while copies are in flight.
  const uint64_t bytes = 2 * Uploader::kStagingBytes + 12345;
  std::vector<std::byte> data(bytes);
  for (std::size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<std::byte>((i * 2654435761u) >> 13);
  Buffer raw = c.device_memory.allocate(bytes, "raw");
  Buffer rows = c.device_memory.allocate(bytes, "rows");
  {
    Uploader uploader(c);
    uploader.upload(raw, data.data(), bytes);
    const uint64_t row_bytes = 4099;
    uploader.upload(rows, bytes / row_bytes, row_bytes,
                    [&](uint64_t first, uint64_t count, std::byte* out) {
                      std::memcpy(out, data.data() + first * row_bytes, count * row_bytes);
                    });
    uploader.finish();
  }
  Buffer back = c.host_memory.allocate(2 * bytes, "read-back");
  CommandStream s(c);
  s.copy(raw, 0, back, 0, bytes);
  s.copy(rows, 0, back, bytes, bytes / 4099 * 4099);
  s.finish();
  EXPECT_EQ(std::memcmp(back.mapped(), data.data(), bytes), 0);
  EXPECT_EQ(std::memcmp(back.mapped() + bytes, data.data(), bytes / 4099 * 4099), 0);
}

struct MatmulCase {
  GgmlType type;
  int64_t rows;
  int64_t cols;
};

class VulkanMatmul : public testing::TestWithParam<MatmulCase> {};

TEST_P(VulkanMatmul, MatchesDequantizedReference) {
  const auto [type, rows, cols] = GetParam();
  const auto bytes = random_weights(type, rows, cols, 7);
  const uint64_t row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(cols));
  std::vector<float> dequantized(static_cast<std::size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    dequantize_row(type, bytes.data() + static_cast<uint64_t>(r) * row_bytes,
                   dequantized.data() + r * cols, cols);
  }
  DeviceMatrix w;
  w.format = device_format(type);
  ASSERT_EQ(ggml_type_of(w.format), type);
  w.rows = static_cast<uint32_t>(rows);
  w.cols = static_cast<uint32_t>(cols);
  w.row_bytes = static_cast<uint32_t>(row_bytes);
  std::vector<std::byte> padded(bytes);
  padded.resize((bytes.size() + 3) / 4 * 4);
  w.buffer = host_buffer(padded);

  for (const uint32_t n : {1u, 5u, 11u}) {
    const auto x = random_floats(static_cast<std::size_t>(n * cols), 100 + n);
    const Buffer xb = host_buffer(x);
    const Buffer yb = host_floats(static_cast<std::size_t>(n * rows));
    CommandStream s(context());
    ops::matmul(s, w, xb, n, yb);
    s.finish();
    const auto y = read_floats(yb, static_cast<std::size_t>(n * rows));
    for (uint32_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, magnitude = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const double product = double(dequantized[r * cols + c]) * x[t * cols + c];
          ref += product;
          magnitude += std::abs(product);
        }
        // Float sums of at most 768 products, in chunks of 32: well within 1e-5 of the sum of
        // their magnitudes (the worst case is ~log2(n) * 2^-24 per term, plus chunking).
        ASSERT_NEAR(y[t * rows + r], ref, 1e-5 * magnitude + 1e-7)
            << ggml_type_name(type) << " token " << t << " row " << r;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllShaderTypes, VulkanMatmul,
    testing::Values(MatmulCase{GgmlType::F32, 37, 83}, MatmulCase{GgmlType::F16, 29, 131},
                    MatmulCase{GgmlType::Q8_0, 33, 224}, MatmulCase{GgmlType::Q4_K, 19, 768},
                    MatmulCase{GgmlType::Q6_K, 21, 512}),
    [](const auto& info) { return std::string(ggml_type_name(info.param.type)); });

// The device's matmul of quantized weights against the CPU kernel's, which quantizes its
// activations the same way: only float summation order differs.
TEST_P(VulkanMatmul, MatchesTheCpuKernel) {
  const auto [type, rows, cols] = GetParam();
  const auto bytes = random_weights(type, rows, cols, 8);
  const uint64_t row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(cols));
  DeviceMatrix w;
  w.format = device_format(type);
  w.activation_group = activation_group(type);
  w.rows = static_cast<uint32_t>(rows);
  w.cols = static_cast<uint32_t>(cols);
  w.row_bytes = static_cast<uint32_t>(row_bytes);
  std::vector<std::byte> padded(bytes);
  padded.resize((bytes.size() + 3) / 4 * 4);
  w.buffer = host_buffer(padded);
  const MatrixView view{type, rows, cols, bytes.data(), row_bytes};
  ThreadPool pool(1);
  for (const uint32_t n : {1u, 7u}) {
    const auto x = random_floats(static_cast<std::size_t>(n * cols), 200 + n);
    std::vector<float> cpu(static_cast<std::size_t>(n * rows));
    kernels::matmul(view, x.data(), n, cpu.data(), pool);
    const Buffer xb = host_buffer(x);
    const Buffer scratch = host_floats(x.size());
    const Buffer yb = host_floats(cpu.size());
    CommandStream s(context());
    ops::matmul(s, w, xb, n, yb, &scratch);
    s.finish();
    const auto y = read_floats(yb, cpu.size());
    double scale = 0;
    for (float v : cpu)
      scale = std::max(scale, double(std::abs(v)));
    for (std::size_t i = 0; i < cpu.size(); ++i) {
      // Sums of a few hundred terms in different orders: a few float ulps of the largest output.
      ASSERT_NEAR(y[i], cpu[i], 1e-5 * scale) << ggml_type_name(type) << " output " << i;
    }
  }
}

TEST(VulkanShaders, QuantizesActivationsLikeTheCpu) {
  // Blocks with ties at .5 steps, a zero block and random values, in both block sizes.
  auto x = random_floats(3 * 256, 16, 4.0f);
  std::fill(x.begin() + 256, x.begin() + 288, 0.0f);
  for (int i = 0; i < 32; ++i)
    x[static_cast<std::size_t>(512 + i)] = 0.5f * static_cast<float>(i - 16);
  const Buffer xb = host_buffer(x);
  const Buffer q8_0 = host_floats(x.size()), q8_k = host_floats(x.size());
  CommandStream s(context());
  ops::quantize_activations(s, xb, x.size(), 32, q8_0);
  ops::quantize_activations(s, xb, x.size(), 256, q8_k);
  s.finish();
  const auto a = read_floats(q8_0, x.size()), b = read_floats(q8_k, x.size());
  std::vector<int16_t> q(256);
  for (std::size_t block = 0; block < x.size() / 32; ++block) {
    float d = 0, sum = 0;
    kernels::detail::quantize_q8_0_block(x.data() + 32 * block, q.data(), &d, &sum);
    for (std::size_t i = 0; i < 32; ++i)
      ASSERT_EQ(a[32 * block + i], d * static_cast<float>(q[i])) << "Q8_0 value " << 32 * block + i;
  }
  for (std::size_t block = 0; block < x.size() / 256; ++block) {
    float d = 0;
    int16_t bsums[16];
    kernels::detail::quantize_q8_k_block(x.data() + 256 * block, q.data(), &d, bsums);
    for (std::size_t i = 0; i < 256; ++i) {
      // GLSL division (the scale -127 / max) is only accurate to 2.5 ULP: d may differ in its
      // last bits, q not at all.
      ASSERT_NEAR(b[256 * block + i], d * static_cast<float>(q[i]), 1e-6 * std::abs(d) * 127)
          << "Q8_K value " << 256 * block + i;
    }
  }
}

TEST(VulkanShaders, RmsNormWithAndWithoutWeight) {
  const uint32_t rows = 7, width = 201;
  const auto x = random_floats(rows * width, 1, 3.0f);
  const auto weight = random_floats(width, 2);
  const Buffer xb = host_buffer(x), wb = host_buffer(weight);
  const Buffer with = host_floats(rows * width);
  const Buffer in_place = host_buffer(x);
  CommandStream s(context());
  ops::rms_norm(s, xb, &wb, rows, width, 1e-5f, with);
  ops::rms_norm(s, in_place, nullptr, rows, width, 1e-6f, in_place);
  s.finish();
  const auto a = read_floats(with, rows * width);
  const auto b = read_floats(in_place, rows * width);
  for (uint32_t r = 0; r < rows; ++r) {
    double squares = 0;
    for (uint32_t i = 0; i < width; ++i)
      squares += double(x[r * width + i]) * x[r * width + i];
    const double scale_a = 1.0 / std::sqrt(squares / width + 1e-5);
    const double scale_b = 1.0 / std::sqrt(squares / width + 1e-6);
    for (uint32_t i = 0; i < width; ++i) {
      const std::size_t k = r * width + i;
      // A few float roundings of values of order 1.
      EXPECT_NEAR(a[k], x[k] * scale_a * weight[i], 2e-6);
      EXPECT_NEAR(b[k], x[k] * scale_b, 2e-6);
    }
  }
}

struct RopeCase {
  bool neox;
  uint32_t rotary_dims;
  bool factors;
  bool yarn;
};

class VulkanRope : public testing::TestWithParam<RopeCase> {};

TEST_P(VulkanRope, MatchesReference) {
  const auto [neox, rotary_dims, use_factors, yarn] = GetParam();
  const uint32_t n_tokens = 9, n_heads = 3, head_dim = 24, first_pos = 497;
  RopeConfig config;
  config.head_dim = head_dim;
  config.rotary_dims = rotary_dims;
  config.neox = neox;
  config.freq_base = 10000.0f;
  if (yarn) {
    config.freq_scale = 0.25f;
    config.yarn_ext_factor = 1.0f;
    config.yarn_orig_ctx = 4096;
  }
  std::vector<float> factors(rotary_dims / 2);
  for (std::size_t i = 0; i < factors.size(); ++i)
    factors[i] = 1.0f + 0.37f * static_cast<float>(i);
  const auto x = random_floats(n_tokens * n_heads * head_dim, 3);
  const Buffer xb = host_buffer(x), fb = host_buffer(factors);
  CommandStream s(context());
  ops::rope(s, xb, n_tokens, n_heads, first_pos, config, use_factors ? &fb : nullptr);
  s.finish();
  const auto y = read_floats(xb, x.size());

  // llama.cpp's rope_yarn in double precision.
  const double n_dims = rotary_dims;
  const auto corr_dim = [&](double rotations) {
    return n_dims * std::log(4096.0 / (rotations * 2 * std::numbers::pi)) / (2 * std::log(1e4));
  };
  const double low = std::max(0.0, std::floor(corr_dim(32)));
  const double high = std::min(n_dims - 1, std::ceil(corr_dim(1)));
  std::vector<float> expected(x);
  for (uint32_t t = 0; t < n_tokens; ++t) {
    for (uint32_t h = 0; h < n_heads; ++h) {
      for (uint32_t i = 0; i < rotary_dims / 2; ++i) {
        double extrap = (first_pos + t) * std::pow(1e4, -2.0 * i / n_dims);
        if (use_factors) extrap /= factors[i];
        double theta = config.freq_scale * extrap;
        double mscale = 1.0;
        if (yarn) {
          const double ramp = 1.0 - std::clamp((i - low) / std::max(0.001, high - low), 0.0, 1.0);
          theta = theta * (1 - ramp) + extrap * ramp;
          mscale = 1.0 + 0.1 * std::log(1.0 / config.freq_scale);
        }
        const std::size_t base = (t * n_heads + h) * head_dim;
        const std::size_t a = base + (neox ? i : 2 * i);
        const std::size_t b = neox ? a + rotary_dims / 2 : a + 1;
        const double c = std::cos(theta) * mscale, sn = std::sin(theta) * mscale;
        expected[a] = static_cast<float>(x[a] * c - x[b] * sn);
        expected[b] = static_cast<float>(x[a] * sn + x[b] * c);
      }
    }
  }
  for (std::size_t k = 0; k < x.size(); ++k) {
    // theta reaches ~500 radians: float rounding of theta alone is ~3e-5 there.
    ASSERT_NEAR(y[k], expected[k], 2e-4) << "value " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, VulkanRope,
                         testing::Values(RopeCase{false, 24, false, false},
                                         RopeCase{true, 24, false, false},
                                         RopeCase{true, 16, true, false},
                                         RopeCase{false, 24, true, false},
                                         RopeCase{true, 24, false, true}));

TEST(VulkanShaders, StoreKvWritesF32AndRoundsF16ToNearestEven) {
  const uint32_t n = 3, width = 18, first_pos = 4;
  auto rows = random_floats(n * width, 4, 70000.0f);  // some beyond the F16 range
  rows[0] = 1e-6f;                                    // an F16 subnormal
  rows[1] = 65519.0f;                                 // rounds down to 65504
  rows[2] = -65520.0f;                                // rounds to -infinity
  rows[3] = 1.0f + 1.0f / 2048.0f;                    // a tie, to even
  rows[4] = 3e-8f;                                    // rounds to the smallest subnormal
  const Buffer rb = host_buffer(rows);
  const Buffer f32 = host_floats((first_pos + n) * width);
  const Buffer f16 = host_floats((first_pos + n) * width / 2);
  CommandStream s(context());
  ops::store_kv(s, rb, n, width, first_pos, false, f32);
  ops::store_kv(s, rb, n, width, first_pos, true, f16);
  s.finish();
  const auto a = read_floats(f32, (first_pos + n) * width);
  std::vector<uint16_t> halves((first_pos + n) * width);
  std::memcpy(halves.data(), f16.mapped(), halves.size() * 2);
  for (uint32_t i = 0; i < first_pos * width; ++i) {
    EXPECT_EQ(a[i], 0.0f);
    EXPECT_EQ(halves[i], 0u);
  }
  for (uint32_t i = 0; i < n * width; ++i) {
    EXPECT_EQ(a[first_pos * width + i], rows[i]);
    EXPECT_EQ(halves[first_pos * width + i], f32_to_fp16(rows[i])) << rows[i];
  }
}

struct AttentionCase {
  bool f16;
  uint32_t window;
  float softcap;
};

class VulkanAttention : public testing::TestWithParam<AttentionCase> {};

TEST_P(VulkanAttention, MatchesReference) {
  const auto [f16, window, softcap] = GetParam();
  AttentionConfig config;
  config.n_heads = 6;
  config.n_kv_heads = 2;
  config.head_dim = 40;
  config.scale = 1.0f / std::sqrt(40.0f);
  config.softcap = softcap;
  config.window = window;
  config.kv_f16 = f16;
  const uint32_t n_tokens = 5, first_pos = 130, kv_width = 80, positions = first_pos + n_tokens;
  const auto q = random_floats(n_tokens * 6 * 40, 5, 2.0f);
  auto k = random_floats(positions * kv_width, 6, 2.0f);
  auto v = random_floats(positions * kv_width, 7);
  Buffer kb, vb;
  if (f16) {
    std::vector<uint16_t> kh(k.size()), vh(v.size());
    for (std::size_t i = 0; i < k.size(); ++i) {
      kh[i] = f32_to_fp16(k[i]);
      vh[i] = f32_to_fp16(v[i]);
      k[i] = fp16_to_f32(kh[i]);
      v[i] = fp16_to_f32(vh[i]);
    }
    kb = host_buffer(kh);
    vb = host_buffer(vh);
  } else {
    kb = host_buffer(k);
    vb = host_buffer(v);
  }
  const Buffer qb = host_buffer(q);
  const Buffer out = host_floats(q.size());
  CommandStream s(context());
  ops::attention(s, qb, n_tokens, first_pos, kb, vb, config, out);
  s.finish();
  const auto y = read_floats(out, q.size());

  for (uint32_t t = 0; t < n_tokens; ++t) {
    const uint32_t pos = first_pos + t;
    const uint32_t first = window > 0 && pos + 1 > window ? pos + 1 - window : 0;
    for (uint32_t h = 0; h < 6; ++h) {
      const uint32_t kvh = h / 3;
      std::vector<double> scores;
      for (uint32_t j = first; j <= pos; ++j) {
        double dot = 0;
        for (uint32_t d = 0; d < 40; ++d)
          dot += double(q[(t * 6 + h) * 40 + d]) * k[j * kv_width + kvh * 40 + d];
        double score = dot * config.scale;
        if (softcap > 0) score = softcap * std::tanh(score / softcap);
        scores.push_back(score);
      }
      const double m = *std::max_element(scores.begin(), scores.end());
      double sum = 0;
      for (double& sc : scores) {
        sc = std::exp(sc - m);
        sum += sc;
      }
      for (uint32_t d = 0; d < 40; ++d) {
        double ref = 0;
        for (uint32_t j = first; j <= pos; ++j)
          ref += scores[j - first] / sum * v[j * kv_width + kvh * 40 + d];
        // Outputs are averages of values in [-1, 1]; float exp and sums over <= 135 keys.
        ASSERT_NEAR(y[(t * 6 + h) * 40 + d], ref, 2e-6) << "token " << t << " head " << h;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Masks, VulkanAttention,
                         testing::Values(AttentionCase{false, 0, 0.0f},
                                         AttentionCase{true, 0, 0.0f},
                                         AttentionCase{true, 13, 0.0f},
                                         AttentionCase{false, 70, 5.0f},
                                         AttentionCase{true, 0, 2.5f}));

TEST(VulkanShaders, GatedActivations) {
  const uint32_t n = 1001;
  const auto gate = random_floats(n, 8, 6.0f);
  const auto up = random_floats(n, 9, 2.0f);
  const Buffer silu = host_buffer(gate), gelu = host_buffer(gate), ub = host_buffer(up);
  CommandStream s(context());
  ops::glu(s, silu, ub, n, false);
  ops::glu(s, gelu, ub, n, true);
  s.finish();
  const auto a = read_floats(silu, n), b = read_floats(gelu, n);
  for (uint32_t i = 0; i < n; ++i) {
    const double g = gate[i];
    const double silu_ref = g / (1 + std::exp(-g)) * up[i];
    const double gelu_ref =
        0.5 * g * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (g + 0.044715 * g * g * g))) *
        up[i];
    // exp and tanh in float on values up to 12 in magnitude.
    EXPECT_NEAR(a[i], silu_ref, 1e-5 * (1 + std::abs(silu_ref)));
    EXPECT_NEAR(b[i], gelu_ref, 1e-5 * (1 + std::abs(gelu_ref)));
  }
}

TEST(VulkanShaders, ResidualAndBiasAdd) {
  const uint32_t rows = 5, width = 77;
  const auto acc = random_floats(rows * width, 10);
  const auto src = random_floats(rows * width, 11);
  const auto bias = random_floats(width, 12);
  const Buffer residual = host_buffer(acc), biased = host_buffer(acc);
  const Buffer sb = host_buffer(src), bb = host_buffer(bias);
  CommandStream s(context());
  ops::add(s, residual, sb, rows * width, rows * width);
  ops::add(s, biased, bb, rows * width, width);
  s.finish();
  const auto a = read_floats(residual, rows * width), b = read_floats(biased, rows * width);
  for (uint32_t i = 0; i < rows * width; ++i) {
    EXPECT_EQ(a[i], acc[i] + src[i]);
    EXPECT_EQ(b[i], acc[i] + bias[i % width]);
  }
}

TEST(VulkanShaders, SoftmaxRows) {
  const uint32_t rows = 3, width = 515;
  const auto x = random_floats(rows * width, 13, 20.0f);
  const Buffer xb = host_buffer(x);
  CommandStream s(context());
  ops::softmax(s, xb, rows, width);
  s.finish();
  const auto y = read_floats(xb, rows * width);
  for (uint32_t r = 0; r < rows; ++r) {
    const double m = *std::max_element(x.begin() + r * width, x.begin() + (r + 1) * width);
    double sum = 0;
    for (uint32_t i = 0; i < width; ++i)
      sum += std::exp(x[r * width + i] - m);
    for (uint32_t i = 0; i < width; ++i) {
      const double ref = std::exp(x[r * width + i] - m) / sum;
      EXPECT_NEAR(y[r * width + i], ref, 1e-6 * (1 + ref * 100));
    }
  }
}

TEST(VulkanShaders, GatherAndScaleAddRows) {
  const uint32_t width = 45;
  const auto src = random_floats(6 * width, 14);
  const std::vector<uint32_t> index{9, 9, 4, 0, 5, 2};  // two leading entries skipped by `first`
  const std::vector<float> weights{0, 0, 0.5f, -2.0f, 0.25f, 1.5f};
  const Buffer sb = host_buffer(src), ib = host_buffer(index), wb = host_buffer(weights);
  const Buffer gathered = host_floats(4 * width);
  const auto base = random_floats(6 * width, 15);
  const Buffer plain = host_buffer(base), gated = host_buffer(base);
  CommandStream s(context());
  ops::gather_rows(s, sb, ib, 2, 4, width, gathered);
  ops::scale_add_rows(s, gathered, ib, wb, 2, 4, width, false, plain);
  ops::scale_add_rows(s, gathered, ib, wb, 2, 4, width, true, gated);
  s.finish();
  const auto g = read_floats(gathered, 4 * width);
  const auto p = read_floats(plain, 6 * width), q = read_floats(gated, 6 * width);
  std::vector<double> want_p(base.begin(), base.end()), want_q(base.begin(), base.end());
  for (uint32_t i = 0; i < 4; ++i) {
    const uint32_t row = index[2 + i];
    const double w = weights[2 + i];
    for (uint32_t d = 0; d < width; ++d) {
      EXPECT_EQ(g[i * width + d], src[row * width + d]);
      want_p[row * width + d] += w * src[row * width + d];
      want_q[row * width + d] += 1 / (1 + std::exp(-w)) * src[row * width + d];
    }
  }
  for (uint32_t k = 0; k < 6 * width; ++k) {
    EXPECT_NEAR(p[k], want_p[k], 1e-6);
    EXPECT_NEAR(q[k], want_q[k], 1e-6);
  }
}

}  // namespace
}  // namespace floatllm::vulkan
