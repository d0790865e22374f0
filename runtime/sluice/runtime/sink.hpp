#pragma once

#include "sluice/runtime/format.hpp"
#include "sluice/runtime/function.hpp"
#include "sluice/runtime/operators.hpp"

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sluice::runtime {

/// A user sink: receives every record of its subtask. One copy runs per
/// parallel subtask.
template <class T>
class sink_function : public rich_function {
public:
  virtual void invoke(T&& value) = 0;
  /// Called after each batch of input; a place to flush buffered writes.
  virtual void end_of_batch() {}
  /// All input has ended.
  virtual void finish() {}
};

/// Runs a sink_function (copied per subtask) at the end of a chain.
template <class T, class S>
class sink_operator final : public stream_operator, public collector<T> {
public:
  sink_operator(std::string name, S sink) : stream_operator(std::move(name)), sink_(std::move(sink)) {}
  using collector<T>::collect;
  any_collector* input() override { return this; }
  void open(const runtime_context& ctx) override {
    call_user([&] { internal::open_if_rich(sink_, ctx); });
  }
  void collect(T&& value) override { call_user([&] { sink_.invoke(std::move(value)); }); }
  void end_of_batch() override { call_user([&] { sink_.end_of_batch(); }); }
  void finish() override { call_user([&] { sink_.finish(); }); }
  void close() override { sink_.close(); }

private:
  S sink_;
};

/// Writes records to a FILE* as lines, prefixed with "N> " (subtask index
/// + 1) when the sink runs with parallelism > 1, as Flink's print() does.
/// Lines of one batch are written with one call, so lines of different
/// subtasks never interleave.
template <class T>
class print_sink final : public sink_function<T> {
public:
  explicit print_sink(bool to_stderr = false) : to_stderr_(to_stderr) {}
  void open(const runtime_context& ctx) override {
    if (ctx.parallelism() > 1)
      prefix_ = std::to_string(ctx.subtask_index() + 1) + "> ";
  }
  void invoke(T&& value) override {
    buf_ += prefix_;
    append_display(buf_, value);
    buf_ += '\n';
  }
  void end_of_batch() override { flush(); }
  void finish() override { flush(); }
  void close() override { flush(); }

private:
  void flush() {
    if (buf_.empty())
      return;
    auto* f = to_stderr_ ? stderr : stdout;
    std::fwrite(buf_.data(), 1, buf_.size(), f);
    std::fflush(f);
    buf_.clear();
  }
  bool to_stderr_;
  std::string prefix_;
  std::string buf_;
};

/// Writes records as text lines. At parallelism 1 `path` is the file; above,
/// `path` is a directory holding one file per subtask named 1..p (as Flink's
/// writeAsText does).
template <class T>
class text_file_sink final : public sink_function<T> {
public:
  explicit text_file_sink(std::string path) : path_(std::move(path)) {}
  text_file_sink(const text_file_sink& o) : path_(o.path_) {}
  ~text_file_sink() override { close(); }
  void open(const runtime_context& ctx) override;
  void invoke(T&& value) override {
    append_display(buf_, value);
    buf_ += '\n';
    if (buf_.size() >= 64 * 1024)
      flush();
  }
  void end_of_batch() override {
    if (buf_.size() >= 4096)
      flush();
  }
  void finish() override { flush(); }
  void close() override {
    if (file_ != nullptr) {
      flush();
      std::fclose(file_);
      file_ = nullptr;
    }
  }

private:
  void flush();
  std::string path_;
  std::string buf_;
  std::FILE* file_ = nullptr;
};

namespace internal {
/// Opens the output file of one text sink subtask (see text_file_sink).
std::FILE* open_text_sink_file(const std::string& path, const runtime_context& ctx);
void write_text_sink(std::FILE* f, const std::string& path, const std::string& data);
} // namespace internal

template <class T>
void text_file_sink<T>::open(const runtime_context& ctx) {
  file_ = internal::open_text_sink_file(path_, ctx);
}

template <class T>
void text_file_sink<T>::flush() {
  if (file_ != nullptr && !buf_.empty())
    internal::write_text_sink(file_, path_, buf_);
  buf_.clear();
}

/// Records gathered by a collecting sink, readable after (or while) the job
/// runs. Shared by all subtasks of the sink; thread-safe.
template <class T>
class collected {
public:
  /// A copy of everything collected so far, in arrival order per subtask.
  std::vector<T> values() const {
    std::lock_guard<std::mutex> guard(mtx_);
    return values_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> guard(mtx_);
    return values_.size();
  }
  void append(std::vector<T>& batch) {
    std::lock_guard<std::mutex> guard(mtx_);
    for (auto& v : batch)
      values_.push_back(std::move(v));
    batch.clear();
  }

private:
  mutable std::mutex mtx_;
  std::vector<T> values_;
};

/// Sink that gathers records into a `collected<T>`, for tests.
template <class T>
class collect_sink final : public sink_function<T> {
public:
  explicit collect_sink(std::shared_ptr<collected<T>> target) : target_(std::move(target)) {}
  collect_sink(const collect_sink& o) : target_(o.target_) {}
  void invoke(T&& value) override { local_.push_back(std::move(value)); }
  void end_of_batch() override { target_->append(local_); }
  void finish() override { target_->append(local_); }

private:
  std::shared_ptr<collected<T>> target_;
  std::vector<T> local_;
};

/// Sink that drops every record (benchmarks).
template <class T>
class discarding_sink final : public sink_function<T> {
public:
  void invoke(T&&) override {}
};

} // namespace sluice::runtime
