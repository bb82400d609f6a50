// Ahead-of-time quantization of a GGUF model into another GGUF file, as llama-quantize does:
// every tensor gets the type its file-type mix chooses (model/quant_mix.hpp), all metadata is
// carried over with general.file_type and general.quantization_version updated, and the result is
// written a batch of rows at a time, so neither model has to fit in memory.
//
// A tensor that already has its target type is copied byte for byte; any other is dequantized
// to float and quantized again, row by row, on a thread pool. Source pages are released after
// each tensor, so resident memory stays near one tensor plus 16 MiB of output.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/core/thread_pool.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/io/gguf_writer.hpp"
#include "floatllm/model/quant_mix.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/quantize.hpp"

namespace floatllm {

struct QuantizeModelOptions {
  int threads = 0;  // 0: every hardware thread
};

namespace quantize_model_detail {

// Converts the rows of one tensor in batches of about 16 MiB of output.
inline void convert_rows(TensorDataSink& sink, const GgufTensor& source, GgmlType target,
                         ThreadPool& pool) {
  const uint64_t row_length = source.ne[0];
  const uint64_t rows = source.row_count();
  const uint64_t in_row_bytes = source.row_bytes();
  const uint64_t out_row_bytes = ggml_row_bytes(target, row_length);
  const uint64_t batch_rows = std::max<uint64_t>(1, (uint64_t{16} << 20) / out_row_bytes);
  std::vector<std::byte> batch(std::min(rows, batch_rows) * out_row_bytes);
  std::vector<std::vector<float>> scratch(static_cast<std::size_t>(pool.size()),
                                          std::vector<float>(row_length));
  for (uint64_t first = 0; first < rows; first += batch_rows) {
    const uint64_t count = std::min(batch_rows, rows - first);
    pool.parallel_for(static_cast<int64_t>(count), [&](int64_t begin, int64_t end, int thread) {
      std::vector<float>& values = scratch[static_cast<std::size_t>(thread)];
      for (int64_t r = begin; r < end; ++r) {
        const uint64_t row = first + static_cast<uint64_t>(r);
        dequantize_row(source.type, source.data.data() + row * in_row_bytes, values.data(),
                       static_cast<int64_t>(row_length));
        quantize_row(target, values.data(), batch.data() + static_cast<uint64_t>(r) * out_row_bytes,
                     static_cast<int64_t>(row_length));
      }
    });
    sink.write(std::span<const std::byte>(batch.data(), count * out_row_bytes));
  }
}

}  // namespace quantize_model_detail

// A writer for the quantized model; `source` must stay open until its write() has finished.
inline GgufWriter make_quantized_model(const GgufFile& source, QuantMix mix,
                                       const QuantizeModelOptions& options = {}) {
  GgufWriter writer;
  writer.copy_metadata(source);
  writer.set("general.file_type", quant_mix_info(mix).file_type);
  writer.set("general.quantization_version", uint32_t{2});
  // The output is one file, whatever the input was split into.
  writer.remove("split.no");
  writer.remove("split.count");
  writer.remove("split.tensors.count");

  const auto arch = source.get_optional<std::string>("general.architecture");
  const uint32_t layers = arch ? source.get_or<uint32_t>(*arch + ".block_count", 0) : 0;
  const uint32_t experts = arch ? source.get_or<uint32_t>(*arch + ".expert_count", 0) : 0;
  const bool has_output = source.find_tensor("output.weight") != nullptr;

  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const auto pool = std::make_shared<ThreadPool>(threads);
  for (const GgufTensor& tensor : source.tensors()) {
    const std::span<const uint64_t> ne(tensor.ne.data(), tensor.n_dims);
    const GgmlType target = choose_tensor_type(mix, {tensor.name, ne, layers, experts, has_output});
    const std::vector<uint64_t> shape(ne.begin(), ne.end());
    const bool copy = target == tensor.type;
    if (!copy && (!can_dequantize(tensor.type) || !can_quantize(target))) {
      fail(source.source(), ": tensor '", tensor.name, "': cannot convert ",
           ggml_type_name(tensor.type), " to ", ggml_type_name(target));
    }
    // Once a tensor is written its source pages are dropped, so the input's resident memory
    // stays at one tensor however large the model is.
    writer.add_tensor(
        tensor.name, target, shape, [&source, &tensor, target, copy, pool](TensorDataSink& sink) {
          if (copy) {
            sink.write(tensor.data);
          } else {
            quantize_model_detail::convert_rows(sink, tensor, target, *pool);
          }
          source.mapping().advise(tensor.file_offset, tensor.byte_size(), MADV_DONTNEED);
        });
  }
  return writer;
}

}  // namespace floatllm
