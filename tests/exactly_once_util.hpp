#pragma once

#include "test_util.hpp"

#include "sluice/sluice.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

/// What the exactly-once tests of every sink share (the job itself is
/// examples/exactly_once_job.hpp): input, configuration, killing subtasks.
namespace sluice::test::exactly_once {

/// Writes `lines` random lines "k<n>,<value>" over `keys` keys (seeded)
/// into <dir>/input.csv and returns its path.
inline std::string write_input(const std::filesystem::path& dir, int64_t lines, int keys,
                               uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto p = (dir / "input.csv").string();
  std::ofstream out(p);
  for (int64_t i = 0; i < lines; ++i)
    out << "k" << rng() % static_cast<uint64_t>(keys) << ","
        << static_cast<int64_t>(rng() % 1000) - 300 << "\n";
  return p;
}

/// Exactly-once checkpoints every 30 ms into <dir>/checkpoints, restarts
/// without delay (practically unlimited), parallelism `p`.
inline configuration checkpointed(const std::filesystem::path& dir, state::backend_kind backend,
                                  int32_t p) {
  using namespace std::chrono_literals;
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

/// Cancels a job that still runs when the test leaves (a failed REQUIRE),
/// and waits for its end, so that nothing the job uses (a server, a
/// directory) goes away under it.
class job_guard {
public:
  explicit job_guard(std::shared_ptr<runtime::job_client> job)
      : job_(std::move(job)) {}
  ~job_guard() {
    if (runtime::is_globally_terminal(job_->status()))
      return;
    job_->cancel();
    (void)job_->wait_for(std::chrono::seconds(60));
  }
  job_guard(const job_guard&) = delete;
  job_guard& operator=(const job_guard&) = delete;

private:
  std::shared_ptr<runtime::job_client> job_;
};

/// Which vertex (index in job order, as kill_subtask takes it) runs the
/// task named like `fragment`; -1 if none.
inline int32_t vertex_of(runtime::job_client& job, const std::string& fragment) {
  int32_t vertex = -1;
  for (auto& m : job.metrics().subtasks) {
    if (m.subtask == 0)
      ++vertex;
    if (m.task.find(fragment) != std::string::npos)
      return vertex;
  }
  return -1;
}

/// A sink that runs sink `S` unchanged, for tests to derive from and step
/// in between the runtime and S (checkpoints, completions). Copied per
/// subtask like any sink; each copy owns its S.
template <class T, class S>
class forwarding_sink : public runtime::sink_function<T>,
                        public runtime::checkpointed_function,
                        public runtime::checkpoint_listener {
public:
  explicit forwarding_sink(S inner)
      : inner_(std::move(inner)) {}

  void initialize_state(const runtime::function_initialization_context& ctx) override {
    inner_.initialize_state(ctx);
  }
  void open(const runtime::runtime_context& ctx) override {
    subtask_ = ctx.subtask_index();
    inner_.open(ctx);
  }
  void close() override { inner_.close(); }
  void invoke(T&& value) override { inner_.invoke(std::move(value)); }
  void end_of_batch() override { inner_.end_of_batch(); }
  void finish() override { inner_.finish(); }
  void snapshot_state(int64_t checkpoint_id, int64_t timestamp_ms) override {
    inner_.snapshot_state(checkpoint_id, timestamp_ms);
  }
  void notify_checkpoint_complete(int64_t checkpoint_id) override {
    inner_.notify_checkpoint_complete(checkpoint_id);
  }
  void notify_checkpoint_aborted(int64_t checkpoint_id) override {
    inner_.notify_checkpoint_aborted(checkpoint_id);
  }

protected:
  S inner_;
  /// This copy's subtask index (set by open()).
  int32_t subtask_ = 0;
};

/// Records that the subtasks of the task named like `sink_task` took in.
inline uint64_t records_into(runtime::job_client& job, const std::string& sink_task) {
  uint64_t in = 0;
  for (auto& m : job.metrics().of_task(sink_task))
    in += m.records_in;
  return in;
}

/// Kills a random subtask of the running job `kills` times, each time once
/// the job runs and the subtasks of `sink_task` report `progress` records,
/// then waits until the job restarted. Returns the kills done (fewer if the
/// job ended first).
inline size_t kill_randomly(runtime::job_client& job, const std::string& sink_task, size_t kills,
                            uint64_t progress, uint64_t seed) {
  using namespace std::chrono_literals;
  std::mt19937_64 rng(seed);
  size_t done = 0;
  while (done < kills) {
    auto restarts = job.restarts();
    bool due = eventually(
        [&] {
          if (runtime::is_globally_terminal(job.status()))
            return true;
          return job.status() == runtime::job_status::running &&
                 records_into(job, sink_task) >= progress;
        },
        60s);
    if (!due || runtime::is_globally_terminal(job.status()))
      break;
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
    eventually(
        [&] { return job.restarts() != restarts || runtime::is_globally_terminal(job.status()); },
        60s);
  }
  return done;
}

/// After a run with a failure plan (examples/exactly_once_job.hpp) and
/// `killed` kills: every planned exception happened, failures caused
/// restarts, and there were at least 20 failures in all.
template <class Plan>
void check_failures_injected(const Plan& plan, size_t killed, runtime::job_client& job) {
  MESSAGE("injected " << plan.injected() << " exceptions, killed " << killed
                      << " subtasks; restarts " << job.restarts());
  CHECK(plan.injected() == plan.planned());
  // Failures of several subtasks in one attempt lead to one restart.
  CHECK(job.restarts() >= 5);
  CHECK(killed >= 1);
  CHECK(plan.injected() + killed >= 20);
}

/// Checkpoints the job completed so far (its checkpoint statistics).
inline int64_t completed_checkpoints(runtime::job_client& job) {
  return nlohmann::json::parse(job.checkpoint_stats_json())["counts"]["completed"].get<int64_t>();
}

/// `kills` times: once the job runs and has completed two more
/// checkpoints, kills a random one of `subtasks` subtasks of `vertex`, and
/// waits for the restart (a kill lands once the subtask reads it).
inline void kill_between_checkpoints(runtime::job_client& job, int32_t vertex, int32_t subtasks,
                                     int kills, uint64_t seed) {
  using namespace std::chrono_literals;
  std::mt19937_64 rng(seed);
  for (int round = 0; round < kills; ++round) {
    REQUIRE_MESSAGE(eventually([&] {
      return job.status() == runtime::job_status::running && job.restarts() >= round;
    }, 30s), "round " << round << ": restarts " << job.restarts());
    auto before = completed_checkpoints(job);
    REQUIRE_MESSAGE(eventually([&] { return completed_checkpoints(job) >= before + 2; }, 30s),
                    "round " << round << ": no checkpoint completed");
    job.kill_subtask(vertex, static_cast<int32_t>(rng() % static_cast<uint64_t>(subtasks)));
    REQUIRE(eventually([&] { return job.restarts() >= round + 1; }, 30s));
  }
}

} // namespace sluice::test::exactly_once
