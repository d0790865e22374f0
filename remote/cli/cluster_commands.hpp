#pragma once

// The `sluice` subcommands of a session cluster: the JobManager daemon and
// the client commands that talk to its REST API (run, list, cancel, stop,
// savepoint), with output lines shaped like the `flink` CLI's.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sluice::cli {

/// `sluice jobmanager`: serves until SIGINT/SIGTERM. Returns the exit code
/// (0 after a signal, 1 when it cannot serve, 2 for bad settings).
int run_job_manager(const std::map<std::string, std::string>& settings);

/// `sluice taskmanager`: registers with the JobManager (again whenever it
/// is lost) until SIGINT/SIGTERM, then deregisters. Returns the exit code as
/// run_job_manager does.
int run_task_manager(const std::map<std::string, std::string>& settings);

/// Where a client command finds the JobManager.
struct job_manager_target {
  /// -m: host:port (plain HTTP) or https://host:port (TLS).
  std::string address = "127.0.0.1:8081";
  /// security.ssl.rest.trust-cert-file (settings file or -D): the PEM
  /// certificates that verify an https JobManager; empty = the system's.
  std::string trust_cert_file;
};

/// Options of `sluice run`.
struct run_options {
  job_manager_target job_manager; ///< -m
  bool detached = false;   ///< -d
  int32_t parallelism = 0; ///< -p; 0 = the cluster's default
  std::string savepoint;   ///< -s
  bool allow_non_restored_state = false; ///< -n
  std::string entry;       ///< -c
  std::string library;     ///< job.so
  std::vector<std::string> args;
};

/// Options of `sluice info`.
struct info_options {
  int32_t parallelism = 0; ///< -p; 0 = parallelism.default
  std::string entry;       ///< -c
  std::string library;     ///< job.so
  std::vector<std::string> args;
  /// The settings the job is built with (conf/sluice-conf.yaml).
  std::map<std::string, std::string> settings;
};

/// `sluice info`: loads the library in this process, builds its pipeline
/// and prints the execution plan JSON, framed as `flink info` frames it.
/// 0 = printed; 1 = the library is missing or its entry failed; 2 = bad
/// settings.
int print_job_info(const info_options& options);

/// `sluice savepoint -d <path>`: deletes a savepoint directory here after
/// checking it is one (its `_metadata` says savepoint). 0 = disposed.
int dispose_savepoint(const std::string& path);

/// `sluice run`: uploads the library, runs it, and (unless detached) waits
/// for the job to end. 0 = submitted (detached) or FINISHED.
int run_job(const run_options& options);
/// `sluice list [-a|-r|-s]`: `which` is "all", "running" or "scheduled";
/// empty = running and scheduled.
int list_jobs(const job_manager_target& job_manager, const std::string& which);
/// `sluice cancel <jobid>`: cancels and waits until the job is CANCELED.
int cancel_job(const job_manager_target& job_manager, const std::string& job_id);
/// `sluice stop [--drain] [-p dir] <jobid>`.
int stop_job(const job_manager_target& job_manager, const std::string& job_id, bool drain,
             const std::string& directory);
/// `sluice savepoint <jobid> [dir]`.
int savepoint_job(const job_manager_target& job_manager, const std::string& job_id,
                  const std::string& directory);

} // namespace sluice::cli
