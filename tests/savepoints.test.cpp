#include "sluice/sluice.hpp"
#include "exactly_once_job.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {


constexpr uint64_t total = 24000;

/// Counts records per key; emits "key,count,i".
struct count_per_key final : keyed_process_function<int64_t, int64_t, std::string> {
  state::value_state<int64_t> n;
  void open(const runtime_context& ctx) override {
    n = ctx.get_state(value_state_descriptor<int64_t>("count"));
  }
  void process_element(const int64_t& i, context& ctx, collector<std::string>& out) override {
    auto c = n.value().value_or(0) + 1;
    n.update(c);
    out.collect(std::to_string(ctx.current_key()) + "," + std::to_string(c) + "," +
                std::to_string(i));
  }
};

/// The generator job; `keyed_uid` names the counting operator.
void build(stream_environment& env, const std::string& out, const std::string& keyed_uid) {
  file_sink_options sink;
  sink.directory = out;
  env.from_generator(total, [](uint64_t i) { return static_cast<int64_t>(i); }, 30000)
    .uid("numbers")
    .key_by([](int64_t i) { return i % 13; })
    .process(count_per_key{})
    .uid(keyed_uid)
    .sink_to_files(sink)
    .uid("sink");
}

configuration config_for(const fs::path& dir, int32_t p, const std::string& restore = {}) {
  configuration cfg;
  cfg.parallelism = p;
  cfg.state.backend = state::backend_kind::heap;
  cfg.checkpoints.interval = 50ms;
  cfg.checkpoints.directory = (dir / "checkpoints").string();
  cfg.restore.path = restore;
  return cfg;
}

/// Every record once, and per key the counts 1..n: nothing lost, nothing
/// counted twice.
void check_output(const std::string& out) {
  auto lines = exactly_once::finished_output(out);
  std::map<int64_t, int> seen;
  std::map<int64_t, std::vector<int64_t>> counts;
  for (auto& l : lines) {
    auto a = l.find(','), b = l.rfind(',');
    counts[std::stoll(l.substr(0, a))].push_back(std::stoll(l.substr(a + 1, b - a - 1)));
    ++seen[std::stoll(l.substr(b + 1))];
  }
  CHECK(lines.size() == total);
  CHECK(seen.size() == total);
  for (auto& [k, cs] : counts) {
    std::sort(cs.begin(), cs.end());
    bool ok = true;
    for (size_t j = 0; j < cs.size(); ++j)
      ok = ok && cs[j] == static_cast<int64_t>(j + 1);
    CHECK_MESSAGE(ok, "key " << k);
  }
}

/// Waits until the job's sink has taken `n` records in this run.
void await_sink_records(runtime::job_client& job, uint64_t n) {
  REQUIRE(sluice::test::eventually([&] {
    uint64_t in = 0;
    for (auto& m : job.metrics().of_task("FileSink"))
      in += m.records_in;
    return in >= n;
  }, 60s));
  REQUIRE(job.status() == runtime::job_status::running);
}

std::string run_then_stop(const fs::path& dir, int32_t p, const std::string& restore,
                          const std::string& out, uint64_t records) {
  stream_environment env(config_for(dir, p, restore));
  build(env, out, "counter");
  auto job = env.execute_async("savepoint round trip");
  await_sink_records(*job, records);
  auto path = job->stop_with_savepoint((dir / "savepoints").string(), false);
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  REQUIRE(fs::exists(fs::path(path) / "_metadata"));
  return path;
}

} // namespace

TEST_SUITE("integration.savepoints") {

TEST_CASE("stop with savepoint, resume at parallelism 1 -> 3 -> 2: nothing lost or doubled") {
  sluice::test::temp_dir dir;
  auto out = (fs::path(dir.path()) / "out").string();
  auto sp1 = run_then_stop(fs::path(dir.path()), 1, "", out, total / 6);
  // The savepoint directory is self-contained: move it and resume from there.
  auto moved = fs::path(dir.path()) / "moved-savepoint";
  fs::rename(sp1, moved);
  auto sp2 = run_then_stop(fs::path(dir.path()), 3, moved.string(), out, total / 6);
  stream_environment env(config_for(fs::path(dir.path()), 2, sp2));
  build(env, out, "counter");
  auto r = env.execute("resume to the end");
  REQUIRE_MESSAGE(r.ok(), r.error);
  check_output(out);
  // Disposing removes a savepoint; a checkpoint is not disposed that way.
  runtime::dispose_savepoint(sp2);
  CHECK(!fs::exists(sp2));
}

TEST_CASE("a retained incremental RocksDB checkpoint resumes at parallelism 3; its savepoint is full") {
  sluice::test::temp_dir dir;
  auto base = fs::path(dir.path());
  auto out = (base / "out").string();
  auto rocks = [&](int32_t p, const std::string& restore) {
    auto cfg = config_for(base, p, restore);
    cfg.state.backend = state::backend_kind::rocksdb;
    cfg.checkpoints.incremental = true;
    cfg.checkpoints.retention = runtime::externalized_retention::retain_on_cancellation;
    return cfg;
  };
  std::string retained;
  {
    stream_environment env(rocks(2, ""));
    build(env, out, "counter");
    auto job = env.execute_async("incremental, then cancelled");
    await_sink_records(*job, total / 6);
    runtime::checkpoint_storage storage(base / "checkpoints", job->job_id());
    REQUIRE(sluice::test::eventually([&] { return storage.completed().size() >= 1; }, 60s));
    job->cancel();
    job->wait();
    auto ids = storage.completed();
    REQUIRE(!ids.empty());
    retained = storage.checkpoint_dir(ids.back()).string();
    bool native = false;
    for (auto& op : storage.read_metadata(ids.back()).operators)
      for (auto& s : op.subtasks)
        native = native || !s.native_files.empty();
    REQUIRE(native);
  }
  // Rescaled from the incremental checkpoint; a savepoint of the new job is
  // in the canonical format: no native files, so it moves and restores into
  // another backend.
  auto sp = [&] {
    stream_environment env(rocks(3, retained));
    build(env, out, "counter");
    auto job = env.execute_async("restored at 3");
    await_sink_records(*job, total / 3);
    auto path = job->stop_with_savepoint((base / "savepoints").string(), false);
    auto r = job->wait();
    REQUIRE_MESSAGE(r.ok(), r.error);
    return path;
  }();
  auto md = runtime::restore_point::read(sp).metadata;
  for (auto& op : md.operators)
    for (auto& s : op.subtasks)
      CHECK(s.native_files.empty());
  auto moved = base / "moved-savepoint";
  fs::rename(sp, moved);
  stream_environment env(config_for(base, 2, moved.string())); // heap backend
  build(env, out, "counter");
  auto r = env.execute("resume to the end on the heap");
  REQUIRE_MESSAGE(r.ok(), r.error);
  check_output(out);
}

TEST_CASE("a savepoint of a running job, and allow_non_restored_state") {
  sluice::test::temp_dir dir;
  stream_environment env(config_for(fs::path(dir.path()), 2));
  build(env, (fs::path(dir.path()) / "out").string(), "counter");
  auto job = env.execute_async("savepoint");
  await_sink_records(*job, 2000);
  auto sp = job->trigger_savepoint((fs::path(dir.path()) / "savepoints").string());
  CHECK(job->status() == runtime::job_status::running);
  job->cancel();
  job->wait();
  auto stats = job->checkpoint_stats_json();
  CHECK(stats.find("\"is_savepoint\":true") != std::string::npos);

  // The counter is gone (new uid): its state cannot be mapped.
  {
    stream_environment e2(config_for(fs::path(dir.path()), 2, sp));
    build(e2, (fs::path(dir.path()) / "out2").string(), "renamed-counter");
    auto r = e2.execute("without the counter");
    CHECK(r.status == runtime::job_status::failed);
    CHECK(r.error.find("cannot map the state of operator 'counter'") != std::string::npos);
  }
  {
    auto cfg = config_for(fs::path(dir.path()), 2, sp);
    cfg.restore.allow_non_restored_state = true;
    stream_environment e3(cfg);
    build(e3, (fs::path(dir.path()) / "out3").string(), "renamed-counter");
    auto r = e3.execute("allow non-restored state");
    CHECK_MESSAGE(r.ok(), r.error);
  }
}

TEST_CASE("corrupt savepoints give clear errors naming the file") {
  sluice::test::temp_dir dir;
  stream_environment env(config_for(fs::path(dir.path()), 2));
  build(env, (fs::path(dir.path()) / "out").string(), "counter");
  auto job = env.execute_async("savepoint");
  await_sink_records(*job, 2000);
  auto sp = job->stop_with_savepoint((fs::path(dir.path()) / "savepoints").string(), false);
  job->wait();
  // A damaged keyed state file: the restore names the operator and file.
  fs::path keyed;
  for (auto& e : fs::directory_iterator(sp))
    if (e.path().extension() == ".keyed")
      keyed = e.path();
  REQUIRE(!keyed.empty());
  {
    std::fstream f(keyed, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(keyed) / 2));
    f.put('\x7f');
  }
  {
    auto cfg = config_for(fs::path(dir.path()), 2, sp);
    cfg.restart.type = runtime::restart_strategy_type::none;
    stream_environment e2(cfg);
    build(e2, (fs::path(dir.path()) / "out2").string(), "counter");
    auto r = e2.execute("corrupt state");
    CHECK(r.status == runtime::job_status::failed);
    CHECK(r.error.find("cannot restore operator 'counter'") != std::string::npos);
  }
  // Damaged metadata.
  {
    std::ofstream(fs::path(sp) / "_metadata") << "{ not json";
    stream_environment e3(config_for(fs::path(dir.path()), 2, sp));
    build(e3, (fs::path(dir.path()) / "out3").string(), "counter");
    auto r = e3.execute("corrupt metadata");
    CHECK(r.status == runtime::job_status::failed);
    CHECK(r.error.find("_metadata") != std::string::npos);
  }
  {
    stream_environment e4(config_for(fs::path(dir.path()), 2, (fs::path(dir.path()) / "nowhere").string()));
    build(e4, (fs::path(dir.path()) / "out4").string(), "counter");
    auto r = e4.execute("missing savepoint");
    CHECK(r.status == runtime::job_status::failed);
    CHECK(r.error.find("no checkpoint or savepoint metadata") != std::string::npos);
  }
}

TEST_CASE("checkpoint settings out of range fail the job with the key named") {
  sluice::test::temp_dir dir;
  auto cfg = config_for(fs::path(dir.path()), 1);
  cfg.checkpoints.max_concurrent = 0;
  stream_environment env(cfg);
  build(env, (fs::path(dir.path()) / "out").string(), "counter");
  auto r = env.execute("bad settings");
  CHECK(r.status == runtime::job_status::failed);
  CHECK(r.error.find("max-concurrent-checkpoints = 0") != std::string::npos);
}

TEST_CASE("at-least-once mode loses nothing after failures") {
  sluice::test::temp_dir dir;
  auto cfg = config_for(fs::path(dir.path()), 3);
  cfg.checkpoints.mode = runtime::checkpointing_mode::at_least_once;
  cfg.checkpoints.interval = 20ms;
  cfg.restart.type = runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = 100;
  cfg.restart.fixed_delay.delay = 0ms;
  stream_environment env(cfg);
  auto failures = std::make_shared<std::atomic<int>>(0);
  auto out = env.from_generator(total, [](uint64_t i) { return static_cast<int64_t>(i); })
               .rebalance()
               .map([failures](int64_t i) {
                 if (i % 2000 == 1999 && failures->fetch_add(1) < 8)
                   throw std::runtime_error("injected");
                 return i;
               })
               .collect();
  auto r = env.execute("at least once");
  REQUIRE_MESSAGE(r.ok(), r.error);
  std::map<int64_t, int> seen;
  for (auto v : out->values())
    ++seen[v];
  CHECK(seen.size() == total);
  size_t duplicates = out->values().size() - seen.size();
  MESSAGE("at-least-once: " << duplicates << " duplicates after failures");
}

} // TEST_SUITE

TEST_SUITE("integration.savepoints") {

TEST_CASE("stop with savepoint ends a job whose source never ends, and its client can go") {
  sluice::test::temp_dir dir;
  auto cfg = config_for(fs::path(dir.path()), 2);
  stream_environment env(cfg);
  env.from_generator(stream_environment::unbounded, [](uint64_t i) { return static_cast<int64_t>(i); })
    .uid("numbers")
    .key_by([](int64_t i) { return i % 13; })
    .process(count_per_key{})
    .uid("counter")
    .discard();
  auto job = env.execute_async("never ending");
  // A savepoint needs every task RUNNING.
  REQUIRE(sluice::test::eventually([&] {
    auto m = job->metrics();
    if (m.subtasks.empty())
      return false;
    for (auto& s : m.subtasks)
      if (s.state != runtime::execution_state::running)
        return false;
    return true;
  }, 30s));
  auto sp = job->stop_with_savepoint((fs::path(dir.path()) / "savepoints").string(), false);
  CHECK(fs::exists(fs::path(sp) / "_metadata"));
  auto r = job->wait();
  CHECK(r.status == runtime::job_status::finished);
  job.reset(); // must not hang
}

}
