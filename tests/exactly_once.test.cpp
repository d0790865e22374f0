#include "exactly_once_job.hpp"
#include "sluice/runtime/checkpoint_storage.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {


std::string write_input(const fs::path& dir, int64_t lines, int keys, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto p = (dir / "input.csv").string();
  std::ofstream out(p);
  for (int64_t i = 0; i < lines; ++i)
    out << "k" << rng() % static_cast<uint64_t>(keys) << "," << static_cast<int64_t>(rng() % 1000) - 300
        << "\n";
  return p;
}

configuration checkpointed(const fs::path& dir, state::backend_kind backend, int32_t p) {
  configuration cfg;
  cfg.parallelism = p;
  cfg.state.backend = backend;
  cfg.checkpoints.interval = 30ms;
  cfg.checkpoints.directory = (dir / "checkpoints").string();
  cfg.restart.type = runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = 1000;
  cfg.restart.fixed_delay.delay = 0ms;
  return cfg;
}

/// Kills a random subtask of the running job `kills` times, each time once
/// the job runs and its sinks report `progress` records, then waits until
/// the job restarted.
size_t kill_randomly(runtime::job_client& job, size_t kills, uint64_t progress, uint64_t seed) {
  std::mt19937_64 rng(seed);
  size_t done = 0;
  while (done < kills) {
    auto restarts = job.restarts();
    bool due = sluice::test::eventually([&] {
      if (runtime::is_globally_terminal(job.status()))
        return true;
      uint64_t in = 0;
      for (auto& m : job.metrics().of_task("FileSink"))
        in += m.records_in;
      return job.status() == runtime::job_status::running && in >= progress;
    }, 60s);
    if (!due || runtime::is_globally_terminal(job.status())) {
      break;
    }
    std::vector<std::pair<int32_t, int32_t>> subtasks;
    int32_t vertex = -1;
    for (auto& m : job.metrics().subtasks) {
      if (m.subtask == 0)
        ++vertex;
      subtasks.emplace_back(vertex, m.subtask);
    }
    auto [v, i] = subtasks[rng() % subtasks.size()];
    job.kill_subtask(v, i);
    ++done;
    // The kill has been seen once the job restarts (or ends).
    sluice::test::eventually([&] {
      return job.restarts() != restarts || runtime::is_globally_terminal(job.status());
    }, 60s);
  }
  return done;
}

void run_exactly_once(state::backend_kind backend, int32_t p, int64_t lines, int64_t fail_every,
                      size_t kills, uint64_t seed) {
  sluice::test::temp_dir dir;
  auto input = write_input(fs::path(dir.path()), lines, 37, seed);
  auto plan = std::make_shared<exactly_once::failure_plan>(lines, fail_every, seed);
  stream_environment env(checkpointed(fs::path(dir.path()), backend, p));
  auto out = (fs::path(dir.path()) / "out").string();
  exactly_once::build(env, input, out, plan, 40);
  auto job = env.execute_async("exactly once under failures");
  auto killed = kill_randomly(*job, kills, static_cast<uint64_t>(lines) / 50, seed + 1);
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  MESSAGE("injected " << plan->injected() << " exceptions, killed " << killed
                      << " subtasks; restarts " << job->restarts());
  CHECK(plan->injected() == plan->planned());
  // Failures of several subtasks in one attempt lead to one restart.
  CHECK(job->restarts() >= 5);
  CHECK(killed >= 1);
  CHECK(plan->injected() + killed >= 20);
  auto got = exactly_once::finished_output(out);
  auto want = exactly_once::expected_output(input);
  CHECK(got.size() == want.size());
  CHECK(got == want);
}

} // namespace

TEST_SUITE("integration.exactly_once") {

TEST_CASE("a failure-free checkpointed run writes every line once") {
  sluice::test::temp_dir dir;
  auto input = write_input(fs::path(dir.path()), 5000, 11, 7);
  stream_environment env(checkpointed(fs::path(dir.path()), state::backend_kind::heap, 2));
  auto out = (fs::path(dir.path()) / "out").string();
  exactly_once::build(env, input, out, nullptr);
  auto job = env.execute_async("clean");
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(exactly_once::finished_output(out) == exactly_once::expected_output(input));
  // Checkpoints were taken and the final one committed the tail.
  auto stats = nlohmann::json::parse(job->checkpoint_stats_json());
  CHECK(stats["counts"]["completed"].get<int64_t>() >= 1);
  CHECK(stats["latest"]["completed"]["status"] == "COMPLETED");
}

TEST_CASE("exceptions and killed subtasks lose and duplicate nothing (heap)") {
  run_exactly_once(state::backend_kind::heap, 3, 30000, 1500, 6, 42);
}

TEST_CASE("exceptions and killed subtasks lose and duplicate nothing (RocksDB)") {
  run_exactly_once(state::backend_kind::rocksdb, 2, 12000, 600, 4, 4242);
}

TEST_CASE("incremental RocksDB checkpoints recover exactly and delete the shared files they drop") {
  sluice::test::temp_dir dir;
  const int64_t lines = 40000;
  auto input = write_input(fs::path(dir.path()), lines, 37, 77);
  auto plan = std::make_shared<exactly_once::failure_plan>(lines, 8000, 77);
  auto cfg = checkpointed(fs::path(dir.path()), state::backend_kind::rocksdb, 2);
  cfg.checkpoints.interval = 10ms;
  // Short input queues: barriers wait little behind the throttled records,
  // so checkpoints complete often.
  cfg.batch_bytes = 2048;
  cfg.credits_per_channel = 2;
  cfg.checkpoints.incremental = true;
  cfg.checkpoints.num_retained = 2;
  // Kept after the end, so what is left on disk can be checked.
  cfg.checkpoints.retention = runtime::externalized_retention::retain_on_cancellation;
  stream_environment env(cfg);
  auto out = (fs::path(dir.path()) / "out").string();
  exactly_once::build(env, input, out, plan, 20);
  auto job = env.execute_async("incremental checkpoints under failures");
  auto killed = kill_randomly(*job, 2, static_cast<uint64_t>(lines) / 20, 78);
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(killed >= 1);
  CHECK(job->restarts() >= 2);
  CHECK(exactly_once::finished_output(out) == exactly_once::expected_output(input));

  runtime::checkpoint_storage storage(fs::path(dir.path()) / "checkpoints", job->job_id(), 2);
  auto retained = storage.completed();
  REQUIRE(retained.size() == 2);
  // Ids count every checkpoint triggered in any attempt.
  auto taken = retained.back();
  MESSAGE(taken << " checkpoints taken, restarts " << job->restarts());
  std::set<std::string> referenced;
  size_t native = 0;
  for (auto id : retained)
    for (auto& op : storage.read_metadata(id).operators)
      for (auto& s : op.subtasks)
        for (auto& f : s.native_files) {
          ++native;
          if (f.shared)
            referenced.insert(f.stored);
        }
  CHECK(native > 0); // the keyed state was checkpointed incrementally
  std::set<std::string> on_disk;
  for (auto& e : fs::recursive_directory_iterator(storage.job_dir() / "shared"))
    if (!e.is_directory())
      on_disk.insert(fs::relative(e.path(), storage.job_dir()).string());
  // Each checkpoint flushes new SST files: without deletion the shared
  // files of the checkpoints dropped since (at least 6) would still be here.
  CHECK(taken >= 8);
  CHECK(on_disk == referenced);
  auto chk_dirs = 0;
  for (auto& e : fs::directory_iterator(storage.job_dir()))
    chk_dirs += e.path().filename().string().rfind("chk-", 0) == 0 ? 1 : 0;
  CHECK(chk_dirs == 2);
}

TEST_CASE("failures past the restart strategy's limit fail the job with the causes") {
  sluice::test::temp_dir dir;
  auto input = write_input(fs::path(dir.path()), 2000, 5, 3);
  auto plan = std::make_shared<exactly_once::failure_plan>(2000, 100, 3);
  auto cfg = checkpointed(fs::path(dir.path()), state::backend_kind::heap, 2);
  cfg.restart.fixed_delay.attempts = 2;
  stream_environment env(cfg);
  exactly_once::build(env, input, (fs::path(dir.path()) / "out").string(), plan);
  auto r = env.execute("limited");
  CHECK(r.status == runtime::job_status::failed);
  CHECK(r.error.find("injected failure at input line") != std::string::npos);
  CHECK(r.error.find("failures (newest last)") != std::string::npos);
  CHECK(plan->injected() >= 3);
}

} // TEST_SUITE
