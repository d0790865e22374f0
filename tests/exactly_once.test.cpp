#include "exactly_once_job.hpp"
#include "exactly_once_util.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using sluice::test::exactly_once::checkpointed;
using sluice::test::exactly_once::kill_randomly;
using sluice::test::exactly_once::write_input;

void run_exactly_once(state::backend_kind backend, int32_t p, int64_t lines, int64_t fail_every,
                      size_t kills, uint64_t seed) {
  sluice::test::temp_dir dir;
  auto input = write_input(fs::path(dir.path()), lines, 37, seed);
  auto plan = std::make_shared<exactly_once::failure_plan>(lines, fail_every, seed);
  stream_environment env(checkpointed(fs::path(dir.path()), backend, p));
  auto out = (fs::path(dir.path()) / "out").string();
  exactly_once::build(env, input, out, plan, 40);
  auto job = env.execute_async("exactly once under failures");
  auto killed = kill_randomly(*job, "FileSink", kills, static_cast<uint64_t>(lines) / 50, seed + 1);
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
