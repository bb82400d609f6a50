// Shared helpers of the test programs: where the shared models are, and reading whole files.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

namespace floatllm::test {

// AddressSanitizer's shadow memory and quarantine count in a process's memory, so tests of
// memory budgets skip under it.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

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

// A fresh directory under the system's temporary folder, removed with everything in it at the
// end of the scope.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "floatllm-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  // Names of the files left in the directory, sorted, e.g. to prove no temporary file survives.
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct ShellResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a shell command line, its output captured in files under `dir`.
inline ShellResult run_shell(const std::string& line, const std::filesystem::path& dir) {
  const std::filesystem::path out = dir / "stdout.txt";
  const std::filesystem::path err = dir / "stderr.txt";
  const int status = std::system((line + " >" + out.string() + " 2>" + err.string()).c_str());
  ShellResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out);
  r.err = read_text(err);
  return r;
}

}  // namespace floatllm::test
