// `floatllm run --mem-budget` on a model four times the budget, inside a memory cgroup of its own
// whose limit is the budget: it must finish (exit 0, no OOM kill), stay within the budget + 3%,
// and print exactly what a fully resident run prints. Needs root and the cgroup v1 memory
// controller (CI has both); elsewhere the cgroup part is skipped with the reason, after the
// budgeted run has been checked outside one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <floatllm/runtime/memory_budget.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;

using test::kAddressSanitizer;

// The floatllm command of this build: examples/floatllm/floatllm next to the tests folder.
fs::path floatllm_command() {
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  return exe.parent_path().parent_path() / "examples" / "floatllm" / "floatllm";
}

using test::run_shell;

// Drops the file's pages from the page cache, so a run is charged for what it reads itself.
void drop_cached(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double peak_mib(const std::string& stderr_text) {
  std::smatch m;
  const std::regex peak("peak memory ([0-9.]+) MiB");
  return std::regex_search(stderr_text, m, peak) ? std::stod(m[1]) : -1;
}

class MemoryCgroupRun : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("floatllm-cgroup-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!cgroup_.empty()) ::rmdir(cgroup_.c_str());
    fs::remove_all(dir_);
  }
  fs::path dir_;
  fs::path cgroup_;
};

// The cgroup's limit is the budget itself, so memory.max_usage_in_bytes cannot pass it; what the
// limit tests is that the run needs no more: past it the kernel would reclaim the pages the run
// uses (a thrashing, endless run) or OOM-kill it. memory.failcnt (charges that had to reclaim
// first, e.g. the header's page cache) is reported, not checked.
TEST_F(MemoryCgroupRun, StreamsAModelFourTimesTheBudgetWithinIt) {
  if (kAddressSanitizer) {
    GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine are not the program's memory; "
                    "the budget is checked in the plain build";
  }
  const fs::path floatllm = floatllm_command();
  ASSERT_TRUE(fs::exists(floatllm)) << "build the floatllm command first: " << floatllm;
  const fs::path model = dir_ / "model.gguf";
  // About 775 MB: the shapes of Llama 3.2 1B in Q4_K (its 128k vocabulary alone needs ~50 MiB of
  // tokenizer, header and program, so a smaller model cannot be 4x a workable budget).
  const test::ShellResult synth = run_shell(
      floatllm.string() + " synth --like llama-3.2-1b --type q4_k -o " + model.string(), dir_);
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  const uint64_t budget = fs::file_size(model) / 4;
  const std::string args =
      " run -m " + model.string() + " -p \"Once upon a time\" -n 4 --temp 0 -s 1 -c 64 -b 8 -t 2";

  const test::ShellResult resident = run_shell(floatllm.string() + args, dir_);
  ASSERT_EQ(resident.exit_code, 0) << resident.err;
  const std::string budget_arg = " --mem-budget " + std::to_string(budget);

  // Outside a cgroup: the process's own peak stays within the budget + 3%.
  drop_cached(model);
  const test::ShellResult outside = run_shell(floatllm.string() + args + budget_arg, dir_);
  ASSERT_EQ(outside.exit_code, 0) << outside.err;
  EXPECT_EQ(outside.out, resident.out);
  EXPECT_NE(outside.err.find("streamed"), std::string::npos) << outside.err;
  const double peak = peak_mib(outside.err);
  EXPECT_GT(peak, 0) << outside.err;
  EXPECT_LE(peak, 1.03 * double(budget) / (1 << 20)) << outside.err;
  std::printf("model %.1f MiB, budget %.1f MiB, peak resident outside a cgroup %.1f MiB\n",
              double(fs::file_size(model)) / (1 << 20), double(budget) / (1 << 20), peak);

  // Inside a memory cgroup of its own, limited to the budget.
  const auto own = MemoryCgroup::of_process();
  if (::geteuid() != 0 || !own || own->version() != 1) {
    GTEST_SKIP() << "no cgroup v1 memory controller to make a child group in (root: "
                 << (::geteuid() == 0) << "); checked the budgeted run outside a cgroup only";
  }
  cgroup_ = own->dir() / ("floatllm-test-" + std::to_string(::getpid()));
  if (::mkdir(cgroup_.c_str(), 0755) != 0) {
    const std::string why = std::strerror(errno);
    cgroup_.clear();
    GTEST_SKIP() << "cannot make a memory cgroup under " << own->dir() << ": " << why
                 << "; checked the budgeted run outside a cgroup only";
  }
  std::ofstream(cgroup_ / "memory.limit_in_bytes") << budget << std::flush;
  ASSERT_EQ(MemoryCgroup::read_value(cgroup_ / "memory.limit_in_bytes").value_or(0) / 4096,
            budget / 4096);
  drop_cached(model);
  const test::ShellResult inside =
      run_shell("sh -c 'echo $$ > " + (cgroup_ / "cgroup.procs").string() + " && exec " +
                    floatllm.string() + args + budget_arg + "'",
                dir_);
  const uint64_t max_usage =
      MemoryCgroup::read_value(cgroup_ / "memory.max_usage_in_bytes").value_or(~uint64_t{0});
  const uint64_t failcnt = MemoryCgroup::read_value(cgroup_ / "memory.failcnt").value_or(0);
  const std::string oom = test::read_text(cgroup_ / "memory.oom_control");
  std::smatch kills;
  const bool killed =
      std::regex_search(oom, kills, std::regex("oom_kill ([0-9]+)")) && std::stoull(kills[1]) > 0;
  EXPECT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_FALSE(killed) << oom;
  EXPECT_LE(double(max_usage), 1.03 * double(budget));
  EXPECT_EQ(inside.out, resident.out);
  std::printf("in a cgroup limited to %.1f MiB: max usage %.1f MiB, failcnt %llu, exit %d\n",
              double(budget) / (1 << 20), double(max_usage) / (1 << 20),
              static_cast<unsigned long long>(failcnt), inside.exit_code);
  RecordProperty("cgroup_max_usage_bytes", std::to_string(max_usage));
  RecordProperty("budget_bytes", std::to_string(budget));
}

}  // namespace
}  // namespace floatllm
