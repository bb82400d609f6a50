// Memory sizes, "auto", /proc/meminfo and memory cgroups (v1 and v2) read from fake /proc and
// cgroup trees, so every path is checked whatever machine runs the suite.
#include <gtest/gtest.h>
#include <floatllm/runtime/memory_budget.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace floatllm {
namespace {

TEST(MemorySize, ParsesBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_memory_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_memory_size("6G"), 6ull << 30);
  EXPECT_EQ(parse_memory_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_memory_size("1.5gib"), 3ull << 29);
  EXPECT_EQ(parse_memory_size("800MB"), 800'000'000ull);
  EXPECT_EQ(parse_memory_size("64k"), 64ull << 10);
  EXPECT_EQ(parse_memory_size("2T"), 2ull << 40);
  EXPECT_EQ(parse_memory_size("1073741824"), 1ull << 30);
  EXPECT_EQ(parse_memory_size(" 256 MiB "), 256ull << 20);
  EXPECT_EQ(parse_memory_size("100B"), 100u);
}

TEST(MemorySize, RefusesWhatIsNotASize) {
  for (const char* bad : {"", "M", "abc", "12X", "1.2.3G", "-5M", "0", "0.0G", "5 MBB", "1e30",
                          "99999999999T", ".G"}) {
    try {
      parse_memory_size(bad);
      ADD_FAILURE() << "'" << bad << "' was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("examples"), std::string::npos) << e.what();
    }
  }
}

TEST(MemorySize, FormatsInTheUnitsItParses) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(3ull << 29), "1.5 GiB");
  EXPECT_EQ(format_bytes(198ull << 20), "198.0 MiB");
  EXPECT_EQ(parse_memory_size(format_bytes(198ull << 20)), 198ull << 20);
}

TEST(MemoryBudget, AutoTakesASafeShareOfTheTightestLimit) {
  MemoryAvailability a;
  a.mem_available = 10ull << 30;
  EXPECT_EQ(resolve_memory_budget("auto", a), static_cast<uint64_t>(0.8 * (10ull << 30)));
  a.cgroup_limit = 1ull << 30;
  EXPECT_EQ(resolve_memory_budget("AUTO", a), static_cast<uint64_t>(0.8 * (1ull << 30)));
  EXPECT_EQ(resolve_memory_budget("300M", a), 300ull << 20);
  a = {};
  EXPECT_THROW(resolve_memory_budget("auto", a), Error);
}

class FakeProc : public testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("floatllm-budget-test-" + std::to_string(::getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "proc");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void write(const std::filesystem::path& file, const std::string& text) {
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  std::filesystem::path root_;
};

TEST_F(FakeProc, ReadsMemAvailable) {
  write(root_ / "meminfo",
        "MemTotal:       24684000 kB\nMemFree:        1000 kB\nMemAvailable:   23000000 kB\n");
  EXPECT_EQ(read_meminfo("MemAvailable", root_ / "meminfo"), 23000000ull * 1024);
  EXPECT_EQ(read_meminfo("MemTotal", root_ / "meminfo"), 24684000ull * 1024);
  EXPECT_FALSE(read_meminfo("SwapTotal", root_ / "meminfo"));
  EXPECT_FALSE(read_meminfo("MemAvailable", root_ / "missing"));
}

TEST_F(FakeProc, FindsACgroupV1MemoryGroupAndItsTightestLimit) {
  const auto mount = root_ / "sys/fs/cgroup/memory";
  write(root_ / "proc/cgroup", "9:name=systemd:/\n4:memory:/jobs/run7\n3:cpuset:/\n0::/\n");
  write(root_ / "proc/mountinfo",
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "35 31 0:32 / " +
            mount.string() + " rw,relatime shared:9 - cgroup cgroup rw,memory\n");
  write(mount / "memory.limit_in_bytes", "9223372036854771712\n");
  write(mount / "jobs/memory.limit_in_bytes", "1073741824\n");
  write(mount / "jobs/run7/memory.limit_in_bytes", "9223372036854771712\n");
  write(mount / "jobs/run7/memory.usage_in_bytes", "52428800\n");
  write(mount / "jobs/run7/memory.max_usage_in_bytes", "60000000\n");
  const auto group = MemoryCgroup::of_process(root_ / "proc");
  ASSERT_TRUE(group);
  EXPECT_EQ(group->version(), 1);
  EXPECT_EQ(group->dir(), mount / "jobs/run7");
  EXPECT_EQ(group->limit(), 1073741824u);  // the parent's
  EXPECT_EQ(group->usage(), 52428800u);
  EXPECT_EQ(group->peak_usage(), 60000000u);
}

TEST_F(FakeProc, FindsACgroupV2GroupInsideANamespace) {
  const auto mount = root_ / "sys/fs/cgroup";
  write(root_ / "proc/cgroup", "0::/user.slice/app\n");
  write(root_ / "proc/mountinfo",
        "41 31 0:38 /user.slice " + mount.string() + " rw,relatime - cgroup2 cgroup2 rw\n");
  write(mount / "app/memory.max", "max\n");
  write(mount / "app/memory.current", "1234\n");
  write(mount / "memory.max", "536870912\n");
  const auto group = MemoryCgroup::of_process(root_ / "proc");
  ASSERT_TRUE(group);
  EXPECT_EQ(group->version(), 2);
  EXPECT_EQ(group->dir(), mount / "app");
  EXPECT_EQ(group->limit(), 536870912u);
  EXPECT_EQ(group->usage(), 1234u);
}

TEST_F(FakeProc, NoMemoryControllerMeansNoGroup) {
  write(root_ / "proc/cgroup", "3:cpuset:/\n");
  write(root_ / "proc/mountinfo", "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  EXPECT_FALSE(MemoryCgroup::of_process(root_ / "proc"));
  EXPECT_FALSE(MemoryCgroup::of_process(root_ / "nothing"));
}

TEST_F(FakeProc, UnlimitedAndGarbageValuesGiveNoLimit) {
  const auto dir = root_ / "g";
  write(dir / "memory.max", "max\n");
  write(dir / "memory.current", "12ab\n");
  const MemoryCgroup group(2, dir, dir);
  EXPECT_FALSE(group.limit());
  EXPECT_FALSE(group.usage());
}

TEST(MemoryBudget, ThisMachineHasSomethingAvailable) {
  const auto a = MemoryAvailability::of_system();
  EXPECT_GT(a.mem_available, 0u);
  EXPECT_GT(resolve_memory_budget("auto"), 0u);
}

}  // namespace
}  // namespace floatllm
