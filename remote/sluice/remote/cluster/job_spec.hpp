#pragma once

#include "sluice/remote/cluster/job_library.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>

/// How a TaskManager process rebuilds a job it did not build: the JobManager
/// attaches a `job_spec` (the job library's bytes, its entry and arguments,
/// and the cluster settings the JobManager built it with) to the job, and
/// every TaskManager that runs one of its subtasks loads the same library
/// and calls the same entry, getting the same job graph (vertex ids are
/// derived from the program, so both sides agree on them; a mismatch is an
/// error, never a silent misdeployment).
namespace sluice::remote::cluster {

struct job_spec {
  /// The library's file name (names the job by default and in errors).
  std::string library_name;
  /// The library's bytes.
  std::string library;
  /// Entry, arguments and parallelism (a savepoint path is not carried:
  /// the JobMaster tells each subtask what to restore).
  job_run_request request;
  /// The cluster's job settings (every key the JobManager passed to
  /// runtime::apply_settings), so the entry sees the same environment.
  std::map<std::string, std::string> settings;
  /// The ids of the job graph's vertices as the JobManager built it.
  std::vector<std::string> vertex_ids;
};

/// Encodes a spec as bytes (versioned).
[[nodiscard]] std::string encode_job_spec(const job_spec& spec);
/// Decodes `bytes`; throws std::invalid_argument when they are not a spec
/// this build can read.
[[nodiscard]] job_spec decode_job_spec(const std::string& bytes);

/// The job libraries a TaskManager process has received, stored once per
/// content in `directory` and loaded once. Thread-safe.
class job_library_cache {
public:
  explicit job_library_cache(std::string directory) : directory_(std::move(directory)) {}

  /// Rebuilds job `job_id` from an encoded spec: stores and loads the
  /// library, calls its entry, checks that the vertex ids match the
  /// JobManager's. Throws std::runtime_error naming the job and library
  /// when any step fails.
  [[nodiscard]] built_job resolve(const std::string& job_id, const std::string& spec_bytes);

  [[nodiscard]] const std::string& directory() const noexcept { return directory_; }

private:
  std::string directory_;
  std::mutex mtx_;
};

} // namespace sluice::remote::cluster
