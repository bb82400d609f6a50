// `floatllm chat` as a person uses it, in a pseudo-terminal (forkpty): Ctrl-C typed while a reply
// streams stops that reply, the prompt comes back and the next message gets a reply; /reset and
// /exit work; loading progress shows on the terminal. And as a script uses it (stdin a pipe):
// --mem-budget streaming the model gives the text of the fully mapped run, with no progress
// output on a stderr that is not a terminal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace floatllm {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

using test::kAddressSanitizer;

// The floatllm command of this build (tests/serve/CMakeLists.txt defines it).
#if defined(FLOATLLM_COMMAND)
constexpr const char* kCommand = FLOATLLM_COMMAND;
#else
constexpr const char* kCommand = "";
#endif

fs::path floatllm_command() {
  return kCommand;
}

// A program running on the child side of a pseudo-terminal; the test types into the terminal and
// reads what the program shows on it (stdout and stderr both).
class Terminal {
 public:
  explicit Terminal(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_ = ::forkpty(&master_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ < 0) ADD_FAILURE() << "forkpty failed";
  }

  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  ~Terminal() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }

  void type(std::string_view keys) {
    const ssize_t written = ::write(master_, keys.data(), keys.size());
    EXPECT_EQ(written, static_cast<ssize_t>(keys.size()));
  }

  // Reads until the screen holds `text` after position `from`; returns where `text` starts, or
  // npos after the timeout or when the program ended first.
  std::size_t wait_for(std::string_view text, std::size_t from,
                       std::chrono::seconds timeout = std::chrono::seconds(60)) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      const std::size_t at = screen_.find(text, std::min(from, screen_.size()));
      if (at != std::string::npos) return at;
      if (Clock::now() >= deadline || !read_some(deadline)) return std::string::npos;
    }
  }

  // Reads until the program exits; its exit status (128 + signal when killed).
  int wait_exit(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    const auto deadline = Clock::now() + timeout;
    while (read_some(deadline)) {
    }
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      ::usleep(10000);
    }
    return -1;
  }

  const std::string& screen() const { return screen_; }

 private:
  // False at end of output (the program closed the terminal) or at the deadline.
  bool read_some(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd fd{master_, POLLIN, 0};
    if (::poll(&fd, 1, static_cast<int>(left)) <= 0) return false;
    char buffer[4096];
    const ssize_t n = ::read(master_, buffer, sizeof buffer);
    if (n <= 0) return false;  // EIO once the child side is closed
    screen_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  int master_ = -1;
  pid_t pid_ = -1;
  bool exited_ = false;
  std::string screen_;
};

// Replies of up to `max_tokens` (2000 take seconds: time enough to interrupt one).
std::vector<std::string> chat_command(int max_tokens = 2000) {
  std::vector<std::string> args = {floatllm_command().string(),
                                   "chat",
                                   "-m",
                                   test::model_path("gguf/stories260K.gguf").string(),
                                   "-t",
                                   "1",
                                   "-c",
                                   "2048",
                                   "-n",
                                   std::to_string(max_tokens),
                                   "--temp",
                                   "0.8",
                                   "-s",
                                   "11"};
  return args;
}

class ChatTerminal : public testing::Test {
 protected:
  void SetUp() override {
    if (floatllm_command().empty()) GTEST_SKIP() << "built without the floatllm command";
    if (!fs::exists(floatllm_command()))
      FAIL() << "the floatllm command was not built: " << floatllm_command();
  }
};

// What the chat shows between two positions, for failure messages.
std::string shown(const Terminal& t, std::size_t from) {
  return t.screen().substr(std::min(from, t.screen().size()));
}

TEST_F(ChatTerminal, CtrlCStopsTheReplyAndTheChatGoesOn) {
  Terminal chat(chat_command());
  std::size_t at = chat.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << chat.screen();
  // Loading progress is shown on a terminal.
  EXPECT_NE(chat.screen().find("loading "), std::string::npos) << chat.screen();

  chat.type("Tell me a long story about a dog\r");
  const std::size_t echo = chat.wait_for("a dog\r\n", at);
  ASSERT_NE(echo, std::string::npos) << shown(chat, at);
  // Some of the reply is on the screen: it is streaming. 2000 tokens take seconds; Ctrl-C comes
  // within milliseconds.
  const std::size_t reply = echo + 7;
  ASSERT_NE(chat.wait_for(" ", reply + 20), std::string::npos) << shown(chat, at);
  chat.type("\x03");
  const std::size_t stopped = chat.wait_for("(stopped)", reply);
  ASSERT_NE(stopped, std::string::npos) << shown(chat, at);
  at = chat.wait_for("> ", stopped);
  ASSERT_NE(at, std::string::npos) << shown(chat, stopped);

  // The session goes on: the next message gets a reply of its own.
  chat.type("And then?\r");
  const std::size_t second = chat.wait_for("And then?\r\n", at);
  ASSERT_NE(second, std::string::npos) << shown(chat, at);
  const std::size_t next_prompt = chat.wait_for("\n> ", second, std::chrono::seconds(120));
  ASSERT_NE(next_prompt, std::string::npos) << shown(chat, second);
  const std::string second_reply = chat.screen().substr(second + 11, next_prompt - (second + 11));
  EXPECT_NE(second_reply.find_first_not_of(" \r\n"), std::string::npos)
      << "empty second reply: " << shown(chat, second);
  EXPECT_EQ(second_reply.find("(stopped)"), std::string::npos) << second_reply;

  chat.type("/exit\r");
  EXPECT_EQ(chat.wait_exit(), 0) << shown(chat, next_prompt);
}

TEST_F(ChatTerminal, ResetStartsOverAndExitEndsWithStatusZero) {
  Terminal chat(chat_command(12));
  std::size_t at = chat.wait_for("> ", 0);
  ASSERT_NE(at, std::string::npos) << chat.screen();
  chat.type("Hello\r");
  at = chat.wait_for("\n> ", at + 2);
  ASSERT_NE(at, std::string::npos) << chat.screen();
  chat.type("/reset\r");
  const std::size_t reset = chat.wait_for("(conversation reset)", at);
  ASSERT_NE(reset, std::string::npos) << shown(chat, at);
  at = chat.wait_for("> ", reset);
  ASSERT_NE(at, std::string::npos) << shown(chat, reset);
  chat.type("Hello again\r");
  at = chat.wait_for("\n> ", at + 2);
  ASSERT_NE(at, std::string::npos) << chat.screen();
  chat.type("/exit\r");
  EXPECT_EQ(chat.wait_exit(), 0) << chat.screen();
}

TEST_F(ChatTerminal, CtrlCAtThePromptEndsTheChat) {
  Terminal chat(chat_command());
  ASSERT_NE(chat.wait_for("> ", 0), std::string::npos) << chat.screen();
  chat.type("\x03");
  EXPECT_EQ(chat.wait_exit(), 130) << chat.screen();
}

using test::run_shell;

TEST_F(ChatTerminal, ScriptedChatUnderAMemoryBudgetGivesTheMappedText) {
  if (kAddressSanitizer) {
    GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine are not the program's "
                    "memory: the watchdog would stop a run its plan fits";
  }
  test::TempDir dir;
  const fs::path input = dir / "messages.txt";
  {
    std::ofstream out(input);
    out << "Tell me a story about a cat\nAnd then?\n/reset\nOnce upon a time\n";
  }
  const std::string base = floatllm_command().string() + " chat -m " +
                           test::model_path("gguf/stories260K.gguf").string() +
                           " -t 1 -c 256 -n 48 --temp 0 < " + input.string();
  const test::ShellResult mapped = run_shell(base, dir.path());
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  // The smallest budget that works streams every layer it can through the ring.
  const test::ShellResult plan =
      run_shell(floatllm_command().string() + " plan --no-measure --json -t 1 -c 256 -m " +
                    test::model_path("gguf/stories260K.gguf").string() + " --mem-budget 1G",
                dir.path());
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto key = plan.out.find("\"minimum_budget_bytes\": ");
  ASSERT_NE(key, std::string::npos) << plan.out;
  const uint64_t smallest = std::stoull(plan.out.substr(key + 24));
  const test::ShellResult budgeted =
      run_shell(base + " -v --mem-budget " + std::to_string(smallest), dir.path());
  ASSERT_EQ(budgeted.exit_code, 0) << budgeted.err;
  EXPECT_NE(budgeted.err.find("streamed: "), std::string::npos) << budgeted.err;
  EXPECT_EQ(budgeted.out, mapped.out);
  const auto lines = std::count(mapped.out.begin(), mapped.out.end(), '\n');
  EXPECT_GE(lines, 3) << mapped.out;
  // Quiet when stderr is not a terminal: no progress redrawn with carriage returns.
  EXPECT_EQ(mapped.err.find('\r'), std::string::npos) << mapped.err;
  EXPECT_EQ(budgeted.err.find('\r'), std::string::npos) << budgeted.err;
}

}  // namespace
}  // namespace floatllm
