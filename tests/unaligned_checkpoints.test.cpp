#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// Counts per key, slowly: the source runs far ahead, so every channel into
/// this operator stays full (heavy backpressure).
struct slow_count final : keyed_process_function<int64_t, int64_t, int64_t> {
  state::value_state<int64_t> n;
  void open(const runtime_context& ctx) override {
    n = ctx.get_state(value_state_descriptor<int64_t>("count"));
  }
  void process_element(const int64_t& i, context&, collector<int64_t>& out) override {
    std::this_thread::sleep_for(200us);
    n.update(n.value().value_or(0) + 1);
    out.collect(i);
  }
};

configuration backpressured(const fs::path& dir) {
  configuration cfg;
  cfg.parallelism = 2;
  cfg.batch_bytes = 8 * 1024; // 1024 records a batch: ~0.25 s to process one
  cfg.state.backend = state::backend_kind::heap;
  cfg.checkpoints.interval = 100ms;
  cfg.checkpoints.timeout = 1500ms;
  cfg.checkpoints.tolerable_failed = 1000;
  cfg.checkpoints.directory = (dir / "checkpoints").string();
  cfg.restart.type = runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = 3;
  cfg.restart.fixed_delay.delay = 0ms;
  return cfg;
}

void build(stream_environment& env) {
  env.from_generator(100'000'000, [](uint64_t i) { return static_cast<int64_t>(i); })
    .uid("numbers")
    .key_by([](int64_t i) { return i % 7; })
    .process(slow_count{})
    .uid("slow-count")
    .discard();
}

nlohmann::json stats(runtime::job_client& job) {
  return nlohmann::json::parse(job.checkpoint_stats_json());
}

int64_t count(runtime::job_client& job, const char* what) {
  return stats(job)["counts"][what].get<int64_t>();
}

} // namespace

TEST_SUITE("integration.unaligned_checkpoints") {

TEST_CASE("under heavy backpressure aligned checkpoints time out and unaligned ones complete") {
  sluice::test::temp_dir dir;
  {
    // Aligned: each barrier waits behind seconds of queued batches.
    stream_environment env(backpressured(fs::path(dir.path()) / "aligned"));
    build(env);
    auto job = env.execute_async("aligned under backpressure");
    CHECK(sluice::test::eventually([&] { return count(*job, "failed") >= 2; }, 30s));
    CHECK(count(*job, "completed") == 0);
    job->cancel();
    job->wait();
  }
  {
    auto cfg = backpressured(fs::path(dir.path()) / "unaligned");
    cfg.checkpoints.unaligned = true;
    stream_environment env(cfg);
    build(env);
    auto job = env.execute_async("unaligned under backpressure");
    CHECK(sluice::test::eventually([&] { return count(*job, "completed") >= 3; }, 30s));
    auto s = stats(*job);
    // The overtaken batches were stored with the checkpoint.
    CHECK(s["latest"]["completed"]["unaligned"].get<bool>());
    CHECK(s["summary"]["persisted_data"]["max"].get<int64_t>() > 0);
    // A failure now restores state and in-flight batches, and the job
    // goes on taking checkpoints.
    job->kill_subtask(1, 0);
    REQUIRE(sluice::test::eventually([&] {
      return job->restarts() == 1 && job->status() == runtime::job_status::running;
    }, 30s));
    auto before = count(*job, "completed");
    CHECK(sluice::test::eventually([&] { return count(*job, "completed") >= before + 2; }, 30s));
    CHECK(job->status() == runtime::job_status::running);
    job->cancel();
    job->wait();
  }
}

TEST_CASE("an aligned-checkpoint timeout switches a stuck alignment to unaligned") {
  sluice::test::temp_dir dir;
  auto cfg = backpressured(fs::path(dir.path()));
  cfg.checkpoints.unaligned = true;
  cfg.checkpoints.aligned_checkpoint_timeout = 200ms;
  stream_environment env(cfg);
  build(env);
  auto job = env.execute_async("aligned, then unaligned");
  CHECK(sluice::test::eventually([&] { return count(*job, "completed") >= 2; }, 30s));
  CHECK(stats(*job)["summary"]["persisted_data"]["max"].get<int64_t>() > 0);
  job->cancel();
  job->wait();
}

TEST_CASE("unaligned checkpoints need exactly-once and one checkpoint at a time") {
  runtime::checkpoint_settings s;
  s.interval = 100ms;
  s.unaligned = true;
  s.mode = runtime::checkpointing_mode::at_least_once;
  CHECK_THROWS_WITH(runtime::validate(s), doctest::Contains("EXACTLY_ONCE"));
  s.mode = runtime::checkpointing_mode::exactly_once;
  s.max_concurrent = 2;
  CHECK_THROWS_WITH(runtime::validate(s),
                    doctest::Contains("execution.checkpointing.max-concurrent-checkpoints"));
}

}
