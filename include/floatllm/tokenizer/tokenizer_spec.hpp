// Everything a tokenizer is made of, whichever file it came from: the loaders for GGUF metadata
// and tokenizer.json fill a TokenizerSpec, and Tokenizer builds its lookup tables from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "floatllm/tokenizer/normalizer.hpp"
#include "floatllm/tokenizer/pre_tokenizer.hpp"

namespace floatllm {

// The token types of GGUF's tokenizer.ggml.token_type (llama.cpp's llama_token_type).
enum class TokenType : uint8_t {
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

// How BPE picks the next pair to merge: by the pair's rank in a merge list (GPT-2 style and
// Hugging Face BPE), or by the score of the token the pair would form (SentencePiece BPE).
enum class MergeRule { ByRank, ByScore };

// A token matched in the raw text before normalization ("added" or "special" tokens).
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = true;  // matched only when parsing special tokens
  bool lstrip = false;  // swallows whitespace on its left
  bool rstrip = false;  // swallows whitespace on its right
  bool single_word = false;
};

// How a token's vocabulary string becomes text when decoding.
struct DecoderSpec {
  bool byte_level = false;     // vocabulary strings are in GPT-2's byte alphabet
  bool byte_fallback = false;  // "<0xAB>" tokens stand for the byte 0xAB
  std::vector<std::pair<std::string, std::string>> replacements;  // e.g. "▁" -> " "
  // Drop the one space the encoder prepended (SentencePiece's dummy prefix): from the first
  // piece after a leading BOS.
  bool strip_prefix_space = false;
};

struct SpecialTokenIds {
  std::optional<int32_t> bos, eos, eot, eom, pad, unk, sep, mask;
  std::optional<int32_t> fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
};

struct TokenizerSpec {
  std::string source;  // file name, for error messages
  std::string model;   // e.g. "llama", "gpt2", "BPE"
  std::string pre;     // GGUF pre-tokenizer name, if any

  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<TokenType> types;

  MergeRule merge_rule = MergeRule::ByRank;
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  bool byte_level = false;  // words are raw bytes; the vocabulary spells them in GPT-2's alphabet
  bool byte_fallback = false;
  bool ignore_merges = false;  // a word that is a token is that token (Llama 3)
  bool fuse_unk = false;

  std::vector<AddedToken> added_tokens;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  DecoderSpec decoder;

  SpecialTokenIds special;
  std::vector<int32_t> end_of_generation;
  std::vector<int32_t> prefix;  // added before the text when add_special is set
  std::vector<int32_t> suffix;  // added after it

  std::optional<std::string> chat_template;
};

}  // namespace floatllm
