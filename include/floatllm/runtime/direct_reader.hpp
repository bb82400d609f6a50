// Reads byte ranges of a file straight into the caller's buffers, bypassing the page cache
// (O_DIRECT), with several requests in flight on a few reader threads.
//
// Reading a model that does not fit in memory through the page cache (mmap or plain read) lets the
// kernel keep what was read until memory runs short, which is exactly what a memory budget must
// prevent. O_DIRECT reads leave nothing behind. They need offsets, lengths and buffer addresses
// aligned to the device's block size; callers read the aligned superset of what they need.
//
// Where the file system refuses O_DIRECT (tmpfs, some network file systems) reads fall back to
// plain pread followed by posix_fadvise(DONTNEED) of the range, which drops it from the cache.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"

namespace floatllm {

// Offsets, lengths and addresses of direct reads are multiples of this. 4 KiB covers the logical
// block sizes of common disks (512 B and 4 KiB).
inline constexpr uint64_t kDirectIoAlignment = 4096;

inline constexpr uint64_t align_down(uint64_t value, uint64_t alignment) {
  return value / alignment * alignment;
}
inline constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

// Page-aligned anonymous memory, returned to the system when destroyed.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t bytes) : size_(align_up(bytes, kDirectIoAlignment)) {
    if (size_ == 0) return;
    void* addr = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr == MAP_FAILED) fail("cannot allocate ", size_, " bytes: ", std::strerror(errno));
    data_ = static_cast<std::byte*>(addr);
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    AlignedBuffer moved(std::move(other));
    std::swap(data_, moved.data_);
    std::swap(size_, moved.size_);
    return *this;
  }
  ~AlignedBuffer() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }

  std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

class DirectReader {
 public:
  struct Options {
    int threads = 4;                 // reader threads = requests in flight
    uint64_t chunk_bytes = 1 << 20;  // ranges are split into requests of this size
    bool allow_direct = true;        // false: always read through the page cache
  };

  // One range to read: `length` bytes from `offset` into `destination`.
  struct Range {
    uint64_t offset = 0;
    uint64_t length = 0;
    std::byte* destination = nullptr;
  };

  // The reads of one submit(); wait() on it before using the bytes or reusing the buffers.
  class Batch {
   public:
    bool done() const { return pending_.load(std::memory_order_acquire) == 0; }

   private:
    friend class DirectReader;
    std::atomic<int64_t> pending_{0};
    std::atomic<bool> cancelled_{false};
    std::string error_;
  };
  using Ticket = std::shared_ptr<Batch>;

  DirectReader(const std::filesystem::path& path, Options options)
      : path_(path.string()), options_(options) {
    if (options_.threads < 1) options_.threads = 1;
    options_.chunk_bytes =
        std::max(align_up(options_.chunk_bytes, kDirectIoAlignment), kDirectIoAlignment);
    if (options_.allow_direct) {
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
      direct_ = fd_ >= 0 && probe_direct();
      if (fd_ >= 0 && !direct_) ::close(std::exchange(fd_, -1));
    }
    if (fd_ < 0) fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path_, ": cannot open: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail(path_, ": cannot stat: ", std::strerror(errno));
    file_size_ = static_cast<uint64_t>(st.st_size);
    for (int i = 0; i < options_.threads; ++i)
      workers_.emplace_back([this] { work(); });
  }

  DirectReader(const DirectReader&) = delete;
  DirectReader& operator=(const DirectReader&) = delete;

  ~DirectReader() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_ready_.notify_all();
    for (std::thread& worker : workers_)
      worker.join();
    ::close(fd_);
  }

  bool direct() const { return direct_; }
  uint64_t file_size() const { return file_size_; }
  const Options& options() const { return options_; }
  int fd() const { return fd_; }
  uint64_t bytes_read() const { return bytes_read_.load(std::memory_order_relaxed); }

  // Queues the reads and returns at once. For direct reads every offset, length and destination
  // must be a multiple of kDirectIoAlignment; reads past the end of the file give zeros.
  Ticket submit(std::span<const Range> ranges) {
    auto batch = std::make_shared<Batch>();
    std::vector<Chunk> chunks;
    for (const Range& r : ranges) {
      if (direct_ && (r.offset % kDirectIoAlignment != 0 || r.length % kDirectIoAlignment != 0 ||
                      reinterpret_cast<uintptr_t>(r.destination) % kDirectIoAlignment != 0)) {
        fail(path_, ": direct read of ", r.length, " bytes at ", r.offset, " is not aligned to ",
             kDirectIoAlignment, " bytes");
      }
      for (uint64_t done = 0; done < r.length; done += options_.chunk_bytes) {
        const uint64_t length = std::min(options_.chunk_bytes, r.length - done);
        chunks.push_back({batch, r.offset + done, length, r.destination + done});
      }
    }
    batch->pending_.store(static_cast<int64_t>(chunks.size()), std::memory_order_release);
    if (!chunks.empty()) {
      std::lock_guard lock(mutex_);
      for (Chunk& c : chunks)
        queue_.push_back(std::move(c));
    }
    work_ready_.notify_all();
    return batch;
  }

  // Blocks until every read of the batch has finished; reports the first failure.
  void wait(const Ticket& batch) {
    if (!batch->done()) {
      std::unique_lock lock(mutex_);
      work_done_.wait(lock, [&] { return batch->done(); });
    }
    if (!batch->error_.empty() && !batch->cancelled_.load()) fail(batch->error_);
  }

  // Reads that have not started are skipped; wait() is still needed before reusing the buffers.
  void cancel(const Ticket& batch) { batch->cancelled_.store(true, std::memory_order_relaxed); }

  // Reads synchronously; for callers with a single range.
  void read(const Range& range) { wait(submit({&range, 1})); }

 private:
  struct Chunk {
    Ticket batch;
    uint64_t offset;
    uint64_t length;
    std::byte* destination;
  };

  // Some file systems accept O_DIRECT at open and refuse it at the first read.
  bool probe_direct() {
    AlignedBuffer probe(kDirectIoAlignment);
    const ssize_t got = ::pread(fd_, probe.data(), kDirectIoAlignment, 0);
    return got >= 0;
  }

  void work() {
    for (;;) {
      Chunk chunk;
      {
        std::unique_lock lock(mutex_);
        work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        chunk = std::move(queue_.front());
        queue_.pop_front();
      }
      std::string error;
      if (!chunk.batch->cancelled_.load(std::memory_order_relaxed)) error = read_chunk(chunk);
      {
        std::lock_guard lock(mutex_);
        if (!error.empty() && chunk.batch->error_.empty()) chunk.batch->error_ = std::move(error);
        chunk.batch->pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
      work_done_.notify_all();
    }
  }

  std::string read_chunk(const Chunk& c) {
    uint64_t done = 0;
    while (done < c.length) {
      const ssize_t got =
          ::pread(fd_, c.destination + done, c.length - done, static_cast<off_t>(c.offset + done));
      if (got < 0) {
        if (errno == EINTR) continue;
        return concat(path_, ": read of ", c.length - done, " bytes at ", c.offset + done,
                      " failed: ", std::strerror(errno));
      }
      if (got == 0) {
        std::memset(c.destination + done, 0, c.length - done);
        break;
      }
      done += static_cast<uint64_t>(got);
      // A direct read that stops short of the request mid-file leaves an unaligned remainder:
      // only the end of the file does that, and the loop then sees 0 and zero-fills.
      if (direct_ && done % kDirectIoAlignment != 0) {
        std::memset(c.destination + done, 0, c.length - done);
        break;
      }
    }
    bytes_read_.fetch_add(done, std::memory_order_relaxed);
    if (!direct_) {
      ::posix_fadvise(fd_, static_cast<off_t>(c.offset), static_cast<off_t>(c.length),
                      POSIX_FADV_DONTNEED);
    }
    return {};
  }

  std::string path_;
  Options options_;
  int fd_ = -1;
  bool direct_ = false;
  uint64_t file_size_ = 0;
  std::atomic<uint64_t> bytes_read_{0};
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::deque<Chunk> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// Sequential read speed of `path` with the given reader settings, from reading up to
// `sample_bytes` spread over the file (so a short file or a cached prefix does not decide it).
inline double measure_read_bytes_per_second(const std::filesystem::path& path,
                                            DirectReader::Options options,
                                            uint64_t sample_bytes = 64 << 20) {
  DirectReader reader(path, options);
  const uint64_t piece = 8 << 20;
  const uint64_t file = align_down(reader.file_size(), kDirectIoAlignment);
  const uint64_t total = std::min(align_down(sample_bytes, piece), align_down(file, piece));
  if (total == 0) return 0;
  const uint64_t pieces = total / piece;
  const uint64_t stride = align_down(file / pieces, kDirectIoAlignment);
  // Every piece lands in the same buffer: only the time matters, and the measurement must not
  // itself need memory the budget does not have.
  AlignedBuffer buffer(piece);
  std::vector<DirectReader::Range> ranges;
  for (uint64_t i = 0; i < pieces; ++i)
    ranges.push_back({i * stride, piece, buffer.data()});
  const auto start = std::chrono::steady_clock::now();
  reader.wait(reader.submit(ranges));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return seconds > 0 ? static_cast<double>(total) / seconds : 0;
}

}  // namespace floatllm
