#include "sluice/runtime/job.hpp"

#include <mutex>
#include <stdexcept>

namespace sluice::runtime {

const char* to_string(job_status s) noexcept {
  switch (s) {
    case job_status::initializing:
      return "INITIALIZING";
    case job_status::created:
      return "CREATED";
    case job_status::running:
      return "RUNNING";
    case job_status::failing:
      return "FAILING";
    case job_status::failed:
      return "FAILED";
    case job_status::cancelling:
      return "CANCELLING";
    case job_status::canceled:
      return "CANCELED";
    case job_status::finished:
      return "FINISHED";
    case job_status::restarting:
      return "RESTARTING";
    case job_status::suspended:
      return "SUSPENDED";
    case job_status::reconciling:
      return "RECONCILING";
  }
  return "UNKNOWN";
}

bool is_globally_terminal(job_status s) noexcept {
  return s == job_status::finished || s == job_status::failed || s == job_status::canceled;
}

const char* to_string(execution_state s) noexcept {
  switch (s) {
    case execution_state::created:
      return "CREATED";
    case execution_state::scheduled:
      return "SCHEDULED";
    case execution_state::deploying:
      return "DEPLOYING";
    case execution_state::running:
      return "RUNNING";
    case execution_state::finished:
      return "FINISHED";
    case execution_state::canceling:
      return "CANCELING";
    case execution_state::canceled:
      return "CANCELED";
    case execution_state::failed:
      return "FAILED";
  }
  return "UNKNOWN";
}

std::vector<subtask_metrics> job_metrics::of_task(const std::string& fragment) const {
  std::vector<subtask_metrics> out;
  for (const auto& s : subtasks)
    if (s.task.find(fragment) != std::string::npos)
      out.push_back(s);
  return out;
}

namespace {
std::mutex factory_mtx;
std::function<std::shared_ptr<job_executor>()>& factory_slot() {
  static std::function<std::shared_ptr<job_executor>()> f;
  return f;
}
} // namespace

void set_default_executor_factory(std::function<std::shared_ptr<job_executor>()> factory) {
  std::lock_guard<std::mutex> guard(factory_mtx);
  factory_slot() = std::move(factory);
}

std::shared_ptr<job_executor> make_default_executor() {
  std::lock_guard<std::mutex> guard(factory_mtx);
  if (!factory_slot())
    throw std::logic_error("no job executor registered: include \"sluice/sluice.hpp\" and link "
                           "sluice::actors to run jobs on the local mini-cluster");
  return factory_slot()();
}

} // namespace sluice::runtime

namespace sluice::runtime {

namespace {
[[noreturn]] void unsupported(const char* what) {
  throw std::logic_error(std::string("this job client does not support ") + what);
}
} // namespace

std::string job_client::trigger_savepoint(const std::string&) { unsupported("savepoints"); }
std::string job_client::stop_with_savepoint(const std::string&, bool) {
  unsupported("savepoints");
}
std::string job_client::cancel_with_savepoint(const std::string&) { unsupported("savepoints"); }
std::string job_client::checkpoint_stats_json() { return "{}"; }
void job_client::kill_subtask(int32_t, int32_t) { unsupported("fault injection"); }
state_query_result job_client::query_state(const std::string&, const std::string&,
                                           std::chrono::milliseconds) {
  return {state_query_status::failed, "this job client cannot query state"};
}

} // namespace sluice::runtime
