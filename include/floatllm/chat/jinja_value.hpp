// The values a Jinja template computes with: Python's undefined-aware little type system
// (undefined, none, bool, int, float, str, list, dict, callable) with Python's printing, equality
// and ordering, and HF transformers' `tojson`.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/tokenizer/utf8.hpp"

namespace floatllm::jinja {

// Containers nest at most this deep, so printing, comparing and destroying them cannot exhaust
// the stack whatever a template or a request builds.
inline constexpr int kMaxValueDepth = 256;

class Value;

inline void check_value_depth(int depth) {
  if (depth > kMaxValueDepth) fail("template value nests deeper than ", kMaxValueDepth);
}

struct Arguments {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
};

using Function = std::function<Value(const Arguments&)>;

// Lists and dicts are immutable once built, except namespaces (the one mutable object Jinja
// offers); namespaces cannot be stored inside containers, so no cycle can ever form.
struct List {
  std::vector<Value> items;
  int depth = 1;
  bool is_tuple = false;  // prints as (a, b); otherwise a list
};

struct Dict {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order, as Python keeps it
  int depth = 1;
  bool is_namespace = false;

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

class Value {
 public:
  struct Undefined {};
  struct None {};

  Value() = default;
  Value(bool b) : data_(b) {}
  Value(int64_t i) : data_(i) {}
  Value(int i) : data_(static_cast<int64_t>(i)) {}
  Value(double d) : data_(d) {}
  Value(std::string s) : data_(std::make_shared<const std::string>(std::move(s))) {}
  Value(std::string_view s) : Value(std::string(s)) {}
  Value(const char* s) : Value(std::string(s)) {}

  static Value none() {
    Value v;
    v.data_ = None{};
    return v;
  }
  static Value tuple(std::vector<Value> items) { return list(std::move(items), true); }
  static Value list(std::vector<Value> items, bool is_tuple = false) {
    auto list = std::make_shared<List>();
    list->is_tuple = is_tuple;
    for (const Value& item : items) {
      if (item.is_namespace()) fail("a namespace cannot be stored inside another value");
      list->depth = std::max(list->depth, item.depth() + 1);
    }
    list->items = std::move(items);
    check_value_depth(list->depth);
    Value v;
    v.data_ = std::shared_ptr<const List>(std::move(list));
    return v;
  }
  static Value dict(std::vector<std::pair<std::string, Value>> entries) {
    Dict built;
    for (auto& [key, value] : entries)
      built.set(std::move(key), std::move(value));
    return from_dict(std::move(built));
  }
  static Value from_dict(Dict dict) {
    check_value_depth(dict.depth);
    Value v;
    v.data_ = std::make_shared<Dict>(std::move(dict));
    return v;
  }
  static Value function(Function f) {
    Value v;
    v.data_ = std::make_shared<const Function>(std::move(f));
    return v;
  }

  bool is_undefined() const { return std::holds_alternative<Undefined>(data_); }
  bool is_none() const { return std::holds_alternative<None>(data_); }
  bool is_bool() const { return std::holds_alternative<bool>(data_); }
  bool is_int() const { return std::holds_alternative<int64_t>(data_); }
  bool is_float() const { return std::holds_alternative<double>(data_); }
  bool is_number() const { return is_int() || is_float(); }
  bool is_string() const { return std::holds_alternative<StringPtr>(data_); }
  bool is_list() const { return std::holds_alternative<ListPtr>(data_); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(data_); }
  bool is_namespace() const { return is_dict() && std::get<DictPtr>(data_)->is_namespace; }
  bool is_callable() const { return std::holds_alternative<FunctionPtr>(data_); }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const { return is_bool() ? int64_t{as_bool()} : std::get<int64_t>(data_); }
  double as_float() const {
    return is_float() ? std::get<double>(data_) : static_cast<double>(as_int());
  }
  const std::string& as_string() const { return *std::get<StringPtr>(data_); }
  const std::vector<Value>& as_list() const { return std::get<ListPtr>(data_)->items; }
  bool is_tuple() const { return is_list() && std::get<ListPtr>(data_)->is_tuple; }
  const Dict& as_dict() const { return *std::get<DictPtr>(data_); }
  Dict& namespace_dict() const { return *std::get<DictPtr>(data_); }
  const Function& as_function() const { return *std::get<FunctionPtr>(data_); }

  int depth() const {
    if (is_list()) return std::get<ListPtr>(data_)->depth;
    if (is_dict()) return std::get<DictPtr>(data_)->depth;
    return 0;
  }

  // Python's name for the type, for error messages.
  std::string_view type_name() const {
    static constexpr std::string_view names[] = {
        "undefined", "NoneType", "bool", "int", "float", "str", "list", "dict", "function"};
    if (is_namespace()) return "Namespace";
    return names[data_.index()];
  }

  // Python truthiness; undefined is false.
  bool truthy() const {
    return std::visit(
        [](const auto& x) -> bool {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, Undefined> || std::is_same_v<T, None>)
            return false;
          else if constexpr (std::is_same_v<T, bool>)
            return x;
          else if constexpr (std::is_same_v<T, int64_t>)
            return x != 0;
          else if constexpr (std::is_same_v<T, double>)
            return x != 0.0;
          else if constexpr (std::is_same_v<T, StringPtr>)
            return !x->empty();
          else if constexpr (std::is_same_v<T, ListPtr>)
            return !x->items.empty();
          else if constexpr (std::is_same_v<T, DictPtr>)
            return !x->entries.empty();
          else
            return true;
        },
        data_);
  }

  // What `{{ value }}` prints: Python's str(), with undefined printing nothing.
  std::string str() const {
    if (is_undefined()) return {};
    if (is_string()) return as_string();
    std::string out;
    append_repr(out);
    return out;
  }

  // Python's repr(): strings quoted, containers in Python's literal syntax.
  void append_repr(std::string& out) const {
    if (is_undefined()) {
      return;
    } else if (is_none()) {
      out += "None";
    } else if (is_bool()) {
      out += as_bool() ? "True" : "False";
    } else if (is_int()) {
      out += std::to_string(as_int());
    } else if (is_float()) {
      out += format_python_float(std::get<double>(data_), false);
    } else if (is_string()) {
      append_python_string_repr(out, as_string());
    } else if (is_list()) {
      const bool tuple = std::get<ListPtr>(data_)->is_tuple;
      out += tuple ? '(' : '[';
      bool first = true;
      for (const Value& item : as_list()) {
        if (!first) out += ", ";
        first = false;
        item.append_repr(out);
      }
      if (tuple && as_list().size() == 1) out += ',';
      out += tuple ? ')' : ']';
    } else if (is_dict()) {
      out += is_namespace() ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [key, value] : as_dict().entries) {
        if (!first) out += ", ";
        first = false;
        append_python_string_repr(out, key);
        out += ": ";
        value.append_repr(out);
      }
      out += is_namespace() ? "}>" : "}";
    } else {
      out += "<function>";
    }
  }

  // HF transformers' tojson: json.dumps(value, ensure_ascii=False, indent=indent), whose
  // separators are ", " and ": " without indent and "," and ": " with one.
  std::string to_json(int indent = -1) const {
    std::string out;
    append_json(out, indent, 0);
    return out;
  }

  // Python ==, where 1 == 1.0 == True.
  friend bool operator==(const Value& a, const Value& b) {
    const bool a_numeric = a.is_number() || a.is_bool();
    const bool b_numeric = b.is_number() || b.is_bool();
    if (a_numeric && b_numeric) {
      if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
      return a.as_int() == b.as_int();
    }
    if (a.data_.index() != b.data_.index()) return false;
    if (a.is_undefined() || a.is_none()) return true;
    if (a.is_string()) return a.as_string() == b.as_string();
    if (a.is_list()) return a.as_list() == b.as_list();
    if (a.is_dict()) {
      const Dict& x = a.as_dict();
      const Dict& y = b.as_dict();
      if (x.entries.size() != y.entries.size()) return false;
      for (const auto& [key, value] : x.entries) {
        const Value* other = y.find(key);
        if (other == nullptr || !(*other == value)) return false;
      }
      return true;
    }
    return std::get<FunctionPtr>(a.data_) == std::get<FunctionPtr>(b.data_);
  }

  // Python <; comparing unorderable types is an error, as in Python.
  static bool less(const Value& a, const Value& b) {
    if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
      if (a.is_float() || b.is_float()) return a.as_float() < b.as_float();
      return a.as_int() < b.as_int();
    }
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    if (a.is_list() && b.is_list()) {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
        if (less(x[i], y[i])) return true;
        if (less(y[i], x[i])) return false;
      }
      return x.size() < y.size();
    }
    fail("'<' is not supported between ", a.type_name(), " and ", b.type_name());
  }

  // Accepts nlohmann::json or nlohmann::ordered_json; only the latter keeps object keys in the
  // order Python (and so a template's tojson) would show them.
  template <class Json>
  static Value from_json(const Json& json, int depth = 0) {
    if (depth >= kMaxValueDepth) fail("JSON value nests deeper than ", kMaxValueDepth);
    switch (json.type()) {
      case Json::value_t::null:
        return none();
      case Json::value_t::boolean:
        return Value(json.template get<bool>());
      case Json::value_t::number_integer:
        return Value(json.template get<int64_t>());
      case Json::value_t::number_unsigned: {
        const auto u = json.template get<uint64_t>();
        if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
        return Value(static_cast<int64_t>(u));
      }
      case Json::value_t::number_float:
        return Value(json.template get<double>());
      case Json::value_t::string:
        return Value(json.template get<std::string>());
      case Json::value_t::array: {
        std::vector<Value> items;
        for (const auto& item : json)
          items.push_back(from_json(item, depth + 1));
        return list(std::move(items));
      }
      case Json::value_t::object: {
        Dict dict;
        for (const auto& [key, item] : json.items())
          dict.set(key, from_json(item, depth + 1));
        return from_dict(std::move(dict));
      }
      default:
        fail("JSON value of type ", json.type_name(), " has no template equivalent");
    }
  }

  // Python's repr() of a float: the shortest digits that round-trip, in fixed notation when the
  // exponent is in [-4, 16), else as d.ddde+XX; `json` spells the non-finite ones as JSON does.
  static std::string format_python_float(double d, bool json) {
    if (std::isnan(d)) return json ? "NaN" : "nan";
    if (std::isinf(d)) return d > 0 ? (json ? "Infinity" : "inf") : (json ? "-Infinity" : "-inf");
    char buffer[64];
    const auto result =
        std::to_chars(buffer, buffer + sizeof buffer, d, std::chars_format::scientific);
    const std::string scientific(buffer, result.ptr);
    const size_t e = scientific.find('e');
    std::string mantissa = scientific.substr(0, e);
    const int exponent = std::stoi(scientific.substr(e + 1));
    const bool negative = mantissa[0] == '-';
    if (negative) mantissa.erase(0, 1);
    std::string digits;
    for (char c : mantissa)
      if (c != '.') digits += c;
    std::string out = negative ? "-" : "";
    if (exponent >= -4 && exponent < 16) {
      if (exponent < 0) {
        out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
      } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
        out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
      } else {
        out += digits.substr(0, static_cast<size_t>(exponent) + 1) + "." +
               digits.substr(static_cast<size_t>(exponent) + 1);
      }
      return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += exponent < 0 ? "e-" : "e+";
    const int magnitude = std::abs(exponent);
    if (magnitude < 10) out += '0';
    out += std::to_string(magnitude);
    return out;
  }

 private:
  using StringPtr = std::shared_ptr<const std::string>;
  using ListPtr = std::shared_ptr<const List>;
  using DictPtr = std::shared_ptr<Dict>;
  using FunctionPtr = std::shared_ptr<const Function>;

  static void append_python_string_repr(std::string& out, std::string_view s) {
    const bool use_double =
        s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
    const char quote = use_double ? '"' : '\'';
    out += quote;
    for (char c : s) {
      const auto byte = static_cast<unsigned char>(c);
      if (c == quote || c == '\\') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (byte < 0x20 || byte == 0x7F) {
        static constexpr char hex[] = "0123456789abcdef";
        out += "\\x";
        out += hex[byte >> 4];
        out += hex[byte & 15];
      } else {
        out += c;
      }
    }
    out += quote;
  }

  static void append_json_string(std::string& out, std::string_view s) {
    out += '"';
    for (char c : s) {
      const auto byte = static_cast<unsigned char>(c);
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (byte < 0x20) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\u00";
            out += hex[byte >> 4];
            out += hex[byte & 15];
          } else {
            out += c;
          }
      }
    }
    out += '"';
  }

  void append_json(std::string& out, int indent, int level) const {
    const auto newline = [&](int at) {
      if (indent < 0) return;
      out += '\n';
      out.append(static_cast<size_t>(indent) * static_cast<size_t>(at), ' ');
    };
    const char* separator = indent < 0 ? ", " : ",";
    if (is_undefined()) {
      fail("tojson: an undefined value is not JSON serializable");
    } else if (is_none()) {
      out += "null";
    } else if (is_bool()) {
      out += as_bool() ? "true" : "false";
    } else if (is_int()) {
      out += std::to_string(as_int());
    } else if (is_float()) {
      out += format_python_float(std::get<double>(data_), true);
    } else if (is_string()) {
      append_json_string(out, as_string());
    } else if (is_list()) {
      if (as_list().empty()) {
        out += "[]";
        return;
      }
      out += '[';
      bool first = true;
      for (const Value& item : as_list()) {
        if (!first) out += separator;
        first = false;
        newline(level + 1);
        item.append_json(out, indent, level + 1);
      }
      newline(level);
      out += ']';
    } else if (is_dict()) {
      if (as_dict().entries.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      bool first = true;
      for (const auto& [key, value] : as_dict().entries) {
        if (!first) out += separator;
        first = false;
        newline(level + 1);
        append_json_string(out, key);
        out += ": ";
        value.append_json(out, indent, level + 1);
      }
      newline(level);
      out += '}';
    } else {
      fail("tojson: a function is not JSON serializable");
    }
  }

  std::variant<Undefined, None, bool, int64_t, double, StringPtr, ListPtr, DictPtr, FunctionPtr>
      data_;
};

inline const Value* Dict::find(std::string_view key) const {
  for (const auto& entry : entries)
    if (entry.first == key) return &entry.second;
  return nullptr;
}

inline void Dict::set(std::string key, Value value) {
  if (value.is_namespace()) fail("a namespace cannot be stored inside another value");
  depth = std::max(depth, value.depth() + 1);
  check_value_depth(depth);
  for (auto& entry : entries) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

}  // namespace floatllm::jinja
