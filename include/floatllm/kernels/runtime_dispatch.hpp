// Runtime dispatch: include this in exactly one .cpp of a program compiled with
// FLOATLLM_RUNTIME_DISPATCH defined everywhere (the CMake target floatllm::dispatch does both).
// That translation unit compiles every kernel for every x86 target Highway builds (AVX-512, AVX2,
// SSE4, SSSE3 and scalar, minus HWY_DISABLED_TARGETS, which floatllm::dispatch sets to SSSE3) and
// defines the functions of kernels.hpp to call the best one the CPU supports. Nothing may include
// Highway before this header in that file.
#pragma once

#if !defined(FLOATLLM_RUNTIME_DISPATCH)
#error "floatllm/kernels/runtime_dispatch.hpp needs FLOATLLM_RUNTIME_DISPATCH defined program-wide"
#endif

#include "floatllm/kernels/kernels.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "floatllm/kernels/all-inl.hpp"
#include <hwy/foreach_target.h>  // must come before highway.h

#include <hwy/highway.h>

#include "floatllm/kernels/all-inl.hpp"

#if HWY_ONCE
namespace floatllm::kernels {
HWY_EXPORT(matmul_rows_impl);
HWY_EXPORT(rms_norm_impl);
HWY_EXPORT(layer_norm_impl);
HWY_EXPORT(softmax_impl);
HWY_EXPORT(silu_mul_impl);
HWY_EXPORT(gelu_tanh_mul_impl);
HWY_EXPORT(gelu_erf_mul_impl);
HWY_EXPORT(softcap_impl);
HWY_EXPORT(add_impl);
HWY_EXPORT(mul_impl);
HWY_EXPORT(scale_impl);
HWY_EXPORT(dot_impl);
HWY_EXPORT(attention_items_impl);
HWY_EXPORT(active_target_impl);
}  // namespace floatllm::kernels

#define FLOATLLM_KERNEL_CALL(name) HWY_DYNAMIC_DISPATCH(name)
#include "floatllm/kernels/entry_points.hpp"
#undef FLOATLLM_KERNEL_CALL
#endif  // HWY_ONCE
