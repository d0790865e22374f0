#include "cluster_commands.hpp"

#include "sluice/remote/cluster/job_library.hpp"
#include "sluice/remote/cluster/job_manager.hpp"
#include "sluice/remote/cluster/multipart.hpp"
#include "sluice/remote/cluster/rest_client.hpp"
#include "sluice/remote/cluster/task_manager.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/runtime/job_graph.hpp"
#include "sluice/runtime/settings.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <thread>

#include <signal.h>

namespace sluice::cli {

namespace {

using nlohmann::json;
using remote::cluster::rest_client;

/// How often the client asks while it waits for a job or a savepoint.
constexpr auto poll_interval = std::chrono::milliseconds(100);

int fail(const std::string& message) {
  std::cerr << "sluice: " << message << "\n";
  return 1;
}

std::optional<rest_client> connect(const job_manager_target& target, int& rc) {
  auto parsed = remote::cluster::parse_job_manager_url(target.address);
  if (!parsed) {
    rc = fail(remote::describe(parsed.error()));
    return std::nullopt;
  }
  return rest_client{std::move(*parsed), target.trust_cert_file};
}

/// A JSON reply with one of `ok` statuses; otherwise the error's message.
caf::expected<json> call(rest_client& client, const std::string& method,
                         const std::string& target, const std::string& body,
                         std::initializer_list<unsigned> ok,
                         const std::string& content_type = "application/json") {
  auto reply = client.request(method, target, body, content_type);
  if (!reply)
    return reply.error();
  bool accepted = false;
  for (auto s : ok)
    accepted = accepted || reply->status == s;
  if (!accepted)
    return remote::make_error(remote::remote_errc::http_status,
                              std::to_string(reply->status) + ": " +
                                remote::cluster::error_message(reply->body));
  if (reply->body.empty())
    return json::object();
  auto parsed = json::parse(reply->body, nullptr, false);
  if (parsed.is_discarded())
    return remote::make_error(remote::remote_errc::malformed_response,
                              "the JobManager answered " + target + " with malformed JSON");
  return parsed;
}

/// The job's current JSON (GET /jobs/:id); a 404 says the id is unknown.
caf::expected<json> job_details(rest_client& client, const std::string& job_id) {
  auto reply = client.request("GET", "/jobs/" + job_id);
  if (!reply)
    return reply.error();
  if (reply->status == 404)
    return remote::make_error(remote::remote_errc::invalid_request,
                              "unknown job id '" + job_id + "' (no such job on the JobManager at " +
                                client.address() + ")");
  if (reply->status != 200)
    return remote::make_error(remote::remote_errc::http_status,
                              remote::cluster::error_message(reply->body));
  auto parsed = json::parse(reply->body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object())
    return remote::make_error(remote::remote_errc::malformed_response,
                              "malformed answer to GET /jobs/" + job_id);
  return parsed;
}

bool is_terminal(const std::string& state) {
  return state == "FINISHED" || state == "FAILED" || state == "CANCELED";
}

/// Waits until the job is in a globally terminal state; its last details.
caf::expected<json> wait_until_ended(rest_client& client, const std::string& job_id,
                                     std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto details = job_details(client, job_id);
    if (!details)
      return details;
    if (is_terminal(details->value("state", "")))
      return details;
    if (std::chrono::steady_clock::now() >= deadline)
      return remote::make_error(remote::remote_errc::retries_exhausted,
                                "job " + job_id + " is still " + details->value("state", "") +
                                  " after " + std::to_string(timeout.count() / 1000) + " s");
    std::this_thread::sleep_for(poll_interval);
  }
}

std::string root_exception(rest_client& client, const std::string& job_id) {
  auto ex = call(client, "GET", "/jobs/" + job_id + "/exceptions", {}, {200});
  if (ex && ex->contains("root-exception") && (*ex)["root-exception"].is_string())
    return (*ex)["root-exception"].get<std::string>();
  return "unknown cause";
}

std::string format_time(int64_t epoch_ms) {
  std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%d.%m.%Y %H:%M:%S", &tm);
  return buf;
}

/// Polls a savepoint operation (savepoint or stop), printing a progress
/// line every second while it runs. Returns the location.
caf::expected<std::string> wait_for_savepoint(rest_client& client, const std::string& job_id,
                                              const std::string& trigger) {
  std::cout << "Waiting for response...\n" << std::flush;
  auto start = std::chrono::steady_clock::now();
  auto next_progress = start + std::chrono::seconds(1);
  for (;;) {
    auto status =
      call(client, "GET", "/jobs/" + job_id + "/savepoints/" + trigger, {}, {200});
    if (!status)
      return status.error();
    auto id = (*status)["status"].value("id", "");
    if (id == "COMPLETED") {
      const auto& op = (*status)["operation"];
      if (op.contains("location") && op["location"].is_string())
        return op["location"].get<std::string>();
      std::string cause = "unknown cause";
      if (op.contains("failure-cause") && op["failure-cause"].is_object())
        cause = op["failure-cause"].value("stack-trace", cause);
      return remote::make_error(remote::remote_errc::http_status, cause);
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= next_progress) {
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - start).count();
      std::cout << "Savepoint in progress for job " << job_id << " (" << secs << " s)...\n"
                << std::flush;
      next_progress += std::chrono::seconds(1);
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

} // namespace

int run_job_manager(const std::map<std::string, std::string>& settings) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto jm = remote::cluster::job_manager::start(settings);
  if (!jm) {
    std::cerr << "sluice: " << remote::describe(jm.error()) << "\n";
    return remote::is(jm.error(), remote::remote_errc::invalid_configuration) ? 2 : 1;
  }
  for (const auto& w : (*jm)->warnings())
    std::cerr << "sluice: warning: " << w << "\n";
  std::cout << "sluice: jobmanager REST API on " << ((*jm)->settings().rest_tls ? "https" : "http")
            << "://" << (*jm)->settings().rest_address << ":"
            << (*jm)->rest_port() << "\n"
            << "sluice: TaskManagers register at " << (*jm)->settings().rpc_address << ":"
            << (*jm)->rpc_port() << "\n"
            << "sluice: job libraries are kept in " << (*jm)->settings().upload_dir << "\n"
            << std::flush;
  timespec tick{0, 200 * 1000 * 1000};
  for (;;) {
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cout << "sluice: stopping the jobmanager\n" << std::flush;
      (*jm)->stop();
      return 0;
    }
  }
}

int run_task_manager(const std::map<std::string, std::string>& settings) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::vector<std::string> warnings;
  remote::cluster::task_manager_settings tms;
  try {
    tms = remote::cluster::read_task_manager_settings(settings, warnings);
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 2;
  }
  for (const auto& w : warnings)
    std::cerr << "sluice: warning: " << w << "\n";
  auto tm = remote::cluster::task_manager::start(tms, [](const std::string& line) {
    std::cerr << ("sluice: taskmanager: " + line + "\n") << std::flush;
  });
  if (!tm) {
    std::cerr << "sluice: " << remote::describe(tm.error()) << "\n";
    return remote::is(tm.error(), remote::remote_errc::invalid_configuration) ? 2 : 1;
  }
  std::cout << "sluice: taskmanager " << (*tm)->id() << " (" << tms.slots
            << " slots) registering at the JobManager at " << tms.job_manager_address << ":"
            << tms.job_manager_port << "\n"
            << std::flush;
  timespec tick{0, 200 * 1000 * 1000};
  for (;;) {
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cout << "sluice: stopping the taskmanager\n" << std::flush;
      (*tm)->stop();
      return 0;
    }
  }
}

namespace {

/// A path as Flink prints savepoint locations (`file:` URIs) or a plain path.
std::string local_path(const std::string& p) {
  if (p.rfind("file://", 0) == 0)
    return p.substr(7);
  if (p.rfind("file:", 0) == 0)
    return p.substr(5);
  return p;
}

} // namespace

int print_job_info(const info_options& options) {
  runtime::configuration config;
  auto job_settings = options.settings;
  for (const auto& key : remote::cluster::job_manager_keys())
    job_settings.erase(key);
  try {
    for (const auto& w : runtime::apply_settings(config, job_settings))
      std::cerr << "sluice: warning: " << w << "\n";
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 2;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(options.library, ec))
    return fail("cannot read job library '" + options.library + "'");
  remote::cluster::job_run_request request;
  request.entry = options.entry;
  request.args = options.args;
  request.parallelism = options.parallelism;
  auto name = options.library.substr(options.library.rfind('/') + 1);
  auto job = remote::cluster::build_job_library(options.library, name, request, config);
  if (!job)
    return fail(remote::describe(job.error()));
  std::cout << "----------------------- Execution Plan -----------------------\n"
            << job->graph->plan_json() << "\n"
            << "--------------------------------------------------------------\n";
  return 0;
}

int dispose_savepoint(const std::string& path) {
  auto dir = local_path(path);
  std::cout << "Disposing savepoint '" << path << "'.\n" << std::flush;
  try {
    // Reads the _metadata first: a directory that is no savepoint is left alone.
    runtime::dispose_savepoint(dir);
  } catch (const std::exception& e) {
    return fail("could not dispose savepoint '" + path + "': " + e.what());
  }
  std::cout << "Savepoint '" << path << "' disposed.\n";
  return 0;
}

int run_job(const run_options& options) {
  int rc = 0;
  auto client = connect(options.job_manager, rc);
  if (!client)
    return rc;
  std::ifstream in(options.library, std::ios::binary);
  if (!in)
    return fail("cannot read job library '" + options.library + "'");
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  remote::cluster::form_file file;
  file.field = "jarfile";
  file.file_name = options.library.substr(options.library.rfind('/') + 1);
  file.bytes = std::move(bytes);
  std::string content_type;
  auto body = remote::cluster::encode_form_file(file, content_type);
  auto uploaded = call(*client, "POST", "/jars/upload", body, {200}, content_type);
  if (!uploaded)
    return fail("cannot upload '" + options.library + "': " + remote::describe(uploaded.error()));
  auto stored = uploaded->value("filename", "");
  auto jar_id = stored.substr(stored.rfind('/') + 1);
  json request{{"programArgsList", options.args},
               {"allowNonRestoredState", options.allow_non_restored_state}};
  if (options.parallelism > 0)
    request["parallelism"] = options.parallelism;
  if (!options.savepoint.empty())
    request["savepointPath"] = options.savepoint;
  if (!options.entry.empty())
    request["entryClass"] = options.entry;
  auto ran = call(*client, "POST", "/jars/" + jar_id + "/run", request.dump(), {200});
  // The library is loaded (or failed to): the JobManager needs its file no more.
  (void) client->request("DELETE", "/jars/" + jar_id);
  if (!ran)
    return fail("could not run '" + options.library + "': " + remote::describe(ran.error()));
  auto job_id = ran->value("jobid", "");
  std::cout << "Job has been submitted with JobID " << job_id << "\n" << std::flush;
  if (options.detached)
    return 0;
  auto ended = wait_until_ended(*client, job_id, std::chrono::hours(24 * 365));
  if (!ended)
    return fail(remote::describe(ended.error()));
  auto state = ended->value("state", "");
  if (state == "FINISHED") {
    std::cout << "Program execution finished\n"
              << "Job with JobID " << job_id << " has finished.\n"
              << "Job Runtime: " << ended->value("duration", int64_t{0}) << " ms\n";
    return 0;
  }
  return fail("job " + job_id + " " + state +
              (state == "FAILED" ? ": " + root_exception(*client, job_id) : std::string()));
}

int list_jobs(const job_manager_target& job_manager, const std::string& which) {
  int rc = 0;
  auto client = connect(job_manager, rc);
  if (!client)
    return rc;
  std::cout << "Waiting for response...\n" << std::flush;
  auto overview = call(*client, "GET", "/jobs/overview", {}, {200});
  if (!overview)
    return fail(remote::describe(overview.error()));
  std::vector<json> running, scheduled, terminated;
  for (const auto& j : (*overview)["jobs"]) {
    auto state = j.value("state", "");
    if (state == "CREATED" || state == "INITIALIZING")
      scheduled.push_back(j);
    else if (is_terminal(state))
      terminated.push_back(j);
    else
      running.push_back(j);
  }
  auto line = [](const json& j) {
    std::cout << format_time(j.value("start-time", int64_t{0})) << " : " << j.value("jid", "")
              << " : " << j.value("name", "") << " (" << j.value("state", "") << ")\n";
  };
  auto section = [&](const char* title, const std::vector<json>& jobs, const char* none) {
    if (jobs.empty()) {
      std::cout << none << "\n";
      return;
    }
    std::cout << title << "\n";
    for (const auto& j : jobs)
      line(j);
    std::cout << "--------------------------------------------------------------\n";
  };
  bool all = which == "all";
  if (which.empty() || all || which == "running")
    section("------------------ Running/Restarting Jobs -------------------", running,
            "No running jobs.");
  if (which.empty() || all || which == "scheduled")
    section("----------------------- Scheduled Jobs -----------------------", scheduled,
            "No scheduled jobs.");
  if (all)
    section("---------------------- Terminated Jobs -----------------------", terminated,
            "No terminated jobs.");
  return 0;
}

int cancel_job(const job_manager_target& job_manager, const std::string& job_id) {
  int rc = 0;
  auto client = connect(job_manager, rc);
  if (!client)
    return rc;
  if (auto details = job_details(*client, job_id); !details)
    return fail(remote::describe(details.error()));
  std::cout << "Cancelling job " << job_id << ".\n" << std::flush;
  auto cancelled = call(*client, "PATCH", "/jobs/" + job_id + "?mode=cancel", {}, {200, 202});
  if (!cancelled)
    return fail("cannot cancel job " + job_id + ": " + remote::describe(cancelled.error()));
  auto ended = wait_until_ended(*client, job_id, std::chrono::seconds(60));
  if (!ended)
    return fail(remote::describe(ended.error()));
  std::cout << "Cancelled job " << job_id << ".\n";
  return 0;
}

namespace {

/// The common steps of stop and savepoint: check the job exists, print
/// `intro`, trigger the operation at `target` with `body`, and wait for the
/// savepoint's location, printed after "Savepoint completed. Path: ".
int savepoint_operation(const job_manager_target& job_manager, const std::string& job_id,
                        const std::string& intro, const std::string& target, const json& body,
                        const std::string& what) {
  int rc = 0;
  auto client = connect(job_manager, rc);
  if (!client)
    return rc;
  if (auto details = job_details(*client, job_id); !details)
    return fail(remote::describe(details.error()));
  std::cout << intro << "\n" << std::flush;
  auto triggered = call(*client, "POST", "/jobs/" + job_id + target, body.dump(), {200, 202});
  if (!triggered)
    return fail("cannot " + what + ": " + remote::describe(triggered.error()));
  auto location = wait_for_savepoint(*client, job_id, triggered->value("request-id", ""));
  if (!location)
    return fail("could not " + what + ": " + remote::describe(location.error()));
  std::cout << "Savepoint completed. Path: " << *location << "\n";
  return 0;
}

} // namespace

int stop_job(const job_manager_target& job_manager, const std::string& job_id, bool drain,
             const std::string& directory) {
  json body{{"drain", drain}};
  if (!directory.empty())
    body["targetDirectory"] = directory;
  return savepoint_operation(job_manager, job_id,
                             "Suspending job \"" + job_id + "\" with a savepoint.", "/stop", body,
                             "stop job " + job_id);
}

int savepoint_job(const job_manager_target& job_manager, const std::string& job_id,
                  const std::string& directory) {
  json body{{"cancel-job", false}};
  if (!directory.empty())
    body["target-directory"] = directory;
  auto rc = savepoint_operation(job_manager, job_id,
                                "Triggering savepoint for job " + job_id + ".", "/savepoints",
                                body, "take a savepoint of job " + job_id);
  if (rc == 0)
    std::cout << "You can resume your program from this savepoint with the run command.\n";
  return rc;
}

} // namespace sluice::cli
