// How much memory a run may use: sizes such as "512M", "6G", "1.5GiB" or "auto", and what the
// system and the process's memory cgroup (v1 or v2) allow.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "floatllm/core/error.hpp"

namespace floatllm {

// "1234" is bytes; K, M, G, T (alone or with "iB") are powers of 1024, as in most memory tools;
// KB, MB, GB, TB are powers of 1000 for those who mean them. Case does not matter.
inline uint64_t parse_memory_size(std::string_view text) {
  const auto bad = [&](std::string_view why) -> uint64_t {
    fail("memory size '", text, "' ", why,
         " (examples: 512M, 6G, 1.5GiB, 800MB, 1073741824, or auto)");
  };
  std::string_view rest = text;
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front())))
    rest.remove_prefix(1);
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.back())))
    rest.remove_suffix(1);
  std::size_t digits = 0;
  bool seen_point = false;
  while (digits < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[digits])) ||
                                  (rest[digits] == '.' && !seen_point))) {
    seen_point = seen_point || rest[digits] == '.';
    ++digits;
  }
  const std::string number(rest.substr(0, digits));
  if (number.empty() || number == ".") return bad("does not start with a number");
  std::string unit;
  for (char ch : rest.substr(digits)) {
    if (std::isspace(static_cast<unsigned char>(ch))) continue;
    unit += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  }
  struct Unit {
    std::string_view name;
    double scale;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"k", 1024.0},
      {"kib", 1024.0},
      {"kb", 1e3},
      {"m", 1024.0 * 1024},
      {"mib", 1024.0 * 1024},
      {"mb", 1e6},
      {"g", 1024.0 * 1024 * 1024},
      {"gib", 1024.0 * 1024 * 1024},
      {"gb", 1e9},
      {"t", 1024.0 * 1024 * 1024 * 1024},
      {"tib", 1024.0 * 1024 * 1024 * 1024},
      {"tb", 1e12},
  };
  const auto found = std::find_if(std::begin(kUnits), std::end(kUnits),
                                  [&](const Unit& u) { return u.name == unit; });
  if (found == std::end(kUnits)) return bad(concat("has an unknown unit '", unit, "'"));
  const double bytes = std::strtod(number.c_str(), nullptr) * found->scale;
  if (!std::isfinite(bytes) || bytes >= 1.8e19) return bad("is too large");
  if (bytes < 1) return bad("is zero");
  return static_cast<uint64_t>(std::llround(bytes));
}

// "812.4 MiB": sizes for people, always in binary units so they match parse_memory_size.
inline std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(unit == 0 ? 0 : 1);
  out << value << " " << kUnits[unit];
  return out.str();
}

// One line "Key: value kB" of /proc/meminfo, in bytes.
inline std::optional<uint64_t> read_meminfo(std::string_view key,
                                            const std::filesystem::path& path = "/proc/meminfo") {
  std::ifstream in(path);
  std::string name;
  while (in >> name) {
    uint64_t kib = 0;
    if (name.size() == key.size() + 1 && name.starts_with(key) && name.back() == ':' && in >> kib) {
      return kib * 1024;
    }
    in.ignore(1 << 16, '\n');
  }
  return std::nullopt;
}

// The memory cgroup a process belongs to, found through /proc/<pid>/cgroup and the cgroup
// mounts in /proc/<pid>/mountinfo. Version 1 files are memory.limit_in_bytes and
// memory.usage_in_bytes; version 2 files are memory.max and memory.current.
class MemoryCgroup {
 public:
  // Limits at or above this mean "no limit" (v1 writes 2^63 rounded down to a page).
  static constexpr uint64_t kUnlimited = uint64_t{1} << 60;

  static std::optional<MemoryCgroup> of_process(const std::filesystem::path& proc = "/proc/self") {
    std::ifstream groups(proc / "cgroup");
    std::string line;
    std::optional<std::string> v1_path, v2_path;
    while (std::getline(groups, line)) {
      const auto first = line.find(':');
      const auto second = first == std::string::npos ? first : line.find(':', first + 1);
      if (second == std::string::npos) continue;
      const std::string controllers = line.substr(first + 1, second - first - 1);
      const std::string path = line.substr(second + 1);
      if (controllers.empty() && line.substr(0, first) == "0") v2_path = path;
      std::stringstream list(controllers);
      std::string controller;
      while (std::getline(list, controller, ',')) {
        if (controller == "memory") v1_path = path;
      }
    }
    std::ifstream mounts(proc / "mountinfo");
    while (std::getline(mounts, line)) {
      // id parent major:minor root mount-point options [optional...] - fstype source super-options
      std::istringstream fields(line);
      std::string id, parent, device, root, mount_point, options, field;
      fields >> id >> parent >> device >> root >> mount_point >> options;
      while (fields >> field && field != "-") {
      }
      std::string fs_type, source, super_options;
      fields >> fs_type >> source >> super_options;
      const bool memory_v1 =
          fs_type == "cgroup" && (super_options == "memory" || super_options.ends_with(",memory") ||
                                  super_options.find("memory,") != std::string::npos);
      if (memory_v1 && v1_path) return locate(1, mount_point, root, *v1_path);
      if (fs_type == "cgroup2" && v2_path && !v1_path)
        return locate(2, mount_point, root, *v2_path);
    }
    return std::nullopt;
  }

  // A cgroup directory given directly (tests, or a cgroup the caller made).
  MemoryCgroup(int version, std::filesystem::path dir, std::filesystem::path mount_root)
      : version_(version), dir_(std::move(dir)), mount_root_(std::move(mount_root)) {}

  int version() const { return version_; }
  const std::filesystem::path& dir() const { return dir_; }

  // The tightest limit of this cgroup and its ancestors up to the mount, if any is set.
  std::optional<uint64_t> limit() const {
    std::optional<uint64_t> tightest;
    for (std::filesystem::path d = dir_;; d = d.parent_path()) {
      const auto value = read_value(d / (version_ == 1 ? "memory.limit_in_bytes" : "memory.max"));
      if (value && *value < kUnlimited) tightest = std::min(tightest.value_or(*value), *value);
      if (d == mount_root_ || d == d.parent_path() || !d.string().starts_with(mount_root_.string()))
        break;
    }
    return tightest;
  }

  // Bytes charged to the cgroup now: process memory and the page cache it caused.
  std::optional<uint64_t> usage() const {
    return read_value(dir_ / (version_ == 1 ? "memory.usage_in_bytes" : "memory.current"));
  }

  // The usage the kernel cannot simply drop: the charge minus inactive file pages (clean page
  // cache it reclaims first when the limit is reached).
  std::optional<uint64_t> working_set() const {
    const auto charged = usage();
    if (!charged) return std::nullopt;
    std::ifstream stat(dir_ / "memory.stat");
    std::string key;
    uint64_t value = 0;
    std::optional<uint64_t> inactive_file, total_inactive_file;
    while (stat >> key >> value) {
      if (key == "inactive_file") inactive_file = value;
      if (key == "total_inactive_file") total_inactive_file = value;
    }
    const uint64_t reclaimable = total_inactive_file.value_or(inactive_file.value_or(0));
    return *charged > reclaimable ? *charged - reclaimable : 0;
  }

  std::optional<uint64_t> peak_usage() const {
    return read_value(dir_ / (version_ == 1 ? "memory.max_usage_in_bytes" : "memory.peak"));
  }

  // A number, or "max" (v2's "no limit").
  static std::optional<uint64_t> read_value(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string text;
    if (!(in >> text)) return std::nullopt;
    if (text == "max") return std::numeric_limits<uint64_t>::max();
    uint64_t value = 0;
    for (char ch : text) {
      if (ch < '0' || ch > '9') return std::nullopt;
      value = value * 10 + static_cast<uint64_t>(ch - '0');
    }
    return value;
  }

 private:
  static MemoryCgroup locate(int version, const std::string& mount_point, const std::string& root,
                             std::string path) {
    // Inside a cgroup namespace the mount's root is the group itself; /proc shows paths from it.
    if (root != "/" && path.starts_with(root)) path = path.substr(root.size());
    while (path.starts_with('/'))
      path.erase(0, 1);
    const std::filesystem::path mount(mount_point);
    return MemoryCgroup(version, path.empty() ? mount : mount / path, mount);
  }

  int version_;
  std::filesystem::path dir_;
  std::filesystem::path mount_root_;
};

// What the system lets this process use now.
struct MemoryAvailability {
  uint64_t mem_available = 0;            // /proc/meminfo MemAvailable
  std::optional<uint64_t> cgroup_limit;  // the tightest memory cgroup limit, if any
  std::optional<uint64_t> cgroup_usage;  // what that cgroup is charged now

  static MemoryAvailability of_system() {
    MemoryAvailability a;
    a.mem_available = read_meminfo("MemAvailable").value_or(0);
    if (const auto group = MemoryCgroup::of_process()) {
      a.cgroup_limit = group->limit();
      a.cgroup_usage = group->usage();
    }
    return a;
  }
};

// The share of what is available that "auto" takes: the rest is left to the system, to the
// other processes and to the misestimates every plan has.
inline constexpr double kAutoBudgetFraction = 0.8;

inline uint64_t auto_memory_budget(const MemoryAvailability& available) {
  double budget = kAutoBudgetFraction * static_cast<double>(available.mem_available);
  if (available.cgroup_limit) {
    budget = std::min(budget, kAutoBudgetFraction * static_cast<double>(*available.cgroup_limit));
  }
  if (budget < 1) fail("cannot choose a memory budget automatically: no memory is available");
  return static_cast<uint64_t>(budget);
}

// Parses a --mem-budget value: a size, or "auto" for a safe share of what is available.
inline uint64_t resolve_memory_budget(std::string_view text, const MemoryAvailability& available) {
  std::string lower;
  for (char ch : text)
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower == "auto") return auto_memory_budget(available);
  return parse_memory_size(text);
}

inline uint64_t resolve_memory_budget(std::string_view text) {
  return resolve_memory_budget(text, MemoryAvailability::of_system());
}

}  // namespace floatllm
