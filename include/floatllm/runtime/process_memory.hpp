// The process's own memory use, as the kernel reports it.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace floatllm {

struct ProcessMemory {
  uint64_t resident_bytes = 0;       // VmRSS
  uint64_t peak_resident_bytes = 0;  // VmHWM
};

inline ProcessMemory process_memory() {
  ProcessMemory memory;
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    uint64_t kib = 0;
    if (key == "VmRSS:" && status >> kib) memory.resident_bytes = kib * 1024;
    if (key == "VmHWM:" && status >> kib) memory.peak_resident_bytes = kib * 1024;
    status.ignore(1 << 16, '\n');
  }
  return memory;
}

}  // namespace floatllm
