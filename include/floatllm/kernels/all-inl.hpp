// Every per-target kernel file, in dependency order (blank lines keep clang-format from sorting
// them). No include guard: Highway's foreach_target.h includes this once per SIMD target, and
// each file below toggles its own guard.
#include "floatllm/kernels/ops-inl.hpp"

#include "floatllm/kernels/matmul-inl.hpp"

#include "floatllm/kernels/attention-inl.hpp"
