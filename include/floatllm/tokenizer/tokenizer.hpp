// Text <-> token ids for the models floatllm runs, from a GGUF file's own vocabulary or from a
// Hugging Face tokenizer.json.
//
// Encoding: added/special tokens are cut out of the raw text first (leftmost, longest match);
// every stretch between them is normalized, pre-tokenized into words and BPE-encoded word by
// word (with a cache of recent words). Decoding concatenates what each token stands for, so
// decode(encode(text)) gives the text back for lossless vocabularies.
#pragma once

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/tokenizer/bpe.hpp"
#include "floatllm/tokenizer/byte_level.hpp"
#include "floatllm/tokenizer/gguf_tokenizer.hpp"
#include "floatllm/tokenizer/sentencepiece_model.hpp"
#include "floatllm/tokenizer/tokenizer_json.hpp"
#include "floatllm/tokenizer/tokenizer_spec.hpp"
#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm {

struct EncodeOptions {
  bool add_special = true;    // add the BOS/EOS (or template) tokens the tokenizer asks for
  bool parse_special = true;  // turn the text of control tokens ("<|im_end|>") into those tokens
};

class Tokenizer {
 public:
  static constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space

  explicit Tokenizer(TokenizerSpec spec)
      : source_(std::move(spec.source)),
        model_name_(std::move(spec.model)),
        pre_name_(std::move(spec.pre)),
        model_(spec),
        normalizer_(std::move(spec.normalizer)),
        pre_tokenizer_(std::move(spec.pre_tokenizer)),
        added_(std::move(spec.added_tokens)),
        special_(spec.special),
        prefix_(std::move(spec.prefix)),
        suffix_(std::move(spec.suffix)),
        strip_prefix_space_(spec.decoder.strip_prefix_space),
        chat_template_(std::move(spec.chat_template)),
        cache_(std::make_unique<WordCache>()) {
    const std::size_t n = spec.tokens.size();
    for (int32_t id : spec.end_of_generation)
      check_spec_id(id, n, "end-of-generation token");
    for (int32_t id : prefix_)
      check_spec_id(id, n, "prefix token");
    for (int32_t id : suffix_)
      check_spec_id(id, n, "suffix token");
    for (const AddedToken& token : added_)
      check_spec_id(token.id, n, "added token");
    end_of_generation_.assign(n, false);
    for (int32_t id : spec.end_of_generation)
      end_of_generation_[id] = true;
    texts_.reserve(n);
    for (std::size_t id = 0; id < n; ++id)
      texts_.push_back(decoded_text(spec.tokens[id], spec.types[id], spec.decoder));
    split_at_space_marker_ = !spec.byte_level && pre_tokenizer_.empty() &&
                             no_token_joins_across_space_marker(spec.tokens, spec.types);
    tokens_ = std::move(spec.tokens);
    types_ = std::move(spec.types);
    index_added_tokens();
  }

  static Tokenizer from_gguf(const GgufFile& gguf) {
    return Tokenizer(tokenizer_spec_from_gguf(gguf));
  }

  static Tokenizer from_json(const std::filesystem::path& tokenizer_json,
                             const std::filesystem::path& tokenizer_config_json = {}) {
    return Tokenizer(tokenizer_spec_from_json(tokenizer_json, tokenizer_config_json));
  }

  // A SentencePiece tokenizer.model protobuf (BPE models with the identity normalizer).
  static Tokenizer from_sentencepiece(const std::filesystem::path& tokenizer_model) {
    return Tokenizer(tokenizer_spec_from_sentencepiece(read_text_file(tokenizer_model),
                                                       tokenizer_model.string()));
  }

  // A GGUF file, a tokenizer.json (with the tokenizer_config.json beside it, if any), a
  // SentencePiece .model, or a folder holding tokenizer.json or tokenizer.model.
  static Tokenizer from_file(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::is_directory(path)) {
      if (!fs::exists(path / "tokenizer.json") && fs::exists(path / "tokenizer.model")) {
        return from_sentencepiece(path / "tokenizer.model");
      }
      return from_json_with_config(path / "tokenizer.json");
    }
    if (path.extension() == ".json") return from_json_with_config(path);
    if (path.extension() == ".model") return from_sentencepiece(path);
    const GgufFile gguf(path);
    return from_gguf(gguf);
  }

  std::vector<int32_t> encode(std::string_view text, EncodeOptions options = {}) const {
    if (const auto bad = utf8::first_invalid(text)) {
      fail(source_, ": cannot encode text that is not valid UTF-8 (byte ", *bad, " of ",
           text.size(), ")");
    }
    if (text.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
      fail(source_, ": cannot encode ", text.size(), " bytes of text at once (at most 2 GiB)");
    }
    std::vector<int32_t> ids;
    if (options.add_special) ids = prefix_;
    EncodeScratch scratch;
    std::size_t at = 0;
    bool first = true;
    while (at < text.size()) {
      const auto match = find_added(text, at, options.parse_special);
      std::size_t text_end = match ? match->begin : text.size();
      if (match && added_[match->index].lstrip) {
        while (text_end > at && is_space(text[text_end - 1]))
          --text_end;
      }
      if (text_end > at)
        encode_text(text.substr(at, text_end - at), first && at == 0, ids, scratch);
      first = false;
      if (!match) break;
      ids.push_back(added_[match->index].id);
      at = match->end;
      if (added_[match->index].rstrip) {
        while (at < text.size() && is_space(text[at]))
          ++at;
      }
    }
    if (options.add_special) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
    return ids;
  }

  // The text of `ids`: control tokens contribute nothing (unless render_special), and the space
  // SentencePiece prepends is dropped from the first piece after a leading BOS.
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const {
    std::string text;
    const bool leading_bos = !ids.empty() && special_.bos && ids.front() == *special_.bos;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const int32_t id = ids[i];
      check_id(id);
      if (render_special && texts_[id].empty() && is_special_type(types_[id])) {
        text += tokens_[id];
        continue;
      }
      text += piece(id, leading_bos && i == 1);
    }
    return text;
  }

  // The vocabulary's own string for `id` (e.g. "▁Hello", "ĠHello", "<0x0A>", "<s>").
  std::string_view token_to_piece(int32_t id) const {
    check_id(id);
    return tokens_[id];
  }

  // The bytes `id` contributes to decoded text ("" for control tokens).
  std::string token_text(int32_t id) const {
    check_id(id);
    return texts_[id];
  }

  // What `id` adds to text at its position: token_text, less the dummy-prefix space when it is
  // the first token after a leading BOS.
  std::string_view piece(int32_t id, bool follows_leading_bos) const {
    check_id(id);
    std::string_view text = texts_[id];
    if (follows_leading_bos && strip_prefix_space_ && text.starts_with(' ')) text.remove_prefix(1);
    return text;
  }

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& source() const { return source_; }
  const std::string& model_name() const { return model_name_; }
  const std::string& pre_tokenizer_name() const { return pre_name_; }

  std::optional<int32_t> bos_id() const { return special_.bos; }
  std::optional<int32_t> eos_id() const { return special_.eos; }
  std::optional<int32_t> eot_id() const { return special_.eot; }
  std::optional<int32_t> eom_id() const { return special_.eom; }
  std::optional<int32_t> pad_id() const { return special_.pad; }
  std::optional<int32_t> unk_id() const { return special_.unk; }
  const SpecialTokenIds& special_ids() const { return special_; }

  bool add_bos() const {
    return special_.bos &&
           std::find(prefix_.begin(), prefix_.end(), *special_.bos) != prefix_.end();
  }
  bool add_eos() const {
    return special_.eos &&
           std::find(suffix_.begin(), suffix_.end(), *special_.eos) != suffix_.end();
  }
  const std::vector<int32_t>& prefix_ids() const { return prefix_; }
  const std::vector<int32_t>& suffix_ids() const { return suffix_; }

  bool is_end_of_generation(int32_t id) const {
    return id >= 0 && id < vocab_size() && end_of_generation_[id];
  }
  bool is_control(int32_t id) const { return type(id) == TokenType::Control; }
  TokenType type(int32_t id) const {
    check_id(id);
    return types_[id];
  }

  std::optional<std::string> chat_template() const { return chat_template_; }

 private:
  struct WordCache {
    static constexpr std::size_t kMaxWordBytes = 64;
    static constexpr std::size_t kMaxEntries = 1 << 18;
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
  };

  struct EncodeScratch {
    BpeScratch bpe;
    std::deque<std::string> storage;
    PreTokenizer::Pieces pieces;
  };

  struct AddedMatch {
    std::size_t index;
    std::size_t begin;
    std::size_t end;
  };

  static Tokenizer from_json_with_config(const std::filesystem::path& tokenizer_json) {
    const auto config = tokenizer_json.parent_path() / "tokenizer_config.json";
    return from_json(tokenizer_json,
                     std::filesystem::exists(config) ? config : std::filesystem::path());
  }

  // Whether no token has a space marker right after another character ("a▁b"). Then no merge
  // can join text across the start of a run of markers, so SentencePiece-style input (one long
  // "word") can be cut there into words that encode alike, independently and cacheably.
  static bool no_token_joins_across_space_marker(const std::vector<std::string>& tokens,
                                                 const std::vector<TokenType>& types) {
    for (std::size_t id = 0; id < tokens.size(); ++id) {
      if (types[id] != TokenType::Normal) continue;
      const std::string& text = tokens[id];
      for (std::size_t at = text.find(kSpaceMarker, 1); at != std::string::npos;
           at = text.find(kSpaceMarker, at + 1)) {
        if (!std::string_view(text).substr(0, at).ends_with(kSpaceMarker)) return false;
      }
    }
    return true;
  }

  static void check_spec_id(int32_t id, std::size_t n, std::string_view what) {
    if (id < 0 || static_cast<std::size_t>(id) >= n) {
      fail("tokenizer ", what, " id ", id, " is outside the vocabulary of ", n, " tokens");
    }
  }

  void check_id(int32_t id) const {
    if (id < 0 || id >= vocab_size()) {
      fail(source_, ": token id ", id, " is outside the vocabulary of ", tokens_.size(), " tokens");
    }
  }

  static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  }

  static bool is_special_type(TokenType type) {
    return type == TokenType::Control || type == TokenType::Unknown;
  }

  static bool is_word_byte(char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x80 || std::isalnum(byte) || c == '_';
  }

  static std::string decoded_text(const std::string& token, TokenType type,
                                  const DecoderSpec& decoder) {
    switch (type) {
      case TokenType::Control:
      case TokenType::Unknown:
      case TokenType::Unused:
      case TokenType::Undefined:
        return {};
      case TokenType::UserDefined:
        return token;
      case TokenType::Byte:
        if (decoder.byte_fallback && token.size() == 6 && token.starts_with("<0x") &&
            token.back() == '>') {
          const auto hex = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
          };
          const int high = hex(token[3]);
          const int low = hex(token[4]);
          if (high >= 0 && low >= 0) return std::string(1, static_cast<char>(high * 16 + low));
        }
        break;
      case TokenType::Normal:
        break;
    }
    std::string text = token;
    if (decoder.byte_level) {
      if (auto raw = byte_level::decode(token)) text = std::move(*raw);
    }
    for (const auto& [from, to] : decoder.replacements)
      text = Normalizer::replace_all(text, from, to);
    return text;
  }

  void index_added_tokens() {
    for (auto& list : added_by_first_byte_)
      list.clear();
    for (std::size_t i = 0; i < added_.size(); ++i) {
      if (added_[i].content.empty()) continue;
      added_by_first_byte_[static_cast<unsigned char>(added_[i].content[0])].push_back(i);
    }
    for (auto& list : added_by_first_byte_) {
      std::stable_sort(list.begin(), list.end(), [&](std::size_t a, std::size_t b) {
        return added_[a].content.size() > added_[b].content.size();
      });
    }
  }

  // The leftmost added token in text[from...], the longest one where several start there.
  std::optional<AddedMatch> find_added(std::string_view text, std::size_t from,
                                       bool parse_special) const {
    for (std::size_t at = from; at < text.size(); ++at) {
      for (std::size_t index : added_by_first_byte_[static_cast<unsigned char>(text[at])]) {
        const AddedToken& token = added_[index];
        if (token.special && !parse_special) continue;
        if (text.compare(at, token.content.size(), token.content) != 0) continue;
        const std::size_t end = at + token.content.size();
        if (token.single_word && ((at > 0 && is_word_byte(text[at - 1])) ||
                                  (end < text.size() && is_word_byte(text[end])))) {
          continue;
        }
        return AddedMatch{index, at, end};
      }
    }
    return std::nullopt;
  }

  void encode_text(std::string_view text, bool at_input_start, std::vector<int32_t>& ids,
                   EncodeScratch& scratch) const {
    std::string normalized;
    std::string_view input = text;
    if (!normalizer_.empty()) {
      normalized = normalizer_.apply(text);
      input = normalized;
    }
    scratch.storage.clear();
    if (split_at_space_marker_) {
      scratch.pieces.clear();
      std::size_t start = 0;
      for (std::size_t at = input.find(kSpaceMarker, 1); at != std::string_view::npos;
           at = input.find(kSpaceMarker, at + kSpaceMarker.size())) {
        if (input.substr(0, at).ends_with(kSpaceMarker)) continue;
        scratch.pieces.push_back(input.substr(start, at - start));
        start = at;
      }
      scratch.pieces.push_back(input.substr(start));
    } else if (pre_tokenizer_.empty()) {
      scratch.pieces.assign(1, input);
    } else {
      pre_tokenizer_.split(input, at_input_start, scratch.storage, scratch.pieces);
    }
    for (std::string_view word : scratch.pieces)
      encode_word(word, ids, scratch);
  }

  void encode_word(std::string_view word, std::vector<int32_t>& ids, EncodeScratch& scratch) const {
    if (word.size() > WordCache::kMaxWordBytes) {
      model_.encode_word(word, ids, scratch.bpe);
      return;
    }
    {
      std::lock_guard lock(cache_->mutex);
      if (const auto it = cache_->words.find(word); it != cache_->words.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const std::size_t start = ids.size();
    model_.encode_word(word, ids, scratch.bpe);
    std::lock_guard lock(cache_->mutex);
    if (cache_->words.size() >= WordCache::kMaxEntries) cache_->words.clear();
    cache_->words.try_emplace(std::string(word), ids.begin() + static_cast<std::ptrdiff_t>(start),
                              ids.end());
  }

  std::string source_;
  std::string model_name_;
  std::string pre_name_;
  BpeModel model_;
  Normalizer normalizer_;
  PreTokenizer pre_tokenizer_;
  std::vector<AddedToken> added_;
  std::array<std::vector<std::size_t>, 256> added_by_first_byte_;
  SpecialTokenIds special_;
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
  bool strip_prefix_space_ = false;
  bool split_at_space_marker_ = false;
  std::optional<std::string> chat_template_;
  std::vector<std::string> tokens_;
  std::vector<TokenType> types_;
  std::vector<std::string> texts_;
  std::vector<bool> end_of_generation_;
  std::unique_ptr<WordCache> cache_;
};

// Feeds ids one at a time during generation and returns only complete UTF-8 text: the bytes of
// a character that byte tokens spell across several steps are held back until it is whole.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(&tokenizer) {}

  std::string push(int32_t id) {
    const bool follows_leading_bos = count_ == 1 && leading_bos_;
    if (count_ == 0) leading_bos_ = tokenizer_->bos_id() && id == *tokenizer_->bos_id();
    ++count_;
    pending_ += tokenizer_->piece(id, follows_leading_bos);
    const std::size_t ready = utf8::complete_prefix_length(pending_);
    std::string out = pending_.substr(0, ready);
    pending_.erase(0, ready);
    return out;
  }

  // Whatever is still held back (an incomplete character at the end of generation).
  std::string flush() { return std::exchange(pending_, {}); }

 private:
  const Tokenizer* tokenizer_;
  std::string pending_;
  std::size_t count_ = 0;
  bool leading_bos_ = false;
};

}  // namespace floatllm
