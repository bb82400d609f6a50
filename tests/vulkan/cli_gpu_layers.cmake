# The floatllm command end to end with and without --gpu-layers: the same greedy text either way.
#
#   cmake -DFLOATLLM=path/to/floatllm -DMODEL=model.gguf -DMODE=run|chat [-DKV_TYPE=f16|f32]
#         -P cli_gpu_layers.cmake
#
# run: `floatllm run -p PROMPT -n 16 --temp 0` on the CPU, then with every layer on the Vulkan
# device (--gpu-layers 99). chat: two messages on stdin to `floatllm chat --temp 0 -n 16`, the
# conversation's second turn reusing the first's KV cache on the device.
foreach(var FLOATLLM MODEL MODE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "cli_gpu_layers.cmake needs -D${var}=...")
  endif()
endforeach()
if(NOT DEFINED KV_TYPE)
  set(KV_TYPE f16)
endif()

set(messages "${CMAKE_CURRENT_BINARY_DIR}/cli_gpu_layers_messages.txt")
if(MODE STREQUAL "chat")
  file(WRITE "${messages}" "Tell me a story about a cat.\nAnd then what happened?\n")
endif()

function(run_floatllm out_text out_log)
  if(MODE STREQUAL "run")
    execute_process(
      COMMAND "${FLOATLLM}" run -m "${MODEL}" -p "Once upon a time, in a land far away" -n 16
              --temp 0 -t 1 --kv-type ${KV_TYPE} ${ARGN}
      OUTPUT_VARIABLE text ERROR_VARIABLE log RESULT_VARIABLE status)
  else()
    execute_process(
      COMMAND "${FLOATLLM}" chat -m "${MODEL}" -n 16 --temp 0 -t 1 --kv-type ${KV_TYPE} ${ARGN}
      INPUT_FILE "${messages}"
      OUTPUT_VARIABLE text ERROR_VARIABLE log RESULT_VARIABLE status)
  endif()
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "floatllm ${MODE} ${ARGN} failed (${status}):\n${log}")
  endif()
  set(${out_text} "${text}" PARENT_SCOPE)
  set(${out_log} "${log}" PARENT_SCOPE)
endfunction()

run_floatllm(cpu_text cpu_log)
run_floatllm(device_text device_log --gpu-layers 99)

# The device run must really have used the device: the command reports the layers it placed.
if(NOT device_log MATCHES "floatllm: ([0-9]+) of ([0-9]+) layers on ")
  message(FATAL_ERROR "--gpu-layers 99 did not report a device:\n${device_log}")
endif()
if(NOT CMAKE_MATCH_1 EQUAL CMAKE_MATCH_2)
  message(FATAL_ERROR "--gpu-layers 99 put ${CMAKE_MATCH_1} of ${CMAKE_MATCH_2} layers on the device")
endif()
string(LENGTH "${cpu_text}" length)
if(length LESS 20)
  message(FATAL_ERROR "floatllm ${MODE} printed too little to compare: '${cpu_text}'")
endif()
if(NOT cpu_text STREQUAL device_text)
  message(FATAL_ERROR "--gpu-layers 99 changed the text of ${MODEL}\n"
                      "CPU:    '${cpu_text}'\ndevice: '${device_text}'")
endif()
message(STATUS "same text on the CPU and the device (${length} bytes):\n${cpu_text}")
