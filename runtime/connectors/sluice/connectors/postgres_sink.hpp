#pragma once

#include "sluice/runtime/two_phase_commit_sink.hpp"
#include "sluice/state/serializer.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

/// An exactly-once PostgreSQL sink: rows go into a database transaction that
/// is prepared (PREPARE TRANSACTION) on each checkpoint and committed
/// (COMMIT PREPARED) when the checkpoint completes.
namespace sluice::connectors {

/// One row's statement parameters in PostgreSQL text format, in column
/// order; std::nullopt is SQL NULL.
using postgres_row = std::vector<std::optional<std::string>>;

/// What a postgres_sink writes to and how.
struct postgres_sink_options {
  /// libpq connection string ("host=... port=... dbname=... user=...") or
  /// URI. Add connect_timeout=N to bound connection attempts.
  std::string connection;
  /// Target table as SQL ("events", "public.events"); not quoted.
  std::string table;
  /// Target columns as SQL, in the order of the values of a postgres_row.
  std::vector<std::string> columns;
  /// Optional SQL after the VALUES list, e.g. "ON CONFLICT (id) DO NOTHING".
  std::string on_conflict;
  /// Names this sink in transaction ids; unique per job and sink, so that
  /// recovery only touches this sink's prepared transactions.
  /// Letters, digits and '_' only.
  std::string sink_id;
  /// First part of every transaction id; letters, digits and '_' only.
  std::string gid_prefix = "sluice";
  /// Rows per multi-row INSERT (capped so a statement has at most 65535
  /// parameters).
  size_t batch_size = 1000;
};

/// The handle of one sink transaction, kept in checkpoints.
struct pg_transaction {
  /// Global transaction id: "<prefix>-<sink id>-<subtask>-<counter>-<random>".
  std::string gid;
  /// txid_current() of the database transaction; lets a commit that finds
  /// the gid gone tell "committed before" from "rolled back".
  int64_t xid = 0;
  /// True once PREPARE TRANSACTION ran. A transaction without rows is
  /// rolled back at pre-commit instead and its commit does nothing.
  bool prepared = false;
  SLUICE_SERIALIZABLE(gid, xid, prepared)
};

/// A database error or an unreachable server; says which sink and which
/// server (host, port, database, user; never the password).
class postgres_sink_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

namespace internal {

/// The database side of one postgres_sink subtask: a control connection for
/// COMMIT/ROLLBACK PREPARED, one connection per open transaction (a
/// connection holds one transaction; after PREPARE it goes back to a small
/// pool), row buffers and the set of prepared gids not yet committed.
/// Owned by one subtask and used on its thread only.
class postgres_session {
public:
  /// Connects the control connection and checks that the server allows
  /// prepared transactions. Throws postgres_sink_error.
  postgres_session(postgres_sink_options options, int32_t subtask, int32_t parallelism);
  ~postgres_session();
  postgres_session(const postgres_session&) = delete;
  postgres_session& operator=(const postgres_session&) = delete;

  /// BEGIN on a connection of its own.
  [[nodiscard]] pg_transaction begin();
  /// Buffers a row of `txn`; writes a multi-row INSERT when the buffer holds
  /// batch_size rows.
  void add_row(const pg_transaction& txn, postgres_row row);
  /// Writes buffered rows and runs PREPARE TRANSACTION (or ROLLBACK for an
  /// empty transaction); frees the connection.
  void prepare(pg_transaction& txn);
  /// COMMIT PREPARED; if the gid is no longer prepared, accepts it only if
  /// the transaction committed (see postgres_sink_options and README).
  void commit(const pg_transaction& txn);
  /// ROLLBACK of an open transaction, ROLLBACK PREPARED of a prepared one;
  /// a transaction that no longer exists is fine.
  void abort(const pg_transaction& txn);
  /// Rolls back prepared transactions of this sink that this subtask owns
  /// and that are not in `known` (the gids of the restored checkpoint, from
  /// all subtasks). Returns the gids rolled back.
  std::vector<std::string> abort_orphans(const std::set<std::string>& known);
  /// Prepared and not yet committed or aborted.
  [[nodiscard]] const std::set<std::string>& prepared_gids() const noexcept;

  /// The subtask index in a gid of this sink, or -1 if `gid` is not one.
  [[nodiscard]] static int64_t owner_of(const std::string& gid, const std::string& prefix);
  /// "host=... port=... dbname=... user=..." of a connection string.
  [[nodiscard]] static std::string describe_target(const std::string& connection);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace internal

/// Writes records of type T to a PostgreSQL table exactly once, with
/// two-phase commit tied to checkpoints (see two_phase_commit_sink).
/// `to_row` turns a record into the text values of `options.columns`.
///
/// Needs max_prepared_transactions > 0 on the server. Each subtask holds a
/// control connection and one per open transaction (usually two in all).
/// Copies (one per subtask) share nothing: connections open in open_sink.
template <class T>
class postgres_sink final : public runtime::two_phase_commit_sink<T, pg_transaction> {
public:
  using row_function = std::function<postgres_row(const T&)>;

  postgres_sink(postgres_sink_options options, row_function to_row)
      : options_(std::move(options))
      , to_row_(std::move(to_row)) {
    if (!to_row_)
      throw std::invalid_argument("postgres_sink needs a function from a record to its row");
  }
  postgres_sink(const postgres_sink& other)
      : runtime::two_phase_commit_sink<T, pg_transaction>(other)
      , options_(other.options_)
      , to_row_(other.to_row_) {}
  postgres_sink& operator=(const postgres_sink&) = delete;

  /// Gids of prepared transactions this sink instance rolled back as
  /// orphans when it opened.
  [[nodiscard]] const std::vector<std::string>& rolled_back_orphans() const noexcept {
    return orphans_;
  }

  void open_sink(const runtime::runtime_context& ctx) override {
    session_ = std::make_unique<internal::postgres_session>(options_, ctx.subtask_index(),
                                                            ctx.parallelism());
    // Every subtask gets the prepared gids of all old subtasks (union
    // state), so it rolls back only what no restored checkpoint knows and
    // never a transaction another subtask is about to commit.
    known_ =
        &ctx.operator_state().template union_list_state<std::string>("postgres-sink-prepared-gids");
    const auto& restored = known_->get();
    orphans_ = session_->abort_orphans(std::set<std::string>(restored.begin(), restored.end()));
    publish();
  }
  void close_sink() override { session_.reset(); }

  pg_transaction begin_transaction() override { return session_->begin(); }
  void write(pg_transaction& txn, T&& value) override { session_->add_row(txn, to_row_(value)); }
  void pre_commit(pg_transaction& txn) override {
    session_->prepare(txn);
    publish();
  }
  void commit(pg_transaction& txn) override {
    session_->commit(txn);
    publish();
  }
  void abort(pg_transaction& txn) override {
    session_->abort(txn);
    publish();
  }

private:
  /// Keeps the union state equal to this subtask's prepared gids, so the
  /// next snapshot holds them.
  void publish() {
    const auto& gids = session_->prepared_gids();
    known_->update(std::vector<std::string>(gids.begin(), gids.end()));
  }

  postgres_sink_options options_;
  row_function to_row_;
  std::unique_ptr<internal::postgres_session> session_;
  state::operator_list_state<std::string>* known_ = nullptr;
  std::vector<std::string> orphans_;
};

} // namespace sluice::connectors
