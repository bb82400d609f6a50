// Byte-pair encoding of one pre-tokenized word.
//
// The word starts as one symbol per character (per byte for byte-level vocabularies); the best
// adjacent pair is merged until none can be. "Best" is the lowest merge rank (GPT-2 style) or
// the highest score of the merged token (SentencePiece style), the leftmost pair on ties. A heap
// of candidate pairs keeps this O(n log n) in the word length; stale candidates are recognised
// by the lengths of their two symbols, which only ever grow.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/tokenizer/byte_level.hpp"
#include "floatllm/tokenizer/tokenizer_spec.hpp"
#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const {
    return std::hash<std::string_view>{}(text);
  }
};

using StringToId = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// Working memory of one encode call, reused across its words.
struct BpeScratch {
  struct Symbol {
    uint32_t start;
    uint32_t length;
    int32_t id;  // -1 when the symbol's text is not a token
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    double priority;  // lower merges first
    int32_t left;
    int32_t right;
    uint32_t left_length;
    uint32_t right_length;
    int32_t merged;
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
};

class BpeModel {
 public:
  BpeModel() = default;

  explicit BpeModel(const TokenizerSpec& spec)
      : rule_(spec.merge_rule),
        byte_level_(spec.byte_level),
        byte_fallback_(spec.byte_fallback),
        ignore_merges_(spec.ignore_merges),
        fuse_unk_(spec.fuse_unk),
        unk_(spec.special.unk) {
    const std::size_t n = spec.tokens.size();
    lookup_.reserve(n);
    for (std::size_t id = 0; id < n; ++id) {
      const TokenType type = spec.types[id];
      if (type != TokenType::Normal && type != TokenType::UserDefined && type != TokenType::Byte) {
        continue;
      }
      const std::string& text = spec.tokens[id];
      if (text.empty()) continue;
      if (byte_level_ && type != TokenType::UserDefined) {
        // Byte-level words are raw bytes, so tokens are looked up by the bytes they spell.
        if (auto raw = byte_level::decode(text)) lookup_.try_emplace(std::move(*raw), id);
      } else {
        lookup_.try_emplace(text, static_cast<int32_t>(id));
      }
      if (rule_ == MergeRule::ByScore && type == TokenType::Normal) {
        mergeable_.try_emplace(text, static_cast<int32_t>(id));
      }
    }
    if (rule_ == MergeRule::ByScore) scores_ = spec.scores;

    byte_ids_.fill(-1);
    for (unsigned byte = 0; byte < 256; ++byte) {
      if (byte_level_) {
        if (auto it = lookup_.find(std::string(1, static_cast<char>(byte))); it != lookup_.end())
          byte_ids_[byte] = it->second;
      } else if (byte_fallback_) {
        static constexpr char kHex[] = "0123456789ABCDEF";
        const std::string name{'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
        if (auto it = lookup_.find(name); it != lookup_.end()) byte_ids_[byte] = it->second;
      }
    }

    if (rule_ == MergeRule::ByRank) {
      // Merge lists spell tokens as the vocabulary does, so they resolve by the vocabulary's own
      // strings (for byte-level models this skips decoding every merge).
      std::unordered_map<std::string_view, int32_t> spelled;
      if (byte_level_) {
        spelled.reserve(n);
        for (std::size_t id = 0; id < n; ++id) {
          const TokenType type = spec.types[id];
          if (type == TokenType::Normal || type == TokenType::Byte) {
            spelled.try_emplace(spec.tokens[id], static_cast<int32_t>(id));
          }
        }
      }
      auto resolve = [&](std::string_view text) -> std::optional<int32_t> {
        if (!byte_level_) return find(text);
        const auto it = spelled.find(text);
        if (it == spelled.end()) return std::nullopt;
        return it->second;
      };
      merges_.reserve(spec.merges.size());
      int32_t rank = 0;
      std::string joined;
      for (const auto& [left, right] : spec.merges) {
        joined.assign(left).append(right);
        const auto left_id = resolve(left);
        const auto right_id = resolve(right);
        const auto merged_id = resolve(joined);
        // A merge of strings that are not tokens can never fire; skipping it changes nothing.
        if (left_id && right_id && merged_id) {
          merges_.try_emplace(pair_key(*left_id, *right_id), Merge{rank, *merged_id});
        }
        ++rank;
      }
    }
  }

  std::optional<int32_t> find(std::string_view text) const {
    const auto it = lookup_.find(text);
    if (it == lookup_.end()) return std::nullopt;
    return it->second;
  }

  // Appends the tokens of `word` (raw bytes for byte-level models) to `out`.
  void encode_word(std::string_view word, std::vector<int32_t>& out, BpeScratch& scratch) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      if (auto id = find(word)) {
        out.push_back(*id);
        return;
      }
    }
    auto& symbols = scratch.symbols;
    auto& heap = scratch.heap;
    symbols.clear();
    heap.clear();
    for (std::size_t at = 0; at < word.size();) {
      const std::size_t length = byte_level_ ? 1 : utf8::char_length(word, at);
      int32_t id = -1;
      if (byte_level_) {
        id = byte_ids_[static_cast<unsigned char>(word[at])];
      } else if (auto found = find(word.substr(at, length))) {
        id = *found;
      }
      const auto index = static_cast<int32_t>(symbols.size());
      symbols.push_back({static_cast<uint32_t>(at), static_cast<uint32_t>(length), id, index - 1,
                         at + length < word.size() ? index + 1 : -1});
      at += length;
    }
    for (std::size_t i = 1; i < symbols.size(); ++i)
      consider(word, static_cast<int32_t>(i - 1), static_cast<int32_t>(i), scratch);

    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), Later{});
      const BpeScratch::Candidate top = heap.back();
      heap.pop_back();
      auto& left = symbols[top.left];
      auto& right = symbols[top.right];
      if (left.length != top.left_length || right.length != top.right_length ||
          left.next != top.right) {
        continue;
      }
      left.length += right.length;
      left.id = top.merged;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = top.left;
      if (left.prev >= 0) consider(word, left.prev, top.left, scratch);
      if (left.next >= 0) consider(word, top.left, left.next, scratch);
    }

    bool last_was_unk = false;
    for (int32_t i = 0; i >= 0; i = symbols[i].next) {
      const auto& symbol = symbols[i];
      if (symbol.id >= 0) {
        out.push_back(symbol.id);
        last_was_unk = false;
        continue;
      }
      const std::string_view text = word.substr(symbol.start, symbol.length);
      if (byte_fallback_ && std::all_of(text.begin(), text.end(), [&](char c) {
            return byte_ids_[static_cast<unsigned char>(c)] >= 0;
          })) {
        for (char c : text)
          out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        last_was_unk = false;
      } else if (unk_) {
        if (!(fuse_unk_ && last_was_unk)) out.push_back(*unk_);
        last_was_unk = true;
      }
      // Without byte tokens or an unknown token there is nothing to emit (as llama.cpp does).
    }
  }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };

  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
  }

  struct Later {
    bool operator()(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) const {
      return a.priority > b.priority || (a.priority == b.priority && a.left > b.left);
    }
  };

  void consider(std::string_view word, int32_t left, int32_t right, BpeScratch& scratch) const {
    const auto& l = scratch.symbols[left];
    const auto& r = scratch.symbols[right];
    double priority = 0;
    int32_t merged = -1;
    if (rule_ == MergeRule::ByRank) {
      if (l.id < 0 || r.id < 0) return;
      const auto it = merges_.find(pair_key(l.id, r.id));
      if (it == merges_.end()) return;
      priority = it->second.rank;
      merged = it->second.id;
    } else {
      const auto it = mergeable_.find(word.substr(l.start, l.length + r.length));
      if (it == mergeable_.end()) return;
      merged = it->second;
      priority = -static_cast<double>(scores_[static_cast<std::size_t>(merged)]);
    }
    scratch.heap.push_back({priority, left, right, l.length, r.length, merged});
    std::push_heap(scratch.heap.begin(), scratch.heap.end(), Later{});
  }

  MergeRule rule_ = MergeRule::ByRank;
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool fuse_unk_ = false;
  std::optional<int32_t> unk_;
  StringToId lookup_;
  StringToId mergeable_;
  std::vector<float> scores_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::array<int32_t, 256> byte_ids_{};
};

}  // namespace floatllm
