#pragma once

#include "sluice/actors/cluster.hpp"
#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/job.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

/// What the REST API reads about a cluster: its jobs (status, vertices,
/// live subtask metrics, failures, checkpoint settings and statistics), its
/// TaskManagers and slots, and handles to act on jobs. `local_job_registry`
/// implements it over the in-process mini-clusters; a JobManager process
/// will implement it over its dispatcher.
namespace sluice::actors {

/// A job vertex (an operator chain) as submitted.
struct vertex_info {
  std::string id; ///< 32 hex digits
  std::string name;
  int32_t parallelism = 0;
  int32_t max_parallelism = 0;
};

/// One subtask's live metrics with its wall-clock start and end (epoch ms;
/// -1 = not yet).
struct subtask_info {
  runtime::subtask_metrics metrics;
  int64_t start_ms = -1;
  int64_t end_ms = -1;
  /// The combined input watermark, once the subtask has published one.
  std::optional<int64_t> input_watermark;
};

/// A snapshot of one job.
struct job_info {
  std::string id;
  std::string name;
  runtime::job_status status = runtime::job_status::created;
  int64_t start_ms = 0;
  int64_t end_ms = -1; ///< -1 while not globally terminal
  /// Latest entry into each status reached (epoch ms).
  std::map<runtime::job_status, int64_t> status_times;
  std::vector<vertex_info> vertices;
  /// Every subtask, grouped by vertex in vertex order.
  std::vector<subtask_info> subtasks;
  /// The failure cause once the job FAILED.
  std::string error;
  /// Failures so far, oldest first, and how many older ones were dropped.
  std::vector<job_failure> failures;
  size_t failures_dropped = 0;
  runtime::checkpoint_settings checkpoints;
  std::string state_backend; ///< "rocksdb" or "hashmap"
  int32_t restarts = 0;
  std::string plan_json; ///< job_graph::plan_json
};

/// A TaskManager and its slots: one of a mini-cluster's in-process
/// TaskManagers, or a TaskManager process registered with the JobManager.
struct task_manager_info {
  std::string id;
  int32_t slots = 0;
  int32_t free_slots = 0;
  /// Where a TaskManager process is reachable (empty for in-process ones,
  /// shown as local://<id>).
  std::string path;
  /// Its port (-1 for in-process ones).
  int32_t data_port = -1;
  /// When its last heartbeat arrived (epoch ms; -1 = in-process, never out
  /// of touch).
  int64_t last_heartbeat_ms = -1;
  /// Its hardware (0 = this process's, for in-process ones).
  int32_t cpu_cores = 0;
  int64_t physical_memory = 0;
  int64_t free_memory = 0;
};

/// The read side of a cluster the REST API serves. Implementations are
/// thread-safe and may be called from any non-actor thread.
class cluster_view {
public:
  virtual ~cluster_view() = default;
  /// Every known job (running and recently ended), oldest first.
  [[nodiscard]] virtual std::vector<job_info> jobs() const = 0;
  /// One job; empty if the id is unknown.
  [[nodiscard]] virtual std::optional<job_info> job(const std::string& id) const = 0;
  /// Flink's GET /jobs/:jobid/checkpoints JSON; empty if the id is unknown.
  [[nodiscard]] virtual std::optional<std::string>
  checkpoint_stats_json(const std::string& id) const = 0;
  /// The live TaskManagers.
  [[nodiscard]] virtual std::vector<task_manager_info> task_managers() const = 0;
  /// A handle to act on a job (savepoint, stop, cancel); null if the id is
  /// unknown or the job's client is gone (the job has ended).
  [[nodiscard]] virtual std::shared_ptr<runtime::job_client>
  client(const std::string& id) const = 0;
};

/// The jobs submitted through `local_executor` in this process, each on its
/// own mini-cluster. Keeps ended jobs for the history (the newest
/// `max_ended_jobs`). Holds no job alive: a job's client and mini-cluster
/// belong to the program that submitted it. Thread-safe.
class local_job_registry final : public cluster_view {
public:
  /// The registry `local_executor` registers every job in.
  static std::shared_ptr<local_job_registry> global();

  explicit local_job_registry(size_t max_ended_jobs = 100) : max_ended_(max_ended_jobs) {}

  /// Registers a submitted job.
  void add(std::shared_ptr<job_board> board, const runtime::job_graph& job,
           const runtime::configuration& config, std::weak_ptr<const slot_board> slots,
           std::weak_ptr<runtime::job_client> client);

  [[nodiscard]] std::vector<job_info> jobs() const override;
  [[nodiscard]] std::optional<job_info> job(const std::string& id) const override;
  [[nodiscard]] std::optional<std::string>
  checkpoint_stats_json(const std::string& id) const override;
  [[nodiscard]] std::vector<task_manager_info> task_managers() const override;
  [[nodiscard]] std::shared_ptr<runtime::job_client>
  client(const std::string& id) const override;

private:
  struct entry {
    std::shared_ptr<job_board> board;
    std::vector<vertex_info> vertices;
    runtime::checkpoint_settings checkpoints;
    std::string state_backend;
    std::string plan_json;
    std::weak_ptr<const slot_board> slots;
    std::weak_ptr<runtime::job_client> client;
    /// Per subtask: where the last metrics window ended.
    std::vector<metrics_window_mark> marks;
  };
  job_info snapshot(entry& e) const;

  size_t max_ended_;
  mutable std::mutex mtx_;
  mutable std::vector<entry> jobs_; ///< oldest first
};

} // namespace sluice::actors
