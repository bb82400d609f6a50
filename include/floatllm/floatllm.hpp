// floatllm: header-only LLM inference that fits the memory you have.
// Include this one header to get the whole library.
#pragma once

#include "floatllm/core/error.hpp"
#include "floatllm/core/mapped_file.hpp"
#include "floatllm/core/progress_bar.hpp"
#include "floatllm/io/atomic_file.hpp"
#include "floatllm/io/gguf.hpp"
#include "floatllm/io/gguf_writer.hpp"
#include "floatllm/io/safetensors.hpp"
#include "floatllm/io/safetensors_writer.hpp"
#include "floatllm/model/quant_mix.hpp"
#include "floatllm/model/quantize_model.hpp"
#include "floatllm/model/synthetic.hpp"
#include "floatllm/quant/blocks.hpp"
#include "floatllm/quant/dequantize.hpp"
#include "floatllm/quant/ggml_type.hpp"
#include "floatllm/quant/half.hpp"
#include "floatllm/quant/quantize.hpp"
#include "floatllm/tokenizer/tokenizer.hpp"
