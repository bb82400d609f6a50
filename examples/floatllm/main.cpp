#include <floatllm/floatllm.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <vector>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"floatllm: run large language models within the memory you have", "floatllm"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, floatllm::cli::Command>> commands;
  const auto register_command = [&](floatllm::cli::Command (*add)(CLI::App&)) {
    const std::size_t before = app.get_subcommands({}).size();
    auto run = add(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(run));
  };
  register_command(floatllm::cli::add_inspect);

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
