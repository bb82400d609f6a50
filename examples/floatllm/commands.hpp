// The subcommands of the floatllm program. Each lives in its own .cpp and registers itself with
// a static CommandRegistration, so adding one touches no other file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string_view>
#include <vector>

namespace floatllm::cli {

// Runs a parsed subcommand and returns the process exit code.
using Command = std::function<int()>;
// Adds a subcommand with its options to the parser and returns what runs it.
using CommandFactory = Command (*)(CLI::App& app);

struct RegisteredCommand {
  std::string_view name;
  CommandFactory add;
};

inline std::vector<RegisteredCommand>& command_registry() {
  static std::vector<RegisteredCommand> registry;
  return registry;
}

struct CommandRegistration {
  CommandRegistration(std::string_view name, CommandFactory add) {
    command_registry().push_back({name, add});
  }
};

}  // namespace floatllm::cli
