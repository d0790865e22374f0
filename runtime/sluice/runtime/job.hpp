#pragma once

#include "sluice/runtime/function.hpp"
#include "sluice/runtime/queryable_state.hpp"
#include "sluice/runtime/restart_strategy.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

/// What a submitted job looks like from outside: configuration, status,
/// metrics, and the executor interface the execution layer implements.
namespace sluice::runtime {

class job_graph;

/// Settings of the engine for one environment (later read from YAML).
struct configuration {
  /// Default parallelism of operators; 0 = number of cores.
  int32_t parallelism = 0;
  /// Default max parallelism (key groups); -1 = Flink's formula per operator.
  int32_t max_parallelism = -1;
  /// A partly filled batch is sent after this long; 0 = send every record
  /// at once.
  std::chrono::milliseconds buffer_timeout{100};
  /// Target size of one batch between subtasks.
  size_t batch_bytes = 64 * 1024;
  /// Batches a receiver accepts per input channel before the sender waits.
  uint32_t credits_per_channel = 8;
  /// Records a source emits per step before it yields to its mailbox.
  size_t source_step_records = 8192;
  /// CAF scheduler threads; 0 = number of cores.
  uint32_t scheduler_threads = 0;
  /// "balanced": CAF's work stealing, idle workers sleep.
  /// "throughput": idle workers keep polling (uses both cores fully for one
  /// pipeline; burns CPU while idle).
  std::string scheduler_profile = "balanced";
  /// Messages an actor handles before it yields its worker thread (0 =
  /// until its mailbox is empty, CAF 0.17's default, which lets a source
  /// that never waits for credit hold a worker forever). A message can be a
  /// whole batch: at 64, a RocksDB keyed operator held a worker for up to
  /// ~0.8 s, and the JobMaster's checkpoint timer waited behind it.
  uint32_t scheduler_max_throughput = 8;
  /// TaskManagers of the local mini-cluster.
  int32_t taskmanagers = 1;
  /// Slots per TaskManager; 0 = as many as the job needs.
  int32_t slots_per_taskmanager = 0;
  /// Keyed state backend (state.backend.type: rocksdb by default, or heap)
  /// and RocksDB memory settings.
  state_settings state;
  /// How often timestamp assigners emit periodic watermarks
  /// (pipeline.auto-watermark-interval).
  std::chrono::milliseconds auto_watermark_interval{200};
  /// Checkpointing (off unless an interval is set).
  checkpoint_settings checkpoints;
  /// What happens after a failure (restart-strategy.*); unset type = Flink's
  /// default (none without checkpoints, exponential-delay with).
  restart_config restart;
  /// Start from a savepoint or retained checkpoint.
  restore_settings restore;
};

/// Job states, named as Flink names them.
enum class job_status {
  initializing, created, running, failing, failed, cancelling, canceled, finished,
  restarting, suspended, reconciling
};
const char* to_string(job_status s) noexcept;
/// True for FINISHED, FAILED and CANCELED.
bool is_globally_terminal(job_status s) noexcept;

/// Subtask (execution) states, named as Flink names them.
enum class execution_state {
  created, scheduled, deploying, running, finished, canceling, canceled, failed
};
const char* to_string(execution_state s) noexcept;

/// How a job ended.
struct job_result {
  job_status status = job_status::created;
  /// The failure cause for FAILED: the user's message and the operator.
  std::string error;
  std::chrono::milliseconds duration{0};
  bool ok() const noexcept { return status == job_status::finished; }
};

/// Metrics of one subtask. The per-second figures follow Flink's
/// busyTimeMsPerSecond / idleTimeMsPerSecond / backPressuredTimeMsPerSecond:
/// milliseconds per second of wall time, averaged over the window since the
/// previous metrics() call of the same client (or since start).
struct subtask_metrics {
  std::string task;
  std::string vertex_id;
  int32_t subtask = 0;
  execution_state state = execution_state::created;
  uint64_t records_in = 0;
  uint64_t records_out = 0;
  double busy_ms_per_second = 0;
  double idle_ms_per_second = 0;
  double backpressured_ms_per_second = 0;
  uint64_t busy_ms_total = 0;
  uint64_t backpressured_ms_total = 0;
  uint64_t idle_ms_total = 0;
  /// Most batches ever waiting unprocessed on one input channel (bounded by
  /// the credits per channel).
  uint32_t peak_queued_batches = 0;
  /// Most batches ever waiting for credit on one output channel.
  uint32_t peak_pending_batches = 0;
};

struct job_metrics {
  std::vector<subtask_metrics> subtasks;
  /// The subtasks whose task name contains `fragment`.
  std::vector<subtask_metrics> of_task(const std::string& fragment) const;
};

/// Handle on a submitted job. Thread-safe; methods may block the calling
/// (non-actor) thread where they say so.
class job_client {
public:
  virtual ~job_client() = default;
  virtual const std::string& job_id() const = 0;
  virtual job_status status() const = 0;
  /// Current metrics of every subtask.
  virtual job_metrics metrics() = 0;
  /// Asks the job to cancel; returns at once.
  virtual void cancel() = 0;
  /// Blocks until the job has ended.
  virtual job_result wait() = 0;
  /// Blocks at most `timeout`; empty if the job is still running.
  virtual std::optional<job_result> wait_for(std::chrono::milliseconds timeout) = 0;

  /// Takes a savepoint into `directory` (a new savepoint-<id> directory
  /// there; empty = <checkpoint directory>/savepoints) and returns its
  /// path. Blocks until it is complete; throws checkpoint_error if it fails.
  virtual std::string trigger_savepoint(const std::string& directory);
  /// Takes a savepoint, after which the sources stop and the job FINISHES.
  /// With `drain`, the sources first emit the maximum watermark so every
  /// window and event-time timer fires into the savepoint's output.
  virtual std::string stop_with_savepoint(const std::string& directory, bool drain);
  /// Takes a savepoint, then cancels the job.
  virtual std::string cancel_with_savepoint(const std::string& directory);
  /// Checkpoint statistics as JSON shaped like Flink's
  /// GET /jobs/:jobid/checkpoints (counts, summary, latest, history).
  virtual std::string checkpoint_stats_json();
  /// Queryable state: the keyed state of `key` (URL text, parsed into the
  /// operator's key type) in the operator with `uid`, as the subtask that
  /// owns the key holds it when it handles the request (not
  /// checkpoint-consistent). Blocks at most about `timeout`. Job clients
  /// that cannot reach their subtasks answer failed.
  virtual state_query_result query_state(const std::string& uid, const std::string& key,
                                         std::chrono::milliseconds timeout);
  /// Fault injection for tests: kills one subtask actor (vertex id, index).
  virtual void kill_subtask(int32_t vertex, int32_t subtask);
  /// Restarts since the job started.
  virtual int32_t restarts() const { return 0; }
};

/// Runs job graphs; implemented by the execution layer (actors/).
class job_executor {
public:
  virtual ~job_executor() = default;
  virtual std::shared_ptr<job_client> submit(std::shared_ptr<const job_graph> job,
                                             const configuration& config) = 0;
};

/// Installs the executor environments use unless given one. The execution
/// layer registers its local mini-cluster here (see sluice/sluice.hpp).
void set_default_executor_factory(std::function<std::shared_ptr<job_executor>()> factory);
std::shared_ptr<job_executor> make_default_executor();

} // namespace sluice::runtime
