// The one exception type floatllm throws, and helpers to build its messages.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace floatllm {

// Every failure the library reports on purpose is a floatllm::Error. Its message names what was
// wrong and where (file, field, byte offset), so a user can act on it without a debugger.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

template <class... Parts>
[[noreturn]] void fail(Parts&&... parts) {
  throw Error(concat(std::forward<Parts>(parts)...));
}

}  // namespace floatllm
