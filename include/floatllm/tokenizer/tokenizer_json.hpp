// Reads a Hugging Face tokenizer.json (BPE model, byte-level or with byte fallback) and,
// optionally, its tokenizer_config.json (BOS/EOS names, add_bos/add_eos, chat template).
// Every field is checked; anything malformed or unsupported is an Error naming the field.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/tokenizer/bpe.hpp"
#include "floatllm/tokenizer/normalizer.hpp"
#include "floatllm/tokenizer/pre_tokenizer.hpp"
#include "floatllm/tokenizer/tokenizer_spec.hpp"

namespace floatllm {

namespace tokenizer_json_detail {

using Json = nlohmann::json;

// Ids beyond this are rejected: real vocabularies stay far below it, and hostile files must
// not make us allocate for an id of two billion.
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  const std::string& source() const { return source_; }

  [[noreturn]] void error(std::string_view where, std::string_view what) const {
    fail(source_, ": ", where, ": ", what);
  }

  const Json& object(const Json& value, std::string_view where) const {
    if (!value.is_object()) error(where, concat("is ", value.type_name(), ", not an object"));
    return value;
  }

  const Json& array(const Json& value, std::string_view where) const {
    if (!value.is_array()) error(where, concat("is ", value.type_name(), ", not an array"));
    return value;
  }

  const Json& member(const Json& parent, std::string_view key, std::string_view where) const {
    object(parent, where);
    const auto it = parent.find(std::string(key));
    if (it == parent.end()) error(where, concat("has no '", key, "'"));
    return *it;
  }

  const Json* optional_member(const Json& parent, std::string_view key) const {
    if (!parent.is_object()) return nullptr;
    const auto it = parent.find(std::string(key));
    if (it == parent.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::string string(const Json& value, std::string_view where) const {
    if (!value.is_string()) error(where, concat("is ", value.type_name(), ", not a string"));
    return value.get<std::string>();
  }

  std::string string_member(const Json& parent, std::string_view key,
                            std::string_view where) const {
    return string(member(parent, key, where), concat(where, ".", key));
  }

  bool flag(const Json& parent, std::string_view key, bool fallback, std::string_view where) const {
    const Json* value = optional_member(parent, key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) {
      error(concat(where, ".", key), concat("is ", value->type_name(), ", not a boolean"));
    }
    return value->get<bool>();
  }

  int64_t integer(const Json& value, std::string_view where) const {
    if (!value.is_number_integer()) {
      error(where, concat("is ", value.type_name(), ", not an integer"));
    }
    return value.get<int64_t>();
  }

  int32_t token_id(const Json& value, std::string_view where) const {
    const int64_t id = integer(value, where);
    if (id < 0 || id > kMaxTokenId) error(where, concat("token id ", id, " is out of range"));
    return static_cast<int32_t>(id);
  }

  // {"String": "..."} or {"Regex": "..."}.
  std::pair<std::string, bool> pattern(const Json& parent, std::string_view where) const {
    const Json& pattern = object(member(parent, "pattern", where), concat(where, ".pattern"));
    if (const Json* literal = optional_member(pattern, "String")) {
      return {string(*literal, concat(where, ".pattern.String")), false};
    }
    if (const Json* regex = optional_member(pattern, "Regex")) {
      return {string(*regex, concat(where, ".pattern.Regex")), true};
    }
    error(concat(where, ".pattern"), "has neither 'String' nor 'Regex'");
  }

 private:
  std::string source_;
};

// Sequences nest in practice once; a bound keeps hostile nesting from exhausting the stack.
inline constexpr int kMaxNesting = 32;

inline void check_nesting(const Reader& in, int depth, std::string_view where) {
  if (depth > kMaxNesting) in.error(where, concat("sequences nest deeper than ", kMaxNesting));
}

inline std::string type_of(const Reader& in, const Json& value, std::string_view where) {
  return in.string_member(in.object(value, where), "type", where);
}

inline void read_normalizer(const Reader& in, const Json& value, std::string_view where,
                            Normalizer& normalizer, int depth = 0) {
  check_nesting(in, depth, where);
  const std::string type = type_of(in, value, where);
  NormalizerStep step;
  if (type == "Sequence") {
    const Json& list =
        in.array(in.member(value, "normalizers", where), concat(where, ".normalizers"));
    for (std::size_t i = 0; i < list.size(); ++i)
      read_normalizer(in, list[i], concat(where, ".normalizers[", i, "]"), normalizer, depth + 1);
    return;
  }
  if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::Prepend;
    step.text = in.string_member(value, "prepend", where);
  } else if (type == "Replace") {
    auto [pattern, is_regex] = in.pattern(value, where);
    step.content = in.string_member(value, "content", where);
    if (is_regex) {
      step.kind = NormalizerStep::Kind::ReplaceRegex;
      step.regex = std::make_shared<const Regex>(pattern, concat(in.source(), ": ", where));
    } else {
      step.kind = NormalizerStep::Kind::Replace;
      step.text = std::move(pattern);
    }
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = NormalizerStep::Kind::Unicode;
    step.form = type == "NFC"    ? UnicodeForm::NFC
                : type == "NFD"  ? UnicodeForm::NFD
                : type == "NFKC" ? UnicodeForm::NFKC
                                 : UnicodeForm::NFKD;
  } else if (type == "Lowercase") {
    step.kind = NormalizerStep::Kind::Lowercase;
  } else if (type == "Strip") {
    step.kind = NormalizerStep::Kind::Strip;
    step.strip_left = in.flag(value, "strip_left", true, where);
    step.strip_right = in.flag(value, "strip_right", true, where);
  } else {
    in.error(where, concat("unsupported normalizer type '", type, "'"));
  }
  normalizer.add(std::move(step));
}

inline SplitBehavior read_behavior(const Reader& in, const Json& value, std::string_view where,
                                   SplitBehavior fallback) {
  const Json* behavior = in.optional_member(value, "behavior");
  if (behavior == nullptr) return fallback;
  const std::string name = in.string(*behavior, concat(where, ".behavior"));
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  in.error(concat(where, ".behavior"), concat("unknown split behavior '", name, "'"));
}

inline PrependScheme read_prepend_scheme(const Reader& in, const Json& value,
                                         std::string_view where) {
  if (const Json* scheme = in.optional_member(value, "prepend_scheme")) {
    const std::string name = in.string(*scheme, concat(where, ".prepend_scheme"));
    if (name == "always") return PrependScheme::Always;
    if (name == "first") return PrependScheme::First;
    if (name == "never") return PrependScheme::Never;
    in.error(concat(where, ".prepend_scheme"), concat("unknown prepend scheme '", name, "'"));
  }
  return in.flag(value, "add_prefix_space", true, where) ? PrependScheme::Always
                                                         : PrependScheme::Never;
}

inline void read_pre_tokenizer(const Reader& in, const Json& value, std::string_view where,
                               TokenizerSpec& spec, int depth = 0) {
  check_nesting(in, depth, where);
  const std::string type = type_of(in, value, where);
  const std::string what = concat(in.source(), ": ", where);
  PreTokenizer& pre = spec.pre_tokenizer;
  if (type == "Sequence") {
    const Json& list =
        in.array(in.member(value, "pretokenizers", where), concat(where, ".pretokenizers"));
    for (std::size_t i = 0; i < list.size(); ++i)
      read_pre_tokenizer(in, list[i], concat(where, ".pretokenizers[", i, "]"), spec, depth + 1);
  } else if (type == "Split") {
    auto [pattern, is_regex] = in.pattern(value, where);
    const SplitBehavior behavior = read_behavior(in, value, where, SplitBehavior::Isolated);
    const bool invert = in.flag(value, "invert", false, where);
    if (is_regex) {
      pre.add(regex_split(pattern, what, behavior, invert));
    } else {
      PreTokenizerStep step;
      step.literal = std::move(pattern);
      step.behavior = behavior;
      step.invert = invert;
      pre.add(std::move(step));
    }
  } else if (type == "ByteLevel") {
    spec.byte_level = true;
    if (in.flag(value, "add_prefix_space", false, where)) {
      PreTokenizerStep step;
      step.kind = PreTokenizerStep::Kind::PrefixSpace;
      pre.add(std::move(step));
    }
    if (in.flag(value, "use_regex", true, where)) pre.add(regex_split(kGpt2Pattern, what));
  } else if (type == "Metaspace") {
    PreTokenizerStep step;
    step.kind = PreTokenizerStep::Kind::Metaspace;
    step.replacement = in.string_member(value, "replacement", where);
    step.prepend = read_prepend_scheme(in, value, where);
    step.split_on_replacement = in.flag(value, "split", true, where);
    pre.add(std::move(step));
  } else if (type == "Digits") {
    const bool individual = in.flag(value, "individual_digits", false, where);
    pre.add(regex_split(individual ? R"(\p{N})" : R"(\p{N}+)", what));
  } else if (type == "Punctuation") {
    pre.add(regex_split(R"([\p{P}!-/:-@\[-`{-~])", what,
                        read_behavior(in, value, where, SplitBehavior::Isolated)));
  } else if (type == "Whitespace") {
    pre.add(regex_split(R"(\w+|[^\w\s]+)", what, SplitBehavior::Removed, true));
  } else if (type == "WhitespaceSplit") {
    pre.add(regex_split(R"(\s+)", what, SplitBehavior::Removed));
  } else {
    in.error(where, concat("unsupported pre-tokenizer type '", type, "'"));
  }
}

inline void read_decoder(const Reader& in, const Json& value, std::string_view where,
                         DecoderSpec& decoder, int depth = 0) {
  check_nesting(in, depth, where);
  const std::string type = type_of(in, value, where);
  if (type == "Sequence") {
    const Json& list = in.array(in.member(value, "decoders", where), concat(where, ".decoders"));
    for (std::size_t i = 0; i < list.size(); ++i)
      read_decoder(in, list[i], concat(where, ".decoders[", i, "]"), decoder, depth + 1);
  } else if (type == "ByteLevel") {
    decoder.byte_level = true;
  } else if (type == "Replace") {
    auto [pattern, is_regex] = in.pattern(value, where);
    if (is_regex) in.error(where, "regex Replace decoders are not supported");
    decoder.replacements.emplace_back(std::move(pattern),
                                      in.string_member(value, "content", where));
  } else if (type == "ByteFallback") {
    decoder.byte_fallback = true;
  } else if (type == "Fuse") {
  } else if (type == "Strip") {
    const std::string content = in.string_member(value, "content", where);
    const int64_t start = in.integer(in.member(value, "start", where), concat(where, ".start"));
    if (content == " " && start > 0) decoder.strip_prefix_space = true;
  } else if (type == "Metaspace") {
    decoder.replacements.emplace_back(in.string_member(value, "replacement", where), " ");
    if (read_prepend_scheme(in, value, where) != PrependScheme::Never) {
      decoder.strip_prefix_space = true;
    }
  } else {
    in.error(where, concat("unsupported decoder type '", type, "'"));
  }
}

inline void read_post_processor(const Reader& in, const Json& value, std::string_view where,
                                const StringToId& ids, TokenizerSpec& spec, int depth = 0) {
  check_nesting(in, depth, where);
  const std::string type = type_of(in, value, where);
  auto id_of = [&](const std::string& name, std::string_view field) {
    const auto it = ids.find(name);
    if (it == ids.end()) in.error(field, concat("names unknown token '", name, "'"));
    return it->second;
  };
  if (type == "Sequence") {
    const Json& list =
        in.array(in.member(value, "processors", where), concat(where, ".processors"));
    for (std::size_t i = 0; i < list.size(); ++i)
      read_post_processor(in, list[i], concat(where, ".processors[", i, "]"), ids, spec, depth + 1);
  } else if (type == "ByteLevel") {
  } else if (type == "TemplateProcessing") {
    const Json& single = in.array(in.member(value, "single", where), concat(where, ".single"));
    const Json* special_tokens = in.optional_member(value, "special_tokens");
    bool before = true;
    for (std::size_t i = 0; i < single.size(); ++i) {
      const std::string field = concat(where, ".single[", i, "]");
      in.object(single[i], field);
      if (in.optional_member(single[i], "Sequence") != nullptr) {
        before = false;
        continue;
      }
      const Json& piece = in.object(in.member(single[i], "SpecialToken", field), field);
      const std::string name = in.string_member(piece, "id", field);
      std::vector<int32_t> piece_ids;
      if (special_tokens != nullptr && in.optional_member(*special_tokens, name) != nullptr) {
        const std::string entry = concat(where, ".special_tokens.", name);
        const Json& listed =
            in.array(in.member(in.member(*special_tokens, name, entry), "ids", entry), entry);
        for (std::size_t k = 0; k < listed.size(); ++k)
          piece_ids.push_back(in.token_id(listed[k], concat(entry, ".ids[", k, "]")));
      } else {
        piece_ids.push_back(id_of(name, field));
      }
      auto& target = before ? spec.prefix : spec.suffix;
      target.insert(target.end(), piece_ids.begin(), piece_ids.end());
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto pair_id = [&](std::string_view key) {
      const std::string field = concat(where, ".", key);
      const Json& pair = in.array(in.member(value, key, where), field);
      if (pair.size() != 2) in.error(field, "is not a [token, id] pair");
      return in.token_id(pair[1], field + "[1]");
    };
    spec.prefix.push_back(pair_id("cls"));
    spec.suffix.push_back(pair_id("sep"));
  } else {
    in.error(where, concat("unsupported post-processor type '", type, "'"));
  }
}

inline Json parse(std::string_view text, const std::string& source) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    fail(source, ": not valid JSON: ", e.what());
  }
}

// A token name in tokenizer_config.json: "<s>", or {"content": "<s>", ...}, or null.
inline std::optional<std::string> config_token(const Reader& in, const Json& config,
                                               std::string_view key) {
  const Json* value = in.optional_member(config, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_string()) return value->get<std::string>();
  return in.string_member(*value, "content", key);
}

inline std::optional<int32_t> find_token(const StringToId& ids,
                                         std::initializer_list<std::string_view> names) {
  for (std::string_view name : names) {
    if (const auto it = ids.find(name); it != ids.end()) return it->second;
  }
  return std::nullopt;
}

}  // namespace tokenizer_json_detail

// `tokenizer_json` and (possibly empty) `tokenizer_config_json` are the two files' contents.
inline TokenizerSpec tokenizer_spec_from_json_text(
    std::string_view tokenizer_json, std::string_view tokenizer_config_json, std::string source,
    std::string config_source = "tokenizer_config.json") {
  namespace d = tokenizer_json_detail;
  using d::Json;
  const d::Reader in(source);
  const Json root = d::parse(tokenizer_json, source);
  in.object(root, "top level");

  TokenizerSpec spec;
  spec.source = source;

  // The model.
  const Json& model = in.object(in.member(root, "model", "top level"), "model");
  const std::string model_type =
      in.optional_member(model, "type") ? in.string_member(model, "type", "model") : "BPE";
  if (model_type != "BPE") {
    in.error("model.type", concat("unsupported tokenizer model '", model_type, "' (only BPE)"));
  }
  spec.model = model_type;
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const Json* affix = in.optional_member(model, key)) {
      if (!in.string(*affix, concat("model.", key)).empty()) {
        in.error(concat("model.", key), "subword affixes are not supported");
      }
    }
  }
  spec.byte_fallback = in.flag(model, "byte_fallback", false, "model");
  spec.ignore_merges = in.flag(model, "ignore_merges", false, "model");
  spec.fuse_unk = in.flag(model, "fuse_unk", false, "model");

  const Json& vocab = in.object(in.member(model, "vocab", "model"), "model.vocab");
  std::vector<std::pair<std::string, int32_t>> entries;
  entries.reserve(vocab.size());
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = in.token_id(it.value(), concat("model.vocab[\"", it.key(), "\"]"));
    entries.emplace_back(it.key(), id);
    max_id = std::max(max_id, id);
  }

  std::vector<AddedToken> added;
  if (const Json* list = in.optional_member(root, "added_tokens")) {
    in.array(*list, "added_tokens");
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string where = concat("added_tokens[", i, "]");
      const Json& entry = in.object((*list)[i], where);
      AddedToken token;
      token.id = in.token_id(in.member(entry, "id", where), where + ".id");
      token.content = in.string_member(entry, "content", where);
      if (token.content.empty()) in.error(where + ".content", "is empty");
      token.special = in.flag(entry, "special", false, where);
      token.lstrip = in.flag(entry, "lstrip", false, where);
      token.rstrip = in.flag(entry, "rstrip", false, where);
      token.single_word = in.flag(entry, "single_word", false, where);
      max_id = std::max(max_id, token.id);
      added.push_back(std::move(token));
    }
  }
  if (max_id < 0) in.error("model.vocab", "is empty");
  // Ids are dense in real files; a few gaps are fine, a vocabulary that is mostly holes is not.
  const std::size_t named = entries.size() + added.size();
  if (static_cast<std::size_t>(max_id) >= 2 * named + 1024) {
    in.error("model.vocab",
             concat("token id ", max_id, " is far beyond the ", named, " tokens the file names"));
  }

  const auto n = static_cast<std::size_t>(max_id) + 1;
  spec.tokens.assign(n, std::string());
  spec.types.assign(n, TokenType::Unused);
  spec.scores.assign(n, 0.0f);
  std::vector<bool> filled(n, false);
  for (auto& [text, id] : entries) {
    if (filled[id]) in.error("model.vocab", concat("token id ", id, " is used twice"));
    filled[id] = true;
    const bool byte_token =
        spec.byte_fallback && text.size() == 6 && text.starts_with("<0x") && text.back() == '>';
    spec.types[id] = byte_token ? TokenType::Byte : TokenType::Normal;
    spec.tokens[id] = std::move(text);
  }
  for (const AddedToken& token : added) {
    if (filled[token.id] && spec.tokens[token.id] != token.content) {
      in.error("added_tokens", concat("token id ", token.id, " is '", token.content,
                                      "' but the vocabulary has '", spec.tokens[token.id], "'"));
    }
    spec.tokens[token.id] = token.content;
    spec.types[token.id] = token.special ? TokenType::Control : TokenType::UserDefined;
  }
  spec.added_tokens = std::move(added);

  StringToId ids;
  ids.reserve(n);
  for (std::size_t id = 0; id < n; ++id) {
    if (!spec.tokens[id].empty()) ids.try_emplace(spec.tokens[id], static_cast<int32_t>(id));
  }

  if (const Json* unk = in.optional_member(model, "unk_token")) {
    const std::string name = in.string(*unk, "model.unk_token");
    const auto it = ids.find(name);
    if (it == ids.end()) in.error("model.unk_token", concat("names unknown token '", name, "'"));
    spec.special.unk = it->second;
    if (spec.types[it->second] == TokenType::Normal) spec.types[it->second] = TokenType::Unknown;
  }

  const Json& merges = in.array(in.member(model, "merges", "model"), "model.merges");
  spec.merge_rule = MergeRule::ByRank;
  spec.merges.reserve(merges.size());
  for (std::size_t i = 0; i < merges.size(); ++i) {
    const std::string where = concat("model.merges[", i, "]");
    const Json& merge = merges[i];
    if (merge.is_string()) {
      const std::string text = merge.get<std::string>();
      const std::size_t space = text.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 >= text.size() ||
          text.find(' ', space + 1) != std::string::npos) {
        in.error(where, concat("'", text, "' is not two tokens separated by one space"));
      }
      spec.merges.emplace_back(text.substr(0, space), text.substr(space + 1));
    } else if (merge.is_array() && merge.size() == 2) {
      spec.merges.emplace_back(in.string(merge[0], where + "[0]"),
                               in.string(merge[1], where + "[1]"));
    } else {
      in.error(where, "is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }

  if (const Json* normalizer = in.optional_member(root, "normalizer")) {
    d::read_normalizer(in, *normalizer, "normalizer", spec.normalizer);
  }
  if (const Json* pre = in.optional_member(root, "pre_tokenizer")) {
    d::read_pre_tokenizer(in, *pre, "pre_tokenizer", spec);
  }
  if (const Json* decoder = in.optional_member(root, "decoder")) {
    d::read_decoder(in, *decoder, "decoder", spec.decoder);
  }
  if (const Json* post = in.optional_member(root, "post_processor")) {
    d::read_post_processor(in, *post, "post_processor", ids, spec);
  }

  // tokenizer_config.json: special token names and whether to add BOS/EOS.
  SpecialTokenIds& special = spec.special;
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  if (!tokenizer_config_json.empty()) {
    const d::Reader config_in(config_source);
    const Json config = d::parse(tokenizer_config_json, config_source);
    config_in.object(config, "top level");
    auto resolve = [&](std::string_view key) -> std::optional<int32_t> {
      const auto name = d::config_token(config_in, config, key);
      if (!name) return std::nullopt;
      const auto it = ids.find(*name);
      if (it == ids.end()) config_in.error(key, concat("names unknown token '", *name, "'"));
      return it->second;
    };
    special.bos = resolve("bos_token");
    special.eos = resolve("eos_token");
    special.pad = resolve("pad_token");
    if (auto unk = resolve("unk_token")) special.unk = unk;
    if (config_in.optional_member(config, "add_bos_token")) {
      add_bos = config_in.flag(config, "add_bos_token", false, "top level");
    }
    if (config_in.optional_member(config, "add_eos_token")) {
      add_eos = config_in.flag(config, "add_eos_token", false, "top level");
    }
    if (const Json* chat = config_in.optional_member(config, "chat_template")) {
      if (chat->is_string()) {
        spec.chat_template = chat->get<std::string>();
      } else {
        config_in.array(*chat, "chat_template");
        for (std::size_t i = 0; i < chat->size(); ++i) {
          const std::string where = concat("chat_template[", i, "]");
          if (config_in.string_member((*chat)[i], "name", where) == "default") {
            spec.chat_template = config_in.string_member((*chat)[i], "template", where);
          }
        }
      }
    }
  } else {
    special.bos = d::find_token(ids, {"<|begin_of_text|>", "<s>", "<bos>"});
    special.eos = d::find_token(ids, {"<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>"});
  }
  if (special.bos && add_bos) {
    auto& prefix = spec.prefix;
    const auto found = std::find(prefix.begin(), prefix.end(), *special.bos);
    if (*add_bos && found == prefix.end()) prefix.insert(prefix.begin(), *special.bos);
    if (!*add_bos && found != prefix.end()) prefix.erase(found);
  }
  if (special.eos && add_eos) {
    auto& suffix = spec.suffix;
    const auto found = std::find(suffix.begin(), suffix.end(), *special.eos);
    if (*add_eos && found == suffix.end()) suffix.push_back(*special.eos);
    if (!*add_eos && found != suffix.end()) suffix.erase(found);
  }

  special.eot = d::find_token(ids, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                    "<|endoftext|>", "<EOT>", "<｜end▁of▁sentence｜>"});
  special.eom = d::find_token(ids, {"<|eom_id|>"});
  for (std::string_view text : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                                "<|endoftext|>", "<|eom_id|>", "<EOT>"}) {
    if (auto id = d::find_token(ids, {text})) spec.end_of_generation.push_back(*id);
  }
  for (auto id : {special.eos, special.eot, special.eom}) {
    if (id) spec.end_of_generation.push_back(*id);
  }
  std::sort(spec.end_of_generation.begin(), spec.end_of_generation.end());
  spec.end_of_generation.erase(
      std::unique(spec.end_of_generation.begin(), spec.end_of_generation.end()),
      spec.end_of_generation.end());
  return spec;
}

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '", path.string(), "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read '", path.string(), "'");
  return text;
}

inline TokenizerSpec tokenizer_spec_from_json(const std::filesystem::path& tokenizer_json,
                                              const std::filesystem::path& tokenizer_config_json) {
  const std::string text = read_text_file(tokenizer_json);
  const std::string config =
      tokenizer_config_json.empty() ? std::string() : read_text_file(tokenizer_config_json);
  return tokenizer_spec_from_json_text(text, config, tokenizer_json.string(),
                                       tokenizer_config_json.string());
}

}  // namespace floatllm
