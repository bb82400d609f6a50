// Reads a SentencePiece tokenizer.model (a ModelProto protobuf) of type BPE: the pieces with
// their scores and types, the special ids of its trainer_spec, and add_dummy_prefix. It becomes
// the same tokenizer as GGUF's model "llama", which llama.cpp converts from this file.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "floatllm/core/error.hpp"
#include "floatllm/tokenizer/tokenizer_spec.hpp"

namespace floatllm {

namespace sentencepiece_detail {

// A protobuf message's bytes, read field by field; every length is checked.
class ProtoReader {
 public:
  ProtoReader(std::string_view bytes, const std::string& source, std::string_view message)
      : bytes_(bytes), source_(source), message_(message) {}

  bool done() const { return at_ >= bytes_.size(); }

  // The next field's number and wire type.
  std::pair<uint32_t, uint32_t> key() {
    const uint64_t key = varint();
    if ((key >> 3) > 0xFFFFFFFFu) error("field number out of range");
    return {static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7)};
  }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (at_ >= bytes_.size()) error("truncated varint");
      const auto byte = static_cast<unsigned char>(bytes_[at_++]);
      value |= uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
    error("varint longer than 10 bytes");
  }

  std::string_view bytes() {
    const uint64_t length = varint();
    if (length > bytes_.size() - at_) error("length-delimited field runs past the end");
    const std::string_view field = bytes_.substr(at_, length);
    at_ += length;
    return field;
  }

  float fixed32_float() {
    if (bytes_.size() - at_ < 4) error("truncated fixed32");
    float value;
    std::memcpy(&value, bytes_.data() + at_, 4);
    at_ += 4;
    return value;
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        return;
      case 1:
        advance(8);
        return;
      case 2:
        bytes();
        return;
      case 5:
        advance(4);
        return;
      default:
        error(concat("unsupported wire type ", wire_type));
    }
  }

  [[noreturn]] void error(std::string_view what) const {
    fail(source_, ": SentencePiece model ", message_, " at byte ", at_, ": ", what);
  }

 private:
  void advance(std::size_t count) {
    if (bytes_.size() - at_ < count) error("truncated field");
    at_ += count;
  }

  std::string_view bytes_;
  const std::string& source_;
  std::string_view message_;
  std::size_t at_ = 0;
};

inline std::optional<int32_t> id_field(ProtoReader& in, std::size_t vocab_size) {
  const auto value = static_cast<int64_t>(in.varint());
  if (value < 0 || static_cast<uint64_t>(value) >= vocab_size) return std::nullopt;
  return static_cast<int32_t>(value);
}

}  // namespace sentencepiece_detail

inline TokenizerSpec tokenizer_spec_from_sentencepiece(std::string_view model, std::string source) {
  using sentencepiece_detail::ProtoReader;
  TokenizerSpec spec;
  spec.source = source;
  spec.model = "llama";
  std::string_view trainer;
  std::string_view normalizer;
  ProtoReader in(model, spec.source, "ModelProto");
  while (!in.done()) {
    const auto [field, wire] = in.key();
    if (field == 1 && wire == 2) {
      ProtoReader piece(in.bytes(), spec.source, "SentencePiece");
      std::string text;
      float score = 0;
      TokenType type = TokenType::Normal;
      while (!piece.done()) {
        const auto [piece_field, piece_wire] = piece.key();
        if (piece_field == 1 && piece_wire == 2) {
          text = std::string(piece.bytes());
        } else if (piece_field == 2 && piece_wire == 5) {
          score = piece.fixed32_float();
        } else if (piece_field == 3 && piece_wire == 0) {
          const uint64_t value = piece.varint();
          type = value >= 1 && value <= 6 ? static_cast<TokenType>(value) : TokenType::Undefined;
        } else {
          piece.skip(piece_wire);
        }
      }
      spec.tokens.push_back(std::move(text));
      spec.scores.push_back(score);
      spec.types.push_back(type);
    } else if (field == 2 && wire == 2) {
      trainer = in.bytes();
    } else if (field == 3 && wire == 2) {
      normalizer = in.bytes();
    } else {
      in.skip(wire);
    }
  }
  const std::size_t n = spec.tokens.size();
  if (n == 0) in.error("holds no pieces");

  // trainer_spec: model_type (3; BPE = 2), unk/bos/eos/pad ids (40-43).
  SpecialTokenIds& ids = spec.special;
  uint64_t model_type = 1;
  ProtoReader trainer_in(trainer, spec.source, "TrainerSpec");
  ids.unk = 0;
  ids.bos = n > 1 ? std::optional<int32_t>(1) : std::nullopt;
  ids.eos = n > 2 ? std::optional<int32_t>(2) : std::nullopt;
  while (!trainer_in.done()) {
    const auto [field, wire] = trainer_in.key();
    if (wire != 0) {
      trainer_in.skip(wire);
    } else if (field == 3) {
      model_type = trainer_in.varint();
    } else if (field == 40) {
      ids.unk = sentencepiece_detail::id_field(trainer_in, n);
    } else if (field == 41) {
      ids.bos = sentencepiece_detail::id_field(trainer_in, n);
    } else if (field == 42) {
      ids.eos = sentencepiece_detail::id_field(trainer_in, n);
    } else if (field == 43) {
      ids.pad = sentencepiece_detail::id_field(trainer_in, n);
    } else {
      trainer_in.skip(wire);
    }
  }
  if (model_type != 2) {
    fail(spec.source, ": unsupported SentencePiece model type ", model_type, " (only BPE, 2)");
  }

  // normalizer_spec: name (1), add_dummy_prefix (3, default true).
  bool add_dummy_prefix = true;
  ProtoReader normalizer_in(normalizer, spec.source, "NormalizerSpec");
  while (!normalizer_in.done()) {
    const auto [field, wire] = normalizer_in.key();
    if (field == 1 && wire == 2) {
      const std::string_view name = normalizer_in.bytes();
      if (name != "identity") {
        fail(spec.source, ": unsupported SentencePiece normalizer '", name, "' (only 'identity')");
      }
    } else if (field == 3 && wire == 0) {
      add_dummy_prefix = normalizer_in.varint() != 0;
    } else {
      normalizer_in.skip(wire);
    }
  }

  spec.merge_rule = MergeRule::ByScore;
  spec.byte_fallback = true;
  if (ids.bos) spec.prefix.push_back(*ids.bos);
  if (ids.eos) spec.end_of_generation.push_back(*ids.eos);
  const std::string marker = "\xE2\x96\x81";
  if (add_dummy_prefix) {
    NormalizerStep prepend;
    prepend.kind = NormalizerStep::Kind::Prepend;
    prepend.text = marker;
    spec.normalizer.add(std::move(prepend));
  }
  NormalizerStep escape_spaces;
  escape_spaces.kind = NormalizerStep::Kind::Replace;
  escape_spaces.text = " ";
  escape_spaces.content = marker;
  spec.normalizer.add(std::move(escape_spaces));
  spec.decoder.replacements.emplace_back(marker, " ");
  spec.decoder.byte_fallback = true;
  spec.decoder.strip_prefix_space = add_dummy_prefix;
  for (std::size_t id = 0; id < n; ++id) {
    const TokenType type = spec.types[id];
    if ((type != TokenType::Control && type != TokenType::UserDefined &&
         type != TokenType::Unknown) ||
        spec.tokens[id].empty()) {
      continue;
    }
    spec.added_tokens.push_back({.id = static_cast<int32_t>(id),
                                 .content = spec.tokens[id],
                                 .special = type != TokenType::UserDefined,
                                 .lstrip = false,
                                 .rstrip = false,
                                 .single_word = false});
  }
  return spec;
}

}  // namespace floatllm
