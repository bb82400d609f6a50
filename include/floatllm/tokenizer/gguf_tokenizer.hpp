// Reads a tokenizer from a GGUF file's tokenizer.ggml.* metadata, as llama.cpp defines it:
// model "llama" (SentencePiece BPE: scores, byte-fallback tokens, the "▁" space marker and a
// dummy prefix) and model "gpt2" (byte-level BPE with ranked merges, split first by the
// pre-tokenizer that tokenizer.ggml.pre names).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/tokenizer/pre_tokenizer.hpp"
#include "floatllm/tokenizer/tokenizer_spec.hpp"

namespace floatllm {

namespace gguf_tokenizer_detail {

inline constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"

inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kTekkenPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kBloomPattern =
    R"( ?[^(\s|.,!?\x{2026}\x{3002}\x{FF0C}\x{3001}\x{0964}\x{06D4}\x{060C})]+)";
inline constexpr std::string_view kCjkPattern =
    R"([\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";

// The regexes each pre-tokenizer name stands for, applied in order (each splits the pieces the
// previous ones made, keeping matches and the text between them). They are the patterns of the
// models' own tokenizer.json files, as llama.cpp lists them.
struct PreTokenizerPreset {
  std::vector<std::string_view> patterns;
  bool ignore_merges = false;
  bool add_bos = false;
};

inline std::optional<PreTokenizerPreset> preset(std::string_view name) {
  auto is = [&](std::initializer_list<std::string_view> names) {
    return std::find(names.begin(), names.end(), name) != names.end();
  };
  if (name.empty() || name == "default") {
    return PreTokenizerPreset{
        {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"}};
  }
  if (is({"llama3", "llama-v3", "llama-bpe", "falcon3"})) {
    return PreTokenizerPreset{{kLlama3Pattern}, true, true};
  }
  if (is({"dbrx", "smaug-bpe", "chatglm-bpe"})) return PreTokenizerPreset{{kLlama3Pattern}};
  if (name == "tekken") return PreTokenizerPreset{{kTekkenPattern}, true, true};
  if (name == "deepseek-llm") {
    return PreTokenizerPreset{
        {"[\\r\\n]",
         "\\s?["
         "\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}"
         "\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}"
         "\\x{370}-\\x{373}\\x{376}-\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
         "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
         "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
         "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"
         "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
         "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"
         "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
         "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
         "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
         "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
         "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
         "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}-\\x{2184}\\x{2C00}-\\x{2C7B}"
         "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}-\\x{2CF3}\\x{A640}-\\x{A66D}"
         "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
         "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
         "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
         "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
         "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
         "]+",
         "\\s?[!-/"
         ":-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
         "\\s+$", kCjkPattern, "\\p{N}+"}};
  }
  if (name == "deepseek-v3") {
    return PreTokenizerPreset{
        {"\\p{N}{1,3}", R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)",
         "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
         "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}};
  }
  if (name == "deepseek-coder") {
    return PreTokenizerPreset{{"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkPattern, "\\p{N}"}};
  }
  if (name == "falcon") {
    return PreTokenizerPreset{{R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2Pattern, "[0-9][0-9][0-9]"}};
  }
  if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})) {
    return PreTokenizerPreset{{R"(\p{N})", kGpt2Pattern}};
  }
  if (is({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es",
          "jina-v2-de", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais"})) {
    return PreTokenizerPreset{{kGpt2Pattern}};
  }
  if (is({"qwen2", "stablelm2", "megrez"})) return PreTokenizerPreset{{kQwen2Pattern}};
  if (is({"poro-chat", "bloom", "gpt3-finnish"})) return PreTokenizerPreset{{kBloomPattern}};
  if (name == "viking") return PreTokenizerPreset{{kBloomPattern, R"(\p{N})"}};
  if (name == "chameleon") {
    return PreTokenizerPreset{
        {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
         "[\\p{P}!-/:-@\\[-`{-~]", kGpt2Pattern},
        false,
        true};
  }
  return std::nullopt;
}

inline std::optional<int32_t> token_id(const GgufFile& gguf, std::string_view key,
                                       std::size_t vocab_size) {
  const auto value = gguf.find(key);
  if (!value) return std::nullopt;
  if (!gguf_is_integer(value->type())) {
    fail(gguf.source(), ": metadata '", key, "' is ", gguf_type_name(value->type()),
         ", not an integer token id");
  }
  const auto id = value->type() == GgufType::INT8 || value->type() == GgufType::INT16 ||
                          value->type() == GgufType::INT32 || value->type() == GgufType::INT64
                      ? value->as<int64_t>()
                      : static_cast<int64_t>(std::min<uint64_t>(
                            value->as<uint64_t>(), std::numeric_limits<int64_t>::max()));
  // Converters write -1 or 0xFFFFFFFF for "none"; llama.cpp ignores any id outside the vocab.
  if (id < 0 || static_cast<uint64_t>(id) >= vocab_size) return std::nullopt;
  return static_cast<int32_t>(id);
}

inline std::string lowercase_ascii(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace gguf_tokenizer_detail

// Texts that mark tokens ending a turn or a document, as llama.cpp recognises them.
inline constexpr std::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"};

inline TokenizerSpec tokenizer_spec_from_gguf(const GgufFile& gguf) {
  namespace d = gguf_tokenizer_detail;
  TokenizerSpec spec;
  spec.source = gguf.source();
  const std::string& src = spec.source;

  spec.model = std::string(gguf.get<std::string_view>("tokenizer.ggml.model"));
  spec.pre = std::string(gguf.get_or<std::string_view>("tokenizer.ggml.pre", ""));
  const bool spm = spec.model == "llama";
  const bool bpe = spec.model == "gpt2";
  if (spec.model == "bert") {
    fail(src,
         ": unsupported tokenizer model 'bert' (WordPiece) in metadata 'tokenizer.ggml.model'");
  }
  if (!spm && !bpe) {
    fail(src, ": unsupported tokenizer model '", spec.model,
         "' in metadata 'tokenizer.ggml.model' (supported: 'llama', 'gpt2')");
  }

  // Tokens, scores and types.
  const GgufArray token_array = gguf.get_array("tokenizer.ggml.tokens");
  const std::vector<std::string_view> tokens = token_array.strings();
  if (tokens.empty()) fail(src, ": metadata 'tokenizer.ggml.tokens' is empty");
  if (tokens.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
    fail(src, ": metadata 'tokenizer.ggml.tokens' holds ", tokens.size(), " tokens, too many");
  }
  const std::size_t n = tokens.size();
  spec.tokens.assign(tokens.begin(), tokens.end());

  if (const auto scores = gguf.find("tokenizer.ggml.scores")) {
    spec.scores = scores->as_array().to_vector<float>();
    if (spec.scores.size() != n) {
      fail(src, ": metadata 'tokenizer.ggml.scores' has ", spec.scores.size(), " entries for ", n,
           " tokens");
    }
  } else {
    spec.scores.assign(n, 0.0f);
  }
  spec.types.assign(n, TokenType::Normal);
  if (const auto types = gguf.find("tokenizer.ggml.token_type")) {
    const auto values = types->as_array().to_vector<int64_t>();
    if (values.size() != n) {
      fail(src, ": metadata 'tokenizer.ggml.token_type' has ", values.size(), " entries for ", n,
           " tokens");
    }
    for (std::size_t i = 0; i < n; ++i) {
      spec.types[i] = values[i] >= 0 && values[i] <= 6 ? static_cast<TokenType>(values[i])
                                                       : TokenType::Undefined;
    }
  }

  // Special ids: SentencePiece's defaults, then whatever the metadata says.
  SpecialTokenIds& ids = spec.special;
  if (spm) {
    if (n > 0) ids.unk = 0;
    if (n > 1) ids.bos = 1;
    if (n > 2) ids.eos = 2;
  }
  const std::pair<std::string_view, std::optional<int32_t>*> keys[] = {
      {"tokenizer.ggml.bos_token_id", &ids.bos},
      {"tokenizer.ggml.eos_token_id", &ids.eos},
      {"tokenizer.ggml.eot_token_id", &ids.eot},
      {"tokenizer.ggml.eom_token_id", &ids.eom},
      {"tokenizer.ggml.unknown_token_id", &ids.unk},
      {"tokenizer.ggml.seperator_token_id", &ids.sep},
      {"tokenizer.ggml.padding_token_id", &ids.pad},
      {"tokenizer.ggml.mask_token_id", &ids.mask},
      {"tokenizer.ggml.fim_pre_token_id", &ids.fim_pre},
      {"tokenizer.ggml.fim_suf_token_id", &ids.fim_suf},
      {"tokenizer.ggml.fim_mid_token_id", &ids.fim_mid},
      {"tokenizer.ggml.fim_pad_token_id", &ids.fim_pad},
      {"tokenizer.ggml.fim_rep_token_id", &ids.fim_rep},
      {"tokenizer.ggml.fim_sep_token_id", &ids.fim_sep},
      {"tokenizer.ggml.prefix_token_id", &ids.fim_pre},
      {"tokenizer.ggml.suffix_token_id", &ids.fim_suf},
      {"tokenizer.ggml.middle_token_id", &ids.fim_mid},
  };
  for (const auto& [key, slot] : keys) {
    if (auto id = d::token_id(gguf, key, n)) *slot = id;
  }

  // Turn, fill-in-the-middle and end-of-generation tokens that converters leave unnamed, found by
  // their text as llama.cpp does; they are control tokens whatever their recorded type.
  auto find_text = [&](std::initializer_list<std::string_view> texts) -> std::optional<int32_t> {
    for (std::size_t i = 0; i < n; ++i) {
      if (std::find(texts.begin(), texts.end(), spec.tokens[i]) != texts.end())
        return static_cast<int32_t>(i);
    }
    return std::nullopt;
  };
  auto make_control = [&](std::optional<int32_t> id) {
    if (id) spec.types[*id] = TokenType::Control;
  };
  if (!ids.eot) {
    ids.eot = find_text({"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                         "<EOT>", "<｜end▁of▁sentence｜>"});
    make_control(ids.eot);
  }
  if (!ids.eom) make_control(ids.eom = find_text({"<|eom_id|>"}));
  if (!ids.fim_pre) {
    make_control(ids.fim_pre =
                     find_text({"<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"}));
  }
  if (!ids.fim_suf) {
    make_control(ids.fim_suf =
                     find_text({"<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"}));
  }
  if (!ids.fim_mid) {
    make_control(ids.fim_mid =
                     find_text({"<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"}));
  }
  if (!ids.fim_pad) make_control(ids.fim_pad = find_text({"<|fim_pad|>", "<fim-pad>", "<PAD>"}));
  if (!ids.fim_rep) {
    make_control(ids.fim_rep =
                     find_text({"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}));
  }
  if (!ids.fim_sep) make_control(ids.fim_sep = find_text({"<|file_sep|>"}));

  for (auto id : {ids.fim_pad, ids.fim_rep, ids.fim_sep}) {
    if (id) spec.end_of_generation.push_back(*id);
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::string_view text : kEndOfGenerationTexts) {
      if (spec.tokens[i] == text) {
        spec.end_of_generation.push_back(static_cast<int32_t>(i));
        spec.types[i] = TokenType::Control;
      }
    }
  }
  for (auto id : {ids.eos, ids.eot, ids.eom}) {
    if (id) spec.end_of_generation.push_back(*id);
  }
  std::sort(spec.end_of_generation.begin(), spec.end_of_generation.end());
  spec.end_of_generation.erase(
      std::unique(spec.end_of_generation.begin(), spec.end_of_generation.end()),
      spec.end_of_generation.end());

  // Flags: llama.cpp's defaults per model and pre-tokenizer, then the metadata's.
  bool add_bos = spm;
  bool add_space_prefix = spm;
  if (spm) {
    spec.merge_rule = MergeRule::ByScore;
    spec.byte_fallback = true;
  } else {
    const auto preset = d::preset(spec.pre);
    if (!preset) {
      fail(src, ": unsupported pre-tokenizer '", spec.pre,
           "' in metadata 'tokenizer.ggml.pre' for tokenizer model 'gpt2'");
    }
    for (std::string_view pattern : preset->patterns) {
      spec.pre_tokenizer.add(regex_split(pattern, concat(src, ": pre-tokenizer '", spec.pre, "'")));
    }
    spec.ignore_merges = preset->ignore_merges;
    add_bos = preset->add_bos;
    if (spec.pre == "chatglm-bpe") ids.bos.reset();
    spec.merge_rule = MergeRule::ByRank;
    spec.byte_level = true;
    const std::vector<std::string_view> merges = gguf.get_array("tokenizer.ggml.merges").strings();
    spec.merges.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const std::string_view merge = merges[i];
      const std::size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string_view::npos;
      if (space == std::string_view::npos) {
        fail(src, ": metadata 'tokenizer.ggml.merges' entry ", i, " ('", merge,
             "') is not two tokens separated by a space");
      }
      spec.merges.emplace_back(std::string(merge.substr(0, space)),
                               std::string(merge.substr(space + 1)));
    }
  }
  add_bos = gguf.get_or<bool>("tokenizer.ggml.add_bos_token", add_bos);
  const bool add_eos = gguf.get_or<bool>("tokenizer.ggml.add_eos_token", false);
  add_space_prefix = gguf.get_or<bool>("tokenizer.ggml.add_space_prefix", add_space_prefix);
  if (add_bos && ids.bos) spec.prefix.push_back(*ids.bos);
  if (add_eos && ids.eos) spec.suffix.push_back(*ids.eos);

  if (spm) {
    if (add_space_prefix) {
      NormalizerStep prepend;
      prepend.kind = NormalizerStep::Kind::Prepend;
      prepend.text = d::kSpaceMarker;
      spec.normalizer.add(std::move(prepend));
    }
    NormalizerStep escape_spaces;
    escape_spaces.kind = NormalizerStep::Kind::Replace;
    escape_spaces.text = " ";
    escape_spaces.content = d::kSpaceMarker;
    spec.normalizer.add(std::move(escape_spaces));
    spec.decoder.replacements.emplace_back(d::kSpaceMarker, " ");
    spec.decoder.byte_fallback = true;
    spec.decoder.strip_prefix_space = add_space_prefix;
  } else {
    spec.decoder.byte_level = true;
  }

  // Control, user-defined and unknown tokens are cut out of the text before anything else;
  // user-defined ones even when special tokens are not parsed.
  const std::string model_name =
      d::lowercase_ascii(gguf.get_or<std::string_view>("general.name", ""));
  const bool phi3 =
      model_name.find("phi-3") != std::string::npos || model_name.find("phi3") != std::string::npos;
  for (std::size_t i = 0; i < n; ++i) {
    const TokenType type = spec.types[i];
    if ((type != TokenType::Control && type != TokenType::UserDefined &&
         type != TokenType::Unknown) ||
        spec.tokens[i].empty()) {
      continue;
    }
    AddedToken token;
    token.id = static_cast<int32_t>(i);
    token.content = spec.tokens[i];
    token.special = type != TokenType::UserDefined;
    // Phi-3's chat tokens swallow the whitespace after them (llama.cpp's per-model rule).
    token.rstrip = phi3 && token.content != "<unk>" && token.content != "<s>" &&
                   token.content != "<|endoftext|>";
    spec.added_tokens.push_back(std::move(token));
  }

  if (auto chat_template = gguf.get_optional<std::string_view>("tokenizer.chat_template")) {
    spec.chat_template = std::string(*chat_template);
  }
  return spec;
}

}  // namespace floatllm
