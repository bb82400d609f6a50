// A WeightSource for models larger than memory: resident layers are read once into memory of
// the source's own, streamed layers are read ahead of use into a ring buffer by reader threads,
// and mixture-of-experts layers read only the experts the router picks, through an LRU cache.
//
// Resident layers are copies rather than pages of the file's mapping because mapped pages are page
// cache: the kernel may reclaim them under a memory limit and fault them in again, page by page,
// at every token (the thrashing a budget exists to avoid), and they are charged to a memory
// cgroup in ways the plan cannot bound. A copy costs the same memory and stays put.
//
// The ring is one aligned arena used first-in first-out: each streamed layer (its tensors'
// aligned file extents) takes a contiguous piece, in the order the forward pass uses them, as far
// ahead as the ring has room. While the forward pass computes layer l, the readers fill the
// pieces of l+1, l+2, ... and wrap around to the first streamed layer of the next token. The
// forward pass runs a whole batch through a layer between begin_layer and end_layer, so a prompt
// batch reads each streamed layer once.
//
// Reads are O_DIRECT (direct_reader.hpp): the page cache does not grow with what is streamed.
// The rows of the token embedding are read through the mapping and dropped again after use.
// Results are bit-identical to a fully mapped run: the same bytes reach the same kernels.
#pragma once

#include <sys/mman.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "floatllm/core/error.hpp"
#include "floatllm/model/model.hpp"
#include "floatllm/model/weights.hpp"
#include "floatllm/runtime/direct_reader.hpp"
#include "floatllm/runtime/weight_layout.hpp"

namespace floatllm {

struct StreamingOptions {
  // Indexed by layer 0 .. n_layers (the last entry is the output head); true = stream it.
  std::vector<bool> streamed;
  // Indexed like `streamed`; true = a device backend runs the layer from its own copy, so the
  // host neither reads nor keeps it (empty: none).
  std::vector<bool> on_device;
  uint64_t ring_bytes = 0;
  // A streamed output head larger than the ring is read in pieces of this many rows (0: whole).
  int64_t head_rows_per_piece = 0;
  // The embedding's rows are dropped from memory after each batch (false when the tied output
  // head keeps the whole matrix resident anyway).
  bool drop_embedding_pages = true;
  // Expert slices are read on demand into an LRU cache of this many bytes.
  bool stream_experts = false;
  uint64_t expert_cache_bytes = 0;
  DirectReader::Options io;
  // Called before every layer; may throw to stop the forward pass (the memory watchdog).
  std::function<void()> before_layer;
};

struct StreamingStats {
  uint64_t bytes_read = 0;
  double io_wait_seconds = 0;  // time the forward pass waited for reads
  int64_t layers_loaded = 0;
  int64_t layers_discarded = 0;  // read ahead but not used next (e.g. the head after a prefill)
  int64_t expert_hits = 0;
  int64_t expert_misses = 0;
};

class StreamingWeightSource final : public WeightSource {
 public:
  StreamingWeightSource(const Model& model, StreamingOptions options)
      : file_(model.file()),
        layout_(WeightLayout::of(model, options.stream_experts)),
        options_(std::move(options)),
        n_layers_(model.config().n_layers) {
    if (file_.mapping().path().empty()) fail("streaming needs a model opened from a file");
    if (static_cast<int64_t>(options_.streamed.size()) != n_layers_ + 1) {
      fail("streaming options list ", options_.streamed.size(), " layers; the model has ",
           n_layers_, " and an output head");
    }
    head_tensor_ = model.tensors().output;
    const auto head_rows = static_cast<int64_t>(head_tensor_->ne[1]);
    split_head_ = is_streamed(n_layers_) && options_.head_rows_per_piece > 0 &&
                  options_.head_rows_per_piece < head_rows;
    for (int64_t l = 0; l <= n_layers_; ++l) {
      if (!is_streamed(l)) continue;
      if (l == n_layers_ && split_head_) {
        for (int64_t first = 0, part = 0; first < head_rows;
             first += options_.head_rows_per_piece, ++part) {
          head_pieces_.push_back(make_row_piece(
              l, *head_tensor_, first, std::min(options_.head_rows_per_piece, head_rows - first)));
          order_.push_back({l, part});
        }
      } else {
        order_.push_back({l, 0});
      }
    }
    for (const Piece& piece : order_) {
      const WeightUnit& unit = unit_of(piece);
      if (unit.read_bytes > options_.ring_bytes) {
        fail("the streaming ring of ", options_.ring_bytes, " bytes cannot hold layer ",
             piece.layer, " (", unit.read_bytes, " bytes)");
      }
    }
    if (!order_.empty()) ring_ = AlignedBuffer(options_.ring_bytes);
    if (options_.stream_experts) setup_expert_cache();
    reader_ = std::make_unique<DirectReader>(file_.mapping().path(), options_.io);
    load_resident();
  }

  StreamingWeightSource(const StreamingWeightSource&) = delete;
  StreamingWeightSource& operator=(const StreamingWeightSource&) = delete;

  ~StreamingWeightSource() override {
    for (Loaded& loaded : queue_)
      reader_->cancel(loaded.ticket);
    for (Loaded& loaded : queue_) {
      try {
        reader_->wait(loaded.ticket);
      } catch (const Error&) {
        // Nothing uses these bytes any more; only the buffer's reuse had to wait.
      }
    }
  }

  void begin_layer(int64_t layer) override {
    if (options_.before_layer) options_.before_layer();
    // A forward pass that failed midway left its layer open.
    if (active_ != kNone) release_active();
    active_ = layer;
    if (is_streamed(layer)) acquire({layer, 0});
  }

  void end_layer(int64_t layer) override {
    if (layer == active_) release_active();
  }

  const std::byte* data(const GgufTensor& tensor) override {
    if (is_streamed(active_) && !queue_.empty() && queue_.front().piece.layer == active_) {
      if (const UnitTensor* t = unit_of(queue_.front().piece).find(tensor))
        return ring_.data() + queue_.front().offset + t->buffer_offset;
    }
    if (const auto it = resident_tensors_.find(&tensor); it != resident_tensors_.end())
      return it->second;
    return tensor.data.data();
  }

  int64_t row_block(const GgufTensor& tensor) override {
    if (split_head_ && &tensor == head_tensor_) return options_.head_rows_per_piece;
    return static_cast<int64_t>(tensor.ne[1]);
  }

  const std::byte* rows(const GgufTensor& tensor, int64_t first, int64_t count) override {
    if (!split_head_ || &tensor != head_tensor_ || active_ != n_layers_) {
      return data(tensor) + static_cast<uint64_t>(first) * tensor.row_bytes();
    }
    const int64_t block = options_.head_rows_per_piece;
    if (first % block != 0 || count > block) {
      fail("rows ", first, "..", first + count - 1, " of '", tensor.name,
           "' are not one streamed piece of ", block, " rows");
    }
    const Piece piece{n_layers_, first / block};
    if (queue_.empty() || !(queue_.front().piece == piece)) {
      if (!queue_.empty() && queue_.front().piece.layer == n_layers_ &&
          queue_.front().piece.part < piece.part) {
        pop_front();
      }
      acquire(piece);
    }
    return ring_.data() + queue_.front().offset + unit_of(piece).tensors.front().buffer_offset;
  }

  const std::byte* expert_data(const GgufTensor& tensor, int64_t expert) override {
    if (!options_.stream_experts || active_ < 0 || active_ >= n_layers_) {
      return data(tensor) + static_cast<uint64_t>(expert) * ExpertLayout::slice_bytes(tensor);
    }
    const ExpertLayout& layout = layout_.experts[static_cast<std::size_t>(active_)];
    std::size_t slice = 0;
    while (slice < layout.tensors.size() && layout.tensors[slice] != &tensor)
      ++slice;
    if (slice == layout.tensors.size() || expert < 0 || expert >= layout.count) {
      fail("expert ", expert, " of tensor '", tensor.name, "' is not an expert of layer ", active_);
    }
    ExpertEntry& entry = expert_entry(active_, expert);
    return entry.data + entry.slice_offsets[slice];
  }

  StreamingStats stats() const {
    StreamingStats s = stats_;
    s.bytes_read = reader_->bytes_read();
    return s;
  }
  const WeightLayout& layout() const { return layout_; }
  bool direct_io() const { return reader_->direct(); }
  bool is_streamed(int64_t layer) const {
    return layer >= 0 && layer <= n_layers_ && options_.streamed[static_cast<std::size_t>(layer)];
  }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::min();

  bool is_resident(int64_t layer) const {
    const auto i = static_cast<std::size_t>(layer);
    return !is_streamed(layer) && !(i < options_.on_device.size() && options_.on_device[i]);
  }

  // A streamed layer, or one piece of a head read in pieces.
  struct Piece {
    int64_t layer = 0;
    int64_t part = 0;
    bool operator==(const Piece&) const = default;
  };

  struct Loaded {
    Piece piece;
    uint64_t offset;  // in the ring
    uint64_t size;
    DirectReader::Ticket ticket;
  };

  struct ExpertEntry {
    int64_t layer = -1;
    int64_t expert = -1;
    uint64_t last_use = 0;
    std::byte* data = nullptr;
    std::vector<uint64_t> slice_offsets;
  };

  const WeightUnit& unit_of(const Piece& piece) const {
    if (piece.layer == n_layers_ && split_head_)
      return head_pieces_[static_cast<std::size_t>(piece.part)];
    return layout_.unit(piece.layer);
  }

  // Makes `piece` the front of the queue, its bytes read: what was read ahead for other pieces
  // before it is dropped (a misprediction), and reading starts from it when it was not ahead.
  void acquire(const Piece& piece) {
    while (!queue_.empty() && !(queue_.front().piece == piece)) {
      if (!queued(piece)) {
        discard_queue();
        break;
      }
      discard_front();
    }
    if (queue_.empty()) {
      next_in_order_ = position_in_order(piece);
      fill();
    }
    if (queue_.empty() || !(queue_.front().piece == piece)) {
      fail("internal: layer ", piece.layer, " could not be scheduled in the streaming ring");
    }
    const auto start = std::chrono::steady_clock::now();
    try {
      reader_->wait(queue_.front().ticket);
    } catch (const Error&) {
      discard_queue();
      active_ = kNone;
      throw;
    }
    stats_.io_wait_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fill();
  }

  void release_active() {
    const int64_t layer = std::exchange(active_, kNone);
    if (layer == -1 && options_.drop_embedding_pages) drop_mapped_pages(layout_.embedding);
    if (is_streamed(layer) && !queue_.empty() && queue_.front().piece.layer == layer) pop_front();
  }

  void pop_front() {
    queue_.pop_front();
    if (queue_.empty()) ring_head_ = 0;
    fill();
  }

  // Schedules reads of the next streamed layers for as long as the ring has room.
  void fill() {
    while (queue_.size() < order_.size()) {
      const Piece piece = order_[next_in_order_];
      const WeightUnit& unit = unit_of(piece);
      const auto offset = allocate(unit.read_bytes);
      if (!offset) return;
      std::vector<DirectReader::Range> ranges;
      for (const FileExtent& e : unit.extents)
        ranges.push_back({e.offset, e.length, ring_.data() + *offset + e.buffer_offset});
      queue_.push_back({piece, *offset, unit.read_bytes, reader_->submit(ranges)});
      ring_head_ = *offset + unit.read_bytes;
      next_in_order_ = (next_in_order_ + 1) % order_.size();
      ++stats_.layers_loaded;
    }
  }

  // First-in first-out placement: after the newest piece, or wrapped to the start of the ring.
  std::optional<uint64_t> allocate(uint64_t size) const {
    const uint64_t capacity = ring_.size();
    if (queue_.empty()) return size <= capacity ? std::optional<uint64_t>(0) : std::nullopt;
    const uint64_t tail = queue_.front().offset;
    if (ring_head_ > tail) {
      if (ring_head_ + size <= capacity) return ring_head_;
      if (size <= tail) return 0;
      return std::nullopt;
    }
    if (ring_head_ < tail && ring_head_ + size <= tail) return ring_head_;
    return std::nullopt;
  }

  bool queued(const Piece& piece) const {
    for (const Loaded& l : queue_) {
      if (l.piece == piece) return true;
    }
    return false;
  }

  void discard_front() {
    reader_->cancel(queue_.front().ticket);
    try {
      reader_->wait(queue_.front().ticket);
    } catch (const Error&) {
      // The bytes are being thrown away; a failed read of them does not matter.
    }
    queue_.pop_front();
    ++stats_.layers_discarded;
    if (queue_.empty()) ring_head_ = 0;
  }

  void discard_queue() {
    while (!queue_.empty())
      discard_front();
  }

  std::size_t position_in_order(const Piece& piece) const {
    for (std::size_t i = 0; i < order_.size(); ++i) {
      if (order_[i] == piece) return i;
    }
    fail("internal: layer ", piece.layer, " is not streamed");
  }

  void drop_mapped_pages(const WeightUnit& unit) {
    for (const UnitTensor& t : unit.tensors) {
      file_.mapping().advise(t.tensor->file_offset, t.tensor->byte_size(), MADV_DONTNEED);
      ::posix_fadvise(reader_->fd(), static_cast<off_t>(t.tensor->file_offset),
                      static_cast<off_t>(t.tensor->byte_size()), POSIX_FADV_DONTNEED);
    }
  }

  // Reads every resident layer into one arena, then drops whatever of the layers' file pages the
  // process had touched (e.g. the planner's speed measurement), so the mapping holds only the
  // header, the global tensors and the embedding rows in use.
  void load_resident() {
    uint64_t total = 0;
    for (int64_t l = 0; l <= n_layers_; ++l) {
      if (is_resident(l)) total += layout_.unit(l).read_bytes;
    }
    resident_ = AlignedBuffer(total);
    std::vector<DirectReader::Ticket> reads;
    uint64_t at = 0;
    for (int64_t l = 0; l <= n_layers_; ++l) {
      if (!is_resident(l)) continue;
      const WeightUnit& unit = layout_.unit(l);
      std::vector<DirectReader::Range> ranges;
      for (const FileExtent& e : unit.extents)
        ranges.push_back({e.offset, e.length, resident_.data() + at + e.buffer_offset});
      for (const UnitTensor& t : unit.tensors)
        resident_tensors_[t.tensor] = resident_.data() + at + t.buffer_offset;
      if (!ranges.empty()) reads.push_back(reader_->submit(ranges));
      at += unit.read_bytes;
    }
    for (const DirectReader::Ticket& ticket : reads)
      reader_->wait(ticket);
    for (int64_t l = 0; l <= n_layers_; ++l)
      drop_mapped_pages(layout_.unit(l));
  }

  void setup_expert_cache() {
    uint64_t entry_bytes = 0;
    for (const ExpertLayout& e : layout_.experts)
      entry_bytes = std::max(entry_bytes, e.read_bytes_per_expert);
    if (entry_bytes == 0) return;
    // The expert in use and the one being read must both fit.
    const uint64_t entries = options_.expert_cache_bytes / entry_bytes;
    if (entries < 2) {
      fail("the expert cache of ", options_.expert_cache_bytes,
           " bytes holds fewer than two experts of ", entry_bytes, " bytes");
    }
    expert_arena_ = AlignedBuffer(entries * entry_bytes);
    expert_entries_.resize(entries);
    for (uint64_t i = 0; i < entries; ++i)
      expert_entries_[i].data = expert_arena_.data() + i * entry_bytes;
  }

  ExpertEntry& expert_entry(int64_t layer, int64_t expert) {
    const uint64_t key = static_cast<uint64_t>(layer) << 32 | static_cast<uint64_t>(expert);
    ++use_clock_;
    if (const auto it = expert_index_.find(key); it != expert_index_.end()) {
      ExpertEntry& entry = expert_entries_[it->second];
      entry.last_use = use_clock_;
      last_expert_ = it->second;
      ++stats_.expert_hits;
      return entry;
    }
    ++stats_.expert_misses;
    // The least recently used entry, never the one whose slices the caller may still hold.
    std::size_t victim = expert_entries_.size();
    for (std::size_t i = 0; i < expert_entries_.size(); ++i) {
      if (i == last_expert_) continue;
      if (victim == expert_entries_.size() ||
          expert_entries_[i].last_use < expert_entries_[victim].last_use) {
        victim = i;
      }
    }
    ExpertEntry& entry = expert_entries_[victim];
    if (entry.layer >= 0) {
      expert_index_.erase(static_cast<uint64_t>(entry.layer) << 32 |
                          static_cast<uint64_t>(entry.expert));
    }
    entry.layer = -1;
    const ExpertLayout& layout = layout_.experts[static_cast<std::size_t>(layer)];
    std::vector<DirectReader::Range> ranges;
    entry.slice_offsets.clear();
    uint64_t at = 0;
    for (const GgufTensor* t : layout.tensors) {
      const uint64_t first = ExpertLayout::slice_offset(*t, expert);
      const uint64_t begin = align_down(first, kDirectIoAlignment);
      const uint64_t end = align_up(first + ExpertLayout::slice_bytes(*t), kDirectIoAlignment);
      ranges.push_back({begin, end - begin, entry.data + at});
      entry.slice_offsets.push_back(at + (first - begin));
      at += end - begin;
    }
    const auto start = std::chrono::steady_clock::now();
    reader_->wait(reader_->submit(ranges));
    stats_.io_wait_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    entry.layer = layer;
    entry.expert = expert;
    entry.last_use = use_clock_;
    expert_index_[key] = victim;
    last_expert_ = victim;
    return entry;
  }

  const GgufFile& file_;
  WeightLayout layout_;
  StreamingOptions options_;
  int64_t n_layers_;
  std::vector<Piece> order_;  // streamed layers in the order the forward pass uses them
  const GgufTensor* head_tensor_ = nullptr;
  bool split_head_ = false;
  std::vector<WeightUnit> head_pieces_;
  // The buffers outlive the reader, whose threads may still be writing into them.
  AlignedBuffer ring_;
  AlignedBuffer expert_arena_;
  AlignedBuffer resident_;
  std::unordered_map<const GgufTensor*, const std::byte*> resident_tensors_;
  std::unique_ptr<DirectReader> reader_;
  std::deque<Loaded> queue_;
  uint64_t ring_head_ = 0;
  std::size_t next_in_order_ = 0;
  int64_t active_ = kNone;
  std::vector<ExpertEntry> expert_entries_;
  std::unordered_map<uint64_t, std::size_t> expert_index_;
  std::size_t last_expert_ = std::numeric_limits<std::size_t>::max();
  uint64_t use_clock_ = 0;
  StreamingStats stats_;
};

}  // namespace floatllm
