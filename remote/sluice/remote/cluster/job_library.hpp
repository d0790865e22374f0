#pragma once

#include "sluice/runtime/job.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

/// Job libraries on the JobManager: the uploaded shared libraries
/// (`jar_store`, Flink's /jars) and running one (`run_job_library`): load it,
/// call its entry (`sluice/job.hpp`) on a cluster-configured environment,
/// submit the pipeline it built.
namespace sluice::remote::cluster {

/// One uploaded job library.
struct jar_info {
  /// `<32 hex digits>_<file name>`, as Flink names uploaded jars.
  std::string id;
  /// The file name it was uploaded as.
  std::string name;
  /// Upload time, epoch ms.
  int64_t uploaded_ms = 0;
  /// Where it is stored.
  std::string path;
};

/// The uploaded job libraries, stored as files in one directory
/// (web.upload.dir). Thread-safe.
class jar_store {
public:
  /// A store in `directory`, created if missing (checked by `add`).
  explicit jar_store(std::string directory) : directory_(std::move(directory)) {}

  /// Stores `bytes` uploaded as `file_name` (only its last path component
  /// is kept; it must end in ".so"). Errors (`invalid_request`): an empty
  /// body, a bad name, a file that cannot be written.
  [[nodiscard]] caf::expected<jar_info> add(const std::string& file_name,
                                            const std::string& bytes);
  /// Every stored library, oldest first.
  [[nodiscard]] std::vector<jar_info> list() const;
  /// One library; empty if the id is unknown.
  [[nodiscard]] std::optional<jar_info> find(const std::string& id) const;
  /// Deletes a library's file; false if the id is unknown. Jobs already
  /// running from it keep running (the loaded code stays mapped).
  bool remove(const std::string& id);
  /// The directory.
  [[nodiscard]] const std::string& directory() const noexcept { return directory_; }

private:
  std::string directory_;
  mutable std::mutex mtx_;
  std::vector<jar_info> jars_;
};

/// How to run a job library (the body of `POST /jars/:id/run`).
struct job_run_request {
  /// The entry symbol; empty = `sluice_job_main`.
  std::string entry;
  /// Program arguments (argv[1..]).
  std::vector<std::string> args;
  /// Default parallelism; 0 = the cluster's parallelism.default.
  int32_t parallelism = 0;
  /// Savepoint or retained checkpoint to start from; empty = none.
  std::string savepoint_path;
  /// Skip savepoint state of operators the job no longer has.
  bool allow_non_restored_state = false;
};

/// A job library's pipeline, built and not yet submitted.
struct built_job {
  /// The job graph the entry built, named as the entry named it.
  std::shared_ptr<const runtime::job_graph> graph;
  /// The configuration to run it with (the cluster's plus the request's).
  runtime::configuration config;
};

/// Loads the library at `path` (dlopen; it stays loaded for the life of
/// the process, as jobs execute its code) and calls its entry with
/// `request.args` on an environment configured by `cluster_config` and the
/// request; returns the job it built (what `sluice info` prints). Errors
/// (`invalid_request`), each naming the library: it cannot be loaded (the
/// loader's message), it has no such entry symbol, the entry threw or
/// returned non-zero (with its `fail` message), the entry called execute()
/// itself, or the pipeline is invalid (no sink...).
[[nodiscard]] caf::expected<built_job>
build_job_library(const std::string& path, const std::string& display_name,
                  const job_run_request& request, const runtime::configuration& cluster_config);

/// Loads the library at `path` (dlopen; it stays loaded for the life of
/// the process, as running jobs execute its code), calls its entry with
/// `request.args` on an environment configured by `cluster_config` and the
/// request, and submits the pipeline to `executor`. Returns the job's
/// client. Errors as `build_job_library`.
[[nodiscard]] caf::expected<std::shared_ptr<runtime::job_client>>
run_job_library(const std::string& path, const std::string& display_name,
                const job_run_request& request, const runtime::configuration& cluster_config,
                std::shared_ptr<runtime::job_executor> executor);

/// Splits Flink's legacy `programArgs` string into arguments: whitespace
/// separates, single or double quotes group.
[[nodiscard]] std::vector<std::string> split_program_args(const std::string& text);

} // namespace sluice::remote::cluster
