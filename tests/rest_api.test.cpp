// The REST API against real jobs on the local mini-cluster: every endpoint's
// JSON shape with numbers from the running job, savepoint / stop / cancel
// through HTTP, and the error statuses.

#include "sluice/sluice.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/rest/rest_api.hpp"
#include "rest_job.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

using namespace sluice;
using namespace std::chrono_literals;
using nlohmann::json;
using remote::internal::test_http_client;
namespace fs = std::filesystem;

namespace {

/// The counting job of rest_job.hpp, checkpointed every 100ms.
std::shared_ptr<runtime::job_client> start_job(const std::string& dir, const std::string& name) {
  return sluice::test::start_counting_job(dir, name, 100ms, 20000);
}

json get_json(test_http_client& c, const std::string& target, unsigned expect = 200) {
  auto r = c.request("GET", target);
  REQUIRE_MESSAGE(r.status == expect, target << " -> " << r.status << " " << r.body);
  CHECK(r.content_type == "application/json");
  return json::parse(r.body);
}

void check_error(const sluice::remote::internal::test_reply& r, unsigned status) {
  CHECK(r.status == status);
  auto j = json::parse(r.body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j["errors"].is_array());
  CHECK(!j["errors"].empty());
  CHECK(j["errors"][0].is_string());
}

/// Polls a savepoint trigger until COMPLETED; returns the `operation`.
json await_operation(test_http_client& c, const std::string& jid, const std::string& trigger) {
  json status;
  REQUIRE(test::eventually([&] {
    status = get_json(c, "/jobs/" + jid + "/savepoints/" + trigger);
    REQUIRE(status["status"]["id"].is_string());
    auto id = status["status"]["id"].get<std::string>();
    CHECK((id == "IN_PROGRESS" || id == "COMPLETED"));
    return id == "COMPLETED";
  }, 15s));
  REQUIRE(status["operation"].is_object());
  return status["operation"];
}

} // namespace

TEST_SUITE("integration.rest") {

TEST_CASE("the REST API shows a running job in Flink's shapes and savepoints, stops and "
          "cancels it") {
  test::temp_dir dir;
  auto job = start_job(dir.path(), "rest job");
  auto other = start_job(dir.path(), "job to cancel");
  auto server = remote::rest::rest_server::start_local({});
  REQUIRE_MESSAGE(server, remote::describe(server.error()));
  test_http_client c{(*server)->port()};
  const auto jid = job->job_id();

  // Wait until records flow and a checkpoint has completed.
  json details;
  REQUIRE(test::eventually([&] {
    details = get_json(c, "/jobs/" + jid);
    if (details["state"] != "RUNNING")
      return false;
    for (auto& v : details["vertices"])
      if (v["metrics"]["write-records"].get<uint64_t>() == 0 &&
          v["name"].get<std::string>().find("Discard") == std::string::npos)
        return false;
    return get_json(c, "/jobs/" + jid + "/checkpoints")["counts"]["completed"].get<int64_t>() > 0;
  }, 15s));

  SUBCASE("/overview") {
    auto o = get_json(c, "/overview");
    for (auto key : {"taskmanagers", "slots-total", "slots-available", "jobs-running",
                     "jobs-finished", "jobs-cancelled", "jobs-failed"})
      CHECK_MESSAGE(o[key].is_number_integer(), key);
    CHECK(o["flink-version"].is_string());
    CHECK(o["flink-commit"].is_string());
    CHECK(o["jobs-running"].get<int>() >= 2);
    CHECK(o["taskmanagers"].get<int>() >= 2);
    // Each job holds its slots: parallelism 2 (source, counter and sink
    // share slots).
    CHECK(o["slots-total"].get<int>() - o["slots-available"].get<int>() >= 4);
  }
  SUBCASE("/config") {
    auto cfg = get_json(c, "/config");
    CHECK(cfg["refresh-interval"].is_number_integer());
    CHECK(cfg["flink-version"].is_string());
    CHECK(cfg["features"]["web-cancel"] == true);
  }
  SUBCASE("/jobs and /jobs/overview") {
    auto jobs = get_json(c, "/jobs");
    bool found = false;
    for (auto& j : jobs["jobs"])
      if (j["id"] == jid) {
        found = true;
        CHECK(j["status"] == "RUNNING");
      }
    CHECK(found);
    auto ov = get_json(c, "/jobs/overview");
    found = false;
    for (auto& j : ov["jobs"]) {
      if (j["jid"] != jid)
        continue;
      found = true;
      CHECK(j["name"] == "rest job");
      CHECK(j["state"] == "RUNNING");
      CHECK(j["start-time"].get<int64_t>() > 1600000000000);
      CHECK(j["end-time"] == -1);
      CHECK(j["duration"].get<int64_t>() >= 0);
      CHECK(j["last-modification"].get<int64_t>() >= j["start-time"].get<int64_t>());
      int subtasks = 0;
      for (auto& v : details["vertices"])
        subtasks += v["parallelism"].get<int>();
      CHECK(j["tasks"]["total"].get<int>() == subtasks);
      CHECK(j["tasks"]["running"].get<int>() == subtasks);
      for (auto key : {"created", "scheduled", "deploying", "finished", "canceling", "canceled",
                       "failed", "reconciling", "initializing"})
        CHECK_MESSAGE(j["tasks"][key].is_number_integer(), key);
    }
    CHECK(found);
  }
  SUBCASE("/jobs/:jobid") {
    CHECK(details["jid"] == jid);
    CHECK(details["name"] == "rest job");
    CHECK(details["isStoppable"].is_boolean());
    CHECK(details["now"].get<int64_t>() >= details["start-time"].get<int64_t>());
    CHECK(details["timestamps"]["RUNNING"].get<int64_t>() > 0);
    CHECK(details["timestamps"]["CREATED"].get<int64_t>() > 0);
    REQUIRE(details["vertices"].is_array());
    REQUIRE(details["vertices"].size() >= 2);
    uint64_t written = 0;
    for (auto& v : details["vertices"]) {
      CHECK(v["id"].get<std::string>().size() == 32);
      CHECK(v["name"].is_string());
      CHECK(v["parallelism"] == 2);
      CHECK(v["maxParallelism"].is_number_integer());
      CHECK(v["status"] == "RUNNING");
      CHECK(v["start-time"].get<int64_t>() > 0);
      CHECK(v["end-time"] == -1);
      CHECK(v["tasks"]["RUNNING"] == 2);
      for (auto key : {"read-bytes", "write-bytes", "read-records", "write-records"})
        CHECK_MESSAGE(v["metrics"][key].is_number_integer(), key);
      CHECK(v["metrics"]["write-records-complete"] == true);
      written += v["metrics"]["write-records"].get<uint64_t>();
    }
    CHECK(written > 0);
    CHECK(details["status-counts"]["RUNNING"].get<size_t>() == details["vertices"].size());
    REQUIRE(details["plan"]["nodes"].is_array());
    CHECK(details["plan"]["nodes"].size() == details["vertices"].size());
    CHECK(details["plan"]["jid"] == jid);
  }
  SUBCASE("exceptions, checkpoints and their config") {
    auto ex = get_json(c, "/jobs/" + jid + "/exceptions");
    CHECK(ex["root-exception"].is_null());
    CHECK(ex["exceptionHistory"]["entries"].is_array());
    CHECK(ex["exceptionHistory"]["entries"].empty());
    CHECK(ex["truncated"] == false);
    auto cp = get_json(c, "/jobs/" + jid + "/checkpoints");
    for (auto key : {"restored", "total", "in_progress", "completed", "failed"})
      CHECK_MESSAGE(cp["counts"][key].is_number_integer(), key);
    REQUIRE(cp["latest"]["completed"].is_object());
    CHECK(cp["latest"]["completed"]["status"] == "COMPLETED");
    CHECK(cp["history"].is_array());
    auto cc = get_json(c, "/jobs/" + jid + "/checkpoints/config");
    CHECK(cc["mode"] == "exactly_once");
    CHECK(cc["interval"] == 100);
    CHECK(cc["timeout"].is_number_integer());
    CHECK(cc["min_pause"].is_number_integer());
    CHECK(cc["max_concurrent"] == 1);
    CHECK(cc["externalization"]["enabled"].is_boolean());
    CHECK(cc["externalization"]["delete_on_cancellation"].is_boolean());
    CHECK(cc["unaligned_checkpoints"] == false);
    CHECK(cc["tolerable_failed_checkpoints"].is_number_integer());
  }
  SUBCASE("task managers, backpressure, watermarks, metrics") {
    auto tms = get_json(c, "/taskmanagers");
    REQUIRE(tms["taskmanagers"].is_array());
    REQUIRE(!tms["taskmanagers"].empty());
    bool job_tm = false;
    for (auto& tm : tms["taskmanagers"]) {
      CHECK(tm["id"].is_string());
      CHECK(tm["path"].is_string());
      CHECK(tm["slotsNumber"].is_number_integer());
      CHECK(tm["freeSlots"].get<int>() <= tm["slotsNumber"].get<int>());
      CHECK(tm["hardware"]["cpuCores"].get<int>() >= 1);
      CHECK(tm["hardware"]["physicalMemory"].get<int64_t>() > 0);
      job_tm = job_tm || tm["id"].get<std::string>().rfind(jid.substr(0, 8), 0) == 0;
    }
    CHECK(job_tm);
    auto vid = details["vertices"][0]["id"].get<std::string>();
    auto bp = get_json(c, "/jobs/" + jid + "/vertices/" + vid + "/backpressure");
    CHECK(bp["status"] == "ok");
    CHECK(bp["backpressure-level"].is_string());
    CHECK(bp["end-timestamp"].is_number_integer());
    REQUIRE(bp["subtasks"].size() == 2);
    for (auto& s : bp["subtasks"]) {
      CHECK(s["subtask"].is_number_integer());
      CHECK(s["attempt-number"].is_number_integer());
      CHECK(s["ratio"].is_number());
      CHECK(s["idleRatio"].is_number());
      CHECK(s["busyRatio"].is_number());
      double sum = s["ratio"].get<double>() + s["idleRatio"].get<double>() +
                   s["busyRatio"].get<double>();
      CHECK(sum == doctest::Approx(1.0).epsilon(0.01));
    }
    auto wm = get_json(c, "/jobs/" + jid + "/vertices/" + vid + "/watermarks");
    CHECK(wm.is_array());
    check_error(c.request("GET", "/jobs/" + jid + "/vertices/" + std::string(32, '0') +
                                   "/backpressure"),
                404);
    auto m = c.request("GET", "/metrics");
    CHECK(m.status == 200);
    CHECK(m.content_type.rfind("text/plain", 0) == 0);
    CHECK(m.body.find("# TYPE flink_taskmanager_job_task_numRecordsOut gauge") !=
          std::string::npos);
    auto line = m.body.find("flink_taskmanager_job_task_numRecordsOut{job_id=\"" + jid);
    REQUIRE(line != std::string::npos);
    auto value = m.body.substr(m.body.find("} ", line) + 2);
    CHECK(std::stod(value.substr(0, value.find('\n'))) >= 0);
    CHECK(m.body.find("flink_jobmanager_job_numberOfCompletedCheckpoints{job_id=\"" + jid) !=
          std::string::npos);
    CHECK(m.body.find("flink_taskmanager_job_task_backPressuredTimeMsPerSecond{") !=
          std::string::npos);
  }
  SUBCASE("errors") {
    check_error(c.request("GET", "/jobs/" + std::string(32, '0')), 404);
    check_error(c.request("GET", "/jobs/" + std::string(32, '0') + "/checkpoints"), 404);
    check_error(c.request("GET", "/no/such/thing"), 404);
    check_error(c.request("POST", "/jobs/" + jid + "/savepoints", "{\"target-directory\":"), 400);
    check_error(c.request("PUT", "/jobs/" + jid), 405);
    check_error(c.request("POST", "/overview"), 405);
    remote::rest::rest_config small;
    small.max_body_bytes = 64;
    small.bearer_token = "t0ken";
    auto guarded = remote::rest::rest_server::start_local(small);
    REQUIRE(guarded);
    test_http_client g{(*guarded)->port()};
    check_error(g.request("GET", "/jobs"), 401);
    check_error(g.request("GET", "/jobs", {}, "wrong"), 401);
    CHECK(g.request("GET", "/jobs", {}, "t0ken").status == 200);
    check_error(g.request("POST", "/jobs/" + jid + "/stop", std::string(100, ' '), "t0ken"), 413);
    // Nothing above touched the job.
    CHECK(job->status() == runtime::job_status::running);
  }
  SUBCASE("savepoint, stop with savepoint, cancel") {
    auto r = c.request("POST", "/jobs/" + jid + "/savepoints",
                       json{{"target-directory", dir.path() + "/sp"}, {"cancel-job", false}}.dump());
    REQUIRE_MESSAGE(r.status == 202, r.body);
    auto trigger = json::parse(r.body)["request-id"].get<std::string>();
    auto op = await_operation(c, jid, trigger);
    REQUIRE_MESSAGE(op["location"].is_string(), op.dump());
    auto location = op["location"].get<std::string>();
    CHECK(location.rfind(dir.path() + "/sp/", 0) == 0);
    CHECK(fs::exists(fs::path(location) / "_metadata"));
    CHECK(job->status() == runtime::job_status::running);

    r = c.request("POST", "/jobs/" + jid + "/stop",
                  json{{"targetDirectory", dir.path() + "/stop"}, {"drain", false}}.dump());
    REQUIRE_MESSAGE(r.status == 202, r.body);
    trigger = json::parse(r.body)["request-id"].get<std::string>();
    op = await_operation(c, jid, trigger);
    REQUIRE_MESSAGE(op["location"].is_string(), op.dump());
    CHECK(fs::exists(fs::path(op["location"].get<std::string>()) / "_metadata"));
    auto result = job->wait_for(15s);
    REQUIRE(result);
    CHECK(result->status == runtime::job_status::finished);
    auto after = get_json(c, "/jobs/" + jid);
    CHECK(after["state"] == "FINISHED");
    CHECK(after["end-time"].get<int64_t>() >= after["start-time"].get<int64_t>());
    // A finished job takes no more savepoints.
    check_error(c.request("POST", "/jobs/" + jid + "/savepoints", "{}"), 409);

    const auto oid = other->job_id();
    r = c.request("PATCH", "/jobs/" + oid + "?mode=cancel");
    CHECK(r.status == 202);
    CHECK(r.body.empty());
    REQUIRE(test::eventually([&] { return get_json(c, "/jobs/" + oid)["state"] == "CANCELED"; },
                             15s));
    auto overview = get_json(c, "/overview");
    CHECK(overview["jobs-cancelled"].get<int>() >= 1);
    CHECK(overview["jobs-finished"].get<int>() >= 1);
  }
}

} // TEST_SUITE
