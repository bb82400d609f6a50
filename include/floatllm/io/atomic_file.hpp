// Writes a file so that readers see either the old file or the complete new one, never a part.
//
// Bytes go to a temporary file in the destination's directory (rename is only atomic within one
// file system); commit() flushes, fsyncs the file, renames it over the destination and fsyncs
// the directory so the rename itself survives a crash. Destroying an uncommitted writer removes
// the temporary file, so an exception half-way through leaves the destination untouched.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"

namespace floatllm {

class AtomicFileWriter {
 public:
  static constexpr std::size_t kBufferBytes = std::size_t{4} << 20;

  explicit AtomicFileWriter(const std::filesystem::path& destination)
      : destination_(destination.string()) {
    std::filesystem::path dir = destination.parent_path();
    if (dir.empty()) dir = ".";
    directory_ = dir.string();
    // Built with append, not operator+: g++ 12 -O3 gives a false -Wrestrict on "." + string.
    std::string name(".");
    name.append(destination.filename().string()).append(".tmp-XXXXXX");
    std::string pattern = (dir / name).string();
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0)
      fail(destination_, ": cannot create a temporary file in ", directory_, ": ",
           std::strerror(errno));
    temporary_ = pattern;
    // mkstemp creates the file 0600; a model file should get the usual umask-based permissions.
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, 0666 & ~mask);
    buffer_.reserve(kBufferBytes);
  }

  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  ~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !temporary_.empty()) ::unlink(temporary_.c_str());
  }

  void write(std::span<const std::byte> bytes) {
    if (bytes.size() >= kBufferBytes) {
      flush();
      write_all(bytes);
    } else {
      if (buffer_.size() + bytes.size() > kBufferBytes) flush();
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    }
    written_ += bytes.size();
  }

  void write_zeros(uint64_t count) {
    static constexpr std::byte kZeros[256]{};
    while (count > 0) {
      const uint64_t chunk = count < sizeof kZeros ? count : sizeof kZeros;
      write({kZeros, static_cast<std::size_t>(chunk)});
      count -= chunk;
    }
  }

  // Zero bytes up to the next multiple of `alignment` of the bytes written so far.
  void pad_to(uint64_t alignment) {
    const uint64_t rest = written_ % alignment;
    if (rest != 0) write_zeros(alignment - rest);
  }

  uint64_t bytes_written() const { return written_; }
  const std::string& destination() const { return destination_; }
  const std::string& temporary_path() const { return temporary_; }

  void commit() {
    flush();
    if (::fsync(fd_) != 0) fail_errno("cannot fsync the temporary file ", temporary_);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("cannot close the temporary file ", temporary_);
    if (::rename(temporary_.c_str(), destination_.c_str()) != 0) {
      fail_errno("cannot rename ", temporary_, " over it");
    }
    committed_ = true;
    const int dir_fd = ::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }

 private:
  void flush() {
    write_all(buffer_);
    buffer_.clear();
  }

  void write_all(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno("cannot write to the temporary file ", temporary_);
      }
      bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
  }

  template <class... Parts>
  [[noreturn]] void fail_errno(Parts&&... parts) {
    const int err = errno;
    fail(destination_, ": ", std::forward<Parts>(parts)..., ": ", std::strerror(err));
  }

  std::string destination_;
  std::string directory_;
  std::string temporary_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t written_ = 0;
  std::vector<std::byte> buffer_;
};

// Where the producer of one tensor's data puts its bytes (GGUF and safetensors writers): it may
// hand them over in any number of pieces, but must deliver exactly the tensor's byte size.
class TensorDataSink {
 public:
  TensorDataSink(AtomicFileWriter& out, std::string_view tensor, uint64_t expected,
                 const std::function<void(uint64_t)>& on_bytes)
      : out_(out), tensor_(tensor), remaining_(expected), on_bytes_(on_bytes) {}

  void write(std::span<const std::byte> bytes) {
    if (bytes.size() > remaining_) {
      fail(out_.destination(), ": tensor '", tensor_, "': producer wrote ", bytes.size(),
           " bytes with only ", remaining_, " left of the tensor's size");
    }
    out_.write(bytes);
    remaining_ -= bytes.size();
    if (on_bytes_) on_bytes_(bytes.size());
  }

  template <class T>
  void write_values(std::span<const T> values) {
    write(std::as_bytes(values));
  }

  uint64_t remaining() const { return remaining_; }

 private:
  AtomicFileWriter& out_;
  std::string_view tensor_;
  uint64_t remaining_;
  const std::function<void(uint64_t)>& on_bytes_;
};

}  // namespace floatllm
