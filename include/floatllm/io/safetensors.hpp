// A zero-copy view of safetensors files (Hugging Face checkpoints), single or sharded.
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON, then the tensor data. The
// JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) and may hold a "__metadata__" object of strings. Everything is
// validated when a file is opened: the header length is bounded and inside the file, every
// entry has exactly the fields it should, the byte range matches dtype × shape, and the ranges
// tile the data section in order with no overlap, gap or trailing bytes (as the format's
// specification requires, so no bytes can hide in a file). Tensors are spans into the mapping.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "floatllm/core/error.hpp"
#include "floatllm/core/mapped_file.hpp"
#include "floatllm/quant/half.hpp"

namespace floatllm {

enum class SafetensorsDtype : uint8_t {
  BOOL,
  U8,
  I8,
  U16,
  I16,
  U32,
  I32,
  U64,
  I64,
  F16,
  BF16,
  F32,
  F64
};

struct SafetensorsDtypeInfo {
  SafetensorsDtype dtype;
  std::string_view name;
  uint32_t bytes;
};

inline constexpr std::array<SafetensorsDtypeInfo, 13> kSafetensorsDtypes{{
    {SafetensorsDtype::BOOL, "BOOL", 1},
    {SafetensorsDtype::U8, "U8", 1},
    {SafetensorsDtype::I8, "I8", 1},
    {SafetensorsDtype::U16, "U16", 2},
    {SafetensorsDtype::I16, "I16", 2},
    {SafetensorsDtype::U32, "U32", 4},
    {SafetensorsDtype::I32, "I32", 4},
    {SafetensorsDtype::U64, "U64", 8},
    {SafetensorsDtype::I64, "I64", 8},
    {SafetensorsDtype::F16, "F16", 2},
    {SafetensorsDtype::BF16, "BF16", 2},
    {SafetensorsDtype::F32, "F32", 4},
    {SafetensorsDtype::F64, "F64", 8},
}};

constexpr const SafetensorsDtypeInfo& safetensors_dtype_info(SafetensorsDtype dtype) {
  return kSafetensorsDtypes[static_cast<std::size_t>(dtype)];
}
constexpr std::string_view safetensors_dtype_name(SafetensorsDtype dtype) {
  return safetensors_dtype_info(dtype).name;
}
constexpr uint32_t safetensors_dtype_size(SafetensorsDtype dtype) {
  return safetensors_dtype_info(dtype).bytes;
}
constexpr std::optional<SafetensorsDtype> safetensors_dtype_from_name(std::string_view name) {
  for (const auto& info : kSafetensorsDtypes) {
    if (info.name == name) return info.dtype;
  }
  return std::nullopt;
}

// The dtype whose data a C++ element type views. F16 and BF16 have no C++ type here: read them
// with half_bits() or convert them with read_f32().
template <class T>
struct SafetensorsDtypeOf;
template <>
struct SafetensorsDtypeOf<float> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::F32;
};
template <>
struct SafetensorsDtypeOf<double> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::F64;
};
template <>
struct SafetensorsDtypeOf<int8_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::I8;
};
template <>
struct SafetensorsDtypeOf<uint8_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::U8;
};
template <>
struct SafetensorsDtypeOf<int16_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::I16;
};
template <>
struct SafetensorsDtypeOf<uint16_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::U16;
};
template <>
struct SafetensorsDtypeOf<int32_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::I32;
};
template <>
struct SafetensorsDtypeOf<uint32_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::U32;
};
template <>
struct SafetensorsDtypeOf<int64_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::I64;
};
template <>
struct SafetensorsDtypeOf<uint64_t> {
  static constexpr SafetensorsDtype value = SafetensorsDtype::U64;
};

// One tensor. `shape` is row-major, outermost dimension first (PyTorch order): the reverse of
// GGUF's `ne`.
struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype{};
  std::vector<uint64_t> shape;
  uint64_t element_count = 0;
  uint64_t file_offset = 0;  // absolute offset of the data in its file
  std::span<const std::byte> data;

  uint64_t byte_size() const { return data.size(); }

  // The data as T after checking the dtype and the alignment (a header length that is not a
  // multiple of the element size can leave data unaligned; read_f32 works regardless).
  template <class T>
  std::span<const T> as() const {
    return typed<T>(SafetensorsDtypeOf<T>::value);
  }

  // Raw 16-bit patterns of an F16 or BF16 tensor.
  std::span<const uint16_t> half_bits() const {
    if (dtype != SafetensorsDtype::F16 && dtype != SafetensorsDtype::BF16) {
      fail("tensor '", name, "' is ", safetensors_dtype_name(dtype), ", not F16 or BF16");
    }
    return typed<uint16_t>(dtype);
  }

  // Elements [first, first + out.size()) of an F32, F16, BF16 or F64 tensor, converted to float.
  void read_f32(uint64_t first, std::span<float> out) const {
    if (first > element_count || out.size() > element_count - first) {
      fail("tensor '", name, "': elements [", first, ", ", first + out.size(), ") are outside its ",
           element_count, " elements");
    }
    const std::byte* at = data.data() + first * safetensors_dtype_size(dtype);
    switch (dtype) {
      case SafetensorsDtype::F32:
        if (!out.empty()) std::memcpy(out.data(), at, out.size() * sizeof(float));
        return;
      case SafetensorsDtype::F64:
        for (std::size_t i = 0; i < out.size(); ++i)
          out[i] = static_cast<float>(load<double>(at + 8 * i));
        return;
      case SafetensorsDtype::F16:
        for (std::size_t i = 0; i < out.size(); ++i)
          out[i] = fp16_to_f32(load<uint16_t>(at + 2 * i));
        return;
      case SafetensorsDtype::BF16:
        for (std::size_t i = 0; i < out.size(); ++i)
          out[i] = bf16_to_f32(load<uint16_t>(at + 2 * i));
        return;
      default:
        fail("tensor '", name, "' is ", safetensors_dtype_name(dtype),
             ", not a floating-point dtype");
    }
  }

 private:
  template <class T>
  static T load(const std::byte* at) {
    T value;
    std::memcpy(&value, at, sizeof value);
    return value;
  }

  template <class T>
  std::span<const T> typed(SafetensorsDtype wanted) const {
    if (dtype != wanted) {
      fail("tensor '", name, "' is ", safetensors_dtype_name(dtype), ", not ",
           safetensors_dtype_name(wanted));
    }
    if (reinterpret_cast<uintptr_t>(data.data()) % alignof(T) != 0) {
      fail("tensor '", name, "' at file offset ", file_offset, " is not aligned to ", alignof(T),
           " bytes");
    }
    return {reinterpret_cast<const T*>(data.data()), data.size() / sizeof(T)};
  }
};

class SafetensorsFile {
 public:
  // The reference implementation refuses larger headers; real ones are well under 1 MB.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  explicit SafetensorsFile(const std::filesystem::path& path) : file_(path) {
    parse(file_.bytes(), file_.path());
  }

  // Views bytes owned by the caller (tests, fuzzing); they must outlive this object.
  SafetensorsFile(std::span<const std::byte> bytes, std::string source) {
    parse(bytes, std::move(source));
  }

  const std::string& source() const { return source_; }
  uint64_t header_size() const { return header_size_; }
  uint64_t data_offset() const { return 8 + header_size_; }
  uint64_t file_size() const { return bytes_.size(); }
  std::span<const std::byte> bytes() const { return bytes_; }

  // In file order (ascending offsets).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  const SafetensorsTensor* find_tensor(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : &tensors_[it->second];
  }

  const SafetensorsTensor& tensor(std::string_view name) const {
    const SafetensorsTensor* found = find_tensor(name);
    if (found == nullptr) fail(source_, ": missing tensor '", name, "'");
    return *found;
  }

 private:
  using json = nlohmann::json;

  template <class... Parts>
  [[noreturn]] void fail_here(Parts&&... parts) const {
    fail(source_, ": ", std::forward<Parts>(parts)...);
  }

  void parse(std::span<const std::byte> bytes, std::string source) {
    bytes_ = bytes;
    source_ = std::move(source);
    if (bytes.size() < 8) {
      fail_here("header length: the file has ", bytes.size(),
                " bytes, fewer than the 8-byte header length (not a safetensors file?)");
    }
    uint64_t header_size = 0;
    std::memcpy(&header_size, bytes.data(), 8);
    if (header_size > kMaxHeaderBytes) {
      fail_here("header length ", header_size, " exceeds the limit of ", kMaxHeaderBytes,
                " bytes (not a safetensors file?)");
    }
    if (header_size > bytes.size() - 8) {
      fail_here("header length ", header_size, " exceeds the ", bytes.size() - 8,
                " bytes that follow it (file truncated?)");
    }
    header_size_ = header_size;
    const auto* text = reinterpret_cast<const char*>(bytes.data() + 8);
    if (header_size == 0 || text[0] != '{') {
      fail_here("header JSON at byte offset 8 does not start with '{'");
    }
    const json header = parse_json(text, header_size);
    if (!header.is_object()) fail_here("header JSON is not an object");

    const uint64_t data_size = bytes.size() - data_offset();
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        read_metadata(entry);
        continue;
      }
      tensors_.push_back(read_tensor(name, entry, data_size));
    }
    check_tiling(data_size);
    index_.reserve(tensors_.size());
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      index_.emplace(tensors_[i].name, i);
  }

  json parse_json(const char* text, uint64_t size) const {
    // nlohmann keeps the last of duplicate keys silently; a hostile file could then show one
    // tensor to us and another to a different reader, so duplicates are rejected.
    std::vector<std::unordered_set<std::string>> keys_by_depth;
    std::string duplicate;
    const json::parser_callback_t check_duplicates = [&](int depth, json::parse_event_t event,
                                                         json& parsed) {
      const auto level = static_cast<std::size_t>(depth);
      if (event == json::parse_event_t::object_start) {
        if (keys_by_depth.size() <= level + 1) keys_by_depth.resize(level + 2);
        keys_by_depth[level + 1].clear();
      } else if (event == json::parse_event_t::key && duplicate.empty()) {
        if (keys_by_depth.size() <= level) keys_by_depth.resize(level + 1);
        if (!keys_by_depth[level].insert(parsed.get<std::string>()).second) {
          duplicate = parsed.get<std::string>();
        }
      }
      return true;
    };
    json header;
    try {
      header = json::parse(text, text + size, check_duplicates);
    } catch (const json::exception& e) {
      fail_here("header JSON (bytes 8 to ", 8 + size, ") is invalid: ", e.what());
    }
    if (!duplicate.empty()) fail_here("header JSON has the key '", duplicate, "' twice");
    return header;
  }

  void read_metadata(const json& entry) {
    if (!entry.is_object()) fail_here("'__metadata__' is not an object");
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string()) {
        fail_here("'__metadata__' entry '", key, "' is ", value.type_name(), ", not a string");
      }
      metadata_.emplace(key, value.get<std::string>());
    }
  }

  SafetensorsTensor read_tensor(const std::string& name, const json& entry,
                                uint64_t data_size) const {
    if (!entry.is_object())
      fail_here("tensor '", name, "' is ", entry.type_name(), ", not an object");
    for (const auto& [field, value] : entry.items()) {
      if (field != "dtype" && field != "shape" && field != "data_offsets") {
        fail_here("tensor '", name, "' has the unknown field '", field, "'");
      }
    }
    SafetensorsTensor tensor;
    tensor.name = name;

    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      fail_here("tensor '", name, "' dtype: missing or not a string");
    }
    const std::string dtype_name = dtype_it->get<std::string>();
    const auto dtype = safetensors_dtype_from_name(dtype_name);
    if (!dtype) fail_here("tensor '", name, "' dtype: '", dtype_name, "' is not supported");
    tensor.dtype = *dtype;

    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) {
      fail_here("tensor '", name, "' shape: missing or not an array");
    }
    uint64_t elements = 1;
    constexpr uint64_t kMaxElements = uint64_t{1} << 62;
    for (std::size_t d = 0; d < shape_it->size(); ++d) {
      const json& dim = (*shape_it)[d];
      if (!dim.is_number_unsigned()) {
        fail_here("tensor '", name, "' shape[", d, "]: ", dim.dump(),
                  " is not a non-negative integer");
      }
      const auto extent = dim.get<uint64_t>();
      if (extent > kMaxElements || (extent != 0 && elements > kMaxElements / extent)) {
        fail_here("tensor '", name, "' shape[", d, "]: ", extent,
                  " makes the element count overflow");
      }
      elements *= extent;
      tensor.shape.push_back(extent);
    }
    tensor.element_count = elements;

    const auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      fail_here("tensor '", name, "' data_offsets: must be [begin, end] of non-negative integers");
    }
    const auto begin = (*offsets_it)[0].get<uint64_t>();
    const auto end = (*offsets_it)[1].get<uint64_t>();
    if (begin > end) {
      fail_here("tensor '", name, "' data_offsets: begin ", begin, " is after end ", end);
    }
    if (end > data_size) {
      fail_here("tensor '", name, "' data_offsets: end ", end, " is past the data section, which ",
                "holds ", data_size, " bytes from byte ", data_offset());
    }
    const uint64_t expected = elements * safetensors_dtype_size(tensor.dtype);
    if (end - begin != expected) {
      fail_here("tensor '", name, "' data_offsets: [", begin, ", ", end, ") holds ", end - begin,
                " bytes but ", dtype_name, " ", shape_text(tensor.shape), " needs ", expected);
    }
    tensor.file_offset = data_offset() + begin;
    tensor.data = bytes_.subspan(tensor.file_offset, expected);
    return tensor;
  }

  void check_tiling(uint64_t data_size) {
    std::stable_sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) {
      return a.file_offset != b.file_offset ? a.file_offset < b.file_offset
                                            : a.data.size() < b.data.size();
    });
    uint64_t expected_begin = 0;
    const SafetensorsTensor* previous = nullptr;
    for (const SafetensorsTensor& tensor : tensors_) {
      const uint64_t begin = tensor.file_offset - data_offset();
      if (begin < expected_begin) {
        fail_here("tensor '", tensor.name, "' data_offsets: [", begin, ", ",
                  begin + tensor.data.size(), ") overlaps tensor '", previous->name,
                  "', which ends at ", expected_begin);
      }
      if (begin > expected_begin) {
        fail_here("tensor '", tensor.name, "' data_offsets: begins at ", begin, ", leaving ",
                  begin - expected_begin, " unused bytes after ",
                  previous ? "tensor '" + previous->name + "'" : std::string("the header"));
      }
      expected_begin = begin + tensor.data.size();
      previous = &tensor;
    }
    if (expected_begin != data_size) {
      fail_here("data section: ", data_size - expected_begin,
                " bytes after the last tensor belong to no tensor");
    }
  }

  static std::string shape_text(const std::vector<uint64_t>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (i > 0) text += ", ";
      text += std::to_string(shape[i]);
    }
    return text + "]";
  }

  MappedFile file_;
  std::span<const std::byte> bytes_;
  std::string source_;
  uint64_t header_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint of one or more safetensors files: a single `model.safetensors`, or shards listed
// by `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor: shard file}}).
class SafetensorsCheckpoint {
 public:
  static constexpr const char* kIndexName = "model.safetensors.index.json";
  static constexpr const char* kSingleName = "model.safetensors";
  static constexpr uint64_t kMaxIndexBytes = 100'000'000;

  // `path` is a directory (index preferred over a single file), an index file or a
  // .safetensors file.
  explicit SafetensorsCheckpoint(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    if (fs::is_directory(path)) {
      if (fs::exists(path / kIndexName)) {
        open_index(path / kIndexName);
      } else if (fs::exists(path / kSingleName)) {
        open_single(path / kSingleName);
      } else {
        fail(path.string(), ": no ", kIndexName, " or ", kSingleName, " in this directory");
      }
    } else if (path.string().ends_with(".json")) {
      open_index(path);
    } else {
      open_single(path);
    }
  }

  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

  // Every tensor, sorted by name.
  std::vector<const SafetensorsTensor*> tensors() const {
    std::vector<const SafetensorsTensor*> all;
    all.reserve(index_.size());
    for (const auto& [name, tensor] : index_)
      all.push_back(tensor);
    return all;
  }

  const SafetensorsTensor* find_tensor(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    return it == index_.end() ? nullptr : it->second;
  }

  const SafetensorsTensor& tensor(std::string_view name) const {
    const SafetensorsTensor* found = find_tensor(name);
    if (found == nullptr) fail(source_, ": missing tensor '", name, "'");
    return *found;
  }

  // The index's "metadata" object (e.g. total_size); empty for a single file.
  const nlohmann::json& index_metadata() const { return index_metadata_; }
  const std::string& source() const { return source_; }

 private:
  void open_single(const std::filesystem::path& path) {
    source_ = path.string();
    shards_.push_back(std::make_unique<SafetensorsFile>(path));
    for (const SafetensorsTensor& tensor : shards_.back()->tensors())
      index_.emplace(tensor.name, &tensor);
  }

  void open_index(const std::filesystem::path& path) {
    source_ = path.string();
    const MappedFile file(path);
    if (file.size() > kMaxIndexBytes) {
      fail(source_, ": ", file.size(), " bytes exceeds the index size limit of ", kMaxIndexBytes);
    }
    const auto* text = reinterpret_cast<const char*>(file.bytes().data());
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(text, text + file.size());
    } catch (const nlohmann::json::exception& e) {
      fail(source_, ": invalid JSON: ", e.what());
    }
    if (!index.is_object()) fail(source_, ": the index is not a JSON object");
    if (const auto it = index.find("metadata"); it != index.end()) {
      if (!it->is_object()) fail(source_, ": 'metadata' is not an object");
      index_metadata_ = *it;
    }
    const auto map_it = index.find("weight_map");
    if (map_it == index.end() || !map_it->is_object()) {
      fail(source_, ": 'weight_map' is missing or not an object");
    }

    std::map<std::string, std::size_t> shard_numbers;
    std::map<std::string, std::string> wanted;  // tensor -> shard file
    for (const auto& [tensor, shard] : map_it->items()) {
      if (!shard.is_string()) {
        fail(source_, ": weight_map entry '", tensor, "' is ", shard.type_name(),
             ", not a file name");
      }
      const std::string file_name = shard.get<std::string>();
      if (file_name.empty() || file_name == "." || file_name == ".." ||
          file_name.find('/') != std::string::npos || file_name.find('\\') != std::string::npos ||
          file_name.find('\0') != std::string::npos) {
        fail(source_, ": weight_map entry '", tensor, "' names the shard '", file_name,
             "', which is not a plain file name in the index's directory");
      }
      if (!shard_numbers.contains(file_name)) {
        shard_numbers.emplace(file_name, shards_.size());
        shards_.push_back(std::make_unique<SafetensorsFile>(path.parent_path() / file_name));
      }
      wanted.emplace(tensor, file_name);
    }

    for (const auto& [file_name, number] : shard_numbers) {
      for (const SafetensorsTensor& tensor : shards_[number]->tensors()) {
        const auto it = wanted.find(tensor.name);
        if (it == wanted.end() || it->second != file_name) {
          fail(source_, ": tensor '", tensor.name, "' of shard '", file_name,
               "' is not mapped to that shard by weight_map");
        }
      }
    }
    for (const auto& [tensor, file_name] : wanted) {
      const SafetensorsTensor* found = shards_[shard_numbers.at(file_name)]->find_tensor(tensor);
      if (found == nullptr) {
        fail(source_, ": weight_map puts tensor '", tensor, "' in shard '", file_name,
             "', which does not hold it");
      }
      index_.emplace(tensor, found);
    }
  }

  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, const SafetensorsTensor*> index_;
  nlohmann::json index_metadata_ = nlohmann::json::object();
};

}  // namespace floatllm
