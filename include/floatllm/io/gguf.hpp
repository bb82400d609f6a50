// A zero-copy view of a GGUF file (versions 2 and 3): metadata and tensors point into the mapping.
//
// Everything in the header is validated once when the file is opened, so later accessors can
// walk the bytes without re-checking bounds. No tensor data is read while opening.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/core/mapped_file.hpp"
#include "floatllm/io/byte_reader.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};

constexpr std::string_view gguf_type_name(GgufType type) {
  constexpr std::array<std::string_view, 13> names{
      "uint8", "int8",   "uint16", "int16",  "uint32", "int32",  "float32",
      "bool",  "string", "array",  "uint64", "int64",  "float64"};
  const auto index = static_cast<uint32_t>(type);
  return index < names.size() ? names[index] : std::string_view("unknown");
}

// Bytes of one value of a fixed-size type; 0 for STRING and ARRAY, whose size varies.
constexpr uint64_t gguf_fixed_size(GgufType type) {
  switch (type) {
    case GgufType::UINT8:
    case GgufType::INT8:
    case GgufType::BOOL:
      return 1;
    case GgufType::UINT16:
    case GgufType::INT16:
      return 2;
    case GgufType::UINT32:
    case GgufType::INT32:
    case GgufType::FLOAT32:
      return 4;
    case GgufType::UINT64:
    case GgufType::INT64:
    case GgufType::FLOAT64:
      return 8;
    case GgufType::STRING:
    case GgufType::ARRAY:
      return 0;
  }
  return 0;
}

constexpr bool gguf_is_integer(GgufType type) {
  return type == GgufType::UINT8 || type == GgufType::INT8 || type == GgufType::UINT16 ||
         type == GgufType::INT16 || type == GgufType::UINT32 || type == GgufType::INT32 ||
         type == GgufType::UINT64 || type == GgufType::INT64;
}

constexpr bool gguf_is_float(GgufType type) {
  return type == GgufType::FLOAT32 || type == GgufType::FLOAT64;
}

namespace gguf_detail {

template <class T>
T load(const std::byte* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}

// Size in bytes of an already validated value that starts at `at`.
inline uint64_t extent(GgufType type, const std::byte* at) {
  if (const uint64_t fixed = gguf_fixed_size(type)) return fixed;
  if (type == GgufType::STRING) return 8 + load<uint64_t>(at);
  const auto element = static_cast<GgufType>(load<uint32_t>(at));
  const uint64_t count = load<uint64_t>(at + 4);
  if (const uint64_t fixed = gguf_fixed_size(element)) return 12 + fixed * count;
  uint64_t size = 12;
  for (uint64_t i = 0; i < count; ++i)
    size += extent(element, at + size);
  return size;
}

template <class T>
inline constexpr bool is_number_v =
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>;

}  // namespace gguf_detail

class GgufArray;

// One metadata value, viewed in place. `key` names it in error messages.
class GgufValue {
 public:
  GgufValue(GgufType type, const std::byte* at, std::string_view key)
      : type_(type), at_(at), key_(key) {}

  GgufType type() const { return type_; }
  std::string_view key() const { return key_; }

  // Numbers convert when the stored value fits the requested type exactly (an int32 field read
  // as uint32 is fine while it is not negative); anything else is an error naming the key.
  template <class T>
  T as() const {
    if constexpr (std::is_same_v<T, bool>) {
      expect(type_ == GgufType::BOOL, "bool");
      return gguf_detail::load<uint8_t>(at_) != 0;
    } else if constexpr (std::is_same_v<T, std::string_view>) {
      return as_string();
    } else if constexpr (std::is_same_v<T, std::string>) {
      return std::string(as_string());
    } else {
      static_assert(gguf_detail::is_number_v<T>, "GgufValue::as<T>: unsupported T");
      return number<T>();
    }
  }

  std::string_view as_string() const {
    expect(type_ == GgufType::STRING, "string");
    const uint64_t length = gguf_detail::load<uint64_t>(at_);
    return {reinterpret_cast<const char*>(at_ + 8), length};
  }

  inline GgufArray as_array() const;

  uint64_t byte_size() const { return gguf_detail::extent(type_, at_); }

 private:
  void expect(bool ok, std::string_view wanted) const {
    if (!ok) fail("metadata '", key_, "' is ", gguf_type_name(type_), ", not ", wanted);
  }

  template <class T>
  T number() const {
    switch (type_) {
      case GgufType::UINT8:
        return convert<T>(gguf_detail::load<uint8_t>(at_));
      case GgufType::INT8:
        return convert<T>(gguf_detail::load<int8_t>(at_));
      case GgufType::UINT16:
        return convert<T>(gguf_detail::load<uint16_t>(at_));
      case GgufType::INT16:
        return convert<T>(gguf_detail::load<int16_t>(at_));
      case GgufType::UINT32:
        return convert<T>(gguf_detail::load<uint32_t>(at_));
      case GgufType::INT32:
        return convert<T>(gguf_detail::load<int32_t>(at_));
      case GgufType::UINT64:
        return convert<T>(gguf_detail::load<uint64_t>(at_));
      case GgufType::INT64:
        return convert<T>(gguf_detail::load<int64_t>(at_));
      case GgufType::FLOAT32:
        return convert<T>(gguf_detail::load<float>(at_));
      case GgufType::FLOAT64:
        return convert<T>(gguf_detail::load<double>(at_));
      default:
        expect(false, "a number");
    }
    return T{};
  }

  template <class T, class S>
  T convert(S stored) const {
    if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(stored);
    } else if constexpr (std::is_floating_point_v<S>) {
      fail("metadata '", key_, "' is ", gguf_type_name(type_), ", not an integer");
    } else {
      if (!std::in_range<T>(stored)) {
        fail("metadata '", key_, "' holds ", +stored, ", which does not fit the requested ",
             sizeof(T) * 8, "-bit integer");
      }
      return static_cast<T>(stored);
    }
  }

  GgufType type_;
  const std::byte* at_;
  std::string_view key_;
};

// An array value: a count of elements of one type. Elements of fixed size are reached by index;
// strings and nested arrays by iteration, which walks the bytes without copying.
class GgufArray {
 public:
  GgufArray(GgufType element_type, uint64_t count, const std::byte* first, std::string_view key)
      : element_type_(element_type), count_(count), first_(first), key_(key) {}

  GgufType element_type() const { return element_type_; }
  uint64_t size() const { return count_; }
  bool empty() const { return count_ == 0; }

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = GgufValue;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    iterator(GgufType type, const std::byte* at, std::string_view key)
        : type_(type), at_(at), key_(key) {}
    GgufValue operator*() const { return {type_, at_, key_}; }
    iterator& operator++() {
      at_ += gguf_detail::extent(type_, at_);
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator& other) const { return at_ == other.at_; }

   private:
    GgufType type_{};
    const std::byte* at_ = nullptr;
    std::string_view key_;
  };

  iterator begin() const { return {element_type_, first_, key_}; }
  iterator end() const {
    const std::byte* past = first_;
    if (const uint64_t fixed = gguf_fixed_size(element_type_)) {
      past += fixed * count_;
    } else {
      for (uint64_t i = 0; i < count_; ++i)
        past += gguf_detail::extent(element_type_, past);
    }
    return {element_type_, past, key_};
  }

  // Element `index` of a fixed-size array, converted as GgufValue::as<T> does.
  template <class T>
  T at(uint64_t index) const {
    const uint64_t fixed = gguf_fixed_size(element_type_);
    if (fixed == 0) {
      fail("metadata '", key_, "' is an array of ", gguf_type_name(element_type_),
           "; iterate it instead of indexing");
    }
    if (index >= count_) fail("metadata '", key_, "': index ", index, " >= size ", count_);
    return GgufValue(element_type_, first_ + fixed * index, key_).as<T>();
  }

  // Every element as T, e.g. token scores as float or token types as int32.
  template <class T>
  std::vector<T> to_vector() const {
    std::vector<T> values;
    values.reserve(count_);
    for (const GgufValue value : *this)
      values.push_back(value.as<T>());
    return values;
  }

  // The elements of a string array, in order, as views into the file.
  std::vector<std::string_view> strings() const {
    if (element_type_ != GgufType::STRING) {
      fail("metadata '", key_, "' is an array of ", gguf_type_name(element_type_),
           ", not of strings");
    }
    return to_vector<std::string_view>();
  }

 private:
  GgufType element_type_;
  uint64_t count_;
  const std::byte* first_;
  std::string_view key_;
};

inline GgufArray GgufValue::as_array() const {
  expect(type_ == GgufType::ARRAY, "array");
  return {static_cast<GgufType>(gguf_detail::load<uint32_t>(at_)),
          gguf_detail::load<uint64_t>(at_ + 4), at_ + 12, key_};
}

// Maps a C++ element type to the GGML type whose data it views. Quant block structs join in by
// declaring `static constexpr GgmlType kGgmlType`.
template <class T>
struct GgmlTypeOf {
  static constexpr GgmlType value = T::kGgmlType;
};
template <>
struct GgmlTypeOf<float> {
  static constexpr GgmlType value = GgmlType::F32;
};
template <>
struct GgmlTypeOf<double> {
  static constexpr GgmlType value = GgmlType::F64;
};
template <>
struct GgmlTypeOf<int8_t> {
  static constexpr GgmlType value = GgmlType::I8;
};
template <>
struct GgmlTypeOf<int16_t> {
  static constexpr GgmlType value = GgmlType::I16;
};
template <>
struct GgmlTypeOf<int32_t> {
  static constexpr GgmlType value = GgmlType::I32;
};
template <>
struct GgmlTypeOf<int64_t> {
  static constexpr GgmlType value = GgmlType::I64;
};

inline constexpr uint32_t kGgmlMaxDims = 4;

// A tensor of a GGUF file. `ne` is in GGML order: ne[0] is the contiguous (row) dimension.
struct GgufTensor {
  std::string_view name;
  GgmlType type{};
  uint32_t n_dims = 0;
  std::array<uint64_t, kGgmlMaxDims> ne{1, 1, 1, 1};
  uint64_t element_count = 0;
  uint64_t file_offset = 0;  // absolute offset of the data in the file
  std::span<const std::byte> data;
  // Experts kept as one block each instead of stacked in `data` (a Hugging Face checkpoint
  // stores each expert's matrix as its own tensor): block e is expert e, and `data` then covers
  // expert 0 only. Empty for every tensor read from a GGUF file.
  std::span<const std::byte* const> expert_blocks;

  uint64_t byte_size() const { return data.size(); }
  uint64_t row_length() const { return ne[0]; }
  uint64_t row_count() const { return element_count / std::max<uint64_t>(ne[0], 1); }
  uint64_t row_bytes() const { return ggml_row_bytes(type, ne[0]); }

  // The data as an array of T, after checking that T is the tensor's type and is aligned.
  template <class T>
  std::span<const T> as() const {
    constexpr GgmlType wanted = GgmlTypeOf<T>::value;
    if (type != wanted) {
      fail("tensor '", name, "' is ", ggml_type_name(type), ", not ", ggml_type_name(wanted));
    }
    if (reinterpret_cast<uintptr_t>(data.data()) % alignof(T) != 0) {
      fail("tensor '", name, "' at file offset ", file_offset, " is not aligned to ", alignof(T),
           " bytes");
    }
    return {reinterpret_cast<const T*>(data.data()), data.size() / sizeof(T)};
  }
};

class GgufFile {
 public:
  static constexpr uint64_t kDefaultAlignment = 32;
  // Arrays nest in practice at most twice; a bound keeps hostile nesting from exhausting the stack.
  static constexpr int kMaxArrayDepth = 16;

  explicit GgufFile(const std::filesystem::path& path) : file_(path) {
    parse(file_.bytes(), file_.path());
  }

  // Views bytes owned by the caller (tests, fuzzing, in-memory files); they must outlive this.
  GgufFile(std::span<const std::byte> bytes, std::string source) { parse(bytes, source); }

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& source() const { return source_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }
  std::span<const std::byte> bytes() const { return bytes_; }
  const MappedFile& mapping() const { return file_; }

  struct Entry {
    std::string_view key;
    GgufValue value;
  };
  const std::vector<Entry>& metadata() const { return metadata_; }

  std::optional<GgufValue> find(std::string_view key) const {
    const auto it = metadata_index_.find(key);
    if (it == metadata_index_.end()) return std::nullopt;
    return metadata_[it->second].value;
  }

  bool contains(std::string_view key) const { return metadata_index_.contains(key); }

  template <class T>
  T get(std::string_view key) const {
    return require(key).as<T>();
  }

  // Missing keys give nothing; present keys of the wrong type are still an error.
  template <class T>
  std::optional<T> get_optional(std::string_view key) const {
    const auto value = find(key);
    if (!value) return std::nullopt;
    return value->as<T>();
  }

  template <class T>
  T get_or(std::string_view key, T fallback) const {
    return get_optional<T>(key).value_or(fallback);
  }

  GgufArray get_array(std::string_view key) const { return require(key).as_array(); }

  GgufValue require(std::string_view key) const {
    const auto value = find(key);
    if (!value) fail(source_, ": missing metadata key '", key, "'");
    return *value;
  }

  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufTensor* find_tensor(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }

  const GgufTensor& tensor(std::string_view name) const {
    const GgufTensor* found = find_tensor(name);
    if (found == nullptr) fail(source_, ": missing tensor '", name, "'");
    return *found;
  }

  // Adds a tensor whose bytes live elsewhere (a Hugging Face checkpoint's mappings, kept alive
  // through keep_alive()); the file keeps its name.
  void add_external_tensor(GgufTensor tensor, std::string name) {
    if (tensor_index_.contains(name)) fail(source_, ": tensor '", name, "' added twice");
    tensor.name = external_names_.emplace_back(std::move(name));
    tensor_index_.emplace(tensor.name, tensors_.size());
    tensors_.push_back(tensor);
  }

  // Keeps alive what external tensors (or the metadata bytes of an in-memory file) point into.
  void keep_alive(std::shared_ptr<const void> owner) {
    external_owners_.push_back(std::move(owner));
  }

 private:
  // Where a tensor's info was read, so data-range errors can point at its offset field.
  struct PendingTensor {
    std::size_t info_at;
    uint64_t relative_offset;
    uint64_t size;
  };

  void parse(std::span<const std::byte> bytes, const std::string& source) {
    bytes_ = bytes;
    source_ = source;
    ByteReader in(bytes, source);

    const auto magic = in.read<std::array<char, 4>>("magic");
    if (std::string_view(magic.data(), 4) != "GGUF") {
      in.fail_at(0, "magic", ": expected \"GGUF\", found bytes ", hex(magic));
    }
    version_ = in.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) {
      const uint32_t swapped = __builtin_bswap32(version_);
      if (swapped >= 1 && swapped <= 3) {
        in.fail_at(4, "version", ": big-endian GGUF files are not supported");
      }
      in.fail_at(4, "version", ": ", version_, " is not supported (only versions 2 and 3)");
    }
    const std::size_t tensor_count_at = in.position();
    const uint64_t tensor_count = in.read<uint64_t>("tensor count");
    const std::size_t kv_count_at = in.position();
    const uint64_t kv_count = in.read<uint64_t>("metadata count");

    // The smallest metadata entry is 13 bytes and the smallest tensor info 32: counts that
    // could not fit in the rest of the file are rejected before anything is reserved for them.
    if (kv_count > in.remaining() / 13) {
      in.fail_at(kv_count_at, "metadata count", ": ", kv_count, " entries cannot fit in the ",
                 in.remaining(), " bytes left");
    }
    if (tensor_count > in.remaining() / 32) {
      in.fail_at(tensor_count_at, "tensor count", ": ", tensor_count, " tensors cannot fit in the ",
                 in.remaining(), " bytes left");
    }

    metadata_.reserve(kv_count);
    metadata_index_.reserve(kv_count);
    for (uint64_t i = 0; i < kv_count; ++i) {
      const std::size_t entry_at = in.position();
      const std::string key_field = concat("metadata key #", i);
      const std::string_view key = in.read_string(key_field);
      const std::string value_field = concat("metadata '", key, "'");
      const auto type = read_type(in, value_field + " type");
      const std::byte* value_at = bytes.data() + in.position();
      skip_value(in, type, value_field, 0);
      if (!metadata_index_.emplace(key, metadata_.size()).second) {
        in.fail_at(entry_at, key_field, ": duplicate key '", key, "'");
      }
      metadata_.push_back({key, GgufValue(type, value_at, key)});
    }

    alignment_ = kDefaultAlignment;
    if (const auto value = find("general.alignment")) {
      const auto alignment = value->as<uint64_t>();
      if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 30)) {
        fail(source_, ": metadata 'general.alignment' is ", alignment,
             ", which is not a power of two up to 2^30");
      }
      alignment_ = alignment;
    }

    std::vector<PendingTensor> pending;
    pending.reserve(tensor_count);
    tensors_.reserve(tensor_count);
    tensor_index_.reserve(tensor_count);
    for (uint64_t i = 0; i < tensor_count; ++i) {
      const std::size_t info_at = in.position();
      GgufTensor tensor;
      tensor.name = in.read_string(concat("tensor #", i, " name"));
      const std::string field = concat("tensor '", tensor.name, "'");
      const std::size_t dims_at = in.position();
      tensor.n_dims = in.read<uint32_t>(field + " n_dims");
      if (tensor.n_dims == 0 || tensor.n_dims > kGgmlMaxDims) {
        in.fail_at(dims_at, field + " n_dims", ": ", tensor.n_dims, " is not in 1..", kGgmlMaxDims);
      }
      uint64_t elements = 1;
      for (uint32_t d = 0; d < tensor.n_dims; ++d) {
        const std::size_t ne_at = in.position();
        const uint64_t ne = in.read<uint64_t>(concat(field, " ne[", d, "]"));
        constexpr uint64_t kMaxElements = uint64_t{1} << 62;
        if (ne > kMaxElements || (ne != 0 && elements > kMaxElements / ne)) {
          in.fail_at(ne_at, concat(field, " ne[", d, "]"), ": ", ne,
                     " makes the element count overflow");
        }
        tensor.ne[d] = ne;
        elements *= ne;
      }
      tensor.element_count = elements;
      const std::size_t type_at = in.position();
      const uint32_t type_id = in.read<uint32_t>(field + " type");
      const auto traits = ggml_type_traits(type_id);
      if (!traits) in.fail_at(type_at, field + " type", ": unknown GGML type id ", type_id);
      tensor.type = traits->type;
      if (tensor.ne[0] % traits->block_elements != 0) {
        in.fail_at(dims_at, field + " ne[0]", ": ", tensor.ne[0],
                   " is not a multiple of the block size ", traits->block_elements, " of ",
                   traits->name);
      }
      const std::size_t offset_at = in.position();
      const uint64_t offset = in.read<uint64_t>(field + " offset");
      if (offset % alignment_ != 0) {
        in.fail_at(offset_at, field + " offset", ": ", offset, " is not a multiple of the ",
                   alignment_, "-byte alignment");
      }
      const uint64_t size = elements / traits->block_elements * traits->block_bytes;
      if (!tensor_index_.emplace(tensor.name, tensors_.size()).second) {
        in.fail_at(info_at, concat("tensor #", i, " name"), ": duplicate tensor name '",
                   tensor.name, "'");
      }
      pending.push_back({offset_at, offset, size});
      tensors_.push_back(tensor);
    }

    const uint64_t header_end = in.position();
    data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
    const uint64_t data_bytes = data_offset_ <= bytes.size() ? bytes.size() - data_offset_ : 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const PendingTensor& p = pending[i];
      GgufTensor& tensor = tensors_[i];
      if (p.relative_offset > data_bytes || p.size > data_bytes - p.relative_offset) {
        in.fail_at(p.info_at, concat("tensor '", tensor.name, "' offset"), ": data [",
                   p.relative_offset, ", ", p.relative_offset + p.size,
                   ") of the data section lies outside the file, whose data section holds ",
                   data_bytes, " bytes from byte ", data_offset_);
      }
      tensor.file_offset = data_offset_ + p.relative_offset;
      tensor.data = bytes.subspan(tensor.file_offset, p.size);
    }
    check_no_overlap(pending);
  }

  void check_no_overlap(const std::vector<PendingTensor>& pending) const {
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].file_offset < tensors_[b].file_offset;
    });
    for (std::size_t k = 1; k < order.size(); ++k) {
      const GgufTensor& before = tensors_[order[k - 1]];
      const GgufTensor& after = tensors_[order[k]];
      if (before.byte_size() > 0 && after.byte_size() > 0 &&
          before.file_offset + before.byte_size() > after.file_offset) {
        fail(source_, ": tensor '", after.name, "' offset at byte offset ",
             pending[order[k]].info_at, ": its data overlaps tensor '", before.name, "'");
      }
    }
  }

  static GgufType read_type(ByteReader& in, const std::string& field) {
    const std::size_t at = in.position();
    const uint32_t id = in.read<uint32_t>(field);
    if (id > static_cast<uint32_t>(GgufType::FLOAT64)) {
      in.fail_at(at, field, ": unknown value type id ", id);
    }
    return static_cast<GgufType>(id);
  }

  static void skip_value(ByteReader& in, GgufType type, const std::string& field, int depth) {
    if (const uint64_t fixed = gguf_fixed_size(type)) {
      in.skip(fixed, field);
      return;
    }
    if (type == GgufType::STRING) {
      in.read_string(field);
      return;
    }
    if (depth >= kMaxArrayDepth) {
      in.fail_at(in.position(), field, ": arrays nested deeper than ", kMaxArrayDepth);
    }
    const GgufType element = read_type(in, field + " element type");
    const std::size_t count_at = in.position();
    const uint64_t count = in.read<uint64_t>(field + " element count");
    const uint64_t fixed = gguf_fixed_size(element);
    const uint64_t min_size = fixed != 0 ? fixed : (element == GgufType::STRING ? 8 : 12);
    if (count > in.remaining() / min_size) {
      in.fail_at(count_at, field + " element count", ": ", count, " elements of ",
                 gguf_type_name(element), " cannot fit in the ", in.remaining(), " bytes left");
    }
    if (fixed != 0) {
      in.skip(fixed * count, field);
      return;
    }
    for (uint64_t i = 0; i < count; ++i)
      skip_value(in, element, field, depth + 1);
  }

  static std::string hex(const std::array<char, 4>& bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (char c : bytes) {
      const auto b = static_cast<unsigned char>(c);
      out += kDigits[b >> 4];
      out += kDigits[b & 15];
      out += ' ';
    }
    out.pop_back();
    return out;
  }

  MappedFile file_;
  std::span<const std::byte> bytes_;
  std::string source_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<Entry> metadata_;
  std::unordered_map<std::string_view, std::size_t> metadata_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string_view, std::size_t> tensor_index_;
  std::deque<std::string> external_names_;  // a deque: names keep their address as it grows
  std::vector<std::shared_ptr<const void>> external_owners_;
};

}  // namespace floatllm
