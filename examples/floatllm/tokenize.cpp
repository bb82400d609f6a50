// `floatllm tokenize -m MODEL -p TEXT`: the tokens a model's tokenizer makes of a text, as ids
// and pieces (control tokens shown as their text), or just the ids with --ids.
#include <floatllm/floatllm.hpp>

#include <iomanip>
#include <iostream>
#include <memory>
#include <string>

#include "commands.hpp"

namespace floatllm::cli {
namespace {

Command add_tokenize(CLI::App& app) {
  struct Options {
    std::string model = FLOATLLM_DEFAULT_MODEL;
    std::string prompt;
    std::string file;
    bool ids_only = false;
    bool no_bos = false;
    bool no_parse_special = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand(
      "tokenize", "Show the tokens of a text, from a GGUF file's vocabulary or a tokenizer.json");
  command->add_option("-m,--model", options->model,
                      "GGUF file, tokenizer.json, SentencePiece tokenizer.model, or a folder with "
                      "one of those (default: the sample model)");
  auto* prompt = command->add_option("-p,--prompt", options->prompt, "Text to tokenize");
  auto* file = command->add_option("-f,--file", options->file, "Read the text from this file")
                   ->check(CLI::ExistingFile);
  prompt->excludes(file);
  file->excludes(prompt);
  command->add_flag("--ids", options->ids_only, "Print only the ids, as [1, 2, 3]");
  command->add_flag("--no-bos", options->no_bos,
                    "Do not add the BOS/EOS tokens the tokenizer asks for");
  command->add_flag("--no-parse-special", options->no_parse_special,
                    "Treat the text of control tokens (\"<|im_end|>\") as plain text");
  return [options] {
    const Tokenizer tokenizer = Tokenizer::from_file(options->model);
    const std::string text =
        options->file.empty() ? options->prompt : read_text_file(options->file);
    const auto ids = tokenizer.encode(
        text, {.add_special = !options->no_bos, .parse_special = !options->no_parse_special});
    if (options->ids_only) {
      std::cout << "[";
      for (std::size_t i = 0; i < ids.size(); ++i)
        std::cout << (i ? ", " : "") << ids[i];
      std::cout << "]\n";
      return 0;
    }
    for (const int32_t id : ids) {
      const TokenType type = tokenizer.type(id);
      const bool special = type == TokenType::Control || type == TokenType::Unknown;
      const std::string piece =
          special ? std::string(tokenizer.token_to_piece(id)) : tokenizer.token_text(id);
      std::cout << std::setw(6) << id << " -> '" << piece << "'\n";
    }
    return 0;
  };
}

const CommandRegistration registration("tokenize", add_tokenize);

}  // namespace
}  // namespace floatllm::cli
