// Writes safetensors files: a JSON header, then tensor data streamed one tensor at a time.
//
// Used to build Hugging Face style checkpoints (from GGUF models, or by hand in tests). The
// header is padded with spaces to a multiple of 8 bytes, as the reference writer does, so
// tensors whose offsets are multiples of their element size are aligned in a mapping. Tensors
// are laid out in the order they were added, with no gaps; the file appears atomically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "floatllm/core/error.hpp"
#include "floatllm/io/atomic_file.hpp"
#include "floatllm/io/safetensors.hpp"

namespace floatllm {

struct SafetensorsWriteProgress {
  std::size_t tensor_index;
  std::size_t tensor_count;
  std::string_view tensor_name;
  uint64_t bytes_done;
  uint64_t bytes_total;
};

class SafetensorsWriter {
 public:
  using Producer = std::function<void(TensorDataSink&)>;
  using ProgressCallback = std::function<void(const SafetensorsWriteProgress&)>;

  struct Tensor {
    std::string name;
    SafetensorsDtype dtype;
    std::vector<uint64_t> shape;  // row-major, outermost first
    uint64_t byte_size;
    Producer produce;
  };

  void set_metadata(std::string_view key, std::string_view value) {
    metadata_[std::string(key)] = std::string(value);
  }

  void add_tensor(std::string_view name, SafetensorsDtype dtype, std::vector<uint64_t> shape,
                  Producer produce) {
    if (name.empty() || name == "__metadata__") {
      fail("safetensors tensor name '", name, "' is reserved or empty");
    }
    if (!names_.insert(std::string(name)).second) {
      fail("safetensors tensor '", name, "' added twice");
    }
    uint64_t elements = 1;
    for (const uint64_t extent : shape) {
      if (extent != 0 && elements > (uint64_t{1} << 62) / extent) {
        names_.erase(std::string(name));
        fail("safetensors tensor '", name, "': the element count overflows");
      }
      elements *= extent;
    }
    tensors_.push_back({std::string(name), dtype, std::move(shape),
                        elements * safetensors_dtype_size(dtype), std::move(produce)});
  }

  // A tensor whose bytes already exist; they must outlive write().
  void add_tensor(std::string_view name, SafetensorsDtype dtype, std::vector<uint64_t> shape,
                  std::span<const std::byte> data) {
    add_tensor(name, dtype, std::move(shape), [data](TensorDataSink& sink) { sink.write(data); });
    if (tensors_.back().byte_size != data.size()) {
      const uint64_t expected = tensors_.back().byte_size;
      names_.erase(tensors_.back().name);
      tensors_.pop_back();
      fail("safetensors tensor '", name, "': ", data.size(), " bytes of data for a ",
           safetensors_dtype_name(dtype), " tensor of ", expected, " bytes");
    }
  }

  const std::vector<Tensor>& tensors() const { return tensors_; }

  // The header as written: JSON padded with spaces to a multiple of 8 bytes.
  std::string header() const {
    nlohmann::ordered_json root = nlohmann::ordered_json::object();
    if (!metadata_.empty()) root["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Tensor& tensor : tensors_) {
      root[tensor.name] = {{"dtype", safetensors_dtype_name(tensor.dtype)},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + tensor.byte_size}}};
      offset += tensor.byte_size;
    }
    std::string text = root.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');
    return text;
  }

  void write(const std::filesystem::path& path, const ProgressCallback& progress = {}) const {
    const std::string text = header();
    AtomicFileWriter out(path);
    const uint64_t header_size = text.size();
    out.write(std::as_bytes(std::span<const uint64_t>(&header_size, 1)));
    out.write(std::as_bytes(std::span<const char>(text)));

    uint64_t total = 0;
    for (const Tensor& tensor : tensors_)
      total += tensor.byte_size;
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
    }
    out.commit();
  }

 private:
  std::map<std::string, std::string> metadata_;
  std::unordered_set<std::string> names_;
  std::vector<Tensor> tensors_;
};

}  // namespace floatllm
