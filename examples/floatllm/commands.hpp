// The subcommands of the floatllm program. Each registers its options on the parser and returns
// the function that runs it once the command line is parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace floatllm::cli {

using Command = std::function<int()>;

Command add_inspect(CLI::App& app);

}  // namespace floatllm::cli
