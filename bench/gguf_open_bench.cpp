// How long opening a 1 GiB GGUF takes, and proof that it reads only the header: the page faults
// taken while opening are counted and compared with the header's size in pages.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <floatllm/io/gguf.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../tests/gguf_builder.hpp"

namespace {

// A Llama-shaped file: a 128k-entry vocabulary in the metadata and 1 GiB of sparse tensor data.
struct LargeGguf {
  std::filesystem::path path;
  uint64_t header_bytes = 0;

  LargeGguf() {
    path = std::filesystem::temp_directory_path() /
           ("floatllm-bench-" + std::to_string(getpid()) + ".gguf");
    constexpr uint64_t kVocab = 128256;
    constexpr int kLayers = 27;
    constexpr uint64_t kDim = 2048;
    constexpr uint64_t kFfn = 8192;
    floatllm::test::GgufBuilder b;
    const uint64_t tensors = 2 + kLayers * 9;
    b.header(tensors, 5);
    b.key("general.architecture", 8).str("llama");
    b.key("llama.block_count", 4).put<uint32_t>(kLayers);
    b.key("tokenizer.ggml.tokens", 9).put<uint32_t>(8).put<uint64_t>(kVocab);
    for (uint64_t i = 0; i < kVocab; ++i)
      b.str("token_" + std::to_string(i));
    b.key("tokenizer.ggml.scores", 9).put<uint32_t>(6).put<uint64_t>(kVocab);
    for (uint64_t i = 0; i < kVocab; ++i)
      b.put<float>(-static_cast<float>(i));
    b.key("tokenizer.ggml.token_type", 9).put<uint32_t>(5).put<uint64_t>(kVocab);
    for (uint64_t i = 0; i < kVocab; ++i)
      b.put<int32_t>(1);

    uint64_t offset = 0;
    const auto add = [&](const std::string& name, uint64_t ne0, uint64_t ne1, uint32_t type,
                         uint64_t bytes) {
      b.tensor_info(name, {ne0, ne1}, type, offset);
      offset += (bytes + 31) / 32 * 32;
    };
    const auto q4k = [](uint64_t n) { return n / 256 * 144; };
    add("token_embd.weight", kDim, kVocab, 12, q4k(kDim * kVocab));
    add("output_norm.weight", kDim, 1, 0, kDim * 4);
    for (int l = 0; l < kLayers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      add(p + "attn_norm.weight", kDim, 1, 0, kDim * 4);
      add(p + "ffn_norm.weight", kDim, 1, 0, kDim * 4);
      add(p + "attn_q.weight", kDim, kDim, 12, q4k(kDim * kDim));
      add(p + "attn_k.weight", kDim, kDim / 4, 12, q4k(kDim * kDim / 4));
      add(p + "attn_v.weight", kDim, kDim / 4, 12, q4k(kDim * kDim / 4));
      add(p + "attn_output.weight", kDim, kDim, 12, q4k(kDim * kDim));
      add(p + "ffn_gate.weight", kDim, kFfn, 12, q4k(kDim * kFfn));
      add(p + "ffn_up.weight", kDim, kFfn, 12, q4k(kDim * kFfn));
      add(p + "ffn_down.weight", kFfn, kDim, 12, q4k(kDim * kFfn));
    }
    b.pad_to(32);
    header_bytes = b.size();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.bytes().data()),
              static_cast<std::streamsize>(b.size()));
    out.close();
    std::filesystem::resize_file(path, header_bytes + offset);  // sparse: no data is written
  }
  ~LargeGguf() { std::filesystem::remove(path); }
};

// Pages of the tensor data that are in memory. The data is a hole in a sparse file, so a page is
// only there if something read it.
std::size_t resident_data_pages(const floatllm::GgufFile& gguf) {
  const auto bytes = gguf.mapping().bytes();
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t first = (gguf.data_offset() + page - 1) / page;
  const std::size_t last = bytes.size() / page;
  if (last <= first) return 0;
  std::vector<unsigned char> flags(last - first);
  mincore(const_cast<std::byte*>(bytes.data()) + first * page, (last - first) * page, flags.data());
  std::size_t resident = 0;
  for (unsigned char flag : flags)
    resident += flag & 1;
  return resident;
}

long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt + usage.ru_majflt;
}

void BM_OpenLargeGguf(benchmark::State& state) {
  static const LargeGguf file;
  long faults = 0;
  uint64_t tensors = 0;
  std::size_t data_pages_resident = 0;
  for (auto _ : state) {
    const long before = minor_faults();
    const floatllm::GgufFile gguf(file.path);
    faults += minor_faults() - before;
    tensors = gguf.tensors().size();
    benchmark::DoNotOptimize(gguf.tensor("blk.26.ffn_down.weight").data.data());
    state.PauseTiming();
    data_pages_resident = std::max(data_pages_resident, resident_data_pages(gguf));
    state.ResumeTiming();
  }
  const auto size = std::filesystem::file_size(file.path);
  state.counters["file_MiB"] = static_cast<double>(size) / (1 << 20);
  state.counters["header_pages"] = static_cast<double>(file.header_bytes) / 4096.0;
  state.counters["faults_per_open"] =
      static_cast<double>(faults) / static_cast<double>(state.iterations());
  state.counters["data_pages_resident"] = static_cast<double>(data_pages_resident);
  state.counters["tensors"] = static_cast<double>(tensors);
}
BENCHMARK(BM_OpenLargeGguf)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
