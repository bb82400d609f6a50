// The runtime-dispatch translation unit of floatllm's own programs (CMake target
// floatllm::dispatch): the kernels for every x86 SIMD target, chosen at run time.
#include "floatllm/kernels/runtime_dispatch.hpp"
