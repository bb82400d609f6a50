// A Jinja2 interpreter for the subset chat templates use: `Template` parses once and renders
// with a context of values. Semantics follow Jinja2 as HF transformers configures it
// (trim_blocks, lstrip_blocks, loop controls, its `tojson`), and every render runs under hard
// limits on output size, loop iterations, work and call depth, so a hostile template fails with
// an error instead of hanging or exhausting memory.
#pragma once

#include <utf8proc.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "floatllm/chat/jinja_lexer.hpp"
#include "floatllm/chat/jinja_parser.hpp"
#include "floatllm/chat/jinja_value.hpp"

namespace floatllm::jinja {

struct JinjaLimits {
  size_t max_output_bytes = size_t{16} << 20;  // also the largest string a render may build
  uint64_t max_loop_iterations = 1'000'000;    // over all loops of one render, and range() sizes
  uint64_t max_work = 500'000'000;             // evaluation steps plus bytes built
  int max_call_depth = 64;                     // macro calls inside macro calls
  int max_nesting = 128;                       // blocks and expressions inside each other
  int max_expression_depth = 256;              // depth of one expression's tree
  int max_eval_depth = 600;                    // statements and expressions being evaluated
};

namespace text {

inline size_t char_length(std::string_view s, size_t at) {
  const size_t n = utf8::valid_sequence_at(s, at);
  return n == 0 ? 1 : n;
}

// Offsets of every code point (an invalid byte counts as one) and, last, the string's size.
inline std::vector<size_t> char_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  for (size_t at = 0; at < s.size(); at += char_length(s, at))
    offsets.push_back(at);
  offsets.push_back(s.size());
  return offsets;
}

inline size_t char_count(std::string_view s) {
  size_t count = 0;
  for (size_t at = 0; at < s.size(); at += char_length(s, at))
    ++count;
  return count;
}

enum class Case { Upper, Lower };

inline void append_cased(std::string& out, std::string_view s, size_t at, size_t length, Case c) {
  if (length == 1 && static_cast<unsigned char>(s[at]) >= 0x80) {
    out += s[at];  // an invalid byte stays as it is
    return;
  }
  size_t cursor = at;
  const char32_t code = utf8::decode(s, cursor);
  const auto mapped = c == Case::Upper ? utf8proc_toupper(static_cast<utf8proc_int32_t>(code))
                                       : utf8proc_tolower(static_cast<utf8proc_int32_t>(code));
  utf8::append(out, static_cast<char32_t>(mapped));
}

inline std::string convert_case(std::string_view s, Case c) {
  std::string out;
  out.reserve(s.size());
  for (size_t at = 0; at < s.size();) {
    const size_t n = char_length(s, at);
    append_cased(out, s, at, n, c);
    at += n;
  }
  return out;
}

inline bool is_cased_letter(std::string_view s, size_t at, size_t length) {
  if (length == 1 && static_cast<unsigned char>(s[at]) >= 0x80) return false;
  size_t cursor = at;
  const auto code = static_cast<utf8proc_int32_t>(utf8::decode(s, cursor));
  return utf8proc_toupper(code) != code || utf8proc_tolower(code) != code;
}

// Python's str.capitalize: first character upper, the rest lower.
inline std::string capitalize(std::string_view s) {
  std::string out;
  for (size_t at = 0; at < s.size();) {
    const size_t n = char_length(s, at);
    append_cased(out, s, at, n, at == 0 ? Case::Upper : Case::Lower);
    at += n;
  }
  return out;
}

// Python's str.title: a cased character after an uncased one starts a word.
inline std::string python_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (size_t at = 0; at < s.size();) {
    const size_t n = char_length(s, at);
    const bool cased = is_cased_letter(s, at, n);
    append_cased(out, s, at, n, previous_cased ? Case::Lower : Case::Upper);
    previous_cased = cased;
    at += n;
  }
  return out;
}

// Jinja's title filter: words start after whitespace, '-', '(', '{', '[' or '<'.
inline std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (size_t at = 0; at < s.size();) {
    const size_t n = char_length(s, at);
    const char c = s[at];
    const bool separator =
        n == 1 && (std::string_view(" \t\n\r\v\f-({[<").find(c) != std::string_view::npos);
    if (separator) {
      out += c;
      word_start = true;
    } else {
      append_cased(out, s, at, n, word_start ? Case::Upper : Case::Lower);
      word_start = false;
    }
    at += n;
  }
  return out;
}

inline bool is_python_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
         (c >= '\x1c' && c <= '\x1f');
}

// str.strip / lstrip / rstrip: whitespace, or any code point of `chars`.
inline std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<std::string_view> set;
  if (chars != nullptr) {
    for (size_t at = 0; at < chars->size();) {
      const size_t n = char_length(*chars, at);
      set.push_back(std::string_view(*chars).substr(at, n));
      at += n;
    }
  }
  const auto strippable = [&](std::string_view piece) {
    if (chars == nullptr) return piece.size() == 1 && is_python_space(piece[0]);
    return std::find(set.begin(), set.end(), piece) != set.end();
  };
  const std::vector<size_t> offsets = char_offsets(s);
  size_t first = 0, last = offsets.size() - 1;
  if (left) {
    while (first < last &&
           strippable(s.substr(offsets[first], offsets[first + 1] - offsets[first])))
      ++first;
  }
  if (right) {
    while (last > first &&
           strippable(s.substr(offsets[last - 1], offsets[last] - offsets[last - 1])))
      --last;
  }
  return std::string(s.substr(offsets[first], offsets[last] - offsets[first]));
}

}  // namespace text

class Renderer {
 public:
  Renderer(const JinjaLimits& limits, std::string& out) : limits_(limits), out_(&out) {
    frames_.push_back({});
  }

  void define(std::string name, Value value) {
    frames_[0].variables.emplace_back(std::move(name), std::move(value));
  }

  void render_body(const Body& body) {
    for (const auto& stmt : body) {
      render(*stmt);
      if (control_ != Control::None) return;
    }
  }

 private:
  enum class Control { None, Break, Continue };

  struct Frame {
    std::vector<std::pair<std::string, Value>> variables;
    size_t parent = 0;
  };

  // Restores the frame stack when a scope ends, also by exception.
  class Scope {
   public:
    Scope(Renderer& renderer, size_t parent) : renderer_(renderer), saved_(renderer.current_) {
      renderer_.frames_.push_back({{}, parent});
      renderer_.current_ = renderer_.frames_.size() - 1;
    }
    ~Scope() {
      renderer_.frames_.pop_back();
      renderer_.current_ = saved_;
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Renderer& renderer_;
    size_t saved_;
  };

  // Sends output to a local buffer while it lives (macro bodies, set blocks).
  class Capture {
   public:
    explicit Capture(Renderer& renderer) : renderer_(renderer), saved_(renderer.out_) {
      renderer_.out_ = &buffer;
    }
    ~Capture() { renderer_.out_ = saved_; }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;
    std::string buffer;

   private:
    Renderer& renderer_;
    std::string* saved_;
  };

  void charge(uint64_t units) {
    work_ += units;
    if (work_ > limits_.max_work)
      fail("template exceeded its work limit of ", limits_.max_work, " steps");
  }

  void check_string_size(size_t size) {
    if (size > limits_.max_output_bytes)
      fail("template built a string of ", size, " bytes, over the limit of ",
           limits_.max_output_bytes);
    charge(size);
  }

  Value make_string(std::string s) {
    check_string_size(s.size());
    return Value(std::move(s));
  }

  void emit(std::string_view s) {
    if (out_->size() + s.size() > limits_.max_output_bytes)
      fail("template output exceeds the limit of ", limits_.max_output_bytes, " bytes");
    charge(s.size());
    out_->append(s);
  }

  void count_iteration() {
    if (++loop_iterations_ > limits_.max_loop_iterations)
      fail("template exceeded the loop iteration limit of ", limits_.max_loop_iterations);
  }

  const Value* lookup(std::string_view name) const {
    for (size_t frame = current_;;) {
      for (const auto& [key, value] : frames_[frame].variables)
        if (key == name) return &value;
      if (frame == 0) return nullptr;
      frame = frames_[frame].parent;
    }
  }

  void assign(const std::string& name, Value value) {
    for (auto& [key, existing] : frames_[current_].variables) {
      if (key == name) {
        existing = std::move(value);
        return;
      }
    }
    frames_[current_].variables.emplace_back(name, std::move(value));
  }

  void assign_targets(const std::vector<std::string>& targets, const Value& value, Location where) {
    if (targets.size() == 1) {
      assign(targets[0], value);
      return;
    }
    if (!value.is_list() || value.as_list().size() != targets.size())
      fail_at(where, "cannot unpack ", value.type_name(), " into ", targets.size(), " names");
    for (size_t i = 0; i < targets.size(); ++i)
      assign(targets[i], value.as_list()[i]);
  }

  // ---- statements ----

  // Bounds the evaluation stack: nested blocks, expressions and macro calls together.
  class Depth {
   public:
    explicit Depth(Renderer& renderer) : renderer_(renderer) {
      if (++renderer_.eval_depth_ > renderer_.limits_.max_eval_depth)
        fail("template evaluation nests deeper than ", renderer_.limits_.max_eval_depth);
    }
    ~Depth() { --renderer_.eval_depth_; }
    Depth(const Depth&) = delete;
    Depth& operator=(const Depth&) = delete;

   private:
    Renderer& renderer_;
  };

  void render(const Stmt& stmt) {
    try {
      const Depth depth(*this);
      charge(1);
      render_statement(stmt);
    } catch (const TemplateError&) {
      throw;
    } catch (const Error& e) {
      fail_at(stmt.where, e.what());
    }
  }

  void render_statement(const Stmt& stmt) {
    switch (stmt.kind) {
      case Stmt::Kind::Text:
        emit(stmt.text);
        return;
      case Stmt::Kind::Output: {
        const Value value = eval(*stmt.exprs[0]);
        if (value.is_string()) {
          emit(value.as_string());
        } else {
          emit(value.str());
        }
        return;
      }
      case Stmt::Kind::If:
        for (size_t i = 0; i < stmt.exprs.size(); ++i) {
          if (eval(*stmt.exprs[i]).truthy()) {
            render_body(stmt.bodies[i]);
            return;
          }
        }
        if (stmt.bodies.size() > stmt.exprs.size()) render_body(stmt.bodies.back());
        return;
      case Stmt::Kind::For:
        render_for(stmt);
        return;
      case Stmt::Kind::Set: {
        Value value = eval(*stmt.exprs[0]);
        if (!stmt.attribute.empty()) {
          const Value* target = lookup(stmt.targets[0]);
          if (target == nullptr || !target->is_namespace())
            fail("cannot assign attribute '", stmt.attribute, "' of '", stmt.targets[0],
                 "', which is not a namespace");
          target->namespace_dict().set(stmt.attribute, std::move(value));
        } else {
          assign_targets(stmt.targets, value, stmt.where);
        }
        return;
      }
      case Stmt::Kind::SetBlock: {
        std::string captured;
        {
          Capture capture(*this);
          render_body(stmt.bodies[0]);
          captured = std::move(capture.buffer);
        }
        assign(stmt.targets[0], Value(std::move(captured)));
        return;
      }
      case Stmt::Kind::Macro: {
        const Stmt* macro = &stmt;
        assign(stmt.name, Value::function([this, macro](const Arguments& args) {
                 return call_macro(*macro, args);
               }));
        return;
      }
      case Stmt::Kind::Break:
        control_ = Control::Break;
        return;
      case Stmt::Kind::Continue:
        control_ = Control::Continue;
        return;
      case Stmt::Kind::Block:
        render_body(stmt.bodies[0]);
        return;
    }
  }

  void render_for(const Stmt& stmt) {
    std::vector<Value> items = iterate(eval(*stmt.exprs[0]));
    if (stmt.exprs.size() > 1) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        count_iteration();
        const Scope scope(*this, current_);
        assign_targets(stmt.targets, item, stmt.where);
        if (eval(*stmt.exprs[1]).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      if (stmt.bodies.size() > 1) render_body(stmt.bodies[1]);
      return;
    }
    const auto length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      count_iteration();
      const Scope scope(*this, current_);
      assign_targets(stmt.targets, items[static_cast<size_t>(i)], stmt.where);
      Dict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(length - i));
      loop.set("revindex0", Value(length - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == length - 1));
      loop.set("length", Value(length));
      loop.set("depth", Value(1));
      loop.set("depth0", Value(0));
      if (i > 0) loop.set("previtem", items[static_cast<size_t>(i - 1)]);
      if (i + 1 < length) loop.set("nextitem", items[static_cast<size_t>(i + 1)]);
      assign("loop", Value::from_dict(std::move(loop)));
      render_body(stmt.bodies[0]);
      if (control_ == Control::Break) {
        control_ = Control::None;
        break;
      }
      control_ = Control::None;
    }
  }

  Value call_macro(const Stmt& macro, const Arguments& args) {
    if (call_depth_ >= limits_.max_call_depth)
      fail("macro calls nest deeper than ", limits_.max_call_depth);
    ++call_depth_;
    struct DepthGuard {
      int& depth;
      ~DepthGuard() { --depth; }
    } guard{call_depth_};
    const Scope scope(*this, 0);
    if (args.positional.size() > macro.params.size())
      fail("macro '", macro.name, "' takes ", macro.params.size(), " arguments, got ",
           args.positional.size());
    std::vector<bool> bound(macro.params.size(), false);
    for (size_t i = 0; i < args.positional.size(); ++i) {
      assign(macro.params[i], args.positional[i]);
      bound[i] = true;
    }
    for (const auto& [name, value] : args.named) {
      const auto it = std::find(macro.params.begin(), macro.params.end(), name);
      if (it == macro.params.end()) fail("macro '", macro.name, "' has no parameter '", name, "'");
      assign(name, value);
      bound[static_cast<size_t>(it - macro.params.begin())] = true;
    }
    for (size_t i = 0; i < macro.params.size(); ++i) {
      if (bound[i]) continue;
      assign(macro.params[i], macro.exprs[i] ? eval(*macro.exprs[i]) : Value());
    }
    Capture capture(*this);
    render_body(macro.bodies[0]);
    control_ = Control::None;
    return Value(std::move(capture.buffer));
  }

  // ---- expressions ----

  Value eval(const Expr& expr) {
    try {
      const Depth depth(*this);
      charge(1);
      return eval_expression(expr);
    } catch (const TemplateError&) {
      throw;
    } catch (const Error& e) {
      fail_at(expr.where, e.what());
    }
  }

  Arguments eval_arguments(const Expr& expr, size_t first) {
    Arguments args;
    for (size_t i = first; i < expr.children.size(); ++i) {
      const std::string& name = expr.arg_names[i - first];
      Value value = eval(*expr.children[i]);
      if (name.empty()) {
        if (!args.named.empty()) fail("positional argument after a keyword argument");
        args.positional.push_back(std::move(value));
      } else {
        args.named.emplace_back(name, std::move(value));
      }
    }
    return args;
  }

  Value eval_expression(const Expr& expr) {
    switch (expr.kind) {
      case Expr::Kind::Literal:
        return expr.literal;
      case Expr::Kind::Name: {
        const Value* value = lookup(expr.name);
        if (value != nullptr) return *value;
        if (is_builtin(expr.name)) {
          const std::string name = expr.name;
          return Value::function(
              [this, name](const Arguments& args) { return call_builtin(name, args); });
        }
        return Value();
      }
      case Expr::Kind::List: {
        std::vector<Value> items;
        items.reserve(expr.children.size());
        for (const auto& child : expr.children)
          items.push_back(eval(*child));
        return Value::list(std::move(items), expr.tuple);
      }
      case Expr::Kind::Dict: {
        Dict dict;
        for (size_t i = 0; i + 1 < expr.children.size(); i += 2) {
          const Value key = eval(*expr.children[i]);
          if (!key.is_string()) fail("dict keys must be strings, not ", key.type_name());
          dict.set(key.as_string(), eval(*expr.children[i + 1]));
        }
        return Value::from_dict(std::move(dict));
      }
      case Expr::Kind::GetAttr:
        return get_attribute(eval(*expr.children[0]), expr.name);
      case Expr::Kind::GetItem:
        return get_item(eval(*expr.children[0]), eval(*expr.children[1]));
      case Expr::Kind::Slice: {
        const Value object = eval(*expr.children[0]);
        Value parts[3];
        for (int i = 0; i < 3; ++i)
          parts[i] = expr.children[static_cast<size_t>(i) + 1]
                         ? eval(*expr.children[static_cast<size_t>(i) + 1])
                         : Value::none();
        return slice(object, parts[0], parts[1], parts[2]);
      }
      case Expr::Kind::Call:
        return call(expr);
      case Expr::Kind::Filter:
        return apply_filter(expr.name, eval(*expr.children[0]), eval_arguments(expr, 1));
      case Expr::Kind::Test:
        return Value(apply_test(expr.name, eval(*expr.children[0]), eval_arguments(expr, 1)) !=
                     expr.negated);
      case Expr::Kind::Not:
        return Value(!eval(*expr.children[0]).truthy());
      case Expr::Kind::Negate: {
        const Value operand = eval(*expr.children[0]);
        if (operand.is_float()) return Value(-operand.as_float());
        if (operand.is_int() || operand.is_bool()) {
          if (operand.as_int() == std::numeric_limits<int64_t>::min()) fail("integer overflow");
          return Value(-operand.as_int());
        }
        fail("bad operand type for unary -: ", operand.type_name());
      }
      case Expr::Kind::Binary:
        return binary(expr.name, eval(*expr.children[0]), eval(*expr.children[1]));
      case Expr::Kind::Compare: {
        Value left = eval(*expr.children[0]);
        for (size_t i = 0; i < expr.ops.size(); ++i) {
          Value right = eval(*expr.children[i + 1]);
          if (!compare(expr.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::And: {
        Value left = eval(*expr.children[0]);
        return left.truthy() ? eval(*expr.children[1]) : left;
      }
      case Expr::Kind::Or: {
        Value left = eval(*expr.children[0]);
        return left.truthy() ? left : eval(*expr.children[1]);
      }
      case Expr::Kind::Conditional:
        if (eval(*expr.children[1]).truthy()) return eval(*expr.children[0]);
        return expr.children[2] ? eval(*expr.children[2]) : Value();
    }
    fail("unknown expression");
  }

  static Value get_attribute(const Value& object, std::string_view name) {
    if (object.is_undefined()) fail("cannot read attribute '", name, "' of an undefined value");
    if (object.is_dict()) {
      const Value* value = object.as_dict().find(name);
      if (value != nullptr) return *value;
    }
    return Value();
  }

  static std::optional<size_t> python_index(int64_t index, size_t size) {
    const auto n = static_cast<int64_t>(size);
    if (index < 0) index += n;
    if (index < 0 || index >= n) return std::nullopt;
    return static_cast<size_t>(index);
  }

  static Value get_item(const Value& object, const Value& key) {
    if (object.is_undefined()) fail("cannot index an undefined value");
    const bool integral = key.is_int() || key.is_bool();
    if (object.is_list() && integral) {
      const auto at = python_index(key.as_int(), object.as_list().size());
      return at ? object.as_list()[*at] : Value();
    }
    if (object.is_string() && integral) {
      const std::string& s = object.as_string();
      const std::vector<size_t> offsets = text::char_offsets(s);
      const auto at = python_index(key.as_int(), offsets.size() - 1);
      if (!at) return Value();
      return Value(s.substr(offsets[*at], offsets[*at + 1] - offsets[*at]));
    }
    if (object.is_dict() && key.is_string()) {
      const Value* value = object.as_dict().find(key.as_string());
      return value != nullptr ? *value : Value();
    }
    return Value();
  }

  // Python's slice semantics, for lists and (by code point) strings.
  Value slice(const Value& object, const Value& start_value, const Value& stop_value,
              const Value& step_value) {
    const auto as_index = [](const Value& v, const char* what) -> std::optional<int64_t> {
      if (v.is_none()) return std::nullopt;
      if (!v.is_int() && !v.is_bool()) fail("slice ", what, " must be an integer");
      return v.as_int();
    };
    const int64_t step = as_index(step_value, "step").value_or(1);
    if (step == 0) fail("slice step cannot be zero");
    std::vector<size_t> offsets;
    int64_t n = 0;
    if (object.is_list()) {
      n = static_cast<int64_t>(object.as_list().size());
    } else if (object.is_string()) {
      offsets = text::char_offsets(object.as_string());
      n = static_cast<int64_t>(offsets.size()) - 1;
    } else if (object.is_undefined()) {
      fail("cannot slice an undefined value");
    } else {
      fail("cannot slice a ", object.type_name());
    }
    const auto clamp = [&](std::optional<int64_t> given, int64_t fallback) {
      if (!given) return fallback;
      int64_t index = *given;
      if (index < 0) {
        index = index < -n ? (step < 0 ? -1 : 0) : index + n;
      } else if (index >= n) {
        index = step < 0 ? n - 1 : n;
      }
      return index;
    };
    const int64_t start = clamp(as_index(start_value, "start"), step < 0 ? n - 1 : 0);
    const int64_t stop = clamp(as_index(stop_value, "stop"), step < 0 ? -1 : n);
    std::vector<size_t> picked;
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
      picked.push_back(static_cast<size_t>(i));
      if (__builtin_add_overflow(i, step, &i)) break;
    }
    charge(picked.size());
    if (object.is_list()) {
      std::vector<Value> items;
      items.reserve(picked.size());
      for (size_t i : picked)
        items.push_back(object.as_list()[i]);
      return Value::list(std::move(items));
    }
    std::string out;
    for (size_t i : picked)
      out.append(object.as_string(), offsets[i], offsets[i + 1] - offsets[i]);
    return make_string(std::move(out));
  }

  std::vector<Value> iterate(const Value& value) {
    std::vector<Value> items;
    if (value.is_list()) {
      items = value.as_list();
    } else if (value.is_dict()) {
      for (const auto& entry : value.as_dict().entries)
        items.emplace_back(entry.first);
    } else if (value.is_string()) {
      const std::string& s = value.as_string();
      for (size_t at = 0; at < s.size();) {
        const size_t n = text::char_length(s, at);
        items.emplace_back(s.substr(at, n));
        at += n;
      }
    } else if (!value.is_undefined()) {
      fail("'", value.type_name(), "' object is not iterable");
    }
    charge(items.size());
    return items;
  }

  static bool contains(const Value& container, const Value& item) {
    if (container.is_string()) {
      if (!item.is_string())
        fail("'in <string>' requires a string as left operand, not ", item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_list()) {
      const auto& items = container.as_list();
      return std::find(items.begin(), items.end(), item) != items.end();
    }
    if (container.is_dict()) return item.is_string() && container.as_dict().find(item.as_string());
    if (container.is_undefined()) return false;
    fail("argument of type '", container.type_name(), "' is not iterable");
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return a == b;
    if (op == "!=") return !(a == b);
    if (op == "<") return Value::less(a, b);
    if (op == ">") return Value::less(b, a);
    if (op == "<=") return !Value::less(b, a);
    if (op == ">=") return !Value::less(a, b);
    if (op == "in") return contains(b, a);
    return !contains(b, a);
  }

  static int64_t checked_add(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_add_overflow(a, b, &r)) fail("integer overflow");
    return r;
  }
  static int64_t checked_sub(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_sub_overflow(a, b, &r)) fail("integer overflow");
    return r;
  }
  static int64_t checked_mul(int64_t a, int64_t b) {
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r)) fail("integer overflow");
    return r;
  }

  Value repeat(const Value& sequence, int64_t count) {
    count = std::max<int64_t>(count, 0);
    if (sequence.is_string()) {
      const std::string& s = sequence.as_string();
      if (!s.empty() && static_cast<uint64_t>(count) > limits_.max_output_bytes / s.size())
        fail("string repetition exceeds the limit of ", limits_.max_output_bytes, " bytes");
      std::string out;
      check_string_size(s.size() * static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i)
        out += s;
      return Value(std::move(out));
    }
    const auto& items = sequence.as_list();
    if (!items.empty() && static_cast<uint64_t>(count) > limits_.max_loop_iterations / items.size())
      fail("list repetition exceeds the limit of ", limits_.max_loop_iterations, " items");
    std::vector<Value> out;
    charge(items.size() * static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i)
      out.insert(out.end(), items.begin(), items.end());
    return Value::list(std::move(out));
  }

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") {
      std::string out = a.str();
      out += b.str();
      return make_string(std::move(out));
    }
    const bool numbers = (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool());
    const bool floats = numbers && (a.is_float() || b.is_float());
    if (op == "+") {
      if (numbers && !floats) return Value(checked_add(a.as_int(), b.as_int()));
      if (floats) return Value(a.as_float() + b.as_float());
      if (a.is_string() && b.is_string()) {
        check_string_size(a.as_string().size() + b.as_string().size());
        return Value(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list()) {
        std::vector<Value> items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        charge(items.size());
        return Value::list(std::move(items));
      }
    } else if (op == "-") {
      if (numbers && !floats) return Value(checked_sub(a.as_int(), b.as_int()));
      if (floats) return Value(a.as_float() - b.as_float());
    } else if (op == "*") {
      if (numbers && !floats) return Value(checked_mul(a.as_int(), b.as_int()));
      if (floats) return Value(a.as_float() * b.as_float());
      if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool()))
        return repeat(a, b.as_int());
      if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool()))
        return repeat(b, a.as_int());
    } else if (op == "/") {
      if (numbers) {
        if (b.as_float() == 0) fail("division by zero");
        return Value(a.as_float() / b.as_float());
      }
    } else if (op == "%" && a.is_string()) {
      return printf_format(a.as_string(), b.is_tuple() ? b.as_list() : std::vector<Value>{b});
    } else if (op == "//" || op == "%") {
      if (numbers && !floats) {
        const int64_t x = a.as_int(), y = b.as_int();
        if (y == 0) fail("integer division or modulo by zero");
        if (x == std::numeric_limits<int64_t>::min() && y == -1) {
          if (op == "%") return Value(int64_t{0});
          fail("integer overflow");
        }
        int64_t quotient = x / y, remainder = x % y;
        if (remainder != 0 && ((remainder < 0) != (y < 0))) {
          quotient -= 1;
          remainder += y;
        }
        return Value(op == "//" ? quotient : remainder);
      }
      if (floats) {
        const double x = a.as_float(), y = b.as_float();
        if (y == 0) fail("float division or modulo by zero");
        if (op == "//") return Value(std::floor(x / y));
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value(m);
      }
    } else if (op == "**") {
      if (numbers && !floats && b.as_int() >= 0) {
        int64_t result = 1, base = a.as_int();
        for (int64_t e = b.as_int(); e > 0; e >>= 1) {
          if (e & 1) result = checked_mul(result, base);
          if (e > 1) base = checked_mul(base, base);
        }
        return Value(result);
      }
      if (numbers) return Value(std::pow(a.as_float(), b.as_float()));
    }
    fail("unsupported operand types for ", op, ": '", a.type_name(), "' and '", b.type_name(), "'");
  }

  // ---- calls ----

  Value call(const Expr& expr) {
    const Expr& callee = *expr.children[0];
    Arguments args = eval_arguments(expr, 1);
    if (callee.kind == Expr::Kind::GetAttr) {
      const Value object = eval(*callee.children[0]);
      if (object.is_undefined())
        fail("cannot call method '", callee.name, "' of an undefined value");
      if (object.is_string() || object.is_list() ||
          (object.is_dict() && !object.as_dict().find(callee.name)))
        return call_method(object, callee.name, args);
      const Value method = get_attribute(object, callee.name);
      if (!method.is_callable()) fail("'", callee.name, "' is not callable");
      return method.as_function()(args);
    }
    if (callee.kind == Expr::Kind::Name) {
      const Value* value = lookup(callee.name);
      if (value == nullptr) return call_builtin(callee.name, args);
      if (!value->is_callable()) fail("'", callee.name, "' is not callable");
      const Value function = *value;
      return function.as_function()(args);
    }
    const Value function = eval(callee);
    if (!function.is_callable()) fail("a ", function.type_name(), " is not callable");
    return function.as_function()(args);
  }

  static const Value* argument(const Arguments& args, size_t index, std::string_view name) {
    for (const auto& [key, value] : args.named)
      if (key == name) return &value;
    return index < args.positional.size() ? &args.positional[index] : nullptr;
  }

  static const std::string& string_argument(const Arguments& args, size_t index,
                                            std::string_view name, std::string_view function) {
    const Value* value = argument(args, index, name);
    if (value == nullptr || !value->is_string())
      fail(function, ": argument '", name, "' must be a string");
    return value->as_string();
  }

  static int64_t int_argument(const Arguments& args, size_t index, std::string_view name,
                              int64_t fallback) {
    const Value* value = argument(args, index, name);
    if (value == nullptr || value->is_none()) return fallback;
    if (!value->is_int() && !value->is_bool()) fail("argument '", name, "' must be an integer");
    return value->as_int();
  }

  static bool bool_argument(const Arguments& args, size_t index, std::string_view name,
                            bool fallback) {
    const Value* value = argument(args, index, name);
    return value == nullptr ? fallback : value->truthy();
  }

  // Globals a template may call or test (`strftime_now is defined`), as HF provides them.
  static bool is_builtin(std::string_view name) {
    return name == "raise_exception" || name == "range" || name == "namespace" || name == "dict" ||
           name == "strftime_now";
  }

  Value call_builtin(const std::string& name, const Arguments& args) {
    if (name == "raise_exception") {
      const Value* message = argument(args, 0, "message");
      fail("raise_exception: ", message != nullptr ? message->str() : std::string());
    }
    if (name == "range") {
      int64_t start = 0, stop = 0, step = 1;
      if (args.positional.size() == 1) {
        stop = int_argument(args, 0, "stop", 0);
      } else if (args.positional.size() == 2 || args.positional.size() == 3) {
        start = int_argument(args, 0, "start", 0);
        stop = int_argument(args, 1, "stop", 0);
        step = int_argument(args, 2, "step", 1);
      } else {
        fail("range expects 1 to 3 arguments");
      }
      if (step == 0) fail("range step cannot be zero");
      std::vector<Value> items;
      for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        if (items.size() >= limits_.max_loop_iterations)
          fail("range exceeds the limit of ", limits_.max_loop_iterations, " items");
        items.emplace_back(i);
        if (__builtin_add_overflow(i, step, &i)) break;
      }
      charge(items.size());
      return Value::list(std::move(items));
    }
    if (name == "namespace" || name == "dict") {
      Dict dict;
      for (const Value& positional : args.positional) {
        if (!positional.is_dict()) fail(name, "() takes keyword arguments or a dict");
        for (const auto& [key, value] : positional.as_dict().entries)
          dict.set(key, value);
      }
      for (const auto& [key, value] : args.named)
        dict.set(key, value);
      dict.is_namespace = name == "namespace";
      return Value::from_dict(std::move(dict));
    }
    if (name == "strftime_now") {
      const std::string& format = string_argument(args, 0, "format", name);
      const std::time_t now = std::time(nullptr);
      std::tm local{};
      localtime_r(&now, &local);
      char buffer[256];
      const size_t size = std::strftime(buffer, sizeof buffer, format.c_str(), &local);
      return Value(std::string(buffer, size));
    }
    fail("'", name, "' is undefined");
  }

  Value call_method(const Value& object, const std::string& name, const Arguments& args) {
    if (object.is_string()) return string_method(object.as_string(), name, args);
    if (object.is_dict()) {
      const Dict& dict = object.as_dict();
      if (name == "items") return items_of(dict);
      if (name == "keys" || name == "values") {
        std::vector<Value> out;
        for (const auto& [key, value] : dict.entries)
          out.push_back(name == "keys" ? Value(key) : value);
        return Value::list(std::move(out));
      }
      if (name == "cycle" && dict.find("index0") != nullptr) {
        if (args.positional.empty()) fail("loop.cycle needs at least one value");
        const int64_t index = dict.find("index0")->as_int();
        return args.positional[static_cast<size_t>(index) % args.positional.size()];
      }
      if (name == "get") {
        const std::string& key = string_argument(args, 0, "key", "get");
        const Value* value = dict.find(key);
        if (value != nullptr) return *value;
        const Value* fallback = argument(args, 1, "default");
        return fallback != nullptr ? *fallback : Value::none();
      }
    }
    fail("'", object.type_name(), "' object has no method '", name, "'");
  }

  static Value items_of(const Dict& dict) {
    std::vector<Value> out;
    for (const auto& [key, value] : dict.entries)
      out.push_back(Value::tuple({Value(key), value}));
    return Value::list(std::move(out));
  }

  Value split(const std::string& s, const Value* separator, int64_t max_split) {
    std::vector<Value> parts;
    if (separator == nullptr || separator->is_none()) {
      size_t at = 0;
      while (at < s.size()) {
        while (at < s.size() && text::is_python_space(s[at]))
          ++at;
        if (at >= s.size()) break;
        if (max_split >= 0 && static_cast<int64_t>(parts.size()) >= max_split) {
          parts.emplace_back(s.substr(at));
          break;
        }
        size_t end = at;
        while (end < s.size() && !text::is_python_space(s[end]))
          ++end;
        parts.emplace_back(s.substr(at, end - at));
        at = end;
      }
    } else {
      if (!separator->is_string()) fail("split: separator must be a string");
      const std::string& sep = separator->as_string();
      if (sep.empty()) fail("split: empty separator");
      size_t at = 0;
      for (;;) {
        const size_t found = s.find(sep, at);
        if (found == std::string::npos ||
            (max_split >= 0 && static_cast<int64_t>(parts.size()) >= max_split)) {
          parts.emplace_back(s.substr(at));
          break;
        }
        parts.emplace_back(s.substr(at, found - at));
        at = found + sep.size();
      }
    }
    charge(parts.size() + s.size());
    return Value::list(std::move(parts));
  }

  Value replace(const std::string& s, const std::string& old_text, const std::string& new_text,
                int64_t count) {
    std::string out;
    int64_t done = 0;
    const auto budget_ok = [&] { return count < 0 || done < count; };
    if (old_text.empty()) {
      for (size_t at = 0;;) {
        if (budget_ok()) {
          out += new_text;
          ++done;
        }
        if (at >= s.size()) break;
        const size_t n = text::char_length(s, at);
        out.append(s, at, n);
        at += n;
        check_string_size(out.size());
      }
      return make_string(std::move(out));
    }
    size_t at = 0;
    for (;;) {
      const size_t found = budget_ok() ? s.find(old_text, at) : std::string::npos;
      if (found == std::string::npos) break;
      out.append(s, at, found - at);
      out += new_text;
      check_string_size(out.size());
      ++done;
      at = found + old_text.size();
    }
    out.append(s, at);
    return make_string(std::move(out));
  }

  static bool starts_or_ends(const std::string& s, const Value& affix, bool start) {
    const auto test = [&](const Value& candidate) {
      if (!candidate.is_string()) fail("startswith/endswith take a string or a tuple of strings");
      const std::string& a = candidate.as_string();
      if (a.size() > s.size()) return false;
      return start ? s.compare(0, a.size(), a) == 0
                   : s.compare(s.size() - a.size(), a.size(), a) == 0;
    };
    if (affix.is_list()) return std::any_of(affix.as_list().begin(), affix.as_list().end(), test);
    return test(affix);
  }

  Value string_method(const std::string& s, const std::string& name, const Arguments& args) {
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      const Value* chars = argument(args, 0, "chars");
      const std::string* set =
          chars != nullptr && chars->is_string() ? &chars->as_string() : nullptr;
      return make_string(text::strip(s, set, name != "rstrip", name != "lstrip"));
    }
    if (name == "split")
      return split(s, argument(args, 0, "sep"), int_argument(args, 1, "maxsplit", -1));
    if (name == "startswith" || name == "endswith") {
      const Value* affix = argument(args, 0, "prefix");
      if (affix == nullptr) fail(name, " needs an argument");
      return Value(starts_or_ends(s, *affix, name == "startswith"));
    }
    if (name == "upper") return make_string(text::convert_case(s, text::Case::Upper));
    if (name == "lower") return make_string(text::convert_case(s, text::Case::Lower));
    if (name == "title") return make_string(text::python_title(s));
    if (name == "capitalize") return make_string(text::capitalize(s));
    if (name == "replace")
      return replace(s, string_argument(args, 0, "old", name),
                     string_argument(args, 1, "new", name), int_argument(args, 2, "count", -1));
    if (name == "find") {
      const size_t at = s.find(string_argument(args, 0, "sub", name));
      return Value(at == std::string::npos
                       ? int64_t{-1}
                       : static_cast<int64_t>(text::char_count(s.substr(0, at))));
    }
    if (name == "count") {
      const std::string& sub = string_argument(args, 0, "sub", name);
      if (sub.empty()) return Value(static_cast<int64_t>(text::char_count(s) + 1));
      int64_t count = 0;
      for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size()))
        ++count;
      return Value(count);
    }
    if (name == "join") {
      const Value* items = argument(args, 0, "iterable");
      if (items == nullptr) fail("join needs an argument");
      std::string out;
      bool first = true;
      for (const Value& item : iterate(*items)) {
        if (!item.is_string()) fail("join: sequence item is a ", item.type_name(), ", not a str");
        if (!first) out += s;
        first = false;
        out += item.as_string();
        check_string_size(out.size());
      }
      return Value(std::move(out));
    }
    if (name == "splitlines") {
      std::vector<Value> lines;
      for (size_t at = 0; at < s.size();) {
        const size_t end = s.find_first_of("\r\n", at);
        if (end == std::string::npos) {
          lines.emplace_back(s.substr(at));
          break;
        }
        lines.emplace_back(s.substr(at, end - at));
        at = end + (s.compare(end, 2, "\r\n") == 0 ? 2 : 1);
      }
      charge(s.size());
      return Value::list(std::move(lines));
    }
    if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum") {
      if (s.empty()) return Value(false);
      return Value(std::all_of(s.begin(), s.end(), [&](char c) {
        const auto u = static_cast<unsigned char>(c);
        if (name == "isdigit") return std::isdigit(u) != 0;
        if (name == "isspace") return text::is_python_space(c);
        if (name == "isalpha") return std::isalpha(u) != 0;
        return std::isalnum(u) != 0;
      }));
    }
    fail("'str' object has no method '", name, "'");
  }

  // Python's printf-style formatting (`'%s: %d' % (a, b)`, the format filter): the conversions
  // s, r, d, i, f, e, g, x, o and %%, with flags, width and precision.
  Value printf_format(const std::string& format, const std::vector<Value>& values) {
    std::string out;
    size_t next_value = 0;
    for (size_t i = 0; i < format.size(); ++i) {
      if (format[i] != '%') {
        out += format[i];
        continue;
      }
      size_t end = i + 1;
      while (end < format.size() &&
             std::string_view("-+ #0123456789.").find(format[end]) != std::string_view::npos)
        ++end;
      if (end >= format.size()) fail("incomplete format at offset ", i);
      const char conversion = format[end];
      const std::string spec = format.substr(i + 1, end - i - 1);
      if (spec.size() > 16) fail("format specification '", spec, "' is too long");
      i = end;
      if (conversion == '%') {
        out += '%';
        continue;
      }
      if (next_value >= values.size()) fail("not enough arguments for format string");
      const Value& value = values[next_value++];
      char buffer[512];
      const std::string c_format = "%" + spec;
      if (conversion == 's' || conversion == 'r') {
        std::string text;
        if (conversion == 's') {
          text = value.str();
        } else {
          value.append_repr(text);
        }
        const std::string padded = c_format + "s";
        if (spec.empty()) {
          out += text;
        } else {
          const int written = std::snprintf(buffer, sizeof buffer, padded.c_str(), text.c_str());
          if (written < 0 || static_cast<size_t>(written) >= sizeof buffer)
            out += text;
          else
            out.append(buffer, static_cast<size_t>(written));
        }
      } else if (std::string_view("dixo").find(conversion) != std::string_view::npos) {
        if (!value.is_number() && !value.is_bool()) fail("%", conversion, " format needs a number");
        const auto integer =
            value.is_float()
                ? static_cast<long long>(std::trunc(std::clamp(value.as_float(), -9.2e18, 9.2e18)))
                : static_cast<long long>(value.as_int());
        const std::string full = c_format + "ll" + (conversion == 'i' ? 'd' : conversion);
        const int written = std::snprintf(buffer, sizeof buffer, full.c_str(), integer);
        if (written > 0)
          out.append(buffer, std::min(static_cast<size_t>(written), sizeof buffer - 1));
      } else if (std::string_view("feEgG").find(conversion) != std::string_view::npos) {
        if (!value.is_number() && !value.is_bool()) fail("%", conversion, " format needs a number");
        const std::string full = c_format + conversion;
        const int written = std::snprintf(buffer, sizeof buffer, full.c_str(), value.as_float());
        if (written > 0)
          out.append(buffer, std::min(static_cast<size_t>(written), sizeof buffer - 1));
      } else {
        fail("unsupported format character '", std::string(1, conversion), "'");
      }
      check_string_size(out.size());
    }
    if (next_value < values.size()) fail("not all arguments converted during string formatting");
    return make_string(std::move(out));
  }

  // ---- filters and tests ----

  static size_t length_of(const Value& value) {
    if (value.is_string()) return text::char_count(value.as_string());
    if (value.is_list()) return value.as_list().size();
    if (value.is_dict()) return value.as_dict().entries.size();
    if (value.is_undefined()) return 0;
    fail("object of type '", value.type_name(), "' has no length");
  }

  // Sort key of Jinja's sort/unique: strings compare case-insensitively unless asked not to.
  static Value sort_key(const Value& value, bool case_sensitive) {
    if (!case_sensitive && value.is_string())
      return Value(text::convert_case(value.as_string(), text::Case::Lower));
    return value;
  }

  Value item_attribute(const Value& item, const Value& attribute) {
    if (attribute.is_string()) {
      Value current = item;
      std::string_view path = attribute.as_string();
      for (;;) {
        const size_t dot = path.find('.');
        current = get_item(current, Value(path.substr(0, dot)));
        if (dot == std::string_view::npos) return current;
        if (current.is_undefined()) return current;
        path.remove_prefix(dot + 1);
      }
    }
    return get_item(item, attribute);
  }

  Value apply_filter(const std::string& name, const Value& input, const Arguments& args) {
    if (name == "default" || name == "d") {
      const bool boolean = bool_argument(args, 1, "boolean", false);
      if (input.is_undefined() || (boolean && !input.truthy())) {
        const Value* fallback = argument(args, 0, "default_value");
        return fallback != nullptr ? *fallback : Value("");
      }
      return input;
    }
    if (name == "length" || name == "count") return Value(static_cast<int64_t>(length_of(input)));
    if (name == "attr") {
      // Jinja's attr reads Python attributes, never dict items; only a namespace has any here.
      const std::string& attribute = string_argument(args, 0, "name", name);
      return input.is_namespace() ? get_attribute(input, attribute) : Value();
    }
    if (name == "format") {
      if (!input.is_string()) fail("format: the format must be a string");
      return printf_format(input.as_string(), args.positional);
    }
    if (name == "center") {
      const std::string s = input.str();
      const auto width =
          static_cast<size_t>(std::clamp<int64_t>(int_argument(args, 0, "width", 80), 0, 4096));
      const size_t length = text::char_count(s);
      if (length >= width) return make_string(s);
      const size_t total = width - length;
      const size_t left = total / 2 + (total & width & 1);
      return make_string(std::string(left, ' ') + s + std::string(total - left, ' '));
    }
    if (name == "string") return make_string(input.str());
    if (name == "safe") return input;
    if (name == "trim") {
      const Value* chars = argument(args, 0, "chars");
      const std::string* set =
          chars != nullptr && chars->is_string() ? &chars->as_string() : nullptr;
      return make_string(text::strip(input.str(), set, true, true));
    }
    if (name == "upper") return make_string(text::convert_case(input.str(), text::Case::Upper));
    if (name == "lower") return make_string(text::convert_case(input.str(), text::Case::Lower));
    if (name == "capitalize") return make_string(text::capitalize(input.str()));
    if (name == "title") return make_string(text::jinja_title(input.str()));
    if (name == "replace")
      return replace(input.str(), string_argument(args, 0, "old", name),
                     string_argument(args, 1, "new", name), int_argument(args, 2, "count", -1));
    if (name == "tojson") {
      const int64_t indent = int_argument(args, 0, "indent", -1);
      if (indent > 64) fail("tojson: indent ", indent, " is too large");
      return make_string(input.to_json(static_cast<int>(indent)));
    }
    if (name == "escape" || name == "e") {
      std::string out;
      for (char c : input.str()) {
        switch (c) {
          case '&':
            out += "&amp;";
            break;
          case '<':
            out += "&lt;";
            break;
          case '>':
            out += "&gt;";
            break;
          case '"':
            out += "&#34;";
            break;
          case '\'':
            out += "&#39;";
            break;
          default:
            out += c;
        }
      }
      return make_string(std::move(out));
    }
    if (name == "first" || name == "last") {
      if (input.is_dict()) {
        const auto& entries = input.as_dict().entries;
        if (entries.empty()) return Value();
        return Value(name == "first" ? entries.front().first : entries.back().first);
      }
      if (input.is_undefined()) return Value();
      const std::vector<Value> items = iterate(input);
      if (items.empty()) return Value();
      return name == "first" ? items.front() : items.back();
    }
    if (name == "items") {
      if (input.is_undefined()) return Value::list({});
      if (!input.is_dict()) fail("items: expected a mapping, got ", input.type_name());
      return items_of(input.as_dict());
    }
    if (name == "list") return Value::list(iterate(input));
    if (name == "reverse") {
      if (input.is_string()) {
        const std::string& s = input.as_string();
        const std::vector<size_t> offsets = text::char_offsets(s);
        std::string out;
        for (size_t i = offsets.size() - 1; i > 0; --i)
          out.append(s, offsets[i - 1], offsets[i] - offsets[i - 1]);
        return make_string(std::move(out));
      }
      std::vector<Value> items = iterate(input);
      std::reverse(items.begin(), items.end());
      return Value::list(std::move(items));
    }
    if (name == "join") {
      const Value* separator = argument(args, 0, "d");
      const Value* attribute = argument(args, 1, "attribute");
      const std::string glue = separator != nullptr ? separator->str() : std::string();
      std::string out;
      bool first = true;
      for (const Value& item : iterate(input)) {
        if (!first) out += glue;
        first = false;
        out += (attribute != nullptr ? item_attribute(item, *attribute) : item).str();
        check_string_size(out.size());
      }
      return Value(std::move(out));
    }
    if (name == "int") {
      const int64_t fallback = int_argument(args, 0, "default", 0);
      if (input.is_int() || input.is_bool()) return Value(input.as_int());
      if (input.is_float()) {
        const double d = std::trunc(input.as_float());
        if (!(d >= -9.2e18 && d <= 9.2e18)) return Value(fallback);
        return Value(static_cast<int64_t>(d));
      }
      if (input.is_string()) {
        const std::string trimmed = text::strip(input.as_string(), nullptr, true, true);
        int64_t parsed = 0;
        const auto result =
            std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), parsed);
        if (result.ec == std::errc() && result.ptr == trimmed.data() + trimmed.size())
          return Value(parsed);
      }
      return Value(fallback);
    }
    if (name == "float") {
      const Value* fallback = argument(args, 0, "default");
      if (input.is_number() || input.is_bool()) return Value(input.as_float());
      if (input.is_string()) {
        const std::string trimmed = text::strip(input.as_string(), nullptr, true, true);
        double parsed = 0;
        const auto result =
            std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), parsed);
        if (result.ec == std::errc() && result.ptr == trimmed.data() + trimmed.size())
          return Value(parsed);
      }
      return fallback != nullptr ? *fallback : Value(0.0);
    }
    if (name == "abs") {
      if (input.is_float()) return Value(std::fabs(input.as_float()));
      if (input.is_int() || input.is_bool()) {
        if (input.as_int() == std::numeric_limits<int64_t>::min()) fail("integer overflow");
        return Value(input.as_int() < 0 ? -input.as_int() : input.as_int());
      }
      fail("abs: expected a number, got ", input.type_name());
    }
    if (name == "round") {
      if (!input.is_number() && !input.is_bool()) fail("round: expected a number");
      const int64_t precision =
          std::clamp<int64_t>(int_argument(args, 0, "precision", 0), -300, 300);
      const Value* method_value = argument(args, 1, "method");
      const std::string method = method_value != nullptr ? method_value->str() : "common";
      const double value = input.as_float();
      if (method == "common" && precision >= 0 && std::isfinite(value)) {
        // printf rounds the exact binary value, as Python's round() does: 2.675 -> 2.67.
        char buffer[512];
        std::snprintf(buffer, sizeof buffer, "%.*f",
                      static_cast<int>(std::min<int64_t>(precision, 100)), value);
        return Value(std::strtod(buffer, nullptr));
      }
      const double scale = std::pow(10.0, static_cast<double>(precision));
      const double x = value * scale;
      double rounded = 0;
      if (method == "common") {
        rounded = std::nearbyint(x);
      } else if (method == "floor") {
        rounded = std::floor(x);
      } else if (method == "ceil") {
        rounded = std::ceil(x);
      } else {
        fail("round: method must be common, floor or ceil");
      }
      return Value(rounded / scale);
    }
    if (name == "indent") {
      const Value* width_value = argument(args, 0, "width");
      std::string pad;
      if (width_value != nullptr && width_value->is_string()) {
        pad = width_value->as_string();
      } else {
        pad.assign(
            static_cast<size_t>(std::clamp<int64_t>(int_argument(args, 0, "width", 4), 0, 256)),
            ' ');
      }
      const bool first = bool_argument(args, 1, "first", false);
      const bool blank = bool_argument(args, 2, "blank", false);
      const std::string s = input.str();
      std::string out;
      size_t at = 0;
      bool first_line = true;
      while (at <= s.size()) {
        size_t end = s.find('\n', at);
        const bool last = end == std::string::npos;
        if (last) end = s.size();
        const std::string_view line(s.data() + at, end - at);
        const bool indent_line = first_line ? first : (blank || !line.empty());
        if (indent_line) out += pad;
        out += line;
        check_string_size(out.size());
        if (last) break;
        out += '\n';
        at = end + 1;
        first_line = false;
      }
      return Value(std::move(out));
    }
    if (name == "wordcount") {
      const Value words = split(input.str(), nullptr, -1);
      return Value(static_cast<int64_t>(words.as_list().size()));
    }
    if (name == "map") {
      std::vector<Value> out;
      const Value* attribute = argument(args, 99, "attribute");
      for (const Value& item : iterate(input)) {
        if (attribute != nullptr) {
          Value mapped = item_attribute(item, *attribute);
          const Value* fallback = argument(args, 99, "default");
          if (mapped.is_undefined() && fallback != nullptr) mapped = *fallback;
          out.push_back(std::move(mapped));
        } else {
          if (args.positional.empty() || !args.positional[0].is_string())
            fail("map: expected attribute= or a filter name");
          const std::string& filter = args.positional[0].as_string();
          if (!known_filters().contains(filter) || filter == "map")
            fail("map: unknown filter '", filter, "'");
          Arguments rest;
          rest.positional.assign(args.positional.begin() + 1, args.positional.end());
          rest.named = args.named;
          out.push_back(apply_filter(filter, item, rest));
        }
      }
      return Value::list(std::move(out));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      const bool by_attribute = name.ends_with("attr");
      const bool keep_matches = name.starts_with("select");
      const size_t test_index = by_attribute ? 1 : 0;
      Arguments test_args;
      if (args.positional.size() > test_index + 1)
        test_args.positional.assign(
            args.positional.begin() + static_cast<std::ptrdiff_t>(test_index) + 1,
            args.positional.end());
      std::string test;
      if (args.positional.size() > test_index) {
        if (!args.positional[test_index].is_string())
          fail(name, ": the test name must be a string");
        test = args.positional[test_index].as_string();
        if (!known_tests().contains(test)) fail(name, ": unknown test '", test, "'");
      }
      if (by_attribute && args.positional.empty()) fail(name, ": missing the attribute name");
      std::vector<Value> out;
      for (const Value& item : iterate(input)) {
        const Value subject = by_attribute ? item_attribute(item, args.positional[0]) : item;
        const bool match = test.empty() ? subject.truthy() : apply_test(test, subject, test_args);
        if (match == keep_matches) out.push_back(item);
      }
      return Value::list(std::move(out));
    }
    if (name == "unique") {
      const bool case_sensitive = bool_argument(args, 0, "case_sensitive", false);
      const Value* attribute = argument(args, 1, "attribute");
      std::vector<Value> out, seen;
      for (const Value& item : iterate(input)) {
        Value key = sort_key(attribute != nullptr ? item_attribute(item, *attribute) : item,
                             case_sensitive);
        charge(seen.size());
        if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
        seen.push_back(std::move(key));
        out.push_back(item);
      }
      return Value::list(std::move(out));
    }
    if (name == "sort" || name == "dictsort") {
      const bool reverse = bool_argument(args, name == "sort" ? 0 : 1, "reverse", false);
      const bool case_sensitive =
          bool_argument(args, name == "sort" ? 1 : 0, "case_sensitive", false);
      const Value* attribute = name == "sort" ? argument(args, 2, "attribute") : nullptr;
      std::vector<Value> items;
      if (name == "dictsort") {
        if (!input.is_dict()) fail("dictsort: expected a mapping");
        items = items_of(input.as_dict()).as_list();
      } else {
        items = iterate(input);
      }
      std::vector<std::pair<Value, Value>> keyed;
      for (Value& item : items) {
        Value key = name == "dictsort"     ? item.as_list()[0]
                    : attribute != nullptr ? item_attribute(item, *attribute)
                                           : item;
        keyed.emplace_back(sort_key(key, case_sensitive), std::move(item));
      }
      charge(keyed.size() * 20);
      std::stable_sort(keyed.begin(), keyed.end(), [reverse](const auto& a, const auto& b) {
        return reverse ? Value::less(b.first, a.first) : Value::less(a.first, b.first);
      });
      std::vector<Value> out;
      for (auto& [key, item] : keyed)
        out.push_back(std::move(item));
      return Value::list(std::move(out));
    }
    if (name == "max" || name == "min" || name == "sum") {
      const std::vector<Value> items = iterate(input);
      if (name == "sum") {
        Value total(int_argument(args, 1, "start", 0));
        for (const Value& item : items)
          total = binary("+", total, item);
        return total;
      }
      if (items.empty()) return Value();
      Value best = items[0];
      for (const Value& item : items) {
        if (name == "max" ? Value::less(best, item) : Value::less(item, best)) best = item;
      }
      return best;
    }
    fail("unknown filter '", name, "'");
  }

  bool apply_test(const std::string& name, const Value& value, const Arguments& args) {
    const auto operand = [&]() -> const Value& {
      if (args.positional.empty()) fail("test '", name, "' needs an argument");
      return args.positional[0];
    };
    if (name == "defined") return !value.is_undefined();
    if (name == "undefined") return value.is_undefined();
    if (name == "none") return value.is_none();
    if (name == "boolean") return value.is_bool();
    if (name == "true") return value.is_bool() && value.as_bool();
    if (name == "false") return value.is_bool() && !value.as_bool();
    if (name == "string") return value.is_string();
    if (name == "number") return value.is_number() || value.is_bool();
    if (name == "integer") return value.is_int();
    if (name == "float") return value.is_float();
    if (name == "mapping") return value.is_dict();
    if (name == "iterable")
      return value.is_string() || value.is_list() || value.is_dict() || value.is_undefined();
    if (name == "sequence") return value.is_string() || value.is_list() || value.is_dict();
    if (name == "callable") return value.is_callable();
    if (name == "escaped") return false;
    if (name == "even" || name == "odd") {
      if (!value.is_int() && !value.is_bool()) fail("test '", name, "' needs an integer");
      return (value.as_int() % 2 == 0) == (name == "even");
    }
    if (name == "divisibleby") {
      const Value& divisor = operand();
      if (!(value.is_int() || value.is_bool()) || !(divisor.is_int() || divisor.is_bool()))
        fail("divisibleby needs integers");
      if (divisor.as_int() == 0) fail("divisibleby zero");
      if (divisor.as_int() == -1) return true;
      return value.as_int() % divisor.as_int() == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==") return value == operand();
    if (name == "ne") return !(value == operand());
    if (name == "lt" || name == "lessthan") return Value::less(value, operand());
    if (name == "gt" || name == "greaterthan") return Value::less(operand(), value);
    if (name == "le") return !Value::less(operand(), value);
    if (name == "ge") return !Value::less(value, operand());
    if (name == "in") return contains(operand(), value);
    if (name == "sameas") {
      const Value& other = operand();
      if (value.is_bool() != other.is_bool()) return false;
      return value == other && value.type_name() == other.type_name();
    }
    if (name == "lower" || name == "upper") {
      if (!value.is_string()) return false;
      const std::string& s = value.as_string();
      return s == text::convert_case(s, name == "lower" ? text::Case::Lower : text::Case::Upper);
    }
    fail("unknown test '", name, "'");
  }

  const JinjaLimits& limits_;
  std::string* out_;
  std::vector<Frame> frames_;
  size_t current_ = 0;
  Control control_ = Control::None;
  uint64_t loop_iterations_ = 0;
  uint64_t work_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
};

// A parsed template. Parsing checks the syntax, tags, filters and tests; rendering evaluates it
// against a context and can be repeated with other contexts.
class Template {
 public:
  explicit Template(std::string_view source, LexerOptions lexer = {}, JinjaLimits limits = {})
      : limits_(limits) {
    Parser parser(Lexer(source, lexer).tokenize(),
                  ParserLimits{limits.max_nesting, limits.max_expression_depth});
    body_ = parser.parse_template();
  }

  // `context` maps variable names to values (a dict); undefined names render as nothing.
  std::string render(const std::vector<std::pair<std::string, Value>>& context) const {
    std::string out;
    Renderer renderer(limits_, out);
    for (const auto& [name, value] : context)
      renderer.define(name, value);
    renderer.render_body(body_);
    return out;
  }

  template <class Json>
  requires std::is_same_v<Json, nlohmann::json> || std::is_same_v<Json, nlohmann::ordered_json>
      std::string render(const Json& context)
  const {
    if (!context.is_object()) fail("template context must be a JSON object");
    std::vector<std::pair<std::string, Value>> variables;
    for (const auto& [key, value] : context.items())
      variables.emplace_back(key, Value::from_json(value));
    return render(variables);
  }

 private:
  JinjaLimits limits_;
  Body body_;
};

}  // namespace floatllm::jinja
