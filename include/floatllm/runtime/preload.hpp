// Brings a model's mapped weights into memory before its first forward pass, which would otherwise
// fault them in page by page: loading then shows its progress and its cost up front (the
// interactive chat and the server do this), and the first reply starts at full speed.
//
// Only for weights that are meant to stay resident; a streamed run leaves its layers on disk.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "floatllm/model/model.hpp"

namespace floatllm {

// Hears the weight bytes read so far and the total.
using PreloadProgress = std::function<void(uint64_t done, uint64_t total)>;

inline void preload_weights(const Model& model, const PreloadProgress& progress = {}) {
  uint64_t total = 0;
  for (const GgufTensor& t : model.file().tensors())
    total += t.byte_size();
  const auto page = static_cast<std::size_t>(std::max(::sysconf(_SC_PAGESIZE), 1l));
  // Progress is reported per chunk, small enough to move steadily on a slow disk.
  constexpr std::size_t kChunk = std::size_t{16} << 20;
  uint64_t done = 0;
  std::byte touched{0};
  for (const GgufTensor& t : model.file().tensors()) {
    const std::span<const std::byte> bytes = t.data;
    for (std::size_t at = 0; at < bytes.size(); at += kChunk) {
      const std::size_t length = std::min(kChunk, bytes.size() - at);
      // One read per page faults it in; the last byte covers a chunk ending mid-page.
      for (std::size_t offset = 0; offset < length; offset += page)
        touched ^= bytes[at + offset];
      touched ^= bytes[at + length - 1];
      done += length;
      if (progress) progress(done, total);
    }
  }
  // Keeps the reads from being optimized away.
  volatile std::byte sink = touched;
  static_cast<void>(sink);
}

}  // namespace floatllm
