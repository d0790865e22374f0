#pragma once

#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/sink.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace sluice::runtime {

/// The base of exactly-once sinks (Flink's TwoPhaseCommitSinkFunction).
/// Records go into the current transaction; on a checkpoint barrier it is
/// pre-committed (made durable, not visible) and a new one begins; when the
/// checkpoint completes, every transaction pre-committed for it or earlier
/// is committed. After a failure the sink restores from the last completed
/// checkpoint: the transactions pre-committed in it are committed again
/// (commit must be idempotent) and the transaction that was open then is
/// aborted, so its records, which the sources replay, are not written twice.
///
/// `Txn` is the transaction handle (a file name, a database transaction id)
/// and needs a state::serializer (see SLUICE_SERIALIZABLE).
///
/// Without checkpointing the sink commits its transaction at the end of the
/// input, so bounded jobs still produce output (without exactly-once).
template <class T, class Txn>
class two_phase_commit_sink : public sink_function<T>,
                              public checkpointed_function,
                              public checkpoint_listener {
public:
  // ---- what a transactional sink implements ----
  /// Starts a transaction.
  virtual Txn begin_transaction() = 0;
  /// Writes `value` in `txn`.
  virtual void write(Txn& txn, T&& value) = 0;
  /// Makes `txn` durable so that commit cannot fail for lack of data; no
  /// more records go into it.
  virtual void pre_commit(Txn& txn) = 0;
  /// Makes a pre-committed `txn` visible. Must be idempotent: it may run
  /// again for a transaction committed before a failure.
  virtual void commit(Txn& txn) = 0;
  /// Discards `txn` (pre-committed or not).
  virtual void abort(Txn& txn) = 0;
  /// After a restore: commits a transaction pre-committed in the restored
  /// checkpoint (it may be committed already).
  virtual void recover_and_commit(Txn& txn) { commit(txn); }
  /// After a restore: discards the transaction that was open at the
  /// restored checkpoint (it may not exist anymore).
  virtual void recover_and_abort(Txn& txn) { abort(txn); }
  /// Opens connections and the like, before recovery.
  virtual void open_sink(const runtime_context& /*ctx*/) {}
  /// Closes what open_sink opened, after the current transaction is
  /// aborted.
  virtual void close_sink() {}
  /// After each input batch (a place to flush buffers of `txn`).
  virtual void flush(Txn& /*txn*/) {}

  // ---- the protocol (final) ----
  void initialize_state(const function_initialization_context& ctx) final {
    pending_state_ = &ctx.operator_state().template list_state<std::pair<int64_t, Txn>>(
      "two-phase-commit-pending");
    current_state_ = &ctx.operator_state().template list_state<Txn>("two-phase-commit-current");
    restored_ = ctx.is_restored();
  }

  void open(const runtime_context& ctx) final {
    checkpointing_ = ctx.checkpointing_enabled();
    open_sink(ctx);
    if (restored_) {
      // Pre-committed in the restored checkpoint: commit (again), in order.
      auto pending = pending_state_->get();
      std::stable_sort(pending.begin(), pending.end(),
                       [](auto& a, auto& b) { return a.first < b.first; });
      for (auto& [id, txn] : pending)
        recover_and_commit(txn);
      for (auto txn : current_state_->get())
        recover_and_abort(txn);
      pending_state_->clear();
      current_state_->clear();
    }
    current_ = begin_transaction();
  }

  void invoke(T&& value) final { write(*current_, std::move(value)); }
  void end_of_batch() final {
    if (current_)
      flush(*current_);
  }

  void snapshot_state(int64_t checkpoint_id, int64_t /*timestamp_ms*/) final {
    pre_commit(*current_);
    pending_.emplace_back(checkpoint_id, std::move(*current_));
    current_ = begin_transaction();
    std::vector<std::pair<int64_t, Txn>> all(pending_.begin(), pending_.end());
    pending_state_->update(std::move(all));
    current_state_->update({*current_});
  }

  void notify_checkpoint_complete(int64_t checkpoint_id) final {
    // Subsuming: everything pre-committed for this checkpoint or an
    // earlier one is now safe to commit.
    while (!pending_.empty() && pending_.front().first <= checkpoint_id) {
      commit(pending_.front().second);
      pending_.erase(pending_.begin());
    }
  }

  void finish() final {
    // Without checkpoints nothing would ever commit: end of input commits.
    if (!checkpointing_ && current_) {
      pre_commit(*current_);
      commit(*current_);
      current_ = begin_transaction();
    }
  }

  void close() final {
    if (current_) {
      abort(*current_);
      current_.reset();
    }
    close_sink();
  }

  /// Transactions pre-committed and waiting for their checkpoint.
  [[nodiscard]] size_t pending_transactions() const noexcept { return pending_.size(); }

private:
  std::optional<Txn> current_;
  std::vector<std::pair<int64_t, Txn>> pending_;
  state::operator_list_state<std::pair<int64_t, Txn>>* pending_state_ = nullptr;
  state::operator_list_state<Txn>* current_state_ = nullptr;
  bool restored_ = false;
  bool checkpointing_ = false;
};

} // namespace sluice::runtime
