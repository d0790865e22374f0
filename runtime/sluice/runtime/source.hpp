#pragma once

#include "sluice/runtime/function.hpp"
#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/operators.hpp"
#include "sluice/state/serializer.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

/// Sources are driven in bounded steps by their subtask: each step emits at
/// most a given number of records and returns, so control messages (cancel,
/// credits, later barriers) are never starved by a busy source.
namespace sluice::runtime {

/// What a source wants after a step.
struct source_step {
  enum class kind { more, wait, finished };
  kind what = kind::more;
  /// For `wait`: how long until the source has something again.
  std::chrono::nanoseconds delay{0};

  static source_step more() { return {}; }
  static source_step finished() { return {kind::finished, {}}; }
  static source_step wait(std::chrono::nanoseconds d) { return {kind::wait, d}; }
};

/// A user source: emits records in bounded steps. One copy runs per
/// parallel subtask (open() tells which one it is).
template <class T>
class source_function : public rich_function {
public:
  /// Emits at most `max_records` records into `out`, then returns.
  virtual source_step run(collector<T>& out, size_t max_records) = 0;
};

/// Type-erased view of a source operator for the subtask that drives it.
class source_operator_base : public stream_operator {
public:
  using stream_operator::stream_operator;
  /// Runs one bounded step of the source.
  virtual source_step step(size_t max_records) = 0;
  /// The input has ended: sends the maximum watermark down the chain.
  virtual void process_end_watermark() = 0;
};

/// Runs a source_function (copied per subtask) as the head of a chain.
template <class T, class S>
class source_operator final : public source_operator_base {
public:
  source_operator(std::string name, S src)
    : source_operator_base(std::move(name)), src_(std::move(src)) {}
  void open(const runtime_context& ctx) override {
    element_ = &ctx.element();
    try {
      internal::open_if_rich(src_, ctx);
    } catch (const user_code_error&) {
      throw;
    } catch (const std::exception& e) {
      throw user_code_error(name(), e.what());
    }
  }
  void close() override { src_.close(); }
  void set_output(any_collector* out) override {
    out_ = dynamic_cast<collector<T>*>(out);
    if (out_ == nullptr)
      throw std::logic_error("source '" + name() + "' wired to an output of the wrong type");
  }
  void process_end_watermark() override { out_->process_watermark(INT64_MAX); }
  source_step step(size_t max_records) override {
    // Source records carry no timestamp until an assigner gives them one.
    if (element_ != nullptr)
      element_->timestamp = INT64_MIN;
    try {
      return src_.run(*out_, max_records);
    } catch (const user_code_error&) {
      throw;
    } catch (const std::exception& e) {
      throw user_code_error(name(), e.what());
    }
  }

private:
  S src_;
  collector<T>* out_ = nullptr;
  element_context* element_ = nullptr;
};

/// A range of a collection's or generator's indexes not emitted yet,
/// [next, end): the unit of work those sources checkpoint and hand out
/// again when a job is restored, also at another parallelism.
struct index_split {
  uint64_t next = 0;
  uint64_t end = 0;
  static constexpr const char* sluice_type_name = "sluice.index_split";
  SLUICE_SERIALIZABLE(next, end)
};

/// A byte range [begin, end) of a text file whose lines (a line belongs to
/// the range it starts in) a text file source reads, and `next`, the offset
/// of the first line of the range not emitted yet.
struct file_split {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t next = 0;
  static constexpr const char* sluice_type_name = "sluice.file_split";
  SLUICE_SERIALIZABLE(begin, end, next)
};

namespace internal {
/// The splits one subtask of a replayable source works through, front
/// first, and their even-split operator list state "source-splits". The
/// front split's position is the source's position. Owned by the source.
template <class Split>
class source_splits {
public:
  /// Declares the state; on a restore, takes the splits it holds.
  void initialize(const function_initialization_context& ctx) {
    state_ = &ctx.operator_state().template list_state<Split>("source-splits");
    restored_ = ctx.is_restored();
    if (restored_)
      splits_.assign(state_->get().begin(), state_->get().end());
  }
  /// True when the splits came from a checkpoint: open() must not create
  /// fresh ones (no splits then means nothing is left to read).
  [[nodiscard]] bool restored() const noexcept { return restored_; }
  /// Writes the splits not finished yet, positions included, to the state.
  void snapshot() {
    if (state_ != nullptr)
      state_->update(std::vector<Split>(splits_.begin(), splits_.end()));
  }
  [[nodiscard]] bool empty() const noexcept { return splits_.empty(); }
  Split& front() { return splits_.front(); }
  void pop_front() { splits_.pop_front(); }
  void push_back(Split s) { splits_.push_back(std::move(s)); }
  std::deque<Split>& all() noexcept { return splits_; }

private:
  std::deque<Split> splits_;
  state::operator_list_state<Split>* state_ = nullptr;
  bool restored_ = false;
};

/// [next, end) of subtask `i` of `p` over `count` indexes: contiguous
/// ranges in subtask order (count == UINT64_MAX: unbounded, the last range
/// runs to the end).
index_split initial_index_split(uint64_t count, uint64_t i, uint64_t p);
} // namespace internal

/// Emits a fixed collection, split evenly over the parallel subtasks.
/// Replayable: each subtask checkpoints the index ranges it has left, so a
/// restored job (at any parallelism) emits every element exactly once.
template <class T>
class collection_source final : public source_function<T>, public checkpointed_function {
public:
  explicit collection_source(std::shared_ptr<const std::vector<T>> items)
    : items_(std::move(items)) {}

  void initialize_state(const function_initialization_context& ctx) override {
    splits_.initialize(ctx);
  }
  void snapshot_state(int64_t /*checkpoint_id*/, int64_t /*timestamp_ms*/) override {
    splits_.snapshot();
  }
  void open(const runtime_context& ctx) override {
    auto n = static_cast<uint64_t>(items_->size());
    if (splits_.restored()) {
      for (auto& s : splits_.all())
        s.end = std::min(s.end, n);
    } else {
      splits_.push_back(internal::initial_index_split(
        n, static_cast<uint64_t>(ctx.subtask_index()), static_cast<uint64_t>(ctx.parallelism())));
    }
  }
  source_step run(collector<T>& out, size_t max_records) override {
    size_t emitted = 0;
    while (!splits_.empty() && emitted < max_records) {
      auto& s = splits_.front();
      auto budget = static_cast<uint64_t>(max_records - emitted);
      uint64_t stop = s.end - std::min(s.next, s.end) > budget ? s.next + budget : s.end;
      for (; s.next < stop; ++s.next, ++emitted)
        out.collect((*items_)[static_cast<size_t>(s.next)]);
      if (s.next >= s.end)
        splits_.pop_front();
    }
    return splits_.empty() ? source_step::finished() : source_step::more();
  }

private:
  std::shared_ptr<const std::vector<T>> items_;
  internal::source_splits<index_split> splits_;
};

/// Generates `count` records from f(index) (index 0..count-1, split in
/// contiguous ranges over the subtasks), optionally limited to a total rate
/// in records per second (each subtask emits rate / parallelism, also after
/// a restore). count == unbounded runs until cancelled. Replayable like
/// collection_source: checkpoints the index ranges left.
template <class T, class F>
class generator_source final : public source_function<T>, public checkpointed_function {
public:
  static constexpr uint64_t unbounded = std::numeric_limits<uint64_t>::max();

  generator_source(uint64_t count, F f, double records_per_second)
    : count_(count), fn_(std::move(f)), rate_(records_per_second) {}

  void initialize_state(const function_initialization_context& ctx) override {
    splits_.initialize(ctx);
  }
  void snapshot_state(int64_t /*checkpoint_id*/, int64_t /*timestamp_ms*/) override {
    splits_.snapshot();
  }
  void open(const runtime_context& ctx) override {
    auto p = static_cast<uint64_t>(ctx.parallelism());
    if (!splits_.restored())
      splits_.push_back(
        internal::initial_index_split(count_, static_cast<uint64_t>(ctx.subtask_index()), p));
    if (rate_ > 0)
      subtask_rate_ = rate_ / static_cast<double>(p);
    emitted_ = 0;
    start_ = std::chrono::steady_clock::now();
    internal::open_if_rich(fn_, ctx);
  }
  void close() override { internal::close_if_rich(fn_); }

  source_step run(collector<T>& out, size_t max_records) override {
    auto budget = static_cast<uint64_t>(max_records);
    if (subtask_rate_ > 0 && !splits_.empty()) {
      // Emit only what is due by now, so the rate holds over any window.
      auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_);
      auto due = static_cast<uint64_t>(elapsed.count() * subtask_rate_) + 1;
      if (due <= emitted_) {
        // Record number `emitted_` (from 0) is due emitted_ / rate after
        // the start.
        auto wait = std::chrono::duration<double>(static_cast<double>(emitted_) / subtask_rate_ -
                                                  elapsed.count());
        return source_step::wait(std::chrono::duration_cast<std::chrono::nanoseconds>(wait) +
                                 std::chrono::microseconds(50));
      }
      budget = std::min(budget, due - emitted_);
    }
    while (!splits_.empty() && budget > 0) {
      auto& s = splits_.front();
      uint64_t stop = s.end - std::min(s.next, s.end) > budget ? s.next + budget : s.end;
      budget -= stop - std::min(s.next, stop);
      emitted_ += stop - std::min(s.next, stop);
      // A local position: the virtual collect() would otherwise force a
      // store and reload of s.next per record.
      auto next = s.next;
      if constexpr (word_record_v<T> && std::is_default_constructible_v<T> &&
                    std::is_move_assignable_v<T>) {
        // Small trivial records go out a block at a time: one virtual call
        // per block, and a network output hashes a block's keys together.
        constexpr uint64_t block = 64;
        T buf[block];
        while (next < stop) {
          const auto m = std::min<uint64_t>(block, stop - next);
          for (uint64_t j = 0; j < m; ++j)
            buf[j] = fn_(next + j);
          next += m;
          out.collect_batch(buf, static_cast<size_t>(m));
        }
      } else {
        for (; next < stop; ++next)
          out.collect(fn_(next));
      }
      s.next = next;
      if (s.next >= s.end)
        splits_.pop_front();
    }
    return splits_.empty() ? source_step::finished() : source_step::more();
  }

private:
  uint64_t count_;
  F fn_;
  double rate_;
  double subtask_rate_ = 0;
  uint64_t emitted_ = 0; // records this subtask emitted since open()
  std::chrono::steady_clock::time_point start_;
  internal::source_splits<index_split> splits_;
};

/// Reads a text file line by line. At parallelism p each subtask reads one
/// byte range of the file; a line belongs to the range in which it starts.
/// Replayable: each subtask checkpoints its ranges with the offset of the
/// next line not emitted, so a restored job (at any parallelism) resumes
/// every range at that line.
class text_file_source final : public source_function<std::string>,
                               public checkpointed_function {
public:
  explicit text_file_source(std::string path) : path_(std::move(path)) {}
  text_file_source(const text_file_source& other) : path_(other.path_) {}
  ~text_file_source() override;
  void initialize_state(const function_initialization_context& ctx) override;
  void snapshot_state(int64_t checkpoint_id, int64_t timestamp_ms) override;
  void open(const runtime_context& ctx) override;
  void close() override;
  source_step run(collector<std::string>& out, size_t max_records) override;

private:
  bool fill();
  /// Points the buffer at `offset` (empty buffer, next fill reads there).
  void seek(uint64_t offset);
  /// The offset of the first line starting at or after `offset`.
  uint64_t first_line_at_or_after(uint64_t offset);
  /// The front split is done: drops it and seeks to the next one's line.
  void next_split();

  std::string path_;
  int fd_ = -1;
  uint64_t pos_ = 0;       // file offset of buf_[0]
  uint64_t file_size_ = 0;
  std::vector<char> buf_;
  size_t head_ = 0;        // next unread byte in buf_
  size_t tail_ = 0;        // bytes valid in buf_
  bool eof_ = false;
  // While reading (open() positioned the buffer, close() not called yet) the
  // front split's position is pos_ + head_, not its `next`.
  bool reading_ = false;
  internal::source_splits<file_split> splits_;
};

/// Reads '\n'-delimited text from a TCP socket (non-blocking: a step that
/// finds no data asks to be called again shortly). Ends when the peer closes
/// the connection. At-most-once: it is not a checkpointed function, a socket
/// cannot be rewound, so after a restore it reconnects and reads what the
/// peer sends from then on; records read after the last completed
/// checkpoint are lost.
class socket_text_source final : public source_function<std::string> {
public:
  socket_text_source(std::string host, uint16_t port, char delimiter,
                     std::chrono::milliseconds connect_timeout)
    : host_(std::move(host)), port_(port), delimiter_(delimiter),
      connect_timeout_(connect_timeout) {}
  socket_text_source(const socket_text_source& o)
    : host_(o.host_), port_(o.port_), delimiter_(o.delimiter_),
      connect_timeout_(o.connect_timeout_) {}
  ~socket_text_source() override;
  void open(const runtime_context& ctx) override;
  void close() override;
  source_step run(collector<std::string>& out, size_t max_records) override;

private:
  std::string host_;
  uint16_t port_;
  char delimiter_;
  std::chrono::milliseconds connect_timeout_;
  int fd_ = -1;
  bool connected_ = false;
  std::chrono::steady_clock::time_point connect_deadline_;
  std::string pending_;
};

} // namespace sluice::runtime
