#include "sluice/remote/rest/rest_api.hpp"

#include "sluice/remote/rest/dashboard.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif
#ifndef SLUICE_COMMIT
#define SLUICE_COMMIT "unknown"
#endif

namespace sluice::remote::rest {

using nlohmann::json;
using runtime::execution_state;
using runtime::job_status;

namespace {

constexpr execution_state all_execution_states[] = {
  execution_state::created,  execution_state::scheduled, execution_state::deploying,
  execution_state::running,  execution_state::finished,  execution_state::canceling,
  execution_state::canceled, execution_state::failed};

constexpr job_status all_job_statuses[] = {
  job_status::initializing, job_status::created,    job_status::running,   job_status::failing,
  job_status::failed,       job_status::cancelling, job_status::canceled,  job_status::finished,
  job_status::restarting,   job_status::suspended,  job_status::reconciling};

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string random_trigger_id() {
  static std::mutex mtx;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> guard(mtx);
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 32; ++i)
    out += digits[rng() % 16];
  return out;
}

int64_t duration_ms(const actors::job_info& j, int64_t now) {
  return (j.end_ms >= 0 ? j.end_ms : now) - j.start_ms;
}

int64_t last_modification(const actors::job_info& j) {
  int64_t t = j.start_ms;
  for (const auto& [s, at] : j.status_times)
    t = std::max(t, at);
  return t;
}

/// Subtask counts per execution state.
std::map<execution_state, int32_t> count_states(const std::vector<actors::subtask_info>& subs) {
  std::map<execution_state, int32_t> counts;
  for (auto s : all_execution_states)
    counts[s] = 0;
  for (const auto& s : subs)
    ++counts[s.metrics.state];
  return counts;
}

/// A vertex's state from its subtasks' (as Flink aggregates them).
execution_state aggregate_state(const std::map<execution_state, int32_t>& c, size_t total) {
  auto n = [&](execution_state s) { return c.at(s); };
  if (n(execution_state::failed) > 0)
    return execution_state::failed;
  if (n(execution_state::canceling) > 0)
    return execution_state::canceling;
  if (n(execution_state::canceled) > 0)
    return execution_state::canceled;
  if (n(execution_state::running) > 0)
    return execution_state::running;
  if (static_cast<size_t>(n(execution_state::finished)) == total && total > 0)
    return execution_state::finished;
  if (n(execution_state::deploying) > 0)
    return execution_state::deploying;
  if (n(execution_state::scheduled) > 0)
    return execution_state::scheduled;
  return execution_state::created;
}

std::vector<actors::subtask_info> subtasks_of(const actors::job_info& j, const std::string& vid) {
  std::vector<actors::subtask_info> out;
  for (const auto& s : j.subtasks)
    if (s.metrics.vertex_id == vid)
      out.push_back(s);
  return out;
}

json tasks_lowercase(const std::vector<actors::subtask_info>& subs) {
  json t = json::object();
  size_t total = 0;
  for (const auto& [s, n] : count_states(subs)) {
    t[lower(runtime::to_string(s))] = n;
    total += static_cast<size_t>(n);
  }
  t["reconciling"] = 0;
  t["initializing"] = 0;
  t["total"] = total;
  return t;
}

json job_overview_json(const actors::job_info& j, int64_t now) {
  return {{"jid", j.id},
          {"name", j.name},
          {"state", runtime::to_string(j.status)},
          {"start-time", j.start_ms},
          {"end-time", j.end_ms},
          {"duration", duration_ms(j, now)},
          {"last-modification", last_modification(j)},
          {"tasks", tasks_lowercase(j.subtasks)}};
}

json vertex_json(const actors::job_info& j, const actors::vertex_info& v, int64_t now) {
  auto subs = subtasks_of(j, v.id);
  auto counts = count_states(subs);
  json tasks = json::object();
  for (const auto& [s, n] : counts)
    tasks[runtime::to_string(s)] = n;
  int64_t start = -1, end = -1;
  bool all_ended = !subs.empty();
  uint64_t in = 0, out = 0;
  for (const auto& s : subs) {
    if (s.start_ms >= 0)
      start = start < 0 ? s.start_ms : std::min(start, s.start_ms);
    if (s.end_ms < 0)
      all_ended = false;
    else
      end = std::max(end, s.end_ms);
    in += s.metrics.records_in;
    out += s.metrics.records_out;
  }
  if (!all_ended)
    end = -1;
  int64_t duration = start < 0 ? -1 : (end >= 0 ? end : now) - start;
  return {{"id", v.id},
          {"name", v.name},
          {"maxParallelism", v.max_parallelism},
          {"parallelism", v.parallelism},
          {"status", runtime::to_string(aggregate_state(counts, subs.size()))},
          {"start-time", start},
          {"end-time", end},
          {"duration", duration},
          {"tasks", tasks},
          // Records are counted; bytes are not measured in-process yet.
          {"metrics",
           {{"read-bytes", 0},
            {"read-bytes-complete", false},
            {"write-bytes", 0},
            {"write-bytes-complete", false},
            {"read-records", in},
            {"read-records-complete", true},
            {"write-records", out},
            {"write-records-complete", true}}}};
}

json job_details_json(const actors::job_info& j, int64_t now) {
  json vertices = json::array();
  std::map<std::string, int32_t> status_counts;
  for (auto s : all_execution_states)
    status_counts[runtime::to_string(s)] = 0;
  for (const auto& v : j.vertices) {
    auto vj = vertex_json(j, v, now);
    ++status_counts[vj["status"].get<std::string>()];
    vertices.push_back(std::move(vj));
  }
  json timestamps = json::object();
  for (auto s : all_job_statuses) {
    auto it = j.status_times.find(s);
    timestamps[runtime::to_string(s)] = it == j.status_times.end() ? 0 : it->second;
  }
  json plan = json::parse(j.plan_json, nullptr, false);
  if (plan.is_discarded())
    plan = json::object();
  return {{"jid", j.id},
          {"name", j.name},
          {"isStoppable", false},
          {"state", runtime::to_string(j.status)},
          {"job-type", "STREAMING"},
          {"start-time", j.start_ms},
          {"end-time", j.end_ms},
          {"duration", duration_ms(j, now)},
          {"maxParallelism", -1},
          {"now", now},
          {"timestamps", timestamps},
          {"vertices", vertices},
          {"status-counts", status_counts},
          {"plan", plan}};
}

json exceptions_json(const actors::job_info& j) {
  json entries = json::array();
  // Newest first, as Flink lists them.
  for (auto it = j.failures.rbegin(); it != j.failures.rend(); ++it)
    entries.push_back({{"exceptionName", "sluice::job_failure"},
                       {"stacktrace", it->message},
                       {"timestamp", it->timestamp_ms},
                       {"taskName", nullptr},
                       {"endpoint", nullptr},
                       {"taskManagerId", nullptr},
                       {"failureLabels", json::object()},
                       {"concurrentExceptions", json::array()}});
  json root = nullptr, when = nullptr;
  if (j.status == job_status::failed && !j.error.empty()) {
    root = j.error;
    when = j.end_ms;
  } else if (!j.failures.empty()) {
    root = j.failures.back().message;
    when = j.failures.back().timestamp_ms;
  }
  bool truncated = j.failures_dropped > 0;
  return {{"root-exception", root},
          {"timestamp", when},
          {"all-exceptions", json::array()},
          {"truncated", truncated},
          {"exceptionHistory", {{"entries", entries}, {"truncated", truncated}}}};
}

json checkpoint_config_json(const actors::job_info& j) {
  const auto& c = j.checkpoints;
  bool externalized = c.retention != runtime::externalized_retention::none;
  return {{"mode", c.mode == runtime::checkpointing_mode::exactly_once ? "exactly_once"
                                                                      : "at_least_once"},
          {"interval", c.interval.count()},
          {"timeout", c.timeout.count()},
          {"min_pause", c.min_pause.count()},
          {"max_concurrent", c.max_concurrent},
          {"externalization",
           {{"enabled", externalized},
            {"delete_on_cancellation",
             c.retention == runtime::externalized_retention::delete_on_cancellation}}},
          {"state_backend", j.state_backend},
          {"checkpoint_storage", "FileSystemCheckpointStorage"},
          {"unaligned_checkpoints", c.unaligned},
          {"tolerable_failed_checkpoints", c.tolerable_failed},
          {"aligned_checkpoint_timeout", c.aligned_checkpoint_timeout.count()},
          {"checkpoints_after_tasks_finish", true},
          {"state_changelog_enabled", false}};
}

const char* backpressure_level(double ratio) {
  if (ratio <= 0.10)
    return "ok";
  if (ratio <= 0.5)
    return "low";
  return "high";
}

int level_rank(const std::string& l) {
  return l == "high" ? 2 : l == "low" ? 1 : 0;
}

/// One entry of GET /taskmanagers. In-process TaskManagers show this
/// process's hardware and `now` as their last heartbeat (they are never out
/// of touch); TaskManager processes show what they registered with. As in
/// Flink, timeSinceLastHeartbeat holds the time of the last heartbeat.
json task_manager_json(const actors::task_manager_info& tm, int64_t now, int64_t cores,
                       int64_t physical, int64_t available) {
  bool process = tm.last_heartbeat_ms >= 0;
  return json{{"id", tm.id},
              {"path", tm.path.empty() ? "local://" + tm.id : tm.path},
              {"dataPort", tm.data_port},
              {"jmxPort", -1},
              {"timeSinceLastHeartbeat", process ? tm.last_heartbeat_ms : now},
              {"slotsNumber", tm.slots},
              {"freeSlots", tm.free_slots},
              {"hardware",
               {{"cpuCores", process ? tm.cpu_cores : cores},
                {"physicalMemory", process ? tm.physical_memory : physical},
                {"freeMemory", process ? tm.free_memory : available},
                {"managedMemory", 0}}}};
}

json backpressure_json(const actors::job_info& j, const std::string& vid, int64_t now) {
  auto subs = subtasks_of(j, vid);
  json list = json::array();
  std::string level = "ok";
  bool measured = false;
  for (const auto& s : subs) {
    const auto& m = s.metrics;
    measured = measured || s.start_ms >= 0;
    double ratio = m.backpressured_ms_per_second / 1000.0;
    std::string l = backpressure_level(ratio);
    if (level_rank(l) > level_rank(level))
      level = l;
    list.push_back({{"subtask", m.subtask},
                    {"attempt-number", j.restarts},
                    {"backpressure-level", l},
                    {"ratio", ratio},
                    {"idleRatio", m.idle_ms_per_second / 1000.0},
                    {"busyRatio", m.busy_ms_per_second / 1000.0}});
  }
  // Flink answers "deprecated" while no subtask has reported yet.
  return {{"status", measured ? "ok" : "deprecated"},
          {"backpressure-level", level},
          {"end-timestamp", now},
          {"subtasks", list}};
}

std::string prometheus_escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"')
      out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

/// Accumulates Prometheus text exposition, one HELP/TYPE block per name.
class prometheus_text {
public:
  void add(const std::string& name, const std::string& help, const std::string& labels,
           double value) {
    auto& fam = families_[name];
    fam.help = help;
    std::ostringstream line;
    line.precision(17);
    line << name;
    if (!labels.empty())
      line << '{' << labels << '}';
    line << ' ' << value << '\n';
    fam.lines += line.str();
  }
  std::string str() const {
    std::string out;
    for (const auto& [name, fam] : families_) {
      out += "# HELP " + name + " " + fam.help + "\n";
      out += "# TYPE " + name + " gauge\n";
      out += fam.lines;
    }
    return out;
  }

private:
  struct family {
    std::string help;
    std::string lines;
  };
  std::map<std::string, family> families_;
};

} // namespace

// -- asynchronous operations ------------------------------------------------------

struct rest_api::state {
  /// One savepoint or stop-with-savepoint request.
  struct operation {
    std::string job_id;
    bool done = false;
    std::string location;
    std::string failure;
  };

  std::shared_ptr<const actors::cluster_view> view;
  std::shared_ptr<router> routes = std::make_shared<router>();

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<std::function<void(bool stopping)>> queue;
  size_t max_queued = 64;
  /// Where savepoints without a target directory go (empty = the job's
  /// default).
  std::string default_savepoint_dir;
  bool stopping = false;
  std::vector<std::thread> workers;
  std::map<std::string, operation> operations; ///< by trigger id
  std::deque<std::string> finished_order;      ///< to bound `operations`
  static constexpr size_t max_kept_operations = 1000;

  void work() {
    for (;;) {
      std::function<void(bool)> job;
      bool stop_now = false;
      {
        std::unique_lock<std::mutex> lock(mtx);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty())
          return;
        job = std::move(queue.front());
        queue.pop_front();
        stop_now = stopping;
      }
      job(stop_now);
    }
  }

  void finish(const std::string& trigger, std::string location, std::string failure) {
    std::lock_guard<std::mutex> guard(mtx);
    auto& op = operations[trigger];
    op.done = true;
    op.location = std::move(location);
    op.failure = std::move(failure);
    finished_order.push_back(trigger);
    while (finished_order.size() > max_kept_operations) {
      operations.erase(finished_order.front());
      finished_order.pop_front();
    }
  }

  /// Starts `run` (returns the savepoint path or throws) as operation
  /// `trigger` of `job`; 202 with the trigger id, or an error response.
  rest_response start_operation(const std::string& job, std::string trigger,
                                std::function<std::string()> run) {
    {
      std::lock_guard<std::mutex> guard(mtx);
      if (operations.count(trigger))
        return error_response(409, "trigger id " + trigger + " is already in use");
      if (stopping)
        return error_response(503, "the REST server is stopping");
      if (queue.size() >= max_queued)
        return error_response(503, "too many savepoint operations queued (" +
                                     std::to_string(max_queued) + "); retry later");
      operations[trigger] = operation{job, false, {}, {}};
      queue.push_back([this, trigger, run = std::move(run)](bool stop_now) {
        if (stop_now) {
          finish(trigger, {}, "the REST server stopped before the operation started");
          return;
        }
        try {
          finish(trigger, run(), {});
        } catch (const std::exception& e) {
          finish(trigger, {}, e.what());
        } catch (...) {
          finish(trigger, {}, "unknown error");
        }
      });
    }
    cv.notify_one();
    return json_response(202, json{{"request-id", trigger}}.dump());
  }

  void stop() {
    {
      std::lock_guard<std::mutex> guard(mtx);
      stopping = true;
    }
    cv.notify_all();
    for (auto& t : workers)
      if (t.joinable())
        t.join();
  }
};

namespace {

using api_state = rest_api::state;

/// The job named by `:jobid`, or a 404 response.
std::optional<actors::job_info> find_job(const api_state& st, const rest_request& req,
                                         rest_response& not_found) {
  const auto& id = req.params.at("jobid");
  auto j = st.view->job(id);
  if (!j)
    not_found = error_response(404, "job " + id + " not found");
  return j;
}

/// Parses a request body that must be a JSON object (empty = {}).
std::optional<json> parse_body(const rest_request& req, rest_response& bad) {
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos)
    return json::object();
  auto body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    bad = error_response(400, "request body is not valid JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    bad = error_response(400, "request body must be a JSON object");
    return std::nullopt;
  }
  return body;
}

/// Reads an optional field of type `T`; false (with a 400 in `bad`) if it
/// is present with another type.
template <class T>
bool optional_field(const json& body, const char* name, T& out, rest_response& bad) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return true;
  bool ok = false;
  if constexpr (std::is_same_v<T, bool>)
    ok = it->is_boolean();
  else
    ok = it->is_string();
  if (!ok) {
    bad = error_response(400, std::string("field '") + name + "' must be a " +
                                (std::is_same_v<T, bool> ? "boolean" : "string"));
    return false;
  }
  out = it->get<T>();
  return true;
}

bool valid_trigger_id(const std::string& id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

/// What savepoint and stop requests share: a target directory and a flag
/// (under names that differ per endpoint, as in Flink), a trigger id and a
/// format. False with `bad` set when a field is wrong.
struct savepoint_fields {
  std::string target;
  bool flag = false;
  std::string trigger = random_trigger_id();
};

bool read_savepoint_fields(const api_state& st, const json& body, const char* dir_key,
                           const char* flag_key, savepoint_fields& out, rest_response& bad) {
  std::string format = "CANONICAL";
  if (!optional_field(body, dir_key, out.target, bad) ||
      !optional_field(body, flag_key, out.flag, bad) ||
      !optional_field(body, "triggerId", out.trigger, bad) ||
      !optional_field(body, "formatType", format, bad))
    return false;
  if (out.target.empty())
    out.target = st.default_savepoint_dir;
  if (!valid_trigger_id(out.trigger)) {
    bad = error_response(400, "triggerId must be 32 lower-case hex digits");
    return false;
  }
  if (format != "CANONICAL") {
    bad = error_response(400, "formatType " + format + " is not supported (use CANONICAL)");
    return false;
  }
  return true;
}

/// The running job's client for an operation, or an error response.
std::shared_ptr<runtime::job_client> running_client(const api_state& st,
                                                    const actors::job_info& j,
                                                    const char* what, rest_response& bad) {
  if (runtime::is_globally_terminal(j.status)) {
    bad = error_response(409, std::string("cannot ") + what + " job " + j.id + ": it is " +
                                runtime::to_string(j.status));
    return nullptr;
  }
  auto client = st.view->client(j.id);
  if (!client)
    bad = error_response(409, std::string("cannot ") + what + " job " + j.id +
                                ": its client has ended");
  return client;
}

void add_routes(const std::shared_ptr<api_state>& shared) {
  auto* st = shared.get(); // the state outlives its router's handlers
  auto& r = *st->routes;

  r.add("GET", "/config", [](const rest_request&) {
    return json_response(200, json{{"refresh-interval", 3000},
                                   {"timezone-name", "UTC"},
                                   {"timezone-offset", 0},
                                   {"flink-version", SLUICE_VERSION},
                                   {"flink-revision", SLUICE_COMMIT},
                                   {"features",
                                    {{"web-submit", false},
                                     {"web-cancel", true},
                                     {"web-rescale", false},
                                     {"web-history", false}}}}
                                .dump());
  });

  r.add("GET", "/overview", [st](const rest_request&) {
    auto tms = st->view->task_managers();
    int64_t total = 0, free = 0;
    for (const auto& tm : tms) {
      total += tm.slots;
      free += tm.free_slots;
    }
    int64_t running = 0, finished = 0, cancelled = 0, failed = 0;
    for (const auto& j : st->view->jobs()) {
      switch (j.status) {
        case job_status::finished:
          ++finished;
          break;
        case job_status::canceled:
          ++cancelled;
          break;
        case job_status::failed:
          ++failed;
          break;
        default:
          ++running;
      }
    }
    return json_response(200, json{{"taskmanagers", tms.size()},
                                   {"slots-total", total},
                                   {"slots-available", free},
                                   {"jobs-running", running},
                                   {"jobs-finished", finished},
                                   {"jobs-cancelled", cancelled},
                                   {"jobs-failed", failed},
                                   {"flink-version", SLUICE_VERSION},
                                   {"flink-commit", SLUICE_COMMIT}}
                                .dump());
  });

  r.add("GET", "/jobs", [st](const rest_request&) {
    json jobs = json::array();
    for (const auto& j : st->view->jobs())
      jobs.push_back({{"id", j.id}, {"status", runtime::to_string(j.status)}});
    return json_response(200, json{{"jobs", jobs}}.dump());
  });

  r.add("GET", "/jobs/overview", [st](const rest_request&) {
    auto now = actors::wall_now_ms();
    json jobs = json::array();
    for (const auto& j : st->view->jobs())
      jobs.push_back(job_overview_json(j, now));
    return json_response(200, json{{"jobs", jobs}}.dump());
  });

  r.add("GET", "/jobs/:jobid", [st](const rest_request& req) {
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    return json_response(200, job_details_json(*j, actors::wall_now_ms()).dump());
  });

  r.add("PATCH", "/jobs/:jobid", [st](const rest_request& req) {
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    auto mode = req.query.find("mode");
    if (mode == req.query.end() || mode->second != "cancel")
      return error_response(400, "query parameter mode must be 'cancel' (use POST "
                                 "/jobs/:jobid/stop to stop with a savepoint)");
    if (j->status == job_status::canceled || j->status == job_status::cancelling)
      return json_response(202, "");
    auto client = running_client(*st, *j, "cancel", err);
    if (!client)
      return err;
    client->cancel();
    return json_response(202, "");
  });

  r.add("GET", "/jobs/:jobid/exceptions", [st](const rest_request& req) {
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    return json_response(200, exceptions_json(*j).dump());
  });

  // Queryable state. The I/O thread waits for the answer: one message to
  // the JobMaster and one to each subtask of the operator's vertex, normally
  // a few milliseconds; at most the timeout when a subtask is stuck.
  r.add("GET", "/jobs/:jobid/state/:uid/:key", [st](const rest_request& req) {
    using runtime::state_query_status;
    constexpr std::chrono::seconds timeout{10};
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    const auto& uid = req.params.at("uid");
    const auto& key = req.params.at("key");
    auto client = j->status == job_status::running ? st->view->client(j->id) : nullptr;
    if (!client)
      return error_response(409, "the job is not running");
    auto r = client->query_state(uid, key, timeout);
    switch (r.status) {
      case state_query_status::ok:
        return json_response(200, std::move(r.body));
      case state_query_status::unknown_uid:
        return error_response(404, "job " + j->id + " has no operator with uid '" + uid +
                                     "' (its operator uids: " + r.body + ")");
      case state_query_status::no_keyed_state:
        return error_response(400, "operator '" + uid + "' has no keyed state");
      case state_query_status::key_type_unreadable:
        return error_response(400, "the key type of operator '" + uid +
                                     "' cannot be read from a URL");
      case state_query_status::bad_key:
        return error_response(400, "key '" + key + "' is not a " + r.body +
                                     " (the key type of operator '" + uid + "')");
      case state_query_status::not_running:
        return error_response(409, "the job is not running");
      case state_query_status::timeout:
        return error_response(503, "operator '" + uid + "' did not answer within " +
                                     std::to_string(timeout.count()) + " s");
      case state_query_status::not_owner:
      case state_query_status::failed:
        break;
    }
    return error_response(500, "cannot read the state of operator '" + uid + "': " + r.body);
  });

  r.add("GET", "/jobs/:jobid/checkpoints", [st](const rest_request& req) {
    const auto& id = req.params.at("jobid");
    auto stats = st->view->checkpoint_stats_json(id);
    if (!stats)
      return error_response(404, "job " + id + " not found");
    return json_response(200, std::move(*stats));
  });

  r.add("GET", "/jobs/:jobid/checkpoints/config", [st](const rest_request& req) {
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    if (!j->checkpoints.enabled())
      return error_response(404, "checkpointing is not enabled for job " + j->id);
    return json_response(200, checkpoint_config_json(*j).dump());
  });

  r.add("POST", "/jobs/:jobid/savepoints", [st](const rest_request& req) {
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    auto body = parse_body(req, err);
    if (!body)
      return err;
    savepoint_fields f;
    if (!read_savepoint_fields(*st, *body, "target-directory", "cancel-job", f, err))
      return err;
    auto client = running_client(*st, *j, "take a savepoint of", err);
    if (!client)
      return err;
    return st->start_operation(j->id, f.trigger, [client, target = f.target, cancel = f.flag] {
      return cancel ? client->cancel_with_savepoint(target) : client->trigger_savepoint(target);
    });
  });

  r.add("POST", "/jobs/:jobid/stop", [st](const rest_request& req) {
    rest_response err;
    auto j = find_job(*st, req, err);
    if (!j)
      return err;
    auto body = parse_body(req, err);
    if (!body)
      return err;
    savepoint_fields f;
    if (!read_savepoint_fields(*st, *body, "targetDirectory", "drain", f, err))
      return err;
    auto client = running_client(*st, *j, "stop", err);
    if (!client)
      return err;
    return st->start_operation(j->id, f.trigger, [client, target = f.target, drain = f.flag] {
      return client->stop_with_savepoint(target, drain);
    });
  });

  r.add("GET", "/jobs/:jobid/savepoints/:triggerid", [st](const rest_request& req) {
    const auto& id = req.params.at("jobid");
    const auto& trigger = req.params.at("triggerid");
    if (!st->view->job(id))
      return error_response(404, "job " + id + " not found");
    api_state::operation op;
    {
      std::lock_guard<std::mutex> guard(st->mtx);
      auto it = st->operations.find(trigger);
      if (it == st->operations.end() || it->second.job_id != id)
        return error_response(404, "no savepoint operation " + trigger + " for job " + id);
      op = it->second;
    }
    if (!op.done)
      return json_response(200, json{{"status", {{"id", "IN_PROGRESS"}}}}.dump());
    json operation;
    if (op.failure.empty())
      operation = {{"location", op.location}};
    else
      operation = {{"failure-cause",
                    {{"class", "sluice::runtime::checkpoint_error"},
                     {"stack-trace", op.failure},
                     {"serialized-throwable", op.failure}}}};
    return json_response(200,
                         json{{"status", {{"id", "COMPLETED"}}}, {"operation", operation}}.dump());
  });

  r.add("GET", "/taskmanagers", [st](const rest_request&) {
    auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
    auto page = static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
    int64_t physical = page * static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES));
    int64_t available = page * static_cast<int64_t>(::sysconf(_SC_AVPHYS_PAGES));
    auto now = actors::wall_now_ms();
    json list = json::array();
    for (const auto& tm : st->view->task_managers())
      list.push_back(task_manager_json(tm, now, cores, physical, available));
    return json_response(200, json{{"taskmanagers", list}}.dump());
  });

  r.add("GET", "/taskmanagers/:taskmanagerid", [st](const rest_request& req) {
    const auto& id = req.params.at("taskmanagerid");
    auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
    auto page = static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
    for (const auto& tm : st->view->task_managers())
      if (tm.id == id)
        return json_response(
          200, task_manager_json(tm, actors::wall_now_ms(), cores,
                                 page * static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)),
                                 page * static_cast<int64_t>(::sysconf(_SC_AVPHYS_PAGES)))
                 .dump());
    return error_response(404, "unknown TaskManager id '" + id + "'");
  });

  auto vertex_route = [st](const rest_request& req, rest_response& err,
                           actors::job_info& out) -> bool {
    auto j = find_job(*st, req, err);
    if (!j)
      return false;
    const auto& vid = req.params.at("vertexid");
    for (const auto& v : j->vertices)
      if (v.id == vid) {
        out = std::move(*j);
        return true;
      }
    err = error_response(404, "job " + j->id + " has no vertex " + vid);
    return false;
  };

  r.add("GET", "/jobs/:jobid/vertices/:vertexid/backpressure",
        [vertex_route](const rest_request& req) {
          rest_response err;
          actors::job_info j;
          if (!vertex_route(req, err, j))
            return err;
          return json_response(
            200, backpressure_json(j, req.params.at("vertexid"), actors::wall_now_ms()).dump());
        });

  r.add("GET", "/jobs/:jobid/vertices/:vertexid/watermarks",
        [vertex_route](const rest_request& req) {
          rest_response err;
          actors::job_info j;
          if (!vertex_route(req, err, j))
            return err;
          json list = json::array();
          for (const auto& s : subtasks_of(j, req.params.at("vertexid")))
            if (s.input_watermark)
              list.push_back({{"id", std::to_string(s.metrics.subtask) + ".currentInputWatermark"},
                              {"value", std::to_string(*s.input_watermark)}});
          return json_response(200, list.dump());
        });

  r.add("GET", "/metrics", [st](const rest_request&) {
    prometheus_text out;
    auto jobs = st->view->jobs();
    auto tms = st->view->task_managers();
    int64_t slots = 0, free = 0, running = 0;
    for (const auto& tm : tms) {
      slots += tm.slots;
      free += tm.free_slots;
    }
    for (const auto& j : jobs)
      running += runtime::is_globally_terminal(j.status) ? 0 : 1;
    out.add("flink_jobmanager_numRegisteredTaskManagers", "TaskManagers registered.", "",
            static_cast<double>(tms.size()));
    out.add("flink_jobmanager_taskSlotsTotal", "Task slots in the cluster.", "",
            static_cast<double>(slots));
    out.add("flink_jobmanager_taskSlotsAvailable", "Free task slots.", "",
            static_cast<double>(free));
    out.add("flink_jobmanager_numRunningJobs", "Jobs not yet globally terminal.", "",
            static_cast<double>(running));
    auto now = actors::wall_now_ms();
    for (const auto& j : jobs) {
      auto job_labels =
        "job_id=\"" + j.id + "\",job_name=\"" + prometheus_escape(j.name) + "\"";
      out.add("flink_jobmanager_job_uptime", "Milliseconds the job has been running (0 once ended).",
              job_labels,
              runtime::is_globally_terminal(j.status) ? 0.0
                                                      : static_cast<double>(duration_ms(j, now)));
      out.add("flink_jobmanager_job_numRestarts", "Restarts since the job started.", job_labels,
              j.restarts);
      for (auto s : all_job_statuses)
        out.add("sluice_job_status", "1 for the job's current status.",
                job_labels + ",status=\"" + runtime::to_string(s) + "\"", j.status == s ? 1 : 0);
      if (auto stats = st->view->checkpoint_stats_json(j.id)) {
        auto cj = json::parse(*stats, nullptr, false);
        if (!cj.is_discarded() && cj.contains("counts")) {
          const auto& c = cj["counts"];
          out.add("flink_jobmanager_job_totalNumberOfCheckpoints", "Checkpoints triggered.",
                  job_labels, c.value("total", 0.0));
          out.add("flink_jobmanager_job_numberOfCompletedCheckpoints", "Checkpoints completed.",
                  job_labels, c.value("completed", 0.0));
          out.add("flink_jobmanager_job_numberOfFailedCheckpoints", "Checkpoints failed.",
                  job_labels, c.value("failed", 0.0));
          out.add("flink_jobmanager_job_numberOfInProgressCheckpoints",
                  "Checkpoints in progress.", job_labels, c.value("in_progress", 0.0));
          auto latest = cj.value("/latest/completed"_json_pointer, json());
          if (latest.is_object()) {
            out.add("flink_jobmanager_job_lastCheckpointDuration",
                    "End-to-end milliseconds of the latest completed checkpoint.", job_labels,
                    latest.value("end_to_end_duration", 0.0));
            out.add("flink_jobmanager_job_lastCheckpointSize",
                    "State bytes of the latest completed checkpoint.", job_labels,
                    latest.value("state_size", 0.0));
          }
        }
      }
      for (const auto& s : j.subtasks) {
        const auto& m = s.metrics;
        auto labels = job_labels + ",task_id=\"" + m.vertex_id + "\",task_name=\"" +
                      prometheus_escape(m.task) + "\",subtask_index=\"" +
                      std::to_string(m.subtask) + "\"";
        out.add("flink_taskmanager_job_task_numRecordsIn", "Records the subtask received.",
                labels, static_cast<double>(m.records_in));
        out.add("flink_taskmanager_job_task_numRecordsOut", "Records the subtask emitted.",
                labels, static_cast<double>(m.records_out));
        out.add("flink_taskmanager_job_task_busyTimeMsPerSecond",
                "Milliseconds per second the subtask was busy.", labels, m.busy_ms_per_second);
        out.add("flink_taskmanager_job_task_idleTimeMsPerSecond",
                "Milliseconds per second the subtask was idle.", labels, m.idle_ms_per_second);
        out.add("flink_taskmanager_job_task_backPressuredTimeMsPerSecond",
                "Milliseconds per second the subtask waited for credit.", labels,
                m.backpressured_ms_per_second);
        out.add("flink_taskmanager_job_task_accumulateBusyTimeMs",
                "Milliseconds the subtask was busy in total.", labels,
                static_cast<double>(m.busy_ms_total));
        out.add("flink_taskmanager_job_task_accumulateBackPressuredTimeMs",
                "Milliseconds the subtask waited for credit in total.", labels,
                static_cast<double>(m.backpressured_ms_total));
        out.add("flink_taskmanager_job_task_accumulateIdleTimeMs",
                "Milliseconds the subtask was idle in total.", labels,
                static_cast<double>(m.idle_ms_total));
      }
    }
    rest_response res;
    res.content_type = "text/plain; version=0.0.4; charset=utf-8";
    res.body = out.str();
    return res;
  });
}

} // namespace

rest_api::rest_api(std::shared_ptr<const actors::cluster_view> view, size_t operation_threads,
                   size_t max_queued_operations,
                   const std::function<void(router&)>& extra_routes,
                   std::string default_savepoint_directory)
    : state_(std::make_shared<state>()) {
  state_->view = std::move(view);
  state_->max_queued = std::max<size_t>(1, max_queued_operations);
  state_->default_savepoint_dir = std::move(default_savepoint_directory);
  add_routes(state_);
  add_dashboard_routes(*state_->routes);
  if (extra_routes)
    extra_routes(*state_->routes);
  for (size_t i = 0; i < std::max<size_t>(1, operation_threads); ++i)
    state_->workers.emplace_back([s = state_.get()] { s->work(); });
}

rest_api::~rest_api() {
  stop();
}

std::shared_ptr<const router> rest_api::routes() const {
  return state_->routes;
}

void rest_api::stop() {
  state_->stop();
}

// -- server ---------------------------------------------------------------------

rest_server::rest_server(std::unique_ptr<rest_api> api, std::unique_ptr<http_server> http)
    : api_(std::move(api))
    , http_(std::move(http)) {}

caf::expected<std::unique_ptr<rest_server>>
rest_server::start(std::shared_ptr<const actors::cluster_view> view, rest_config config,
                   const std::function<void(router&)>& extra_routes) {
  auto api = std::make_unique<rest_api>(std::move(view), config.operation_threads,
                                        config.max_queued_operations, extra_routes,
                                        config.default_savepoint_directory);
  auto http = http_server::start(api->routes(), config);
  if (!http)
    return http.error();
  return std::unique_ptr<rest_server>{new rest_server(std::move(api), std::move(*http))};
}

caf::expected<std::unique_ptr<rest_server>>
rest_server::start_local(rest_config config, const std::function<void(router&)>& extra_routes) {
  return start(actors::local_job_registry::global(), std::move(config), extra_routes);
}

rest_server::~rest_server() {
  stop();
}

uint16_t rest_server::port() const {
  return http_->port();
}

void rest_server::stop() {
  http_->stop();
  api_->stop();
}

} // namespace sluice::remote::rest
