#pragma once

#include "sluice/remote/cluster/job_library.hpp"
#include "sluice/remote/rest/rest_api.hpp"
#include "sluice/runtime/job.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

/// The JobManager of a session cluster on one machine (`sluice
/// jobmanager`): the REST API over the jobs it runs, plus Flink's /jars
/// endpoints to upload job libraries and run them, and the membership of
/// TaskManager processes (`sluice taskmanager`, see membership.hpp). Jobs
/// run on the registered TaskManager processes (their JobMasters in the
/// JobManager, their subtasks deployed to the TaskManagers' slots), or,
/// when none is registered, each on a mini-cluster of its own inside the
/// JobManager (sluice.cluster.placement); either way one job's failure
/// never touches another's subtasks.
namespace sluice::remote::cluster {

class membership_service;

/// Where the JobManager runs the jobs submitted to it
/// (sluice.cluster.placement).
enum class job_placement {
  /// `auto` (the default): on the TaskManager processes when at least one
  /// is registered, else in-process.
  automatic,
  /// `local`: always on a mini-cluster of the job's own inside the
  /// JobManager process.
  local,
  /// `taskmanagers`: always on TaskManager processes; a job waits for
  /// slots (slot.request.timeout) when too few are registered.
  task_managers,
};

/// The cluster keys the JobManager reads itself (the others go to
/// runtime::apply_settings for every job it runs).
struct job_manager_settings {
  /// rest.bind-address, else rest.address (127.0.0.1): where REST listens.
  std::string rest_address = "127.0.0.1";
  /// rest.port (8081; 0 = pick a free one).
  uint16_t rest_port = 8081;
  /// rest.server.max-content-length (100 MiB, Flink's): the largest upload.
  uint64_t max_content_length = 100ull * 1024 * 1024;
  /// security.ssl.rest.enabled (false): serve the REST API over TLS only,
  /// with security.ssl.rest.cert-file (PEM certificate chain) and
  /// security.ssl.rest.key-file (PEM private key). sluice's own file keys:
  /// Flink configures keystores, which are Java's.
  bool rest_tls = false;
  std::string rest_tls_certificate_file;
  std::string rest_tls_private_key_file;
  /// web.upload.dir: where uploaded libraries are kept (empty = a new
  /// directory under the system's temp directory, removed on stop).
  std::string upload_dir;
  /// state.savepoints.dir (a path or file: URI): where savepoint and stop
  /// put savepoints when the request names no directory (empty = the job's
  /// <checkpoint directory>/savepoints).
  std::string savepoints_dir;
  /// jobmanager.rpc.address / jobmanager.rpc.port: where the membership
  /// actor listens for TaskManager processes (localhost binds 127.0.0.1;
  /// port 0 = any free one).
  std::string rpc_address = "localhost";
  uint16_t rpc_port = 6123;
  /// heartbeat.interval / heartbeat.timeout (1 s / 5 s; positive, timeout
  /// >= interval): how often the JobManager and each TaskManager tell each
  /// other they are alive, and how long a silent one counts as lost.
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};
  job_placement placement = job_placement::automatic;
  /// slot.request.timeout (5 min): how long a job on TaskManager processes
  /// waits for enough free slots before it fails.
  std::chrono::milliseconds slot_request_timeout{std::chrono::minutes(5)};
};

/// The keys `job_manager_settings` reads (the JobManager's own; every other
/// key configures the jobs it runs).
[[nodiscard]] const std::vector<std::string>& job_manager_keys();

/// A running JobManager. Thread-safe; `stop` (or destruction) stops the REST
/// server and cancels the jobs still running.
class job_manager {
public:
  /// Reads `settings` (the cluster keys above, then every other key through
  /// runtime::apply_settings: unknown keys become warnings), makes the upload
  /// directory and serves REST. Errors (`invalid_configuration`) name the
  /// key and value; a port in use fails with `server_failed`.
  [[nodiscard]] static caf::expected<std::unique_ptr<job_manager>>
  start(const std::map<std::string, std::string>& settings);

  ~job_manager();
  job_manager(const job_manager&) = delete;
  job_manager& operator=(const job_manager&) = delete;

  /// The REST server's bound port.
  [[nodiscard]] uint16_t rest_port() const;
  /// The bound port TaskManagers register at (jobmanager.rpc.port).
  [[nodiscard]] uint16_t rpc_port() const;
  /// The cluster keys in effect.
  [[nodiscard]] const job_manager_settings& settings() const noexcept { return settings_; }
  /// One line per setting key nobody reads.
  [[nodiscard]] const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  /// Uploads and runs a library as `POST /jars/upload` + `/jars/:id/run`
  /// do; returns the job id.
  [[nodiscard]] caf::expected<std::string> run(const std::string& jar_id,
                                               const job_run_request& request);
  /// The uploaded libraries.
  [[nodiscard]] jar_store& jars() noexcept { return jars_; }

  /// How many jobs' mini-clusters the JobManager holds: the jobs that have
  /// not reached a globally terminal state yet, plus ended ones the reaper
  /// has not released yet (at most ~100 ms after they end).
  [[nodiscard]] size_t held_jobs() const;

  /// Stops serving, cancels running jobs, waits (up to 10 s each) for them
  /// to end and releases every mini-cluster (idempotent).
  void stop();

private:
  job_manager(job_manager_settings settings, runtime::configuration job_config,
              std::map<std::string, std::string> job_settings, std::vector<std::string> warnings);
  /// Whether a job submitted now runs on the TaskManager processes.
  [[nodiscard]] bool on_task_managers() const;
  /// Builds the library's job here, then submits it to the dispatcher of
  /// the TaskManager processes with a job_spec, so each TaskManager that
  /// runs its subtasks rebuilds it from the same library.
  [[nodiscard]] caf::expected<std::shared_ptr<runtime::job_client>>
  run_on_task_managers(const jar_info& jar, const job_run_request& request);
  void add_routes(rest::router& r);
  /// The reaper thread: releases the clients (and so the mini-clusters) of
  /// ended jobs, on a thread that is neither a CAF worker of the cluster it
  /// tears down nor a REST thread.
  void reap();

  job_manager_settings settings_;
  runtime::configuration job_config_;
  /// The settings job_config_ was built from (sent to TaskManagers).
  std::map<std::string, std::string> job_settings_;
  std::vector<std::string> warnings_;
  bool made_upload_dir_ = false;
  jar_store jars_;
  std::shared_ptr<runtime::job_executor> executor_;
  mutable std::mutex mtx_;
  std::condition_variable reap_cv_;
  bool stopping_ = false;
  /// The jobs still held, by id (guarded by mtx_).
  std::map<std::string, std::shared_ptr<runtime::job_client>> jobs_;
  std::unique_ptr<membership_service> members_;
  std::unique_ptr<rest::rest_server> rest_;
  std::thread reaper_;
};

} // namespace sluice::remote::cluster
