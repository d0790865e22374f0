#pragma once

#include "sluice/runtime/channel_state.hpp"
#include "sluice/runtime/checkpointing.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

/// Checkpoint storage on a filesystem directory, laid out as Flink lays it
/// out: <base>/<job id>/chk-N/ holds the state files the subtasks wrote for
/// checkpoint N and, once the checkpoint is complete, its `_metadata`.
/// Every file is written atomically (temp file, fsync, rename, fsync of the
/// directory), and `_metadata` last: a chk-N without it is incomplete and is
/// never restored from.
namespace sluice::runtime {

/// A checkpoint or savepoint that cannot be read: names the file and why.
class checkpoint_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The state files of one subtask of one operator (paths relative to the
/// checkpoint directory, so a checkpoint directory can be moved).
struct subtask_state_handle {
  int32_t subtask = 0;
  std::string keyed_state_file;    ///< "" = no keyed state
  std::string operator_state_file; ///< "" = no operator state
  uint64_t bytes = 0;
  /// In-flight batches of an unaligned checkpoint ("" = none); only on the
  /// first operator of a chain, for the whole subtask.
  std::string channel_state_file;
};

/// The state of one operator, matched by uid on restore.
struct operator_state_handle {
  std::string uid;
  int32_t parallelism = 1;
  int32_t max_parallelism = 128;
  std::vector<subtask_state_handle> subtasks;
};

/// What `_metadata` records about a completed checkpoint.
struct checkpoint_metadata {
  static constexpr int32_t current_version = 1;
  int32_t version = current_version;
  std::string job_id;
  int64_t checkpoint_id = 0;
  int64_t timestamp_ms = 0;
  bool savepoint = false;
  std::vector<operator_state_handle> operators;

  /// The metadata as the JSON document stored in `_metadata`.
  [[nodiscard]] std::string to_json() const;
  /// Parses and validates a `_metadata` document; `origin` names the file in
  /// errors.
  [[nodiscard]] static checkpoint_metadata from_json(std::string_view text,
                                                     const std::string& origin);
};

/// Checkpoints of one job under `base`/`job_id`. Used by one coordinator
/// (the JobMaster) at a time; subtasks may write their files concurrently.
/// Holds paths and settings only: a copy is cheap and may outlive the
/// original (the JobMaster's I/O workers take one).
class checkpoint_storage {
public:
  /// Keeps the `num_retained` newest completed checkpoints (at least 1).
  /// Does no I/O: the job directory is created by the first begin().
  checkpoint_storage(std::filesystem::path base, std::string job_id, int32_t num_retained = 1);

  /// The job's checkpoint directory.
  [[nodiscard]] const std::filesystem::path& job_dir() const noexcept { return dir_; }
  /// The directory of checkpoint `id` (chk-<id>).
  [[nodiscard]] std::filesystem::path checkpoint_dir(int64_t id) const;

  /// Creates the directory of a new checkpoint.
  std::filesystem::path begin(int64_t id);
  /// Writes file `name` of checkpoint `id` atomically; returns `name`.
  std::string write_file(int64_t id, const std::string& name, std::string_view bytes);
  /// Reads file `name` of checkpoint `id`.
  [[nodiscard]] std::string read_file(int64_t id, const std::string& name) const;

  /// Completes checkpoint `id`: finalize(), then deletes the oldest
  /// completed checkpoints beyond the retained number. Returns the ids
  /// deleted.
  std::vector<int64_t> complete(const checkpoint_metadata& md);
  /// Checks that the files `md` names exist and writes `_metadata` last and
  /// atomically; deletes nothing. For a coordinator that decides itself
  /// which checkpoints to keep: one whose completion it may still abort
  /// must not delete the checkpoint it would restore instead.
  void finalize(const checkpoint_metadata& md) const;
  /// Deletes checkpoint `id` (a failed or aborted one, or on cancel). A
  /// directory that is gone, or that another thread deletes meanwhile, is
  /// fine.
  void discard(int64_t id) const;
  /// Deletes every chk-N without `_metadata` (left by a crash or a failed
  /// checkpoint); returns how many.
  size_t cleanup_incomplete();

  /// Ids of completed checkpoints, oldest first.
  [[nodiscard]] std::vector<int64_t> completed() const;
  [[nodiscard]] std::optional<int64_t> latest_completed() const;
  /// The metadata of completed checkpoint `id`; checkpoint_error when it is
  /// missing, unreadable, of another version or inconsistent.
  [[nodiscard]] checkpoint_metadata read_metadata(int64_t id) const;

  /// Writes `bytes` to `path` atomically: a temp file beside it, fsync,
  /// rename over `path`, fsync of the directory.
  static void write_atomically(const std::filesystem::path& path, std::string_view bytes);

private:
  std::filesystem::path dir_;
  std::string job_id_;
  int32_t num_retained_;
};

/// A completed checkpoint or savepoint to restore from: its directory and
/// metadata.
struct restore_point {
  std::filesystem::path dir;
  checkpoint_metadata metadata;

  /// Reads `<dir>/_metadata`; checkpoint_error naming the file when it is
  /// missing, corrupt or of another version.
  [[nodiscard]] static restore_point read(const std::filesystem::path& dir);
  /// The operator with `uid`, or null.
  [[nodiscard]] const operator_state_handle* find(const std::string& uid) const;
};

/// Reads the state that falls to subtask `index` of `parallelism` of the
/// operator `op` from `rp`: the keyed snapshots of old subtasks whose key
/// groups overlap the new subtask's, and the operator state redistributed.
/// Throws checkpoint_error naming the operator and file (unreadable or
/// corrupt files, a changed max parallelism).
[[nodiscard]] operator_restore load_operator_restore(const restore_point& rp,
                                                     const operator_state_handle& op,
                                                     int32_t index, int32_t parallelism,
                                                     int32_t max_parallelism);

/// Reads the in-flight data an unaligned checkpoint captured for subtask
/// `index` (the chain's first operator `op` holds it); nullopt when there is
/// none. Channel state cannot be redistributed: checkpoint_error naming the
/// operator when any subtask of `op` has some and `parallelism` differs.
[[nodiscard]] std::optional<channel_state> load_channel_state(const restore_point& rp,
                                                              const operator_state_handle& op,
                                                              int32_t index, int32_t parallelism);

/// Checks that every operator with state in `rp` is among `uids` (the
/// operators of the job that restores it); otherwise throws checkpoint_error
/// naming the operator, unless `allow_non_restored_state`.
void check_state_mapping(const restore_point& rp, const std::vector<std::string>& uids,
                         bool allow_non_restored_state);

/// Deletes a savepoint directory after checking it is one (has a
/// `_metadata` that says savepoint); checkpoint_error otherwise.
void dispose_savepoint(const std::filesystem::path& dir);

} // namespace sluice::runtime
