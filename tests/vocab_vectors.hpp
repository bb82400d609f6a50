// llama.cpp's tokenizer test vectors: `.inp` files of texts separated by a marker line and
// `.out` files of expected ids, one line per text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm::test {

inline std::vector<std::string> split_cases(const std::string& text) {
  static const std::string kSeparator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  std::size_t at = 0;
  for (std::size_t found; (found = text.find(kSeparator, at)) != std::string::npos;
       at = found + kSeparator.size()) {
    cases.push_back(text.substr(at, found - at));
  }
  if (at < text.size()) cases.push_back(text.substr(at));
  return cases;
}

inline std::vector<std::vector<int32_t>> read_expected_ids(const std::filesystem::path& path) {
  std::vector<std::vector<int32_t>> lines;
  std::istringstream in(test::read_text(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<int32_t> ids;
    std::istringstream numbers(line);
    for (int32_t id; numbers >> id;)
      ids.push_back(id);
    lines.push_back(std::move(ids));
  }
  return lines;
}

}  // namespace floatllm::test
