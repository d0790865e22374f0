#include "sluice/remote/rest/rest_api.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/runtime/checkpoint_storage.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <mutex>

using namespace sluice;
using namespace sluice::remote::rest;
using nlohmann::json;
using remote::internal::test_http_client;

namespace {

/// A job client whose savepoints wait until the test releases them.
class gated_client final : public runtime::job_client {
public:
  explicit gated_client(std::string id) : id_(std::move(id)) {}
  const std::string& job_id() const override { return id_; }
  runtime::job_status status() const override { return runtime::job_status::running; }
  runtime::job_metrics metrics() override { return {}; }
  void cancel() override {
    std::lock_guard<std::mutex> guard(mtx_);
    ++cancels_;
  }
  runtime::job_result wait() override { return {}; }
  std::optional<runtime::job_result> wait_for(std::chrono::milliseconds) override { return {}; }
  std::string trigger_savepoint(const std::string& dir) override {
    std::unique_lock<std::mutex> lock(mtx_);
    cv_.wait(lock, [&] { return released_; });
    if (!fail_with_.empty())
      throw runtime::checkpoint_error(fail_with_);
    return dir + "/savepoint-1";
  }
  void release(std::string failure = {}) {
    {
      std::lock_guard<std::mutex> guard(mtx_);
      released_ = true;
      fail_with_ = std::move(failure);
    }
    cv_.notify_all();
  }
  int cancels() {
    std::lock_guard<std::mutex> guard(mtx_);
    return cancels_;
  }
  runtime::state_query_result query_state(const std::string&, const std::string&,
                                          std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> guard(mtx_);
    ++queries_;
    return query_answer_;
  }
  void answer_queries(runtime::state_query_result r) {
    std::lock_guard<std::mutex> guard(mtx_);
    query_answer_ = std::move(r);
  }
  int queries() {
    std::lock_guard<std::mutex> guard(mtx_);
    return queries_;
  }

private:
  std::string id_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool released_ = false;
  std::string fail_with_;
  int cancels_ = 0;
  runtime::state_query_result query_answer_;
  int queries_ = 0;
};

/// A cluster with one running job of one vertex (parallelism 2).
class fake_view final : public actors::cluster_view {
public:
  fake_view() {
    job_.id = std::string(32, 'a');
    job_.name = "fake job";
    job_.status = runtime::job_status::running;
    job_.start_ms = 1000;
    job_.vertices.push_back({std::string(32, 'b'), "Source: numbers -> Map", 2, 128});
    for (int32_t i = 0; i < 2; ++i) {
      actors::subtask_info s;
      s.metrics.vertex_id = job_.vertices[0].id;
      s.metrics.task = job_.vertices[0].name;
      s.metrics.subtask = i;
      s.metrics.state = runtime::execution_state::running;
      s.metrics.records_out = 10 + static_cast<uint64_t>(i);
      s.metrics.backpressured_ms_per_second = i == 0 ? 50 : 800;
      s.start_ms = 1100;
      job_.subtasks.push_back(s);
    }
    job_.plan_json = R"({"jid":"x","name":"fake job","nodes":[]})";
    client_ = std::make_shared<gated_client>(job_.id);
  }
  std::vector<actors::job_info> jobs() const override { return {job_}; }
  std::optional<actors::job_info> job(const std::string& id) const override {
    if (id == job_.id)
      return job_;
    return std::nullopt;
  }
  std::optional<std::string> checkpoint_stats_json(const std::string& id) const override {
    if (id == job_.id)
      return std::string(R"({"counts":{"total":0}})");
    return std::nullopt;
  }
  /// An in-process TaskManager and a registered TaskManager process.
  std::vector<actors::task_manager_info> task_managers() const override {
    actors::task_manager_info local;
    local.id = "tm-0";
    local.slots = 4;
    local.free_slots = 2;
    actors::task_manager_info process;
    process.id = "worker:40000-a1b2c3";
    process.slots = 3;
    process.free_slots = 3;
    process.path = "caf.tcp://worker:40000/taskmanager";
    process.data_port = 40000;
    process.last_heartbeat_ms = 1700000000000;
    process.cpu_cores = 16;
    process.physical_memory = int64_t{64} << 30;
    process.free_memory = int64_t{10} << 30;
    return {local, process};
  }
  std::shared_ptr<runtime::job_client> client(const std::string& id) const override {
    return id == job_.id ? client_ : nullptr;
  }
  actors::job_info job_;
  std::shared_ptr<gated_client> client_;
};

std::string first_error(const std::string& body) {
  auto j = json::parse(body);
  REQUIRE(j["errors"].is_array());
  REQUIRE(j["errors"].size() == 1);
  return j["errors"][0].get<std::string>();
}

template <class F>
bool eventually(F&& f, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f())
      return true;
    std::this_thread::yield();
  }
  return f();
}

} // namespace

TEST_SUITE("remote.rest.api") {

TEST_CASE("errors come in Flink's shape with the right status") {
  auto view = std::make_shared<fake_view>();
  rest_config cfg;
  cfg.max_body_bytes = 1024;
  auto server = rest_server::start(view, cfg);
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  auto jid = view->job_.id;

  auto r = c.request("GET", "/jobs/" + std::string(32, 'f'));
  CHECK(r.status == 404);
  CHECK(first_error(r.body).find("not found") != std::string::npos);
  CHECK(c.request("GET", "/no/such/path").status == 404);
  r = c.request("DELETE", "/jobs");
  CHECK(r.status == 405);
  CHECK(first_error(r.body).find("GET") != std::string::npos);
  r = c.request("POST", "/jobs/" + jid + "/savepoints", "{not json");
  CHECK(r.status == 400);
  CHECK(first_error(r.body).find("JSON") != std::string::npos);
  r = c.request("POST", "/jobs/" + jid + "/savepoints", R"({"cancel-job":"yes"})");
  CHECK(r.status == 400);
  CHECK(first_error(r.body).find("cancel-job") != std::string::npos);
  r = c.request("POST", "/jobs/" + jid + "/stop", R"([1,2])");
  CHECK(r.status == 400);
  r = c.request("PATCH", "/jobs/" + jid + "?mode=explode");
  CHECK(r.status == 400);
  CHECK(view->client_->cancels() == 0);
  r = c.request("POST", "/jobs/" + jid + "/savepoints", std::string(2000, ' '));
  CHECK(r.status == 413);
  CHECK(first_error(r.body).find("1024") != std::string::npos);
  // The connection closed after the 413; the next request reconnects.
  CHECK(c.request("GET", "/jobs").status == 200);
  r = c.raw("GET /jobs%zz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(r.status == 400);
  r = c.request("GET", "/jobs/" + jid + "/vertices/" + std::string(32, 'c') + "/backpressure");
  CHECK(r.status == 404);
}

TEST_CASE("queryable state answers map to statuses: 503 on a timeout, 500 on a failure, 409 "
          "without asking a job that is not running") {
  using runtime::state_query_status;
  auto view = std::make_shared<fake_view>();
  auto server = rest_server::start(view, {});
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  const auto target = "/jobs/" + view->job_.id + "/state/counter/7";

  view->client_->answer_queries({state_query_status::ok, R"({"key":7,"states":{}})"});
  auto r = c.request("GET", target);
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["key"] == 7);
  view->client_->answer_queries({state_query_status::timeout, {}});
  r = c.request("GET", target);
  CHECK(r.status == 503);
  CHECK(first_error(r.body).find("did not answer") != std::string::npos);
  view->client_->answer_queries({state_query_status::failed, "disk on fire"});
  r = c.request("GET", target);
  CHECK(r.status == 500);
  CHECK(first_error(r.body).find("disk on fire") != std::string::npos);
  view->client_->answer_queries({state_query_status::not_running, {}});
  CHECK(c.request("GET", target).status == 409);
  CHECK(view->client_->queries() == 4);

  for (auto s : {runtime::job_status::restarting, runtime::job_status::finished,
                 runtime::job_status::failed}) {
    view->job_.status = s;
    r = c.request("GET", target);
    CHECK(r.status == 409);
    CHECK(first_error(r.body) == "the job is not running");
  }
  CHECK(view->client_->queries() == 4);
}

TEST_CASE("with a token configured, requests without it or with a wrong one get 401") {
  auto view = std::make_shared<fake_view>();
  rest_config cfg;
  cfg.bearer_token = "s3cret";
  auto server = rest_server::start(view, cfg);
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  auto r = c.request("GET", "/overview");
  CHECK(r.status == 401);
  CHECK(r.www_authenticate == "Bearer");
  CHECK(first_error(r.body) == "missing bearer token");
  r = c.request("GET", "/overview", {}, "s3cre");
  CHECK(r.status == 401);
  CHECK(first_error(r.body) == "wrong bearer token");
  r = c.request("GET", "/overview", {}, "s3cret");
  CHECK(r.status == 200);
  CHECK(json::parse(r.body)["taskmanagers"] == 2);
}

TEST_CASE("a TaskManager process shows its own path, port, heartbeat and hardware, and "
          "/taskmanagers/:id finds one by id") {
  auto view = std::make_shared<fake_view>();
  auto server = rest_server::start(view, {});
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  auto r = c.request("GET", "/taskmanagers");
  REQUIRE(r.status == 200);
  auto list = json::parse(r.body)["taskmanagers"];
  REQUIRE(list.size() == 2);
  CHECK(list[0]["path"] == "local://tm-0");
  CHECK(list[0]["dataPort"] == -1);
  r = c.request("GET", "/taskmanagers/worker:40000-a1b2c3");
  REQUIRE(r.status == 200);
  auto tm = json::parse(r.body);
  CHECK(tm["id"] == "worker:40000-a1b2c3");
  CHECK(tm["path"] == "caf.tcp://worker:40000/taskmanager");
  CHECK(tm["dataPort"] == 40000);
  CHECK(tm["timeSinceLastHeartbeat"] == 1700000000000);
  CHECK(tm["slotsNumber"] == 3);
  CHECK(tm["freeSlots"] == 3);
  CHECK(tm["hardware"]["cpuCores"] == 16);
  CHECK(tm["hardware"]["physicalMemory"] == int64_t{64} << 30);
  CHECK(tm["hardware"]["freeMemory"] == int64_t{10} << 30);
  r = c.request("GET", "/taskmanagers/nobody");
  CHECK(r.status == 404);
  CHECK(first_error(r.body).find("nobody") != std::string::npos);
  auto overview = json::parse(c.request("GET", "/overview").body);
  CHECK(overview["taskmanagers"] == 2);
  CHECK(overview["slots-total"] == 7);
  CHECK(overview["slots-available"] == 5);
}

TEST_CASE("a TLS certificate without its key fails startup naming the missing key") {
  rest_config cfg;
  cfg.tls_certificate_file = "/tmp/cert.pem";
  auto server = rest_server::start(std::make_shared<fake_view>(), cfg);
  REQUIRE_FALSE(server);
  CHECK(remote::is(server.error(), remote::remote_errc::invalid_configuration));
  CHECK(remote::describe(server.error()).find("security.ssl.rest.") != std::string::npos);
}

TEST_CASE("a savepoint is IN_PROGRESS until it completes, off the I/O thread") {
  auto view = std::make_shared<fake_view>();
  auto server = rest_server::start(view, {});
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  auto jid = view->job_.id;
  auto r = c.request("POST", "/jobs/" + jid + "/savepoints",
                     R"({"target-directory":"/tmp/sp","cancel-job":false})");
  REQUIRE(r.status == 202);
  auto trigger = json::parse(r.body)["request-id"].get<std::string>();
  CHECK(trigger.size() == 32);
  // The savepoint blocks its worker; the server still answers.
  r = c.request("GET", "/jobs/" + jid + "/savepoints/" + trigger);
  REQUIRE(r.status == 200);
  CHECK(json::parse(r.body)["status"]["id"] == "IN_PROGRESS");
  CHECK(c.request("GET", "/jobs/" + jid + "/savepoints/" + std::string(32, '0')).status == 404);
  view->client_->release();
  json status;
  REQUIRE(eventually([&] {
    status = json::parse(c.request("GET", "/jobs/" + jid + "/savepoints/" + trigger).body);
    return status["status"]["id"] == "COMPLETED";
  }));
  CHECK(status["operation"]["location"] == "/tmp/sp/savepoint-1");
  // A caller-chosen trigger id is used, and reusing it is refused.
  std::string mine(32, '7');
  r = c.request("POST", "/jobs/" + jid + "/savepoints", R"({"triggerId":")" + mine + "\"}");
  REQUIRE(r.status == 202);
  CHECK(json::parse(r.body)["request-id"] == mine);
  CHECK(c.request("POST", "/jobs/" + jid + "/savepoints", R"({"triggerId":")" + mine + "\"}")
          .status == 409);
}

TEST_CASE("a failed savepoint reports its cause") {
  auto view = std::make_shared<fake_view>();
  view->client_->release("disk full");
  auto server = rest_server::start(view, {});
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  auto jid = view->job_.id;
  auto r = c.request("POST", "/jobs/" + jid + "/savepoints", "");
  REQUIRE(r.status == 202);
  auto trigger = json::parse(r.body)["request-id"].get<std::string>();
  json status;
  REQUIRE(eventually([&] {
    status = json::parse(c.request("GET", "/jobs/" + jid + "/savepoints/" + trigger).body);
    return status["status"]["id"] == "COMPLETED";
  }));
  CHECK(status["operation"]["failure-cause"]["stack-trace"] == "disk full");
  CHECK_FALSE(status["operation"].contains("location"));
}

TEST_CASE("vertex backpressure levels follow Flink's thresholds") {
  auto view = std::make_shared<fake_view>();
  auto server = rest_server::start(view, {});
  REQUIRE(server);
  test_http_client c{(*server)->port()};
  auto r = c.request("GET", "/jobs/" + view->job_.id + "/vertices/" + view->job_.vertices[0].id +
                              "/backpressure");
  REQUIRE(r.status == 200);
  auto j = json::parse(r.body);
  CHECK(j["status"] == "ok");
  CHECK(j["backpressure-level"] == "high");
  REQUIRE(j["subtasks"].size() == 2);
  CHECK(j["subtasks"][0]["backpressure-level"] == "ok");
  CHECK(j["subtasks"][0]["ratio"].get<double>() == doctest::Approx(0.05));
  CHECK(j["subtasks"][1]["backpressure-level"] == "high");
}

} // TEST_SUITE
