// Encode throughput on 1 MiB of mixed text (English prose, code, Cyrillic, CJK, emoji, numbers,
// whitespace runs) for each kind of tokenizer: byte-level BPE from GGUF (Llama 3, GPT-2) and
// from tokenizer.json (Qwen 3), and SentencePiece BPE from GGUF (Llama 2).
//
// Models come from FLOATLLM_TEST_MODELS (environment) or ../shared/models next to the source.
#include <benchmark/benchmark.h>
#include <floatllm/floatllm.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

fs::path models_dir() {
  if (const char* dir = std::getenv("FLOATLLM_TEST_MODELS")) return dir;
  return fs::path(__FILE__).parent_path() / ".." / ".." / "shared" / "models";
}

// Deterministic text of `bytes` bytes: words drawn (by a fixed LCG) from several scripts, so
// words repeat as in real text while the mix keeps every code path busy.
std::string mixed_text(std::size_t bytes) {
  const std::vector<std::string> words = {
      "the",        " quick",    " brown",  " fox",      " jumps",     " over",     " lazy",
      " dog",       ".",         ",",       " and",      " tokenizer", " model",    " weights",
      " memory",    " stream",   " Hello",  " world",    "!",          " I'm",      " you're",
      " it's",      "\n",        "\n\n",    "    ",      "\t",         " int",      " main",
      "()",         " {",        " return", " x->y[3]",  " != 0;",     " }",        " //",
      " 1234567",   " 3.14159",  " 2026",   " Привет",   " мир",       " текст",    " 日本語",
      "のテキスト", " 中文文本", "，",      " 한국어",   " 😀",         " 👍🏽", " 🦙",
      " naïve",     " café",     " Straße", " Ελληνικά", "  ",         "::",        "=>"};
  std::string text;
  text.reserve(bytes + 64);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  while (text.size() < bytes) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    text += words[(state >> 33) % words.size()];
  }
  // Cut at a character boundary.
  std::size_t end = bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80)
    --end;
  text.resize(end);
  return text;
}

const std::string& text_1mib() {
  static const std::string text = mixed_text(1 << 20);
  return text;
}

void run_encode(benchmark::State& state, const floatllm::Tokenizer& tokenizer) {
  const std::string& text = text_1mib();
  std::size_t tokens = 0;
  for (auto _ : state) {
    const auto ids = tokenizer.encode(text);
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsIterationInvariantRate);
}

void BM_EncodeGguf(benchmark::State& state, const char* file) {
  const floatllm::GgufFile gguf(models_dir() / file);
  const auto tokenizer = floatllm::Tokenizer::from_gguf(gguf);
  run_encode(state, tokenizer);
}

void BM_EncodeJson(benchmark::State& state, const char* folder) {
  const auto tokenizer = floatllm::Tokenizer::from_file(models_dir() / folder);
  run_encode(state, tokenizer);
}

void BM_Decode(benchmark::State& state) {
  const floatllm::GgufFile gguf(models_dir() / "synthetic/tiny-llama3-q8_0.gguf");
  const auto tokenizer = floatllm::Tokenizer::from_gguf(gguf);
  const auto ids = tokenizer.encode(text_1mib());
  for (auto _ : state) {
    const std::string text = tokenizer.decode(ids);
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text_1mib().size()));
}

BENCHMARK_CAPTURE(BM_EncodeGguf, llama3_bpe, "synthetic/tiny-llama3-q8_0.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeGguf, gpt2, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeGguf, llama2_spm, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeJson, qwen3_json, "tokenizers/qwen3")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Decode)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
