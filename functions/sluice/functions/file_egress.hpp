#pragma once

#include "sluice/functions/envelope.hpp"
#include "sluice/runtime/two_phase_commit_sink.hpp"
#include "sluice/state/serializer.hpp"

#include <cstdint>
#include <string>

/// Egress sinks that append one line per egress record to one file: the
/// file egress of simple deployments and the dead-letter egress.
namespace sluice::functions {

/// How a file egress writes a record.
enum class egress_line_format : uint8_t {
  /// The text of an `io.statefun.types/string` value, else the value's
  /// bytes as they are (a newline inside them is written too).
  raw,
  /// `{"typename":...,"value":...}`: strings as text, the numeric and
  /// boolean built-ins as JSON numbers and booleans, anything else as
  /// `"value_base64"`.
  json,
  /// A dead letter as `{"target":...,"caller":...,"typename":...,
  /// "value":...,"reason":...}` (value as in `json`); a record that is not
  /// a dead letter is written as in `json`.
  dead_letter,
};

/// The line (newline included) a file egress writes for `payload`.
[[nodiscard]] std::string egress_line(const typed_value& payload, egress_line_format format);

/// `bytes` in standard base64 with padding.
[[nodiscard]] std::string base64_encode(std::string_view bytes);

/// Where and how a file egress writes.
struct file_egress_options {
  /// The file lines are appended to; created if missing (its directory must
  /// exist).
  std::string path;
  egress_line_format format = egress_line_format::raw;
};

/// The lines one checkpoint interval of a file egress wrote: a hidden
/// staging file beside the target (the transaction handle, kept in
/// checkpoints).
struct file_egress_transaction {
  std::string path;
  /// The sink instance (random per run) and the transaction's number in it.
  std::string uid;
  uint64_t number = 0;

  /// `<dir>/.<name>.<uid>-<number>.staged`.
  [[nodiscard]] std::string staging_path() const;

  static constexpr const char* sluice_type_name = "functions.file_egress_transaction";
  SLUICE_SERIALIZABLE(path, uid, number)
};

/// An egress sink appending a line per record to one file; run it at
/// parallelism 1 (one writer per file). With checkpointing it is
/// exactly-once (a two_phase_commit_sink): a checkpoint interval's lines go
/// to a hidden staging file, made durable on the barrier and appended to
/// the target when the checkpoint completes, so the file shows only lines
/// of completed checkpoints and never twice. An append records the
/// target's size first (the staging file is renamed to `...staged@<size>`),
/// so a commit repeated after a failure cuts the target back to that size
/// before it appends again. Without checkpointing each batch of lines is
/// appended at once (at-most-once across a restart).
///
/// One copy per subtask, on the subtask's thread.
class file_egress_sink final
    : public runtime::two_phase_commit_sink<envelope, file_egress_transaction> {
public:
  explicit file_egress_sink(file_egress_options options)
      : options_(std::move(options)) {}
  /// Copies the options only (a sink is copied per subtask before open).
  file_egress_sink(const file_egress_sink& o)
      : runtime::two_phase_commit_sink<envelope, file_egress_transaction>()
      , options_(o.options_) {}
  file_egress_sink& operator=(const file_egress_sink&) = delete;
  ~file_egress_sink() override;

  void open_sink(const runtime::runtime_context& ctx) override;
  file_egress_transaction begin_transaction() override;
  void write(file_egress_transaction& txn, envelope&& e) override;
  void flush(file_egress_transaction& txn) override;
  void pre_commit(file_egress_transaction& txn) override;
  void commit(file_egress_transaction& txn) override;
  void abort(file_egress_transaction& txn) override;
  void recover_and_abort(file_egress_transaction& txn) override;
  void close_sink() override;

private:
  /// Writes the buffered lines to the staging file of `txn` (or, without
  /// checkpointing, to the target).
  void write_out(const file_egress_transaction& txn);
  void close_staging();

  file_egress_options options_;
  bool checkpointing_ = false;
  std::string uid_;
  uint64_t next_number_ = 0;
  std::string buffer_;
  int staging_fd_ = -1;
  uint64_t staging_number_ = 0;
};

} // namespace sluice::functions
