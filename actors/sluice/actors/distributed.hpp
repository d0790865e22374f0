#pragma once

#include "sluice/actors/cluster.hpp"
#include "sluice/actors/messages.hpp"
#include "sluice/actors/metrics.hpp"
#include "sluice/runtime/job.hpp"
#include "sluice/runtime/job_graph.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

/// The control plane across nodes: TaskManagers in processes of their own
/// (`task_executor_impl`), the JobManager's dispatcher and resource manager
/// for them (`cluster_dispatcher_impl`), and the executor that submits jobs
/// to it (`cluster_executor`). See docs/architecture.md, "Cluster across
/// processes".
///
/// Messages (dynamically typed actors):
///   task executor: (deploy_atom, remote_deployment) -> subtask_actor
///   dispatcher:    the job_manager_impl protocol, plus
///                  (register_atom, actor executor, int32 slots, string tm_id)
///                  (lost_atom, string tm_id, string why)
///   JobMaster:     (tmmetrics_atom, vector<subtask_metrics_sample>)
///                  (lost_atom, actor executor, string tm_id, string why)
namespace sluice::actors {

/// A TaskManager left the cluster (membership service, or its actor went down).
using lost_atom = caf::atom_constant<caf::atom("lost")>;
/// A TaskManager relays the counters of its subtasks to their JobMaster.
using tmmetrics_atom = caf::atom_constant<caf::atom("tmmetrics")>;
/// The dispatcher's timer for a waiting slot request.
using slotwait_atom = caf::atom_constant<caf::atom("slotwait")>;
/// The task executor's timer for the metrics relay.
using relay_atom = caf::atom_constant<caf::atom("relay")>;

/// A job graph and its configuration, rebuilt on a TaskManager.
struct resolved_job {
  std::shared_ptr<const runtime::job_graph> graph;
  runtime::configuration config;
};

/// Rebuilds a job on a TaskManager from its id and the opaque `spec` its
/// submitter attached. Throws std::exception with a clear message when the
/// job cannot be rebuilt. Called on the task executor's thread.
using job_resolver =
  std::function<resolved_job(const std::string& job_id, const std::string& spec)>;

/// What a JobMaster sends to a TaskManager on another node to start one
/// subtask: everything by value, nothing that points into its process.
struct remote_deployment {
  std::string job_id;
  std::string spec;
  int32_t vertex = 0;
  int32_t index = 0;
  int32_t attempt = 0;
  /// The job's checkpoint directory, on storage every process sees.
  std::string checkpoint_dir;
  /// The checkpoint or savepoint to restore from ("" = fresh start).
  std::string restore_dir;
  /// The restore point is a checkpoint of this job (a failover).
  bool restore_owns_shared_files = false;
  caf::actor job_master;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, remote_deployment& x) {
  return f(caf::meta::type_name("remote_deployment"), x.job_id, x.spec, x.vertex, x.index,
           x.attempt, x.checkpoint_dir, x.restore_dir, x.restore_owns_shared_files, x.job_master);
}

/// The counters of one remote subtask at one moment, as its TaskManager
/// relays them to the JobMaster (steady-clock times: one machine, or
/// clocks that agree).
struct subtask_metrics_sample {
  int32_t vertex = 0;
  int32_t index = 0;
  int32_t attempt = 0;
  int32_t state = 0;
  uint64_t records_in = 0;
  uint64_t records_out = 0;
  int64_t busy_ns = 0;
  int64_t backpressured_ns = 0;
  int64_t blocked_since_ns = 0;
  int64_t started_ns = 0;
  int64_t ended_ns = 0;
  uint32_t peak_queued_batches = 0;
  uint32_t peak_pending_batches = 0;
  int64_t input_watermark = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, subtask_metrics_sample& x) {
  return f(caf::meta::type_name("subtask_metrics_sample"), x.vertex, x.index, x.attempt, x.state,
           x.records_in, x.records_out, x.busy_ns, x.backpressured_ns, x.blocked_since_ns,
           x.started_ns, x.ended_ns, x.peak_queued_batches, x.peak_pending_batches,
           x.input_watermark);
}

/// Reads a cell into a sample.
subtask_metrics_sample sample_metrics(const subtask_metrics_cell& cell, int32_t vertex,
                                      int32_t index, int32_t attempt);
/// Writes a sample into a cell (the JobMaster's board).
void apply_metrics(const subtask_metrics_sample& s, subtask_metrics_cell& cell);

/// Registers the control-plane types that cross nodes (remote_deployment,
/// subtask_metrics_sample). add_cluster_message_types (messages.hpp), which
/// a node calls, registers these and the data-plane ones.
void add_control_message_types(caf::actor_system_config& cfg);

/// Parses `slot.request.timeout` ("30 s", "500 ms", "5 min", bare = ms) from
/// Flink-style settings; 5 minutes when absent. Throws
/// std::invalid_argument naming the key.
std::chrono::milliseconds slot_request_timeout(const std::map<std::string, std::string>& settings);

/// The state of a TaskManager's task executor (one per TaskManager process).
struct task_executor_state {
  struct job_entry {
    resolved_job job;
    /// Restore points read for its deployments, by directory.
    std::map<std::string, std::shared_ptr<const runtime::restore_point>> restores;
    /// Subtasks of this job alive on this executor.
    size_t live = 0;
  };
  /// A deployment that waits while its job is rebuilt or its restore point
  /// read (off the executor's thread).
  struct waiting_deployment {
    remote_deployment rd;
    caf::response_promise promise;
  };
  struct subtask_entry {
    std::string job_id;
    int32_t vertex = 0;
    int32_t index = 0;
    int32_t attempt = 0;
    caf::actor job_master;
    std::shared_ptr<subtask_metrics_cell> cell;
  };
  int32_t slots = 0;
  job_resolver resolver;
  runtime::configuration tm_config;
  std::map<std::string, job_entry> jobs;
  /// Deployments waiting for one preparation, by "<job id>\n<restore dir>".
  std::map<std::string, std::vector<waiting_deployment>> preparing;
  std::map<caf::actor_addr, subtask_entry> subtasks;
  /// Subtasks linked to the executor whose exit has not arrived yet.
  std::set<caf::actor_addr> linked;
  bool relay_scheduled = false;
  const char* name = "sluice.task_executor";
};

/// The TaskManager side in a process of its own: deploys subtasks of jobs it
/// rebuilds with `resolver` (once per job id, kept while the job has
/// subtasks here) and relays their counters to their JobMasters every
/// 500 ms. The resolver (which may load a library and run user code) and
/// the reading of restore points run on a detached helper actor, never on
/// the executor's thread; `resolver` must be callable from any thread. `tm_config` supplies what the job's own configuration leaves
/// empty on this node (state.checkpoints.dir).
caf::behavior task_executor_impl(caf::stateful_actor<task_executor_state>* self, int32_t slots,
                                 job_resolver resolver, runtime::configuration tm_config);

/// The state of the JobManager's dispatcher for TaskManagers on other nodes.
struct cluster_dispatcher_state {
  struct waiting_request {
    uint64_t ticket = 0;
    std::string job;
    int32_t n = 0;
    caf::actor job_master;
    caf::response_promise promise;
  };
  slot_pool pool;
  std::deque<waiting_request> waiting;
  uint64_t next_ticket = 1;
  std::chrono::milliseconds request_timeout{std::chrono::minutes(5)};
  const char* name = "sluice.cluster_dispatcher";
};

/// The JobManager's dispatcher and resource manager for TaskManagers on
/// other nodes: job_manager_impl's protocol, with slot requests that wait
/// (FIFO) for TaskManagers up to `request_timeout`, and TaskManager loss.
caf::behavior cluster_dispatcher_impl(caf::stateful_actor<cluster_dispatcher_state>* self,
                                      std::shared_ptr<slot_board> slots,
                                      std::chrono::milliseconds request_timeout);

/// Submits jobs to a cluster dispatcher in `system` (the JobManager's own
/// actor system), attaching `spec` so TaskManagers on other nodes can
/// rebuild the job. Its clients work like local ones (status, wait,
/// cancel, metrics, savepoints, queryable state) and its jobs are listed by
/// local_job_registry::global(), so the REST API shows them.
class cluster_executor final : public runtime::job_executor {
public:
  /// Keeps `system` alive as long as any client of its jobs.
  cluster_executor(std::shared_ptr<caf::actor_system> system, caf::actor dispatcher,
                   std::string spec, std::shared_ptr<const slot_board> slots = nullptr);
  /// The caller keeps `system` alive longer than every client.
  cluster_executor(caf::actor_system& system, caf::actor dispatcher, std::string spec,
                   std::shared_ptr<const slot_board> slots = nullptr);

  std::shared_ptr<runtime::job_client> submit(std::shared_ptr<const runtime::job_graph> job,
                                              const runtime::configuration& config) override;

private:
  std::shared_ptr<caf::actor_system> owned_;
  caf::actor_system* system_;
  caf::actor dispatcher_;
  std::string spec_;
  std::shared_ptr<const slot_board> slots_;
};

} // namespace sluice::actors
