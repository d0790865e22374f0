#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <vector>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// Passes records on; its part of every checkpoint takes `pause`, so a
/// checkpoint lasts longer than the interval.
struct slow_snapshot final : checkpointed_function {
  std::chrono::milliseconds pause;
  explicit slow_snapshot(std::chrono::milliseconds p) : pause(p) {}
  slow_snapshot(const slow_snapshot&) = default;
  void initialize_state(const runtime::function_initialization_context&) override {}
  void snapshot_state(int64_t, int64_t) override { std::this_thread::sleep_for(pause); }
  int64_t operator()(const int64_t& i) const { return i; }
};

/// Runs a job whose checkpoints each take `pause` until `completed` of them
/// completed, and returns the checkpoint history (newest first).
nlohmann::json run_slow_checkpoints(configuration cfg, std::chrono::milliseconds pause,
                                    int64_t completed) {
  sluice::test::temp_dir dir;
  cfg.parallelism = 1;
  cfg.checkpoints.directory = (fs::path(dir.path()) / "checkpoints").string();
  stream_environment env(cfg);
  env.from_generator(1'000'000'000, [](uint64_t i) { return static_cast<int64_t>(i); })
    .map(slow_snapshot(pause))
    .discard();
  auto job = env.execute_async("slow snapshots");
  auto stats = [&] { return nlohmann::json::parse(job->checkpoint_stats_json()); };
  REQUIRE(sluice::test::eventually([&] { return stats()["counts"]["completed"] >= completed; },
                                   30s));
  auto history = stats()["history"];
  job->cancel();
  job->wait();
  return history;
}

} // namespace

TEST_SUITE("integration.checkpoint_trigger") {

TEST_CASE("a periodic checkpoint that finds one in flight starts when it completes") {
  // Flink queues the periodic request while max-concurrent checkpoints run
  // and starts it on completion; skipping to the next tick instead would
  // stretch a 500 ms interval to 1 s whenever a checkpoint takes longer.
  configuration cfg;
  cfg.checkpoints.interval = 500ms;
  auto history = run_slow_checkpoints(cfg, 600ms, 6);
  // Gaps between the triggers of consecutive completed checkpoints.
  std::vector<int64_t> triggers;
  for (auto& c : history)
    if (c["status"] == "COMPLETED")
      triggers.push_back(c["trigger_timestamp"].get<int64_t>());
  std::sort(triggers.begin(), triggers.end());
  REQUIRE(triggers.size() >= 6);
  std::vector<int64_t> gaps;
  for (size_t i = 1; i < triggers.size(); ++i)
    gaps.push_back(triggers[i] - triggers[i - 1]);
  std::sort(gaps.begin(), gaps.end());
  auto median = gaps[gaps.size() / 2];
  INFO("gaps between triggers (ms, sorted): " << nlohmann::json(gaps).dump());
  // Each checkpoint lasts at least 600 ms; the next starts right after it
  // (a skipped tick would make the gap 1000 ms).
  CHECK(gaps.front() >= 600);
  CHECK(median < 850);
}

TEST_CASE("min-pause still separates a queued periodic checkpoint from the last completion") {
  configuration cfg;
  cfg.checkpoints.interval = 200ms;
  cfg.checkpoints.min_pause = 400ms;
  auto history = run_slow_checkpoints(cfg, 300ms, 4);
  struct span {
    int64_t trigger, done;
  };
  std::vector<span> done;
  for (auto& c : history)
    if (c["status"] == "COMPLETED")
      done.push_back({c["trigger_timestamp"].get<int64_t>(),
                      c["trigger_timestamp"].get<int64_t>() +
                        c["end_to_end_duration"].get<int64_t>()});
  std::sort(done.begin(), done.end(), [](auto& a, auto& b) { return a.trigger < b.trigger; });
  REQUIRE(done.size() >= 4);
  for (size_t i = 1; i < done.size(); ++i)
    CHECK(done[i].trigger - done[i - 1].done >= 400);
}

} // TEST_SUITE
