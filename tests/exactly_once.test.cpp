#include "exactly_once_job.hpp"
#include "exactly_once_util.hpp"
#include "sluice/runtime/checkpoint_storage.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using sluice::test::exactly_once::checkpointed;
using sluice::test::exactly_once::kill_randomly;
using sluice::test::exactly_once::vertex_of;
using sluice::test::exactly_once::write_input;

/// Kills the other subtask of a two-subtask sink when one takes a
/// checkpoint, up to `kills` times, one kill per restart. The kill reaches
/// the other subtask behind the barrier already on its way, so it dies
/// right after acknowledging that checkpoint: the JobMaster often hears of
/// the failure while it completes the checkpoint. Shared by every sink
/// subtask and attempt; thread-safe.
class kill_switch {
public:
  explicit kill_switch(size_t kills) : left_(kills) {}
  /// Kills go to subtasks of vertex `vertex` of `job` from now on.
  void arm(std::shared_ptr<runtime::job_client> job, int32_t vertex) {
    std::lock_guard<std::mutex> guard(mtx_);
    job_ = std::move(job);
    vertex_ = vertex;
  }
  /// Subtask `subtask` snapshots: kill the other one if a kill is due (the
  /// previous kill has led to a restart).
  void on_snapshot(int32_t subtask) {
    std::lock_guard<std::mutex> guard(mtx_);
    if (!job_ || left_ == 0 || job_->restarts() < restarts_)
      return;
    --left_;
    ++kills_;
    restarts_ = job_->restarts() + 1;
    job_->kill_subtask(vertex_, 1 - subtask);
  }
  size_t kills() const {
    std::lock_guard<std::mutex> guard(mtx_);
    return kills_;
  }

private:
  mutable std::mutex mtx_;
  std::shared_ptr<runtime::job_client> job_;
  int32_t vertex_ = -1;
  size_t left_;
  size_t kills_ = 0;
  int32_t restarts_ = 0;
};

/// A sink that tells its kill_switch of each snapshot.
template <class S>
class kill_on_snapshot final : public sluice::test::exactly_once::forwarding_sink<std::string, S> {
  using base = sluice::test::exactly_once::forwarding_sink<std::string, S>;

public:
  kill_on_snapshot(S inner, std::shared_ptr<kill_switch> killer)
    : base(std::move(inner)), killer_(std::move(killer)) {}
  void snapshot_state(int64_t checkpoint_id, int64_t timestamp_ms) override {
    base::snapshot_state(checkpoint_id, timestamp_ms);
    killer_->on_snapshot(this->subtask_);
  }

private:
  std::shared_ptr<kill_switch> killer_;
};

/// What the retained checkpoints of job `job_id` under `base` reference in
/// shared/ and what is there; the number of native files they list and
/// the chk-N directories on disk.
struct shared_state_on_disk {
  std::vector<int64_t> retained;
  std::set<std::string> referenced;
  std::set<std::string> on_disk;
  size_t native = 0;
  size_t chk_dirs = 0;
};

shared_state_on_disk inspect_shared_state(const fs::path& base, const std::string& job_id) {
  shared_state_on_disk out;
  runtime::checkpoint_storage storage(base, job_id);
  out.retained = storage.completed();
  for (auto id : out.retained)
    for (auto& op : storage.read_metadata(id).operators)
      for (auto& s : op.subtasks)
        for (auto& f : s.native_files) {
          ++out.native;
          if (f.shared)
            out.referenced.insert(f.stored);
        }
  if (fs::exists(storage.job_dir() / "shared"))
    for (auto& e : fs::recursive_directory_iterator(storage.job_dir() / "shared"))
      if (!e.is_directory())
        out.on_disk.insert(fs::relative(e.path(), storage.job_dir()).string());
  for (auto& e : fs::directory_iterator(storage.job_dir()))
    out.chk_dirs += e.path().filename().string().rfind("chk-", 0) == 0 ? 1 : 0;
  return out;
}

/// inspect_shared_state() once what the JobMaster's I/O workers delete
/// (after the job may have ended) is gone: `retained` checkpoints, and
/// shared/ holding what they reference, or what is there after 10 s.
shared_state_on_disk settled_shared_state(const fs::path& base, const std::string& job_id,
                                          size_t retained) {
  shared_state_on_disk disk;
  (void)sluice::test::eventually([&] {
    try {
      disk = inspect_shared_state(base, job_id);
    } catch (const std::exception&) {
      return false; // a directory went away while it was read
    }
    return disk.retained.size() == retained && disk.chk_dirs == retained &&
           disk.on_disk == disk.referenced;
  });
  return disk;
}

/// Runs the running-sums job through a sink whose subtasks kill each
/// other on snapshots (kill_switch), so the JobMaster often aborts a
/// checkpoint while its metadata is written. Returns the job.
std::shared_ptr<runtime::job_client> run_killed_while_completing(const fs::path& dir,
                                                                 configuration cfg,
                                                                 size_t kills) {
  const int64_t lines = 40000;
  auto input = write_input(dir, lines, 13, 5);
  cfg.restart.fixed_delay.attempts = 100;
  stream_environment env(cfg);
  auto out = (dir / "out").string();
  auto killer = std::make_shared<kill_switch>(kills);
  file_sink_options sink;
  sink.directory = out;
  exactly_once::build_running_sums(env, input, nullptr, 40)
    .add_sink(kill_on_snapshot(runtime::file_sink<std::string>(sink), killer), "FileSink")
    .uid("file-sink");
  auto job = env.execute_async("killed while checkpoints complete");
  sluice::test::exactly_once::job_guard guard(job);
  REQUIRE(sluice::test::eventually(
    [&] { return vertex_of(*job, "FileSink") >= 0 || runtime::is_globally_terminal(job->status()); }));
  killer->arm(job, vertex_of(*job, "FileSink"));
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  MESSAGE("killed " << killer->kills() << " times; restarts " << job->restarts());
  CHECK(killer->kills() >= kills / 3);
  CHECK(exactly_once::finished_output(out) == exactly_once::expected_output(input));
  return job;
}

void run_exactly_once(state::backend_kind backend, int32_t p, int64_t lines, int64_t fail_every,
                      size_t kills, uint64_t seed, bool unaligned = false) {
  sluice::test::temp_dir dir;
  auto input = write_input(fs::path(dir.path()), lines, 37, seed);
  auto plan = std::make_shared<exactly_once::failure_plan>(lines, fail_every, seed);
  auto cfg = checkpointed(fs::path(dir.path()), backend, p);
  cfg.checkpoints.unaligned = unaligned;
  stream_environment env(cfg);
  auto out = (fs::path(dir.path()) / "out").string();
  exactly_once::build(env, input, out, plan, 40);
  auto job = env.execute_async("exactly once under failures");
  auto killed = kill_randomly(*job, "FileSink", kills, static_cast<uint64_t>(lines) / 50, seed + 1);
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  sluice::test::exactly_once::check_failures_injected(*plan, killed, *job);
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
  auto killed = kill_randomly(*job, "FileSink", 2, static_cast<uint64_t>(lines) / 20, 78);
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(killed >= 1);
  CHECK(job->restarts() >= 2);
  CHECK(exactly_once::finished_output(out) == exactly_once::expected_output(input));

  auto disk = settled_shared_state(fs::path(dir.path()) / "checkpoints", job->job_id(), 2);
  REQUIRE(disk.retained.size() == 2);
  // Ids count every checkpoint triggered in any attempt.
  auto taken = disk.retained.back();
  MESSAGE(taken << " checkpoints taken, restarts " << job->restarts());
  CHECK(disk.native > 0); // the keyed state was checkpointed incrementally
  // Each checkpoint flushes new SST files: without deletion the shared
  // files of the checkpoints dropped since (at least 6) would still be here.
  CHECK(taken >= 8);
  CHECK(disk.on_disk == disk.referenced);
  CHECK(disk.chk_dirs == 2);
}

TEST_CASE("with unaligned checkpoints, failures lose and duplicate nothing (in-flight data)") {
  run_exactly_once(state::backend_kind::heap, 2, 20000, 1000, 5, 77, true);
}

TEST_CASE("a subtask killed while its checkpoint completes restarts from a checkpoint that exists") {
  // The JobMaster learns of the kill after the subtask acknowledged, often
  // while the checkpoint's metadata is being written, and aborts it. The
  // restart then restores the checkpoint before, which the aborted one must
  // not have deleted as no longer retained (num-retained 1); else every
  // restart fails to read its state until the strategy gives up.
  sluice::test::temp_dir dir;
  auto cfg = checkpointed(fs::path(dir.path()), state::backend_kind::heap, 2);
  (void)run_killed_while_completing(fs::path(dir.path()), cfg, 30);
}

TEST_CASE("killed while incremental checkpoints complete: the restore point and its shared files survive") {
  // As above with incremental RocksDB checkpoints: an aborted checkpoint
  // drops only its own references, so the shared files of the checkpoint
  // restored (and that later ones reuse) stay, and in the end shared/ holds
  // exactly what the retained checkpoint references.
  sluice::test::temp_dir dir;
  auto cfg = checkpointed(fs::path(dir.path()), state::backend_kind::rocksdb, 2);
  cfg.checkpoints.incremental = true;
  cfg.checkpoints.retention = runtime::externalized_retention::retain_on_cancellation;
  auto job = run_killed_while_completing(fs::path(dir.path()), cfg, 15);
  auto disk = settled_shared_state(fs::path(dir.path()) / "checkpoints", job->job_id(), 1);
  REQUIRE(disk.retained.size() == 1);
  CHECK(disk.native > 0);
  CHECK(disk.on_disk == disk.referenced);
  // Writers of aborted checkpoints that finished after the abort left
  // nothing behind either.
  CHECK(disk.chk_dirs == 1);
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
