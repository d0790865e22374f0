#include "sluice/actors/distributed.hpp"
#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <caf/io/all.hpp>
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

using namespace sluice;
using namespace std::chrono_literals;
using sluice::test::eventually;

namespace {

using namespace sluice::actors;

/// Registers what crosses nodes in these tests: the control-plane types,
/// and the data-plane ones a job whose edges stay on one node needs.
void add_types(caf::actor_system_config& cfg) {
  add_control_message_types(cfg);
  cfg.add_message_type<subtask_wiring>("sluice::subtask_wiring");
  cfg.add_message_type<subtask_report>("sluice::subtask_report");
}

/// One node: an actor system with the middleman, as a process would have.
struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> system;

  node() {
    cfg.load<caf::io::middleman>();
    add_types(cfg);
    runtime::configuration c;
    c.scheduler_threads = 2;
    configure_scheduler(cfg, c);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    system = std::make_unique<caf::actor_system>(cfg);
  }
};

/// The jobs TaskManagers can rebuild: spec -> graph and configuration.
class job_catalog {
public:
  void add(const std::string& spec, std::shared_ptr<const runtime::job_graph> graph,
           runtime::configuration config) {
    std::lock_guard<std::mutex> guard(mtx_);
    jobs_[spec] = {std::move(graph), std::move(config)};
  }
  job_resolver resolver() {
    return [this](const std::string&, const std::string& spec) {
      std::lock_guard<std::mutex> guard(mtx_);
      auto it = jobs_.find(spec);
      if (it == jobs_.end())
        throw std::runtime_error("no job library for spec '" + spec + "'");
      return it->second;
    };
  }

private:
  std::mutex mtx_;
  std::map<std::string, resolved_job> jobs_;
};

/// A JobManager node with a dispatcher published on loopback.
struct job_manager_node : node {
  std::shared_ptr<slot_board> slots = std::make_shared<slot_board>();
  caf::actor dispatcher;
  uint16_t port = 0;

  explicit job_manager_node(std::chrono::milliseconds slot_timeout = 30s) {
    dispatcher = system->spawn(cluster_dispatcher_impl, slots, slot_timeout);
    auto p = system->middleman().publish(dispatcher, 0, "127.0.0.1", true);
    REQUIRE_MESSAGE(p, system->render(p.error()));
    port = *p;
  }
  ~job_manager_node() { caf::anon_send_exit(dispatcher, caf::exit_reason::user_shutdown); }

  std::shared_ptr<runtime::job_client> submit(const std::string& spec,
                                              std::shared_ptr<const runtime::job_graph> graph,
                                              const runtime::configuration& config) {
    cluster_executor exec(*system, dispatcher, spec, slots);
    return exec.submit(std::move(graph), config);
  }

  int32_t registered() const {
    std::lock_guard<std::mutex> guard(slots->mtx);
    return static_cast<int32_t>(slots->task_managers.size());
  }
};

/// A TaskManager node whose executor registers with the dispatcher through
/// a remote_actor handle.
struct task_manager_node : node {
  caf::actor executor;

  task_manager_node(const job_manager_node& jm, int32_t slots, const std::string& id,
                    job_resolver resolver) {
    auto d = system->middleman().remote_actor("127.0.0.1", jm.port);
    REQUIRE_MESSAGE(d, system->render(d.error()));
    executor = system->spawn(task_executor_impl, slots, std::move(resolver),
                             runtime::configuration{});
    caf::anon_send(*d, register_atom::value, executor, slots, id);
  }
  ~task_manager_node() { caf::anon_send_exit(executor, caf::exit_reason::user_shutdown); }
};

/// A job with one subtask per vertex: its edges stay on one node.
std::shared_ptr<const runtime::job_graph> single_subtask_job(
  std::shared_ptr<runtime::collected<int64_t>>* out, int64_t n, double per_second = 0) {
  stream_environment env;
  env.set_parallelism(1);
  auto collected = env.from_generator(static_cast<uint64_t>(n),
                                      [](uint64_t i) { return static_cast<int64_t>(i); },
                                      per_second)
                     .map([](int64_t x) { return x * 2; })
                     .collect();
  *out = collected;
  return env.job("single subtask");
}

} // namespace

TEST_SUITE("integration.distributed") {

TEST_CASE("a job with one subtask runs on a TaskManager in another actor system") {
  job_catalog catalog;
  job_manager_node jm;
  task_manager_node tm(jm, 2, "tm-1", catalog.resolver());
  REQUIRE(eventually([&] { return jm.registered() == 1; }));
  std::shared_ptr<runtime::collected<int64_t>> out;
  // About 1.5 s long, so the TaskManager relays its counters meanwhile.
  auto graph = single_subtask_job(&out, 1000, 700);
  runtime::configuration config;
  catalog.add("doubles", graph, config);
  auto client = jm.submit("doubles", graph, config);
  // RUNNING reaches the JobMaster's board only through the relay (the
  // JobMaster itself writes DEPLOYING and the terminal state there).
  CHECK(eventually([&] {
    auto m = client->metrics();
    return m.subtasks.size() == 1 && m.subtasks[0].state == runtime::execution_state::running;
  }));
  auto r = client->wait_for(60s);
  REQUIRE(r);
  REQUIRE_MESSAGE(r->ok(), r->error);
  auto values = out->values();
  REQUIRE(values.size() == 1000);
  std::sort(values.begin(), values.end());
  for (int64_t i = 0; i < 1000; ++i)
    CHECK(values[static_cast<size_t>(i)] == 2 * i);
  auto m = client->metrics();
  REQUIRE(m.subtasks.size() == 1);
  CHECK(m.subtasks[0].state == runtime::execution_state::finished);
}

TEST_CASE("a slot request waits until a TaskManager registers") {
  job_catalog catalog;
  job_manager_node jm;
  std::shared_ptr<runtime::collected<int64_t>> out;
  auto graph = single_subtask_job(&out, 100);
  runtime::configuration config;
  catalog.add("late", graph, config);
  auto client = jm.submit("late", graph, config);
  // No TaskManager: the job waits for slots.
  CHECK_FALSE(client->wait_for(500ms));
  task_manager_node tm(jm, 1, "tm-late", catalog.resolver());
  auto r = client->wait_for(60s);
  REQUIRE(r);
  REQUIRE_MESSAGE(r->ok(), r->error);
  CHECK(out->values().size() == 100);
}

TEST_CASE("a slot request fails with a clear message after slot.request.timeout") {
  CHECK(slot_request_timeout({}) == std::chrono::minutes(5));
  auto timeout = slot_request_timeout({{"slot.request.timeout", "300 ms"}});
  REQUIRE(timeout == 300ms);
  CHECK_THROWS_AS(slot_request_timeout({{"slot.request.timeout", "soon"}}),
                  std::invalid_argument);
  job_manager_node jm(timeout);
  std::shared_ptr<runtime::collected<int64_t>> out;
  auto graph = single_subtask_job(&out, 10);
  auto client = jm.submit("none", graph, runtime::configuration{});
  auto r = client->wait_for(30s);
  REQUIRE(r);
  CHECK(r->status == runtime::job_status::failed);
  CHECK_MESSAGE(r->error.find("slot request timed out after 300 ms") != std::string::npos,
                r->error);
  CHECK_MESSAGE(r->error.find("needs 1 task slots") != std::string::npos, r->error);
}

TEST_CASE("a job its TaskManager cannot rebuild fails with the resolver's message") {
  job_catalog catalog; // knows no job
  job_manager_node jm;
  task_manager_node tm(jm, 2, "tm-1", catalog.resolver());
  REQUIRE(eventually([&] { return jm.registered() == 1; }));
  std::shared_ptr<runtime::collected<int64_t>> out;
  auto graph = single_subtask_job(&out, 10);
  auto client = jm.submit("missing-library", graph, runtime::configuration{});
  auto r = client->wait_for(60s);
  REQUIRE(r);
  CHECK(r->status == runtime::job_status::failed);
  CHECK_MESSAGE(r->error.find("no job library for spec 'missing-library'") != std::string::npos,
                r->error);
}

TEST_CASE("a job whose TaskManager is lost restarts on a TaskManager that registers later") {
  job_catalog catalog;
  job_manager_node jm;
  auto tm1 = std::make_unique<task_manager_node>(jm, 1, "tm-1", catalog.resolver());
  REQUIRE(eventually([&] { return jm.registered() == 1; }));
  std::shared_ptr<runtime::collected<int64_t>> out;
  // About 3 s long: the loss comes while it runs.
  auto graph = single_subtask_job(&out, 3000, 1000);
  runtime::configuration config;
  config.restart.type = runtime::restart_strategy_type::fixed_delay;
  config.restart.fixed_delay.attempts = 3;
  config.restart.fixed_delay.delay = 0ms;
  catalog.add("lost", graph, config);
  auto client = jm.submit("lost", graph, config);
  REQUIRE(eventually([&] { return out->size() > 100; }));
  // The TaskManager vanishes: its executor (and with it its subtasks) is
  // killed, the membership service reports the loss, and its node goes.
  caf::anon_send_exit(tm1->executor, caf::exit_reason::kill);
  caf::anon_send(jm.dispatcher, lost_atom::value, std::string("tm-1"),
                 std::string("process gone"));
  tm1.reset();
  REQUIRE(eventually([&] { return client->restarts() == 1; }));
  CHECK(eventually([&] { return jm.registered() == 0; }));
  // No slot is left: the restarted job waits for a TaskManager.
  CHECK_FALSE(client->wait_for(300ms));
  task_manager_node tm2(jm, 1, "tm-2", catalog.resolver());
  auto r = client->wait_for(60s);
  REQUIRE(r);
  REQUIRE_MESSAGE(r->ok(), r->error);
  CHECK(client->restarts() == 1);
  // Without checkpoints the job ran again from the start: every record is
  // there, some twice.
  auto values = out->values();
  std::set<int64_t> distinct(values.begin(), values.end());
  CHECK(distinct.size() == 3000);
  CHECK(values.size() > 3000);
}

} // TEST_SUITE
