#pragma once

#include "sluice/state/key_group.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

/// Native (incremental) snapshots of the RocksDB backend: the synchronous
/// part of a checkpoint flushes the memtables and hard-links the instance's
/// files into a local directory (a RocksDB checkpoint: no data is copied);
/// a writer off the subtask's thread then copies to checkpoint storage only
/// the SST files that no completed checkpoint holds yet (Flink's
/// incremental RocksDB checkpoints). SST files are immutable, so one stored
/// copy serves every later checkpoint that still has the file.
namespace sluice::state {

/// One file of a native RocksDB snapshot as a checkpoint stores it.
struct native_file_ref {
  /// The file's name in the RocksDB directory ("000012.sst", "CURRENT").
  std::string name;
  /// Where it is stored. Shared (SST) files: relative to the job's checkpoint
  /// directory, "shared/c<checkpoint that uploaded it>/<instance>-<name>";
  /// private files (MANIFEST, OPTIONS, CURRENT): a file name in chk-N.
  std::string stored;
  uint64_t size = 0;
  /// CRC-32 (snapshot_crc32) of the content, checked on restore.
  uint32_t crc32 = 0;
  /// True for immutable files (SST files, closed logs), which later
  /// checkpoints may reference.
  bool shared = false;
  /// True for a file RocksDB kept appending to (the live log, the
  /// MANIFEST): the snapshot is its first `size` bytes, and the stored file
  /// may be longer (a hard link to the file RocksDB still writes).
  bool prefix = false;

  friend bool operator==(const native_file_ref& a, const native_file_ref& b) {
    return a.name == b.name && a.stored == b.stored && a.size == b.size && a.crc32 == b.crc32 &&
           a.shared == b.shared && a.prefix == b.prefix;
  }
};

/// Which SST files of one backend instance completed checkpoints already
/// stored, so the next checkpoint references them instead of copying them
/// again. Only uploads of completed checkpoints are reused: an aborted
/// checkpoint's files are deleted. Shared by the backend (subtask thread)
/// and its snapshot writers (worker threads); thread-safe.
class native_upload_ledger {
public:
  /// The writer of checkpoint `id` stored `files` (shared ones only count).
  void uploaded(int64_t id, const std::vector<native_file_ref>& files);
  /// Checkpoint `id` completed: what it uploaded may be reused; uploads of
  /// older checkpoints that never completed are forgotten.
  void confirm(int64_t id);
  /// Checkpoint `id` was aborted: its uploads are never reused.
  void forget(int64_t id);
  /// Makes restored shared files reusable (a restore from this job's own
  /// checkpoint, whose shared files this job's coordinator counts).
  void seed(const std::vector<native_file_ref>& files);
  /// The reusable uploads by local file name, keeping only files in `live`
  /// (an SST compacted away never comes back: file numbers are not reused).
  [[nodiscard]] std::map<std::string, native_file_ref>
  reusable(const std::vector<std::string>& live);

private:
  std::mutex mu_;
  std::map<std::string, native_file_ref> confirmed_;
  std::map<int64_t, std::vector<native_file_ref>> pending_;
};

struct native_snapshot;

/// The part of a native snapshot's cut that is finished off the subtask's
/// thread (the flush cut: the memtables sealed at the barrier are flushed
/// while the subtask goes on, and only then are the files linked).
class deferred_cut {
public:
  virtual ~deferred_cut() = default;
  /// Fills `snap` (the files in local_dir, valid_sizes, ...). Blocks until
  /// the instance has flushed what the cut sealed. Throws state_error.
  virtual void finish(native_snapshot& snap) = 0;
  /// The snapshot is dropped without being finished.
  virtual void abandon() noexcept = 0;
};

/// One native snapshot: a RocksDB checkpoint in a local directory (hard
/// links) and what the writer needs to store it. The synchronous part of
/// the checkpoint makes it; finish() (the writer, off the subtask's thread)
/// completes it before its files are read. The directory is deleted with
/// this object.
struct native_snapshot {
  native_snapshot() = default;
  native_snapshot(const native_snapshot&) = delete;
  native_snapshot& operator=(const native_snapshot&) = delete;
  ~native_snapshot();

  /// Completes a deferred cut (once; nothing to do for a cut made whole at
  /// the barrier). Throws state_error when the cut cannot be completed.
  void finish();

  int64_t checkpoint_id = 0;
  /// The RocksDB checkpoint directory (same filesystem as the instance).
  std::string local_dir;
  /// Unique name of the backend instance; prefixes its shared files.
  std::string instance;
  /// A canonical snapshot (snapshot.hpp) with the states' descriptions and
  /// the timers, but no state entries: those are in the RocksDB files.
  std::string meta;
  /// Which uploads of completed checkpoints the writer may reference; it
  /// records there what it uploaded.
  std::shared_ptr<native_upload_ledger> ledger;
  /// Files the instance still appends to (the write-ahead log, the
  /// MANIFEST), hard-linked into `local_dir`: only their first N bytes belong
  /// to this snapshot.
  std::map<std::string, uint64_t> valid_sizes;
  /// Set while the cut still has to be finished (see finish()).
  std::unique_ptr<deferred_cut> deferred;
  /// The files holding the cut were gone by the time it was finished (a
  /// later flush had already folded newer writes in), so the state as of the
  /// cut was written out as a new RocksDB instance: nothing in it is shared
  /// with earlier checkpoints.
  bool rewritten = false;
};

/// The files of one old subtask's native snapshot, downloaded (and
/// checked) into a local directory, for a restore. The directory is deleted
/// with this object unless the backend took it over.
struct native_restore_source {
  native_restore_source() = default;
  native_restore_source(const native_restore_source&) = delete;
  native_restore_source& operator=(const native_restore_source&) = delete;
  ~native_restore_source();

  /// The downloaded RocksDB directory.
  std::string dir;
  /// The snapshot's meta (states and timers; see native_snapshot::meta).
  std::string meta;
  /// The key groups the old subtask owned.
  key_group_range range;
  /// The files as the checkpoint lists them.
  std::vector<native_file_ref> files;
  /// The files belong to this job's checkpoints, so later checkpoints may
  /// reference them (a restore from another job's checkpoint copies them
  /// again, as Flink's no-claim mode does).
  bool reusable = false;
  /// For errors: "operator 'x' subtask 1 of checkpoint 7".
  std::string origin;
};

} // namespace sluice::state
