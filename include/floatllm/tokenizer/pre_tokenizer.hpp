// Pre-tokenization: cutting normalized text into the words that BPE then encodes one by one.
// A pipeline of steps, each applied to every piece the previous steps produced, as Hugging
// Face's pre-tokenizer Sequence and llama.cpp's list of regexes both work.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/tokenizer/normalizer.hpp"
#include "floatllm/tokenizer/regex.hpp"

namespace floatllm {

// What a Split step does with the pieces its pattern matches (the "delimiters"): keep them as
// pieces of their own, drop them, glue them to a neighbour, or join runs of them.
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

enum class PrependScheme { Always, First, Never };

struct PreTokenizerStep {
  enum class Kind { Split, PrefixSpace, Metaspace };
  Kind kind = Kind::Split;
  // Split: a regex, or a literal when `regex` is null.
  std::shared_ptr<const Regex> regex;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // Metaspace: spaces become `replacement`, which is prepended per `prepend` and split before.
  std::string replacement;
  PrependScheme prepend = PrependScheme::Always;
  bool split_on_replacement = true;
};

class PreTokenizer {
 public:
  using Pieces = std::vector<std::string_view>;

  void add(PreTokenizerStep step) { steps_.push_back(std::move(step)); }
  bool empty() const { return steps_.empty(); }

  // Splits `text` (one stretch between added tokens; `at_input_start` if it begins the input).
  // Returned pieces view `text` or strings kept in `storage`.
  void split(std::string_view text, bool at_input_start, std::deque<std::string>& storage,
             Pieces& pieces) const {
    pieces.clear();
    if (!text.empty()) pieces.push_back(text);
    Pieces next;
    for (const PreTokenizerStep& step : steps_) {
      next.clear();
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        const bool first = at_input_start && i == 0 && pieces[i].data() == text.data();
        apply(step, pieces[i], first, storage, next);
      }
      pieces.swap(next);
    }
  }

 private:
  struct Span {
    std::size_t begin;
    std::size_t end;
    bool delimiter;
  };

  static void apply(const PreTokenizerStep& step, std::string_view piece, bool first,
                    std::deque<std::string>& storage, Pieces& out) {
    switch (step.kind) {
      case PreTokenizerStep::Kind::Split:
        split_piece(step, piece, out);
        return;
      case PreTokenizerStep::Kind::PrefixSpace:
        if (!piece.empty() && piece.front() != ' ') {
          storage.push_back(" " + std::string(piece));
          out.push_back(storage.back());
        } else if (!piece.empty()) {
          out.push_back(piece);
        }
        return;
      case PreTokenizerStep::Kind::Metaspace: {
        std::string replaced = Normalizer::replace_all(piece, " ", step.replacement);
        const bool prepend = step.prepend == PrependScheme::Always ||
                             (step.prepend == PrependScheme::First && first);
        if (prepend && !replaced.starts_with(step.replacement)) {
          replaced.insert(0, step.replacement);
        }
        storage.push_back(std::move(replaced));
        const std::string_view text = storage.back();
        if (!step.split_on_replacement) {
          if (!text.empty()) out.push_back(text);
          return;
        }
        // Each replacement character starts a new piece (Hugging Face's MergedWithNext).
        std::size_t start = 0;
        for (std::size_t found = text.find(step.replacement, 1);
             found != std::string_view::npos && !step.replacement.empty();
             found = text.find(step.replacement, found + step.replacement.size())) {
          if (found > start) out.push_back(text.substr(start, found - start));
          start = found;
        }
        if (start < text.size()) out.push_back(text.substr(start));
        return;
      }
    }
  }

  static void split_piece(const PreTokenizerStep& step, std::string_view piece, Pieces& out) {
    std::vector<Span> spans;
    std::size_t at = 0;
    auto on_match = [&](std::size_t begin, std::size_t end) {
      if (begin > at) spans.push_back({at, begin, false});
      spans.push_back({begin, end, true});
      at = end;
    };
    if (step.regex) {
      step.regex->for_each_match(piece, on_match);
    } else if (!step.literal.empty()) {
      for (std::size_t found = piece.find(step.literal, at); found != std::string_view::npos;
           found = piece.find(step.literal, at)) {
        on_match(found, found + step.literal.size());
      }
    }
    if (at < piece.size()) spans.push_back({at, piece.size(), false});
    if (step.invert) {
      for (Span& span : spans)
        span.delimiter = !span.delimiter;
    }

    auto emit = [&](std::size_t begin, std::size_t end) {
      if (end > begin) out.push_back(piece.substr(begin, end - begin));
    };
    switch (step.behavior) {
      case SplitBehavior::Isolated:
        for (const Span& span : spans)
          emit(span.begin, span.end);
        break;
      case SplitBehavior::Removed:
        for (const Span& span : spans) {
          if (!span.delimiter) emit(span.begin, span.end);
        }
        break;
      case SplitBehavior::Contiguous: {
        std::size_t i = 0;
        while (i < spans.size()) {
          std::size_t j = i + 1;
          if (spans[i].delimiter) {
            while (j < spans.size() && spans[j].delimiter)
              ++j;
          }
          emit(spans[i].begin, spans[j - 1].end);
          i = j;
        }
        break;
      }
      case SplitBehavior::MergedWithPrevious: {
        std::size_t start = 0;
        for (const Span& span : spans) {
          if (span.delimiter) {
            emit(start, span.end);
            start = span.end;
          }
        }
        emit(start, piece.size());
        break;
      }
      case SplitBehavior::MergedWithNext: {
        std::size_t start = 0;
        for (const Span& span : spans) {
          if (span.delimiter) {
            emit(start, span.begin);
            start = span.begin;
          }
        }
        emit(start, piece.size());
        break;
      }
    }
  }

  std::vector<PreTokenizerStep> steps_;
};

inline PreTokenizerStep regex_split(std::string_view pattern, std::string_view what,
                                    SplitBehavior behavior = SplitBehavior::Isolated,
                                    bool invert = false) {
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::Split;
  step.regex = std::make_shared<const Regex>(pattern, what);
  step.behavior = behavior;
  step.invert = invert;
  return step;
}

// GPT-2's pattern, which Hugging Face's ByteLevel pre-tokenizer applies when use_regex is set.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace floatllm
