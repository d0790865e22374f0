#pragma once

#include "sluice/runtime/channel_state.hpp"
#include "sluice/runtime/checkpointing.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

/// Checkpoint storage on a filesystem directory, laid out as Flink lays it
/// out: <base>/<job id>/chk-N/ holds the state files the subtasks wrote for
/// checkpoint N and, once the checkpoint is complete, its `_metadata`;
/// <base>/<job id>/shared/c<N>/ holds the SST files of incremental RocksDB
/// snapshots that checkpoint N uploaded, which later checkpoints reference
/// too (counted by the shared_state_registry).
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
  /// "" = no keyed state. With `native_files`, the native snapshot's meta
  /// (states' descriptions and timers).
  std::string keyed_state_file;
  std::string operator_state_file; ///< "" = no operator state
  /// Bytes this checkpoint wrote for the subtask (for incremental
  /// snapshots: the new files only).
  uint64_t bytes = 0;
  /// Keyed state as a native RocksDB snapshot: its files, shared ones
  /// relative to the job directory, private ones in chk-N.
  std::vector<state::native_file_ref> native_files;
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
  /// 2 added native (incremental) keyed state; version 1 is still read.
  static constexpr int32_t current_version = 2;
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

/// Reference counts of the shared files (incremental RocksDB snapshots'
/// SST files) of a job's retained checkpoints: a shared file is deleted
/// only when no retained checkpoint references it. Not thread-safe (the
/// checkpoint storage guards it).
class shared_state_registry {
public:
  /// Adds one reference per shared file completed checkpoint `md` lists.
  void register_checkpoint(const checkpoint_metadata& md);
  /// Drops the references of checkpoint `id` (subsumed or discarded).
  void unregister_checkpoint(int64_t id);
  /// Forgets the files no checkpoint references any more and returns them
  /// (paths relative to the job directory) for deletion.
  [[nodiscard]] std::vector<std::string> collect();
  /// Whether `path` is referenced by a registered checkpoint.
  [[nodiscard]] bool known(const std::string& path) const { return refs_.count(path) != 0; }
  /// How many registered checkpoints reference `path`.
  [[nodiscard]] int32_t references(const std::string& path) const;
  /// Whether checkpoint `id` is registered.
  [[nodiscard]] bool registered(int64_t id) const { return by_checkpoint_.count(id) != 0; }

private:
  std::map<std::string, int32_t> refs_;
  std::map<int64_t, std::vector<std::string>> by_checkpoint_;
};

/// Checkpoints of one job under `base`/`job_id`. Used by one coordinator
/// (the JobMaster) at a time, from several workers at once (finalize,
/// discard and the deletion of orphans serialize on a mutex); subtasks may
/// write their files concurrently. Not copyable: it holds the reference
/// counts of the shared files, so the coordinator and its I/O workers (which
/// may outlive it) share one instance through a shared_ptr.
///
/// Retention is the coordinator's: finalize() deletes nothing, and the
/// coordinator discard()s a checkpoint once it no longer retains it (after
/// counting a newer one complete) or aborts it. The storage does the
/// bookkeeping of shared files: finalize() counts a checkpoint's
/// references, discard() drops them and deletes the shared files no
/// checkpoint on disk references any more.
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

  /// Checks the files `md` names (shared ones with their sizes), writes
  /// `_metadata` last and atomically, and counts the shared files it
  /// references; deletes nothing. The coordinator decides which checkpoints
  /// to keep: one whose completion it may still abort must not delete the
  /// checkpoint it would restore instead.
  void finalize(const checkpoint_metadata& md);
  /// Deletes checkpoint `id` (aborted, failed or no longer retained): drops
  /// its references, deletes chk-<id>, the shared files no other checkpoint
  /// on disk references, and what it left in shared/c<id>. A directory that
  /// is gone, or that another thread deletes meanwhile, is fine.
  void discard(int64_t id);
  /// Deletes, for K below `below` and not in `in_flight`, every chk-K
  /// without `_metadata` and the files in shared/c<K> that no completed
  /// checkpoint references: what writers of checkpoints that never
  /// completed left after their discard.
  void delete_orphans(int64_t below, const std::vector<int64_t>& in_flight = {});
  /// For a coordinator that completes checkpoints one at a time and never
  /// aborts one after this (tests, tools): finalize(), then discard() of
  /// the oldest completed checkpoints beyond the retained number, then
  /// delete_orphans() below `md`'s id except `in_flight`. Returns the ids
  /// deleted.
  std::vector<int64_t> complete(const checkpoint_metadata& md,
                                const std::vector<int64_t>& in_flight = {});
  /// Deletes every chk-N without `_metadata` (left by a crash or a failed
  /// checkpoint) and shared files no completed checkpoint references;
  /// returns how many checkpoints. Only while no checkpoint is in flight.
  size_t cleanup_incomplete();
  /// Reference counts of the retained checkpoints' shared files (read
  /// from their metadata on first use). For tests and statistics.
  [[nodiscard]] int32_t shared_references(const std::string& path);

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
  /// Rebuilds the registry from the completed checkpoints' metadata, once.
  void load_registry();
  /// Deletes the files the registry gave up and the unreferenced files in
  /// shared/c<K> for K below `below`, not in `skip` (and K == `only` if
  /// given); removes emptied dirs.
  void delete_unreferenced(int64_t below, const std::vector<int64_t>& skip,
                           std::optional<int64_t> only = std::nullopt);
  /// Deletes chk-<id> (gone already is fine).
  void remove_checkpoint_dir(int64_t id);

  std::filesystem::path dir_;
  std::string job_id_;
  int32_t num_retained_;
  std::mutex mu_;
  bool registry_loaded_ = false;
  shared_state_registry registry_;
};

/// What one operator instance's snapshot became in checkpoint storage.
struct written_operator_snapshot {
  std::string keyed_state_file;    ///< "" = none
  std::string operator_state_file; ///< "" = none
  uint64_t bytes = 0;              ///< written by this checkpoint
  std::vector<state::native_file_ref> native_files;
};

/// Writes one operator instance's snapshot for checkpoint `checkpoint_id`
/// into `chk_dir` (files named `<base>.keyed`, `<base>.op`, and for a
/// native snapshot `<base>.<RocksDB file>`), copying SST files of a native
/// snapshot that no completed checkpoint stored into
/// `chk_dir`/../shared/c<id>/. Blocking: call it from a worker. Throws
/// checkpoint_error naming the file.
[[nodiscard]] written_operator_snapshot write_operator_snapshot(const std::filesystem::path& chk_dir,
                                                                int64_t checkpoint_id,
                                                                const std::string& base,
                                                                operator_snapshot& snap);

/// A completed checkpoint or savepoint to restore from: its directory and
/// metadata.
struct restore_point {
  std::filesystem::path dir;
  checkpoint_metadata metadata;
  /// A checkpoint of the restoring job itself (a failover), whose shared
  /// files that job's coordinator counts: restored RocksDB instances may
  /// reference them in later checkpoints instead of copying them again.
  bool owns_shared_files = false;

  /// Reads `<dir>/_metadata`; checkpoint_error naming the file when it is
  /// missing, corrupt or of another version.
  [[nodiscard]] static restore_point read(const std::filesystem::path& dir);
  /// The operator with `uid`, or null.
  [[nodiscard]] const operator_state_handle* find(const std::string& uid) const;
};

/// Reads the state that falls to subtask `index` of `parallelism` of the
/// operator `op` from `rp`: the keyed snapshots of old subtasks whose key
/// groups overlap the new subtask's, and the operator state redistributed.
/// Native snapshots are downloaded into new directories under
/// `staging_root` ("" = the system temp dir; put it on the RocksDB local
/// dir's filesystem, so the files move into the instance without a copy),
/// each file checked against its size and CRC. Throws checkpoint_error
/// naming the operator and file (missing, unreadable or corrupt files, a
/// changed max parallelism).
[[nodiscard]] operator_restore load_operator_restore(const restore_point& rp,
                                                     const operator_state_handle& op,
                                                     int32_t index, int32_t parallelism,
                                                     int32_t max_parallelism,
                                                     const std::string& staging_root = {});

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
