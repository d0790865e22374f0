#pragma once

#include "sluice/runtime/format.hpp"
#include "sluice/runtime/two_phase_commit_sink.hpp"
#include "sluice/state/serializer.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// An exactly-once sink writing text lines into part files of a directory,
/// like Flink's FileSink in row format.
namespace sluice::runtime {

/// Where and how a file sink writes, and when it rolls to a new part file
/// (Flink's OutputFileConfig and DefaultRollingPolicy, with their defaults).
/// A checkpoint always closes the current part.
struct file_sink_options {
  /// The output directory; created if missing.
  std::string directory;
  /// A part that reached this many bytes is closed before the next record.
  uint64_t max_part_bytes = 128 * 1024 * 1024;
  /// A part open this long is closed (0 = never).
  std::chrono::milliseconds rollover_interval{std::chrono::seconds(60)};
  /// A part not written to for this long is closed (0 = never).
  std::chrono::milliseconds inactivity_interval{std::chrono::seconds(60)};
  /// Finished parts are named `<prefix>-<subtask>-<counter>-<uid><suffix>`.
  std::string part_prefix = "part";
  std::string part_suffix;
};

/// The part files one file sink transaction wrote (the transaction handle of
/// file_sink, kept in checkpoints). Names are derived: finished
/// `<prefix>-<subtask>-<counter>-<uid><suffix>`, in progress the same with
/// a leading '.' and ".inprogress" appended, pending with ".pending".
struct file_sink_transaction {
  std::string directory;
  std::string prefix;
  std::string suffix;
  /// The sink instance that wrote the parts: random per run, so a restarted
  /// attempt never reuses a name of an earlier one.
  std::string uid;
  int32_t subtask = 0;
  /// Every part of this transaction has a counter at or above this one, and
  /// every later transaction of the same instance only higher ones.
  uint64_t first_counter = 0;
  /// The counters of the parts, in the order they were written.
  std::vector<uint64_t> parts;

  static constexpr const char* sluice_type_name = "sluice.file_sink_transaction";
  SLUICE_SERIALIZABLE(directory, prefix, suffix, uid, subtask, first_counter, parts)

  /// File name (no directory) of part `counter` when finished.
  [[nodiscard]] std::string finished_name(uint64_t counter) const;
  [[nodiscard]] std::string in_progress_name(uint64_t counter) const;
  [[nodiscard]] std::string pending_name(uint64_t counter) const;
};

namespace internal {
/// The record-type independent part of file_sink: part files, rolling and
/// the transaction steps. Owned by one sink subtask, used by its thread.
class file_sink_writer {
public:
  explicit file_sink_writer(file_sink_options options) : options_(std::move(options)) {}
  file_sink_writer(const file_sink_writer&) = delete;
  file_sink_writer& operator=(const file_sink_writer&) = delete;
  ~file_sink_writer() { close(); }
  [[nodiscard]] const file_sink_options& options() const noexcept { return options_; }
  /// Creates the directory and picks this instance's uid.
  void open(const runtime_context& ctx);
  [[nodiscard]] file_sink_transaction begin() const;
  /// Rolls the current part if the policy says so; opens one if none is.
  void before_record(file_sink_transaction& txn);
  /// Where the caller appends one record's line.
  std::string& buffer() noexcept { return buf_; }
  /// The caller appended `bytes` to buffer().
  void after_record(size_t bytes);
  /// Writes buffered lines out; rolls a part that is open too long.
  void flush(file_sink_transaction& txn);
  void pre_commit(file_sink_transaction& txn);
  void commit(const file_sink_transaction& txn) const;
  void abort(const file_sink_transaction& txn);
  /// abort(), plus every in-progress or pending part the same instance
  /// wrote from `txn` on (after the checkpoint that recorded `txn`).
  void recover_and_abort(const file_sink_transaction& txn);
  /// Closes the current part without making it durable.
  void close() noexcept;

private:
  [[nodiscard]] int64_t now_ms() const;
  /// The part is open longer than the rollover or idle longer than the
  /// inactivity interval.
  [[nodiscard]] bool roll_on_time(int64_t now) const;
  void open_part(file_sink_transaction& txn, int64_t now);
  /// Writes out the buffer, fsyncs and closes the current part.
  void close_part();
  void write_out();

  file_sink_options options_;
  processing_time_service* time_ = nullptr; // null: the wall clock
  std::string uid_;
  int32_t subtask_ = 0;
  uint64_t next_counter_ = 0;
  int fd_ = -1;           // the current part, in progress; -1 = none
  std::string open_path_; // its file
  uint64_t open_counter_ = 0;
  uint64_t part_bytes_ = 0; // written and buffered
  int64_t part_opened_ms_ = 0;
  int64_t last_write_ms_ = 0;
  std::string buf_;
};
} // namespace internal

/// An exactly-once sink (two_phase_commit_sink) that writes each record as
/// a line (append_display) into part files of `options.directory`, like
/// Flink's FileSink in row format. Parts are written hidden, as
/// `.<name>.inprogress`; a checkpoint barrier closes the current part and
/// renames every part of the transaction to `.<name>.pending` (data and
/// directory fsynced); when the checkpoint completes they are renamed to
/// `<name>`, so readers only ever see finished parts. Parts also roll by
/// size and time within a checkpoint interval (several pending parts in one
/// transaction). Without checkpointing, the end of the input commits.
///
/// After a restore, pending parts of the restored checkpoint are committed
/// (again: a part already finished is fine; a part neither pending nor
/// finished is lost data and throws, naming it), and the in-progress and
/// pending parts the failed attempt wrote after the checkpoint are deleted.
/// Hidden parts of attempts that failed before their first checkpoint are
/// left in place, as Flink does: no restored transaction names them, and
/// subtask indexes change with parallelism, so a subtask cannot tell them
/// from files of another live subtask. They never become visible.
///
/// One copy per subtask, on the subtask's thread.
template <class T>
class file_sink final : public two_phase_commit_sink<T, file_sink_transaction> {
public:
  explicit file_sink(file_sink_options options) : writer_(std::move(options)) {}
  /// Copies the options only (a sink is copied per subtask before open).
  file_sink(const file_sink& o)
    : two_phase_commit_sink<T, file_sink_transaction>(), writer_(o.writer_.options()) {}

  void open_sink(const runtime_context& ctx) override { writer_.open(ctx); }
  file_sink_transaction begin_transaction() override { return writer_.begin(); }
  void write(file_sink_transaction& txn, T&& value) override {
    writer_.before_record(txn);
    auto& buf = writer_.buffer();
    auto size = buf.size();
    append_display(buf, value);
    buf += '\n';
    writer_.after_record(buf.size() - size);
  }
  void flush(file_sink_transaction& txn) override { writer_.flush(txn); }
  void pre_commit(file_sink_transaction& txn) override { writer_.pre_commit(txn); }
  void commit(file_sink_transaction& txn) override { writer_.commit(txn); }
  void abort(file_sink_transaction& txn) override { writer_.abort(txn); }
  void recover_and_abort(file_sink_transaction& txn) override { writer_.recover_and_abort(txn); }
  void close_sink() override { writer_.close(); }

private:
  internal::file_sink_writer writer_;
};

} // namespace sluice::runtime
