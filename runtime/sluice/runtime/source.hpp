#pragma once

#include "sluice/runtime/function.hpp"
#include "sluice/runtime/operators.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
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

/// Emits a fixed collection, split evenly over the parallel subtasks.
template <class T>
class collection_source final : public source_function<T> {
public:
  explicit collection_source(std::shared_ptr<const std::vector<T>> items)
    : items_(std::move(items)) {}
  void open(const runtime_context& ctx) override {
    auto n = items_->size();
    auto p = static_cast<size_t>(ctx.parallelism());
    auto i = static_cast<size_t>(ctx.subtask_index());
    next_ = n * i / p;
    end_ = n * (i + 1) / p;
  }
  source_step run(collector<T>& out, size_t max_records) override {
    auto stop = std::min(end_, next_ + max_records);
    for (; next_ < stop; ++next_)
      out.collect((*items_)[next_]);
    return next_ == end_ ? source_step::finished() : source_step::more();
  }

private:
  std::shared_ptr<const std::vector<T>> items_;
  size_t next_ = 0;
  size_t end_ = 0;
};

/// Generates `count` records from f(index) (index 0..count-1, split in
/// contiguous ranges over the subtasks), optionally limited to a total rate
/// in records per second. count == unbounded runs until cancelled.
template <class T, class F>
class generator_source final : public source_function<T> {
public:
  static constexpr uint64_t unbounded = std::numeric_limits<uint64_t>::max();

  generator_source(uint64_t count, F f, double records_per_second)
    : count_(count), fn_(std::move(f)), rate_(records_per_second) {}

  void open(const runtime_context& ctx) override {
    auto p = static_cast<uint64_t>(ctx.parallelism());
    auto i = static_cast<uint64_t>(ctx.subtask_index());
    if (count_ == unbounded) {
      next_ = i * (unbounded / p);
      end_ = (i + 1 == p) ? unbounded : (i + 1) * (unbounded / p);
    } else {
      next_ = static_cast<uint64_t>((static_cast<__uint128_t>(count_) * i) / p);
      end_ = static_cast<uint64_t>((static_cast<__uint128_t>(count_) * (i + 1)) / p);
    }
    first_ = next_;
    if (rate_ > 0)
      subtask_rate_ = rate_ / static_cast<double>(p);
    start_ = std::chrono::steady_clock::now();
    internal::open_if_rich(fn_, ctx);
  }
  void close() override { internal::close_if_rich(fn_); }

  source_step run(collector<T>& out, size_t max_records) override {
    uint64_t stop = end_ - next_ > max_records ? next_ + max_records : end_;
    if (subtask_rate_ > 0) {
      // Emit only what is due by now, so the rate holds over any window.
      auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_);
      auto due = first_ + static_cast<uint64_t>(elapsed.count() * subtask_rate_) + 1;
      if (due <= next_) {
        auto wait = std::chrono::duration<double>(
          static_cast<double>(next_ + 1 - first_) / subtask_rate_ - elapsed.count());
        return source_step::wait(
          std::chrono::duration_cast<std::chrono::nanoseconds>(wait) +
          std::chrono::microseconds(50));
      }
      stop = std::min(stop, due);
    }
    for (; next_ < stop; ++next_)
      out.collect(fn_(next_));
    return next_ == end_ ? source_step::finished() : source_step::more();
  }

private:
  uint64_t count_;
  F fn_;
  double rate_;
  double subtask_rate_ = 0;
  uint64_t first_ = 0;
  uint64_t next_ = 0;
  uint64_t end_ = 0;
  std::chrono::steady_clock::time_point start_;
};

/// Reads a text file line by line. At parallelism p each subtask reads one
/// byte range of the file; a line belongs to the range in which it starts.
class text_file_source final : public source_function<std::string> {
public:
  explicit text_file_source(std::string path) : path_(std::move(path)) {}
  text_file_source(const text_file_source& other) : path_(other.path_) {}
  ~text_file_source() override;
  void open(const runtime_context& ctx) override;
  void close() override;
  source_step run(collector<std::string>& out, size_t max_records) override;

private:
  bool fill();

  std::string path_;
  int fd_ = -1;
  uint64_t pos_ = 0;       // file offset of buf_[0]
  uint64_t end_ = 0;       // lines starting at or after end_ belong to the next range
  uint64_t file_size_ = 0;
  std::vector<char> buf_;
  size_t head_ = 0;        // next unread byte in buf_
  size_t tail_ = 0;        // bytes valid in buf_
  bool eof_ = false;
};

/// Reads '\n'-delimited text from a TCP socket (non-blocking: a step that
/// finds no data asks to be called again shortly). At-most-once: nothing is
/// replayed after a failure. Ends when the peer closes the connection.
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
