// MatrixView: a 2-D weight matrix in any GGML type, as the kernels consume it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "floatllm/core/error.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/quant/ggml_type.hpp"

namespace floatllm {

// `rows` rows of `cols` values of `type`; row r starts at data + r * row_bytes, and
// row_bytes == ggml_row_bytes(type, cols). A GGUF tensor with ne = [cols, rows] maps onto it.
struct MatrixView {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const std::byte* data = nullptr;
  uint64_t row_bytes = 0;

  const std::byte* row(int64_t r) const { return data + static_cast<uint64_t>(r) * row_bytes; }

  // A 2-D tensor (a 1-D tensor is one row).
  static MatrixView of(const GgufTensor& t) {
    if (t.n_dims > 2) {
      fail("tensor '", t.name, "' has ", t.n_dims, " dimensions; a matrix needs 1 or 2");
    }
    return make(t, t.ne[1], 0);
  }

  // Expert `e` of a 3-D tensor ne = [cols, rows, n_expert] (mixture-of-experts weights).
  static MatrixView expert(const GgufTensor& t, int64_t e) {
    if (t.n_dims != 3) {
      fail("tensor '", t.name, "' has ", t.n_dims, " dimensions; expert weights need 3");
    }
    if (e < 0 || static_cast<uint64_t>(e) >= t.ne[2]) {
      fail("tensor '", t.name, "': expert ", e, " out of range [0, ", t.ne[2], ")");
    }
    return make(t, t.ne[1], static_cast<uint64_t>(e));
  }

 private:
  static MatrixView make(const GgufTensor& t, uint64_t rows, uint64_t slice) {
    const auto& traits = traits_of(t.type);
    if (t.ne[0] % traits.block_elements != 0) {
      fail("tensor '", t.name, "': row length ", t.ne[0], " is not a multiple of the ",
           ggml_type_name(t.type), " block size ", traits.block_elements);
    }
    MatrixView view;
    view.type = t.type;
    view.rows = static_cast<int64_t>(rows);
    view.cols = static_cast<int64_t>(t.ne[0]);
    view.row_bytes = t.row_bytes();
    const uint64_t slice_bytes = view.row_bytes * rows;
    if (slice_bytes * (slice + 1) > t.data.size()) {
      fail("tensor '", t.name, "': ", slice_bytes * (slice + 1), " bytes needed but only ",
           t.data.size(), " present");
    }
    view.data = t.data.data() + slice_bytes * slice;
    return view;
  }
};

}  // namespace floatllm
