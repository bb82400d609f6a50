// Shared helpers of the test programs: where the shared models are, and reading whole files.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace floatllm::test {

// The shared models folder. A missing folder is a failure, never a skip: the suite cannot prove
// anything without its references.
inline std::filesystem::path models_dir() {
  const std::filesystem::path dir(FLOATLLM_TEST_MODELS);
  if (!std::filesystem::exists(dir / "MANIFEST.md")) {
    ADD_FAILURE() << "test models not found at " << dir
                  << " (configure with -DFLOATLLM_TEST_MODELS=...)";
  }
  return dir;
}

inline std::filesystem::path model_path(const std::string& relative) {
  const auto path = models_dir() / relative;
  if (!std::filesystem::exists(path)) ADD_FAILURE() << "missing test file " << path;
  return path;
}

inline std::vector<std::byte> read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace floatllm::test
