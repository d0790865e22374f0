#pragma once

/// Job libraries: a sluice job built as a shared library (the role a jar
/// plays for Flink), uploaded to a JobManager with `sluice run job.so` or
/// `POST /jars/upload` and run there on the cluster.
///
/// A job library includes this header and defines the entry function
/// declared below. The JobManager loads the library, calls the entry with
/// the program arguments and a `job_context` whose environment the cluster
/// configured (parallelism, checkpoints, state backend, a savepoint to
/// restore), and submits the pipeline the entry built once it returns 0.
///
/// ```cpp
/// #include "sluice/job.hpp"
///
/// extern "C" int sluice_job_main(int argc, char** argv, sluice::job_context& ctx) {
///   auto& env = ctx.env();
///   env.read_text_file(argv[1]).map(...).sink_to_files({...});
///   ctx.set_job_name("my job");
///   return 0;   // the cluster runs what was built
/// }
/// ```
///
/// Build it as a shared library against sluice's headers only (CMake:
/// `find_package(sluice)`, `sluice_add_job(my_job my_job.cpp)`): the
/// sluice runtime comes from the `sluice` process that loads it, so the
/// library and that process must come from the same sluice build.
#include "sluice/sluice.hpp"

#include <string>
#include <utility>

namespace sluice {

/// What the cluster hands a job library's entry function. Owned by the
/// JobManager; valid during the call only; used by one thread.
class job_context {
public:
  /// A context over `env`, named `default_name` until the entry renames it.
  job_context(stream_environment& env, std::string default_name)
    : env_(env), job_name_(std::move(default_name)) {}

  /// The environment to build the pipeline on, configured by the cluster
  /// (`-p`/`parallelism` of the run request or parallelism.default, the
  /// JobManager's checkpoint and state settings, the savepoint of `-s`).
  /// The entry must not call `execute()` on it: return 0 and the cluster
  /// submits what was built.
  stream_environment& env() noexcept { return env_; }

  /// Names the job (REST `name`, `sluice list`); default: the library's
  /// file name.
  void set_job_name(std::string name) { job_name_ = std::move(name); }
  /// The job's name.
  [[nodiscard]] const std::string& job_name() const noexcept { return job_name_; }

  /// Says why the entry is about to return non-zero (bad arguments...);
  /// the JobManager reports it to whoever ran the job.
  void fail(std::string message) { failure_ = std::move(message); }
  /// The message given to `fail`, empty if none.
  [[nodiscard]] const std::string& failure() const noexcept { return failure_; }

private:
  stream_environment& env_;
  std::string job_name_;
  std::string failure_;
};

/// The entry function's type. `argv[0]` is the library's file name and
/// `argv[1..argc-1]` the program arguments; returns 0 when the pipeline is
/// built, non-zero (after `ctx.fail(why)`) when it cannot be. Exceptions
/// it throws are caught and reported as a failure to build the job.
using job_main_function = int(int argc, char** argv, job_context& ctx);

/// The entry symbol the JobManager looks up unless told another
/// (`sluice run -c NAME`, `entryClass` of `POST /jars/:id/run`).
inline constexpr const char* default_job_entry = "sluice_job_main";

} // namespace sluice

/// The entry a job library defines (C linkage, so its symbol is
/// `sluice_job_main`).
extern "C" int sluice_job_main(int argc, char** argv, sluice::job_context& ctx);
