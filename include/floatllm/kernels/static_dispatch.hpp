// Static dispatch: the kernels compiled for the one target the including program is built for
// (HWY_STATIC_TARGET, from -march). Included by kernels.hpp unless FLOATLLM_RUNTIME_DISPATCH.
#pragma once

#include <hwy/highway.h>

#include "floatllm/kernels/all-inl.hpp"

#define FLOATLLM_KERNEL_CALL(name) HWY_STATIC_DISPATCH(name)
#include "floatllm/kernels/entry_points.hpp"
#undef FLOATLLM_KERNEL_CALL
