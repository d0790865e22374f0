#pragma once

#include "sluice/actors/checkpoint_stats.hpp"
#include "sluice/actors/messages.hpp"
#include "sluice/actors/metrics.hpp"
#include "sluice/actors/subtask.hpp"
#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/runtime/job.hpp"
#include "sluice/runtime/job_graph.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

/// The control plane: JobManager (dispatcher + resource manager), one
/// JobMaster per job, TaskManagers with slots, and the local mini-cluster
/// that runs them all in one actor_system.
///
/// Messages (dynamically typed actors; the data plane is typed in
/// messages.hpp):
///   TaskManager: (deploy_atom, subtask_deployment) -> subtask_actor
///   JobManager:  (register_atom, actor tm, int32 slots)
///                (slots_atom, string job, int32 n) -> vector<actor> (a TM per slot)
///                (release_atom, string job)
///                (submit_atom, job_submission) -> actor job_master
///   JobMaster:   (start_atom), (cancel_atom), (state_atom, subtask_report),
///                (ack_atom, checkpoint_ack), (decline_atom, id, vertex, index,
///                attempt, reason), (eod_atom, vertex, index, attempt),
///                (savepoint_atom, string dir, bool stop, bool drain) -> string,
///                (kill_atom, vertex, index),
///                (query_atom, string uid, string key) -> (int32 status, string)
///                (queryable state: runtime::state_query_status and its body)
///                Across nodes (distributed.hpp): (tmmetrics_atom, samples),
///                (lost_atom, actor executor, string tm_id, string why)
namespace sluice::actors {

/// Wall-clock milliseconds since the epoch (what REST timestamps show).
int64_t wall_now_ms() noexcept;

/// One failure of a job (a subtask failed, or the job could not start), as
/// the REST API's exception history shows it.
struct job_failure {
  int64_t timestamp_ms = 0;
  std::string message;
};

/// Status and metrics of one job, shared by its JobMaster (writer) and its
/// clients (readers). Thread-safe.
struct job_board {
  std::string id;
  std::string name;
  mutable std::mutex mtx;
  std::condition_variable cv;
  runtime::job_status status = runtime::job_status::created;
  std::string error;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  /// Wall-clock times (epoch ms) of the start, the end (0 while running)
  /// and the latest entry into each status.
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  std::map<runtime::job_status, int64_t> status_times;
  /// The newest failures (at most `max_failures`), oldest first, and how
  /// many were dropped to keep that bound.
  std::vector<job_failure> failures;
  size_t failures_dropped = 0;
  static constexpr size_t max_failures = 32;
  std::vector<std::shared_ptr<subtask_metrics_cell>> cells;
  checkpoint_stats checkpoints;
  std::atomic<int32_t> restarts{0};

  void set_status(runtime::job_status s, const std::string& why = {});
  /// Records a failure in the history (does not change the status).
  void add_failure(const std::string& why);
};

/// The TaskManagers of a mini-cluster and their free slots, as the
/// JobManager's resource manager allocates them. Written by the JobManager
/// actor, read by the REST API from any thread. Thread-safe.
struct slot_board {
  struct task_manager {
    std::string id;
    int32_t slots = 0;
    int32_t free = 0;
  };
  mutable std::mutex mtx;
  std::vector<task_manager> task_managers;
};

/// The task slots of a JobManager's TaskManagers, allocated first fit in
/// registration order and held per job; mirrored into a slot_board for the
/// REST API. Owned by one actor (the in-process JobManager or the cluster
/// dispatcher): not thread-safe.
class slot_pool {
public:
  struct task_manager {
    std::string id;
    caf::actor handle; ///< the TaskManager's executor: one per slot given out
    int32_t slots = 0;
    int32_t free = 0;
  };

  /// Where free slots are mirrored (may be null).
  void set_board(std::shared_ptr<slot_board> board);
  /// Adds a TaskManager with all its slots free.
  void add(std::string id, caf::actor handle, int32_t slots);
  /// The id of a TaskManager that registers without one: taskmanager_<n>.
  std::string unnamed_id() const { return "taskmanager_" + std::to_string(task_managers_.size()); }
  /// Removes TaskManager `id` and the slots jobs held there; returns its
  /// handle (null if unknown) and appends to `affected` the JobMasters of
  /// the jobs that lost slots (as given to try_allocate, when not null).
  caf::actor remove(const std::string& id, std::vector<caf::actor>& affected);
  /// Takes `n` slots for `job` if that many are free: appends one handle
  /// per slot to `out`. All or nothing.
  bool try_allocate(const std::string& job, int32_t n, const caf::actor& job_master,
                    std::vector<caf::actor>& out);
  /// Gives back every slot `job` holds.
  void release(const std::string& job);

  int32_t free_slots() const noexcept;
  int32_t total_slots() const noexcept;
  const std::vector<task_manager>& task_managers() const noexcept { return task_managers_; }

private:
  struct allocation {
    caf::actor job_master;
    std::vector<std::pair<std::string, int32_t>> taken; ///< (TaskManager id, slots)
  };
  void publish() const;

  std::vector<task_manager> task_managers_;
  std::map<std::string, allocation> allocations_;
  std::shared_ptr<slot_board> board_;
};

/// What the dispatcher needs to run a job.
struct job_submission {
  std::shared_ptr<const runtime::job_graph> job;
  runtime::configuration config;
  std::shared_ptr<job_board> board;
  /// The savepoint or checkpoint the job starts from (read and checked
  /// against the job by the submitter, off the actors); null = empty start.
  std::shared_ptr<const runtime::restore_point> restore;
  /// Opaque bytes from which TaskManagers on other nodes rebuild the job
  /// (distributed.hpp, job_resolver); empty for in-process jobs.
  std::string spec;
};

caf::behavior task_manager_impl(caf::event_based_actor* self, int32_t slots);
/// Spawns the JobMaster of one job: deploys it, coordinates its checkpoints
/// and savepoints, restarts it after failures (job_master.cpp).
caf::actor spawn_job_master(caf::local_actor* parent, job_submission sub, caf::actor job_manager);
/// `cluster_name` only labels the dispatcher (CAF 0.17 dereferences a null
/// argument tuple for actors spawned without arguments, which UBSan flags).
/// `slots` (may be null) mirrors the resource manager's slot accounting.
caf::behavior job_manager_impl(caf::stateful_actor<struct job_manager_state>* self,
                               std::string cluster_name, std::shared_ptr<slot_board> slots);

/// Applies the scheduler settings of `config` (threads, max throughput,
/// profile) to an actor system's configuration: the mini-cluster's, or a
/// TaskManager process's own. Throws std::invalid_argument for an unknown
/// profile.
void configure_scheduler(caf::actor_system_config& cfg, const runtime::configuration& config);

/// A complete cluster inside one process: one actor_system with a
/// JobManager and N TaskManagers. Shuts its actors down on destruction.
class mini_cluster {
public:
  mini_cluster(const runtime::configuration& config, int32_t slots_per_taskmanager);
  ~mini_cluster();
  mini_cluster(const mini_cluster&) = delete;
  mini_cluster& operator=(const mini_cluster&) = delete;

  caf::actor_system& system() { return *system_; }
  caf::actor job_manager() const { return job_manager_; }
  /// The TaskManagers and their free slots.
  std::shared_ptr<const slot_board> slots() const { return slots_; }

private:
  caf::actor_system_config cfg_;
  std::shared_ptr<slot_board> slots_ = std::make_shared<slot_board>();
  std::unique_ptr<caf::actor_system> system_;
  caf::actor job_manager_;
  std::vector<caf::actor> task_managers_;
};

/// Submits a job to `dispatcher` (a JobManager in `system`) and starts it:
/// checks its settings, reads its restore point on the calling thread,
/// registers it with local_job_registry::global(), and returns its client.
/// `owner` keeps `system` alive as long as the client; `slots` is what the
/// REST API shows as TaskManagers. A job that cannot start is returned
/// FAILED with the reason. Used by local_executor and cluster_executor.
std::shared_ptr<runtime::job_client>
submit_job(std::shared_ptr<void> owner, caf::actor_system& system, caf::actor dispatcher,
           std::weak_ptr<const slot_board> slots, std::shared_ptr<const runtime::job_graph> job,
           const runtime::configuration& config, std::string spec);

/// Runs each submitted job on a fresh local mini-cluster.
class local_executor final : public runtime::job_executor {
public:
  std::shared_ptr<runtime::job_client> submit(std::shared_ptr<const runtime::job_graph> job,
                                              const runtime::configuration& config) override;
};

} // namespace sluice::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sluice::actors::job_submission)
