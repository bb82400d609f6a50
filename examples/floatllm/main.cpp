#include <floatllm/floatllm.hpp>

#include <algorithm>
#include <exception>
#include <iostream>
#include <utility>
#include <vector>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"floatllm: run large language models within the memory you have", "floatllm"};
  app.require_subcommand(1);

  auto registry = floatllm::cli::command_registry();
  std::sort(registry.begin(), registry.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  std::vector<std::pair<CLI::App*, floatllm::cli::Command>> commands;
  for (const auto& entry : registry) {
    auto run = entry.add(app);
    commands.emplace_back(app.get_subcommand(std::string(entry.name)), std::move(run));
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [subcommand, run] : commands) {
      if (subcommand->parsed()) return run();
    }
  } catch (const floatllm::Error& e) {
    std::cerr << "floatllm: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "floatllm: unexpected error: " << e.what() << "\n";
    return 2;
  }
  return 1;
}
