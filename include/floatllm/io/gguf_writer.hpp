// Writes GGUF version 3 files: typed metadata, then tensor data streamed one tensor at a time.
//
// The writer keeps metadata and tensor descriptions in memory (kilobytes to a few megabytes for
// a vocabulary) but never tensor data: each tensor's bytes come from a producer that is called
// while the file is written, in order, and may hand its bytes over in pieces. A model larger
// than memory can therefore be written from a mapped source or generated on the fly. The file
// appears atomically (AtomicFileWriter): a failure leaves any existing file untouched.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/io/atomic_file.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

// The GGUF value type of each C++ type a metadata value can hold.
template <class T>
struct GgufTypeOf;
template <>
struct GgufTypeOf<uint8_t> {
  static constexpr GgufType value = GgufType::UINT8;
};
template <>
struct GgufTypeOf<int8_t> {
  static constexpr GgufType value = GgufType::INT8;
};
template <>
struct GgufTypeOf<uint16_t> {
  static constexpr GgufType value = GgufType::UINT16;
};
template <>
struct GgufTypeOf<int16_t> {
  static constexpr GgufType value = GgufType::INT16;
};
template <>
struct GgufTypeOf<uint32_t> {
  static constexpr GgufType value = GgufType::UINT32;
};
template <>
struct GgufTypeOf<int32_t> {
  static constexpr GgufType value = GgufType::INT32;
};
template <>
struct GgufTypeOf<uint64_t> {
  static constexpr GgufType value = GgufType::UINT64;
};
template <>
struct GgufTypeOf<int64_t> {
  static constexpr GgufType value = GgufType::INT64;
};
template <>
struct GgufTypeOf<float> {
  static constexpr GgufType value = GgufType::FLOAT32;
};
template <>
struct GgufTypeOf<double> {
  static constexpr GgufType value = GgufType::FLOAT64;
};
template <>
struct GgufTypeOf<bool> {
  static constexpr GgufType value = GgufType::BOOL;
};

// One metadata value, held in its GGUF encoding (the bytes that follow the type id), so values
// copied from another file are byte-identical and nested arrays are plain concatenations.
class GgufMetadataValue {
 public:
  GgufType type() const { return type_; }
  std::span<const std::byte> encoded() const { return bytes_; }

  template <class T>
  static GgufMetadataValue of(T value) {
    GgufMetadataValue out(GgufTypeOf<T>::value);
    if constexpr (std::is_same_v<T, bool>) {
      out.append<uint8_t>(value ? 1 : 0);
    } else {
      out.append(value);
    }
    return out;
  }

  static GgufMetadataValue string(std::string_view text) {
    GgufMetadataValue out(GgufType::STRING);
    out.append_string(text);
    return out;
  }

  // An array of numbers or bools.
  template <class T>
  static GgufMetadataValue array(std::span<const T> values) {
    GgufMetadataValue out(GgufType::ARRAY);
    out.append(static_cast<uint32_t>(GgufTypeOf<T>::value));
    out.append(static_cast<uint64_t>(values.size()));
    if constexpr (std::is_same_v<T, bool>) {
      for (bool value : values)
        out.append<uint8_t>(value ? 1 : 0);
    } else {
      const auto* raw = reinterpret_cast<const std::byte*>(values.data());
      out.bytes_.insert(out.bytes_.end(), raw, raw + values.size_bytes());
    }
    return out;
  }

  template <class T>
  static GgufMetadataValue array(const std::vector<T>& values) {
    return array(std::span<const T>(values));
  }

  template <class Strings>
  static GgufMetadataValue string_array(const Strings& strings) {
    GgufMetadataValue out(GgufType::ARRAY);
    out.append(static_cast<uint32_t>(GgufType::STRING));
    out.append(static_cast<uint64_t>(std::size(strings)));
    for (const auto& text : strings)
      out.append_string(std::string_view(text));
    return out;
  }

  // An array whose elements are themselves values of one type, typically arrays (GGUF allows
  // arrays of arrays, each inner array with its own element type and count).
  static GgufMetadataValue array_of(GgufType element_type,
                                    std::span<const GgufMetadataValue> elements) {
    GgufMetadataValue out(GgufType::ARRAY);
    out.append(static_cast<uint32_t>(element_type));
    out.append(static_cast<uint64_t>(elements.size()));
    for (std::size_t i = 0; i < elements.size(); ++i) {
      if (elements[i].type() != element_type) {
        fail("GGUF array element #", i, " is ", gguf_type_name(elements[i].type()),
             " in an array of ", gguf_type_name(element_type));
      }
      out.bytes_.insert(out.bytes_.end(), elements[i].bytes_.begin(), elements[i].bytes_.end());
    }
    return out;
  }

  // A copy of a value of another (already validated) file; the encoding is canonical, so the
  // copy is byte-identical.
  static GgufMetadataValue copy_of(const GgufValue& value) {
    GgufMetadataValue out(value.type());
    out.append_copy(value);
    return out;
  }

 private:
  explicit GgufMetadataValue(GgufType type) : type_(type) {}

  void append_copy(const GgufValue& value) {
    switch (value.type()) {
      case GgufType::UINT8:
        return append(value.as<uint8_t>());
      case GgufType::INT8:
        return append(value.as<int8_t>());
      case GgufType::UINT16:
        return append(value.as<uint16_t>());
      case GgufType::INT16:
        return append(value.as<int16_t>());
      case GgufType::UINT32:
        return append(value.as<uint32_t>());
      case GgufType::INT32:
        return append(value.as<int32_t>());
      case GgufType::UINT64:
        return append(value.as<uint64_t>());
      case GgufType::INT64:
        return append(value.as<int64_t>());
      case GgufType::FLOAT32:
        return append(value.as<float>());
      case GgufType::FLOAT64:
        return append(value.as<double>());
      case GgufType::BOOL:
        return append<uint8_t>(value.as<bool>() ? 1 : 0);
      case GgufType::STRING:
        return append_string(value.as_string());
      case GgufType::ARRAY: {
        const GgufArray array = value.as_array();
        append(static_cast<uint32_t>(array.element_type()));
        append(array.size());
        for (const GgufValue element : array)
          append_copy(element);
        return;
      }
    }
  }

  template <class T>
  void append(T value) {
    const auto at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &value, sizeof(T));
  }

  void append_string(std::string_view text) {
    append(static_cast<uint64_t>(text.size()));
    const auto* raw = reinterpret_cast<const std::byte*>(text.data());
    bytes_.insert(bytes_.end(), raw, raw + text.size());
  }

  GgufType type_;
  std::vector<std::byte> bytes_;
};

struct GgufWriteProgress {
  std::size_t tensor_index;  // the tensor being written
  std::size_t tensor_count;
  std::string_view tensor_name;
  uint64_t bytes_done;  // tensor data written so far
  uint64_t bytes_total;
};

class GgufWriter {
 public:
  using Producer = std::function<void(TensorDataSink&)>;
  using ProgressCallback = std::function<void(const GgufWriteProgress&)>;

  struct Metadata {
    std::string key;
    GgufMetadataValue value;
  };

  struct Tensor {
    std::string name;
    GgmlType type;
    uint32_t n_dims;
    std::array<uint64_t, kGgmlMaxDims> ne;
    uint64_t byte_size;
    Producer produce;
  };

  // Sets a key, replacing an existing value in place so the key keeps its position.
  void set(std::string_view key, GgufMetadataValue value) {
    if (key.empty()) fail("GGUF metadata keys must not be empty");
    if (const auto it = metadata_index_.find(std::string(key)); it != metadata_index_.end()) {
      metadata_[it->second].value = std::move(value);
      return;
    }
    metadata_index_.emplace(std::string(key), metadata_.size());
    metadata_.push_back({std::string(key), std::move(value)});
  }

  template <class T>
  requires(std::is_arithmetic_v<T>) void set(std::string_view key, T value) {
    set(key, GgufMetadataValue::of(value));
  }
  void set(std::string_view key, std::string_view text) {
    set(key, GgufMetadataValue::string(text));
  }
  void set(std::string_view key, const char* text) { set(key, std::string_view(text)); }

  bool remove(std::string_view key) {
    const auto it = metadata_index_.find(std::string(key));
    if (it == metadata_index_.end()) return false;
    metadata_.erase(metadata_.begin() + static_cast<std::ptrdiff_t>(it->second));
    rebuild_metadata_index();
    return true;
  }

  const GgufMetadataValue* find(std::string_view key) const {
    const auto it = metadata_index_.find(std::string(key));
    return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
  }

  const std::vector<Metadata>& metadata() const { return metadata_; }

  // Every metadata entry of `source`, in its order, byte for byte.
  void copy_metadata(const GgufFile& source) {
    for (const auto& entry : source.metadata())
      set(entry.key, GgufMetadataValue::copy_of(entry.value));
  }

  // Tensor data is placed at multiples of this; set through the `general.alignment` key as
  // GGUF readers expect.
  void set_alignment(uint32_t alignment) {
    check_alignment(alignment);
    set("general.alignment", alignment);
  }

  uint64_t alignment() const {
    const GgufMetadataValue* value = find("general.alignment");
    if (value == nullptr) return GgufFile::kDefaultAlignment;
    if (value->type() != GgufType::UINT32) {
      fail("GGUF metadata 'general.alignment' must be uint32, not ", gguf_type_name(value->type()));
    }
    uint32_t alignment = 0;
    std::memcpy(&alignment, value->encoded().data(), sizeof alignment);
    check_alignment(alignment);
    return alignment;
  }

  // `ne` is in GGML order (ne[0] is the row length). `produce` is called once, during write().
  void add_tensor(std::string_view name, GgmlType type, const std::vector<uint64_t>& ne,
                  Producer produce) {
    if (name.empty()) fail("GGUF tensor names must not be empty");
    if (tensor_index_.contains(std::string(name))) fail("GGUF tensor '", name, "' added twice");
    if (ne.empty() || ne.size() > kGgmlMaxDims) {
      fail("GGUF tensor '", name, "' has ", ne.size(), " dimensions, not 1..", kGgmlMaxDims);
    }
    const GgmlTypeTraits& traits = traits_of(type);
    if (ne[0] % traits.block_elements != 0) {
      fail("GGUF tensor '", name, "': row length ", ne[0], " is not a multiple of the ",
           traits.name, " block size ", traits.block_elements);
    }
    Tensor tensor{std::string(name), type, static_cast<uint32_t>(ne.size()),
                  {1, 1, 1, 1},      0,    std::move(produce)};
    uint64_t elements = 1;
    for (std::size_t d = 0; d < ne.size(); ++d) {
      if (ne[d] != 0 && elements > (uint64_t{1} << 62) / ne[d]) {
        fail("GGUF tensor '", name, "': element count overflows at ne[", d, "] = ", ne[d]);
      }
      tensor.ne[d] = ne[d];
      elements *= ne[d];
    }
    tensor.byte_size = elements / traits.block_elements * traits.block_bytes;
    tensor_index_.emplace(tensor.name, tensors_.size());
    tensors_.push_back(std::move(tensor));
  }

  // A tensor whose bytes already exist (e.g. in a mapped file); they must outlive write().
  void add_tensor(std::string_view name, GgmlType type, const std::vector<uint64_t>& ne,
                  std::span<const std::byte> data) {
    add_tensor(name, type, ne, [data](TensorDataSink& sink) { sink.write(data); });
    if (tensors_.back().byte_size != data.size()) {
      const uint64_t expected = tensors_.back().byte_size;
      tensor_index_.erase(tensors_.back().name);
      tensors_.pop_back();
      fail("GGUF tensor '", name, "': ", data.size(), " bytes of data for a ", ggml_type_name(type),
           " tensor of ", expected, " bytes");
    }
  }

  // A tensor of a mapped GGUF file, copied unchanged; the file must outlive write().
  void copy_tensor(const GgufTensor& tensor) {
    add_tensor(tensor.name, tensor.type,
               std::vector<uint64_t>(tensor.ne.begin(), tensor.ne.begin() + tensor.n_dims),
               tensor.data);
  }

  const std::vector<Tensor>& tensors() const { return tensors_; }

  uint64_t data_bytes() const {
    const uint64_t align = alignment();
    uint64_t total = 0;
    for (const Tensor& tensor : tensors_)
      total += round_up(tensor.byte_size, align);
    return total;
  }

  // Writes the file atomically; `progress` (optional) hears after every piece of tensor data.
  void write(const std::filesystem::path& path, const ProgressCallback& progress = {}) const {
    const uint64_t align = alignment();
    AtomicFileWriter out(path);
    write_header(out, align);
    // Like llama.cpp, a file without tensors (a vocabulary-only file) ends right after its header.
    if (!tensors_.empty()) out.pad_to(align);

    const uint64_t total = data_bytes();
    uint64_t done = 0;
    std::size_t index = 0;
    const std::function<void(uint64_t)> on_bytes = [&](uint64_t bytes) {
      done += bytes;
      if (progress) progress({index, tensors_.size(), tensors_[index].name, done, total});
    };
    for (index = 0; index < tensors_.size(); ++index) {
      const Tensor& tensor = tensors_[index];
      TensorDataSink sink(out, tensor.name, tensor.byte_size, on_bytes);
      tensor.produce(sink);
      if (sink.remaining() != 0) {
        fail(out.destination(), ": tensor '", tensor.name, "': producer wrote ",
             tensor.byte_size - sink.remaining(), " of its ", tensor.byte_size, " bytes");
      }
      const uint64_t padding = round_up(tensor.byte_size, align) - tensor.byte_size;
      out.write_zeros(padding);
      on_bytes(padding);
    }
    out.commit();
  }

 private:
  static uint64_t round_up(uint64_t value, uint64_t align) {
    return (value + align - 1) / align * align;
  }

  static void check_alignment(uint64_t alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (1u << 30)) {
      fail("GGUF alignment ", alignment, " is not a power of two up to 2^30");
    }
  }

  void rebuild_metadata_index() {
    metadata_index_.clear();
    for (std::size_t i = 0; i < metadata_.size(); ++i)
      metadata_index_.emplace(metadata_[i].key, i);
  }

  void write_header(AtomicFileWriter& out, uint64_t align) const {
    std::vector<std::byte> header;
    auto put = [&header](const auto& value) {
      const auto at = header.size();
      header.resize(at + sizeof value);
      std::memcpy(header.data() + at, &value, sizeof value);
    };
    auto put_string = [&](std::string_view text) {
      put(static_cast<uint64_t>(text.size()));
      const auto* raw = reinterpret_cast<const std::byte*>(text.data());
      header.insert(header.end(), raw, raw + text.size());
    };
    header.insert(header.end(), {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'}});
    put(uint32_t{3});
    put(static_cast<uint64_t>(tensors_.size()));
    put(static_cast<uint64_t>(metadata_.size()));
    for (const Metadata& entry : metadata_) {
      put_string(entry.key);
      put(static_cast<uint32_t>(entry.value.type()));
      const auto encoded = entry.value.encoded();
      header.insert(header.end(), encoded.begin(), encoded.end());
    }
    uint64_t offset = 0;
    for (const Tensor& tensor : tensors_) {
      put_string(tensor.name);
      put(tensor.n_dims);
      for (uint32_t d = 0; d < tensor.n_dims; ++d)
        put(tensor.ne[d]);
      put(static_cast<uint32_t>(tensor.type));
      put(offset);
      offset += round_up(tensor.byte_size, align);
    }
    out.write(header);
  }

  std::vector<Metadata> metadata_;
  std::unordered_map<std::string, std::size_t> metadata_index_;
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;
};

}  // namespace floatllm
