#include "exactly_once_job.hpp"
#include "exactly_once_util.hpp"
#include "sluice/actors/cluster_view.hpp"
#include "sluice/actors/distributed.hpp"
#include "sluice/sluice.hpp"
#include "test_util.hpp"
#include "word_count.hpp"

#include <caf/io/all.hpp>
#include <doctest/doctest.h>

#include <condition_variable>
#include <fstream>
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
using sluice::test::temp_dir;

namespace {

using namespace sluice::actors;

/// One node: an actor system with the middleman, as a process would have.
struct node {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> system;

  node() {
    cfg.load<caf::io::middleman>();
    add_cluster_message_types(cfg);
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

/// Writes `lines` lines of words from a small vocabulary; returns the count
/// of each word.
std::map<std::string, int64_t> write_words(const std::string& path, int lines) {
  const char* vocab[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"};
  std::map<std::string, int64_t> ref;
  std::ofstream out(path);
  uint64_t x = 7;
  for (int l = 0; l < lines; ++l) {
    for (int w = 0; w < 5; ++w) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      const char* word = vocab[(x >> 33) % 8];
      ++ref[word];
      out << word << ' ';
    }
    out << '\n';
  }
  return ref;
}

/// Stops a TaskManager as a crash would: its executor and subtasks are
/// killed, the membership service reports it lost, and its node goes away.
void crash(std::unique_ptr<task_manager_node>& tm, job_manager_node& jm, const std::string& id) {
  caf::anon_send_exit(tm->executor, caf::exit_reason::kill);
  caf::anon_send(jm.dispatcher, lost_atom::value, id, std::string("process gone"));
  tm.reset();
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
  CHECK_THROWS_AS(slot_request_timeout({{"slot.request.timeout", "0 ms"}}), std::invalid_argument);
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

TEST_CASE("a job whose rebuild takes long does not hold back another job on the same "
          "TaskManager") {
  job_catalog catalog;
  // The resolver of "slow" waits until the test lets it go, as a library
  // that takes long to load would: the executor must keep deploying.
  std::mutex mtx;
  std::condition_variable cv;
  bool release = false;
  auto inner = catalog.resolver();
  job_resolver resolver = [&, inner](const std::string& id, const std::string& spec) {
    if (spec == "slow") {
      std::unique_lock<std::mutex> lock(mtx);
      cv.wait(lock, [&] { return release; });
    }
    return inner(id, spec);
  };
  job_manager_node jm;
  task_manager_node tm(jm, 2, "tm-1", resolver);
  auto let_go = [&] {
    {
      std::lock_guard<std::mutex> guard(mtx);
      release = true;
    }
    cv.notify_all();
  };
  // Lets the resolver go however the test ends, before the TaskManager's
  // actor system waits for its helper actors.
  struct on_exit {
    std::function<void()> f;
    ~on_exit() { f(); }
  } guard{let_go};
  REQUIRE(eventually([&] { return jm.registered() == 1; }));
  std::shared_ptr<runtime::collected<int64_t>> slow_out, fast_out;
  auto slow = single_subtask_job(&slow_out, 10);
  auto fast = single_subtask_job(&fast_out, 10);
  catalog.add("slow", slow, {});
  catalog.add("fast", fast, {});
  auto slow_client = jm.submit("slow", slow, {});
  auto fast_client = jm.submit("fast", fast, {});
  auto r = fast_client->wait_for(30s);
  REQUIRE(r);
  REQUIRE_MESSAGE(r->ok(), r->error);
  CHECK(fast_out->values().size() == 10);
  CHECK_FALSE(slow_client->wait_for(0ms)); // still being rebuilt
  let_go();
  auto s = slow_client->wait_for(30s);
  REQUIRE(s);
  REQUIRE_MESSAGE(s->ok(), s->error);
  CHECK(slow_out->values().size() == 10);
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
  crash(tm1, jm, "tm-1");
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

TEST_CASE("a keyed job at parallelism 4 across two TaskManagers counts exactly") {
  temp_dir dir;
  auto ref = write_words(dir.file("words.txt"), 20000);
  job_catalog catalog;
  job_manager_node jm;
  task_manager_node tm1(jm, 2, "tm-1", catalog.resolver());
  task_manager_node tm2(jm, 2, "tm-2", catalog.resolver());
  REQUIRE(eventually([&] { return jm.registered() == 2; }));
  stream_environment env;
  env.set_parallelism(4);
  auto out = env.read_text_file(dir.file("words.txt"))
               .flat_map<sluice::examples::word_count>(sluice::examples::tokenizer{})
               .key_by([](const sluice::examples::word_count& wc) { return wc.first; })
               .sum(&sluice::examples::word_count::second)
               .collect();
  auto graph = env.job("word count across nodes");
  catalog.add("words", graph, env.config());
  auto client = jm.submit("words", graph, env.config());
  auto r = client->wait_for(120s);
  REQUIRE(r);
  REQUIRE_MESSAGE(r->ok(), r->error);
  // The running counts end at the reference count of every word.
  std::map<std::string, int64_t> last;
  for (auto& [w, c] : out->values())
    last[w] = std::max(last[w], c);
  CHECK(last == ref);
  // Both TaskManagers ran subtasks: every slot was in use.
  std::lock_guard<std::mutex> guard(jm.slots->mtx);
  CHECK(jm.slots->task_managers.size() == 2);
}

TEST_CASE("a lost TaskManager: the job restarts from its checkpoint on another one, "
          "exactly once") {
  namespace eo = sluice::test::exactly_once;
  temp_dir dir;
  auto input = eo::write_input(dir.path(), 160000, 50, 11);
  auto output = dir.file("out");
  job_catalog catalog;
  job_manager_node jm;
  auto tm1 = std::make_unique<task_manager_node>(jm, 2, "tm-1", catalog.resolver());
  auto tm2 = std::make_unique<task_manager_node>(jm, 2, "tm-2", catalog.resolver());
  REQUIRE(eventually([&] { return jm.registered() == 2; }));
  stream_environment env;
  env.config() = eo::checkpointed(dir.path(), state::backend_kind::heap, 4);
  env.config().checkpoints.interval = 150ms;
  env.set_parallelism(4);
  // Each running-sum subtask sleeps 1 ms every 4 records: the job runs a
  // few seconds, long enough for checkpoints before and after the loss.
  ::exactly_once::build(env, input, output, nullptr, 4);
  auto graph = env.job("exactly once across nodes");
  catalog.add("eo", graph, env.config());
  auto started = std::chrono::steady_clock::now();
  auto client = jm.submit("eo", graph, env.config());
  auto history = [&] {
    std::string out = std::string(runtime::to_string(client->status())) + ", restarts " +
                      std::to_string(client->restarts()) + ":";
    if (auto info = local_job_registry::global()->job(client->job_id()))
      for (auto& f : info->failures)
        out += "\n  " + f.message;
    return out;
  };
  REQUIRE_MESSAGE(eventually([&] { return eo::completed_checkpoints(*client) >= 2; }, 60s),
                  "no checkpoint completed");
  MESSAGE("checkpoints before the loss: " << eo::completed_checkpoints(*client) << " after "
                                          << (std::chrono::steady_clock::now() - started) / 1ms
                                          << " ms");
  if (auto early = client->wait_for(0ms))
    FAIL("the job ended before the loss: " << std::string(runtime::to_string(early->status))
                                           << " " << early->error << " " << history());
  crash(tm2, jm, "tm-2");
  REQUIRE_MESSAGE(eventually([&] { return client->restarts() == 1; }, 30s), history());
  // Two slots are left for a job that needs four: it waits for a TaskManager.
  CHECK_FALSE(client->wait_for(300ms));
  auto tm3 = std::make_unique<task_manager_node>(jm, 2, "tm-3", catalog.resolver());
  auto r = client->wait_for(180s);
  REQUIRE(r);
  REQUIRE_MESSAGE(r->ok(), r->error);
  CHECK(client->restarts() == 1);
  CHECK(::exactly_once::finished_output(output) == ::exactly_once::expected_output(input));
  // The exception history names the loss (or the subtasks that went with
  // the TaskManager's node, whichever reached the JobMaster first).
  auto info = local_job_registry::global()->job(client->job_id());
  REQUIRE(info);
  REQUIRE(!info->failures.empty());
  auto why = info->failures.front().message;
  CHECK_MESSAGE((why.find("TaskManager tm-2 lost: process gone") != std::string::npos ||
                 why.find("terminated unexpectedly") != std::string::npos),
                why);
}

} // TEST_SUITE
