// `floatllm inspect MODEL`: what a GGUF file holds, for people (a table) or machines (--json).
#include <floatllm/floatllm.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "commands.hpp"

namespace floatllm::cli {
namespace {

constexpr uint64_t kArrayPreview = 8;      // elements shown of a long array
constexpr uint64_t kJsonArrayInline = 64;  // arrays up to this size appear whole in JSON

std::string escape(std::string_view text, std::size_t max_chars = 80) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out << std::fixed << std::setprecision(unit == 0 ? 0 : 2) << value << " " << units[unit];
  return out.str();
}

std::string scalar_text(const GgufValue& value) {
  switch (value.type()) {
    case GgufType::STRING:
      return "\"" + escape(value.as_string()) + "\"";
    case GgufType::BOOL:
      return value.as<bool>() ? "true" : "false";
    case GgufType::FLOAT32:
    case GgufType::FLOAT64: {
      std::ostringstream out;
      out << value.as<double>();
      return out.str();
    }
    case GgufType::INT8:
    case GgufType::INT16:
    case GgufType::INT32:
    case GgufType::INT64:
      return std::to_string(value.as<int64_t>());
    default:
      return std::to_string(value.as<uint64_t>());
  }
}

std::string value_text(const GgufValue& value) {
  if (value.type() != GgufType::ARRAY) return scalar_text(value);
  const GgufArray array = value.as_array();
  std::string out = concat("[", gguf_type_name(array.element_type()), " x ", array.size(), "] ");
  uint64_t shown = 0;
  for (const GgufValue element : array) {
    if (shown == kArrayPreview) {
      out += ", ...";
      break;
    }
    out += shown == 0 ? "" : ", ";
    out += value_text(element);
    ++shown;
  }
  return out;
}

nlohmann::json scalar_json(const GgufValue& value) {
  switch (value.type()) {
    // Token pieces may be invalid UTF-8 on their own; the dump replaces such bytes.
    case GgufType::STRING:
      return std::string(value.as_string());
    case GgufType::BOOL:
      return value.as<bool>();
    case GgufType::FLOAT32:
    case GgufType::FLOAT64:
      return value.as<double>();
    case GgufType::INT8:
    case GgufType::INT16:
    case GgufType::INT32:
    case GgufType::INT64:
      return value.as<int64_t>();
    default:
      return value.as<uint64_t>();
  }
}

nlohmann::json value_json(const GgufValue& value, bool full_arrays) {
  if (value.type() != GgufType::ARRAY) return scalar_json(value);
  const GgufArray array = value.as_array();
  const bool whole = full_arrays || array.size() <= kJsonArrayInline;
  nlohmann::json elements = nlohmann::json::array();
  for (const GgufValue element : array) {
    if (!whole && elements.size() == kArrayPreview) break;
    elements.push_back(value_json(element, full_arrays));
  }
  if (whole) return elements;
  return {{"element_type", gguf_type_name(array.element_type())},
          {"size", array.size()},
          {"head", elements}};
}

std::string shape_text(const GgufTensor& tensor) {
  std::string out = "[";
  for (uint32_t d = 0; d < tensor.n_dims; ++d)
    out += concat(d ? ", " : "", tensor.ne[d]);
  return out + "]";
}

struct TypeTotal {
  uint64_t tensors = 0;
  uint64_t elements = 0;
  uint64_t bytes = 0;
};

std::map<std::string_view, TypeTotal> totals_by_type(const GgufFile& gguf) {
  std::map<std::string_view, TypeTotal> totals;
  for (const GgufTensor& tensor : gguf.tensors()) {
    TypeTotal& total = totals[ggml_type_name(tensor.type)];
    ++total.tensors;
    total.elements += tensor.element_count;
    total.bytes += tensor.byte_size();
  }
  return totals;
}

void print_text(const GgufFile& gguf) {
  std::cout << "file:      " << gguf.source() << " (" << gguf.file_size() << " bytes, "
            << human_bytes(gguf.file_size()) << ")\n"
            << "format:    GGUF v" << gguf.version() << ", alignment " << gguf.alignment()
            << ", tensor data from byte " << gguf.data_offset() << "\n\n"
            << "metadata (" << gguf.metadata().size() << " keys):\n";
  for (const auto& entry : gguf.metadata()) {
    std::cout << "  " << escape(entry.key) << " = " << value_text(entry.value) << "\n";
  }

  std::cout << "\ntensors (" << gguf.tensors().size() << "):\n";
  std::size_t name_width = 4;
  for (const GgufTensor& tensor : gguf.tensors()) {
    name_width = std::max(name_width, std::min<std::size_t>(tensor.name.size(), 60));
  }
  std::cout << "  " << std::left << std::setw(static_cast<int>(name_width)) << "name"
            << "  " << std::setw(8) << "type" << std::setw(26) << "shape" << std::right
            << std::setw(14) << "bytes" << std::setw(14) << "offset"
            << "\n";
  for (const GgufTensor& tensor : gguf.tensors()) {
    std::cout << "  " << std::left << std::setw(static_cast<int>(name_width))
              << escape(tensor.name, 60) << "  " << std::setw(8) << ggml_type_name(tensor.type)
              << std::setw(26) << shape_text(tensor) << std::right << std::setw(14)
              << tensor.byte_size() << std::setw(14) << tensor.file_offset << "\n";
  }

  std::cout << "\ntotals by type:\n";
  uint64_t all_bytes = 0;
  uint64_t all_elements = 0;
  for (const auto& [name, total] : totals_by_type(gguf)) {
    std::cout << "  " << std::left << std::setw(8) << name << std::right << std::setw(6)
              << total.tensors << " tensors " << std::setw(14) << total.elements << " parameters "
              << std::setw(12) << human_bytes(total.bytes) << "\n";
    all_bytes += total.bytes;
    all_elements += total.elements;
  }
  std::cout << "  " << std::left << std::setw(8) << "all" << std::right << std::setw(6)
            << gguf.tensors().size() << " tensors " << std::setw(14) << all_elements
            << " parameters " << std::setw(12) << human_bytes(all_bytes) << "\n";
}

void print_json(const GgufFile& gguf, bool full_arrays) {
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& entry : gguf.metadata()) {
    metadata[std::string(entry.key)] = {{"type", gguf_type_name(entry.value.type())},
                                        {"value", value_json(entry.value, full_arrays)}};
  }
  nlohmann::json tensors = nlohmann::json::array();
  for (const GgufTensor& tensor : gguf.tensors()) {
    nlohmann::json shape = nlohmann::json::array();
    for (uint32_t d = 0; d < tensor.n_dims; ++d)
      shape.push_back(tensor.ne[d]);
    tensors.push_back({{"name", std::string(tensor.name)},
                       {"type", ggml_type_name(tensor.type)},
                       {"shape", shape},
                       {"elements", tensor.element_count},
                       {"bytes", tensor.byte_size()},
                       {"offset", tensor.file_offset}});
  }
  nlohmann::json totals = nlohmann::json::object();
  for (const auto& [name, total] : totals_by_type(gguf)) {
    totals[std::string(name)] = {
        {"tensors", total.tensors}, {"elements", total.elements}, {"bytes", total.bytes}};
  }
  const nlohmann::json out = {{"file", gguf.source()},
                              {"file_size", gguf.file_size()},
                              {"version", gguf.version()},
                              {"alignment", gguf.alignment()},
                              {"data_offset", gguf.data_offset()},
                              {"metadata", metadata},
                              {"tensors", tensors},
                              {"totals", totals}};
  std::cout << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

Command add_inspect(CLI::App& app) {
  struct Options {
    std::string model = FLOATLLM_DEFAULT_MODEL;
    bool json = false;
    bool full_arrays = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* command = app.add_subcommand("inspect", "Show the metadata and tensors of a GGUF file");
  command->add_option("model", options->model, "GGUF file (default: the sample model)");
  command->add_flag("--json", options->json, "Print JSON for machines");
  command->add_flag("--full-arrays", options->full_arrays,
                    "With --json, print long arrays whole instead of their first elements");
  return [options] {
    const GgufFile gguf(options->model);
    if (options->json) {
      print_json(gguf, options->full_arrays);
    } else {
      print_text(gguf);
    }
    return 0;
  };
}

const CommandRegistration registration("inspect", add_inspect);

}  // namespace
}  // namespace floatllm::cli
