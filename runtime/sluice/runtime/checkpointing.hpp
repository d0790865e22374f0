#pragma once

#include "sluice/state/native_snapshot.hpp"
#include "sluice/state/operator_state.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

/// What user functions and operators see of checkpoints: Flink's
/// CheckpointedFunction and CheckpointListener contracts, and the
/// checkpointing settings of a job.
namespace sluice::runtime {

/// Barrier alignment (execution.checkpointing.mode).
enum class checkpointing_mode { exactly_once, at_least_once };

/// What happens to retained checkpoints when the job is cancelled
/// (execution.checkpointing.externalized-checkpoint-retention).
enum class externalized_retention { none, delete_on_cancellation, retain_on_cancellation };

/// Checkpointing settings; Flink's defaults.
struct checkpoint_settings {
  /// Time between checkpoint triggers; 0 = checkpointing off.
  std::chrono::milliseconds interval{0};
  /// A checkpoint not complete after this long is aborted.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  /// Least time from the end of one checkpoint to the next trigger.
  std::chrono::milliseconds min_pause{0};
  int32_t max_concurrent = 1;
  /// Failed (expired, declined) checkpoints in a row tolerated before the
  /// job fails.
  int32_t tolerable_failed = 0;
  checkpointing_mode mode = checkpointing_mode::exactly_once;
  /// Barriers overtake in-flight batches, which are stored as channel state.
  bool unaligned = false;
  /// With `unaligned`: start aligned, switch to unaligned after this long
  /// (0 = unaligned from the start).
  std::chrono::milliseconds aligned_checkpoint_timeout{0};
  /// state.checkpoints.dir; empty = <temp dir>/sluice-checkpoints.
  std::string directory;
  /// state.checkpoints.num-retained.
  int32_t num_retained = 1;
  externalized_retention retention = externalized_retention::none;
  /// state.backend.incremental: RocksDB checkpoints are native snapshots
  /// that store only the SST files no retained checkpoint holds yet (the
  /// heap backend always writes full snapshots). On by default, unlike
  /// Flink: a full RocksDB snapshot is a scan of all state per checkpoint.
  /// Savepoints are always full, in the canonical format.
  bool incremental = true;

  [[nodiscard]] bool enabled() const noexcept { return interval.count() > 0; }
};

/// Throws std::invalid_argument naming the Flink key and the value of the
/// first setting out of range (negative durations, counts below their
/// minimum, a zero timeout).
void validate(const checkpoint_settings& s);

/// Where a job starts from (execution.savepoint.*).
struct restore_settings {
  /// A savepoint or retained checkpoint directory (holding `_metadata`);
  /// empty = start empty.
  std::string path;
  /// Skip state of operators the job no longer has, instead of failing.
  bool allow_non_restored_state = false;
};

/// What a checkpointed function learns when it is initialized.
class function_initialization_context {
public:
  function_initialization_context(state::operator_state_store& store, bool restored)
    : store_(store), restored_(restored) {}
  /// The operator state of the function's operator instance.
  [[nodiscard]] state::operator_state_store& operator_state() const noexcept { return store_; }
  /// True when the job started from a checkpoint or savepoint.
  [[nodiscard]] bool is_restored() const noexcept { return restored_; }

private:
  state::operator_state_store& store_;
  bool restored_;
};

/// A function with operator state of its own (Flink's CheckpointedFunction):
/// sources keep their positions, sinks their pending transactions.
class checkpointed_function {
public:
  virtual ~checkpointed_function() = default;
  /// Called once before open(): declare (and, if restored, read) operator
  /// state here.
  virtual void initialize_state(const function_initialization_context& ctx) = 0;
  /// A checkpoint's barrier reached the function: bring operator state up
  /// to date. Runs synchronously in the subtask, so keep it short.
  virtual void snapshot_state(int64_t checkpoint_id, int64_t timestamp_ms) = 0;
};

/// Told when checkpoints complete or are aborted (Flink's
/// CheckpointListener). Notifications are best effort and subsume: a
/// completed checkpoint n implies every earlier one is no longer pending.
class checkpoint_listener {
public:
  virtual ~checkpoint_listener() = default;
  virtual void notify_checkpoint_complete(int64_t checkpoint_id) = 0;
  virtual void notify_checkpoint_aborted(int64_t /*checkpoint_id*/) {}
};

/// The state one operator instance hands to a checkpoint.
struct operator_snapshot {
  std::string keyed;    ///< state/snapshot.hpp format; "" = no keyed state
  std::string operator_state; ///< operator_state_store format; "" = none
  /// Keyed state as a native RocksDB snapshot (instead of `keyed`), which
  /// the checkpoint writer stores incrementally.
  std::shared_ptr<state::native_snapshot> native_keyed;
};

/// The state one operator instance restores from: the parts that fall to
/// this subtask, already read and redistributed.
struct operator_restore {
  /// Keyed snapshots of the old subtasks whose key groups overlap ours.
  std::vector<std::string> keyed;
  /// Native RocksDB snapshots of the old subtasks whose key groups overlap
  /// ours, downloaded and checked.
  std::vector<std::shared_ptr<state::native_restore_source>> native_keyed;
  std::vector<state::operator_state_part> operator_state;
};

/// The checkpointed functions and listeners of one operator instance,
/// registered as the operator opens them.
struct checkpoint_hooks {
  bool restored = false;
  std::vector<checkpointed_function*> checkpointed;
  std::vector<checkpoint_listener*> listeners;
};

} // namespace sluice::runtime
