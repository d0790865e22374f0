#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::actors {

/// What one subtask reported for one checkpoint.
struct subtask_checkpoint_stats {
  int32_t index = 0;
  int64_t ack_timestamp_ms = 0;
  uint64_t state_size = 0;
  uint64_t persisted_data = 0; ///< in-flight bytes of an unaligned checkpoint
  int64_t sync_ms = 0;
  int64_t async_ms = 0;
  int64_t alignment_ms = 0;
};

/// One checkpoint as the statistics show it.
struct checkpoint_record {
  int64_t id = 0;
  std::string status = "IN_PROGRESS"; ///< IN_PROGRESS, COMPLETED, FAILED
  bool savepoint = false;
  int64_t trigger_timestamp_ms = 0;
  int64_t latest_ack_timestamp_ms = 0;
  int64_t end_to_end_duration_ms = 0;
  uint64_t state_size = 0;
  uint64_t persisted_data = 0; ///< in-flight bytes stored (unaligned)
  bool unaligned = false;
  int32_t num_subtasks = 0;
  int32_t num_acknowledged_subtasks = 0;
  int64_t alignment_ms = 0; ///< the longest alignment of any subtask
  std::string external_path;
  std::string failure_message;
  /// Per task (vertex id): its subtasks' figures.
  std::map<std::string, std::vector<subtask_checkpoint_stats>> tasks;
};

/// Checkpoint statistics of one job: written by the JobMaster, read by job
/// clients. Thread-safe.
class checkpoint_stats {
public:
  void triggered(checkpoint_record r);
  /// Applies `f` to the record of checkpoint `id` if it is still kept.
  template <class F>
  void update(int64_t id, F&& f) {
    std::lock_guard<std::mutex> guard(mtx_);
    for (auto& r : history_)
      if (r.id == id)
        f(r);
  }
  void completed(int64_t id, const std::string& path);
  void failed(int64_t id, const std::string& why);
  void restored(int64_t id, const std::string& path, bool savepoint);
  /// The statistics in the shape of Flink's GET /jobs/:jobid/checkpoints.
  [[nodiscard]] std::string to_json() const;
  [[nodiscard]] int64_t completed_count() const;

private:
  mutable std::mutex mtx_;
  std::deque<checkpoint_record> history_; ///< newest first, at most 10
  int64_t triggered_ = 0, completed_ = 0, failed_ = 0, restored_ = 0;
  std::vector<checkpoint_record> done_; ///< completed ones for the summary (last 100)
  int64_t restored_id_ = -1;
  std::string restored_path_;
  bool restored_savepoint_ = false;
  int64_t restored_ms_ = 0;
  checkpoint_record latest_completed_, latest_failed_, latest_savepoint_;
  bool have_completed_ = false, have_failed_ = false, have_savepoint_ = false;
};

} // namespace sluice::actors
