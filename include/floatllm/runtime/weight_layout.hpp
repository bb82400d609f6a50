// How a model's weights group into the units the runtime keeps resident or streams: one unit per
// layer of the forward pass (the token embedding is layer -1, the output head layer n_layers),
// each a few file extents read together, plus the per-expert slices of mixture-of-experts layers.
//
// Both the memory plan and the streaming weight source work from this layout, so the bytes the
// plan counts are the bytes the executor reads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "floatllm/io/gguf.hpp"
#include "floatllm/model/model.hpp"
#include "floatllm/runtime/direct_reader.hpp"

namespace floatllm {

// A run of the file read with one request: the aligned superset of some tensors' bytes.
struct FileExtent {
  uint64_t offset = 0;         // aligned down to kDirectIoAlignment
  uint64_t length = 0;         // aligned up to kDirectIoAlignment
  uint64_t buffer_offset = 0;  // where it lands in the unit's buffer
};

struct UnitTensor {
  const GgufTensor* tensor = nullptr;
  uint64_t buffer_offset = 0;  // of the tensor's first byte in the unit's buffer
};

struct WeightUnit {
  int64_t layer = 0;
  std::vector<UnitTensor> tensors;
  std::vector<FileExtent> extents;
  uint64_t tensor_bytes = 0;  // what the tensors hold
  uint64_t read_bytes = 0;    // what reading them costs: the aligned extents, gaps included

  // Where the unit's copy of `t` starts in its buffer, or nullptr when `t` is not in the unit.
  const UnitTensor* find(const GgufTensor& t) const {
    for (const UnitTensor& u : tensors) {
      if (u.tensor == &t) return &u;
    }
    return nullptr;
  }
};

// Gaps between tensors smaller than this are read rather than skipped: one longer request costs
// less than two.
inline constexpr uint64_t kExtentMergeGap = 64 << 10;

// Lays `tensors` (any order) out as extents and buffer offsets.
inline WeightUnit make_weight_unit(int64_t layer, std::vector<const GgufTensor*> tensors) {
  WeightUnit unit;
  unit.layer = layer;
  std::sort(tensors.begin(), tensors.end(), [](const GgufTensor* a, const GgufTensor* b) {
    return a->file_offset < b->file_offset;
  });
  tensors.erase(std::unique(tensors.begin(), tensors.end()), tensors.end());
  for (const GgufTensor* t : tensors) {
    const uint64_t begin = align_down(t->file_offset, kDirectIoAlignment);
    const uint64_t end = align_up(t->file_offset + t->byte_size(), kDirectIoAlignment);
    if (!unit.extents.empty() &&
        begin <= unit.extents.back().offset + unit.extents.back().length + kExtentMergeGap) {
      FileExtent& last = unit.extents.back();
      last.length = std::max(last.length, end - last.offset);
    } else {
      const uint64_t at =
          unit.extents.empty() ? 0 : unit.extents.back().buffer_offset + unit.extents.back().length;
      unit.extents.push_back({begin, end - begin, at});
    }
    const FileExtent& extent = unit.extents.back();
    unit.tensors.push_back({t, extent.buffer_offset + (t->file_offset - extent.offset)});
    unit.tensor_bytes += t->byte_size();
  }
  for (const FileExtent& e : unit.extents)
    unit.read_bytes += e.length;
  return unit;
}

// Rows [first, first + count) of a matrix as a unit of their own: how the streaming source reads an
// output head larger than its ring, piece by piece.
inline WeightUnit make_row_piece(int64_t layer, const GgufTensor& t, int64_t first, int64_t count) {
  WeightUnit unit;
  unit.layer = layer;
  const uint64_t start = t.file_offset + static_cast<uint64_t>(first) * t.row_bytes();
  const uint64_t bytes = static_cast<uint64_t>(count) * t.row_bytes();
  const uint64_t begin = align_down(start, kDirectIoAlignment);
  const uint64_t end = align_up(start + bytes, kDirectIoAlignment);
  unit.extents.push_back({begin, end - begin, 0});
  unit.tensors.push_back({&t, start - begin});
  unit.tensor_bytes = bytes;
  unit.read_bytes = end - begin;
  return unit;
}

// The most rows of `t` whose aligned read fits in `bytes` (0 when not even one does).
inline int64_t rows_fitting(const GgufTensor& t, uint64_t bytes) {
  const uint64_t slack = 2 * kDirectIoAlignment;
  if (bytes <= slack) return 0;
  return static_cast<int64_t>(std::min<uint64_t>((bytes - slack) / t.row_bytes(), t.ne[1]));
}

// The stacked expert tensors of a layer ([cols, rows, n_experts]) and the bytes of one expert.
struct ExpertLayout {
  std::vector<const GgufTensor*> tensors;  // gate, up, down
  int64_t count = 0;
  uint64_t bytes_per_expert = 0;  // tensor bytes of one expert over all its tensors
  uint64_t read_bytes_per_expert = 0;

  static uint64_t slice_bytes(const GgufTensor& t) { return t.row_bytes() * t.ne[1]; }
  static uint64_t slice_offset(const GgufTensor& t, int64_t expert) {
    return t.file_offset + static_cast<uint64_t>(expert) * slice_bytes(t);
  }
  // The aligned read of one expert's slice of `t`; at most two alignment units more than it.
  static uint64_t slice_read_bytes(const GgufTensor& t) {
    return align_up(slice_bytes(t), kDirectIoAlignment) + kDirectIoAlignment;
  }
};

// The whole model as units. With `separate_experts`, expert tensors are left out of the layer
// units and described by `experts` instead (read one expert at a time).
struct WeightLayout {
  WeightUnit embedding;               // layer -1: only the rows of the batch's tokens are touched
  std::vector<WeightUnit> layers;     // 0 .. n_layers-1
  WeightUnit head;                    // layer n_layers
  std::vector<ExpertLayout> experts;  // per layer; empty `tensors` for dense layers
  std::vector<const GgufTensor*> global;  // read by every layer (RoPE factors)
  bool tied_output = false;

  static WeightLayout of(const Model& model, bool separate_experts) {
    const ModelTensors& mt = model.tensors();
    WeightLayout layout;
    layout.tied_output = mt.output == mt.token_embedding;
    layout.embedding = make_weight_unit(-1, {mt.token_embedding});
    const auto n = static_cast<int64_t>(mt.layers.size());
    layout.experts.resize(mt.layers.size());
    for (int64_t l = 0; l < n; ++l) {
      const LayerTensors& lt = mt.layers[static_cast<std::size_t>(l)];
      ExpertLayout& ex = layout.experts[static_cast<std::size_t>(l)];
      std::vector<const GgufTensor*> dense;
      for (const GgufTensor* t : lt.all()) {
        const bool expert =
            t == lt.ffn_gate_experts || t == lt.ffn_up_experts || t == lt.ffn_down_experts;
        if (expert && separate_experts) {
          ex.tensors.push_back(t);
          ex.count = static_cast<int64_t>(t->ne[2]);
          ex.bytes_per_expert += ExpertLayout::slice_bytes(*t);
          ex.read_bytes_per_expert += ExpertLayout::slice_read_bytes(*t);
        } else {
          dense.push_back(t);
        }
      }
      layout.layers.push_back(make_weight_unit(l, std::move(dense)));
    }
    std::vector<const GgufTensor*> head{mt.output};
    if (mt.output_norm != nullptr) head.push_back(mt.output_norm);
    layout.head = make_weight_unit(n, std::move(head));
    if (mt.rope_factors != nullptr) layout.global.push_back(mt.rope_factors);
    return layout;
  }

  const WeightUnit& unit(int64_t layer) const {
    if (layer < 0) return embedding;
    if (layer >= static_cast<int64_t>(layers.size())) return head;
    return layers[static_cast<std::size_t>(layer)];
  }

  uint64_t expert_bytes() const {
    uint64_t total = 0;
    for (const ExpertLayout& e : experts)
      total += e.bytes_per_expert * static_cast<uint64_t>(e.count);
    return total;
  }
};

}  // namespace floatllm
