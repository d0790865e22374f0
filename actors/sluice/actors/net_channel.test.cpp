#include "sluice/actors/testing/two_nodes.hpp"

#include "sluice/sluice.hpp"

#include <doctest/doctest.h>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace sluice::actors;
using sluice::actors::testing::job_setup;
using sluice::actors::testing::two_node_job;
using sluice::runtime::execution_state;

namespace {

/// Sends `x` through CAF's binary serializer and back, as BASP does.
template <class T>
T round_trip(caf::actor_system& sys, T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto msg = caf::make_message(std::move(x));
  auto err = sink(msg);
  REQUIRE_MESSAGE(!err, sys.render(err));
  caf::binary_deserializer source{sys, buf};
  caf::message out;
  err = source(out);
  REQUIRE_MESSAGE(!err, sys.render(err));
  REQUIRE(out.match_elements<T>());
  return out.get_as<T>(0);
}

/// A fresh checkpoint directory per test, removed afterwards.
struct temp_dir {
  std::filesystem::path path;
  explicit temp_dir(const std::string& name)
    : path(std::filesystem::temp_directory_path() /
           ("sluice-net-" + name + "-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// Sleeps after every batch: far slower than the source, so only credit
/// keeps the source from running ahead.
class sleepy_sink : public sluice::sink_function<int64_t> {
public:
  void invoke(int64_t&& v) override { sum_ += v; }
  void end_of_batch() override { std::this_thread::sleep_for(500us); }

private:
  int64_t sum_ = 0;
};

/// A record type with no sluice serializer.
struct opaque_record {
  int64_t v = 0;
};

bool source_vertex(const sluice::runtime::job_graph& job, int32_t v) {
  return job.vertices()[v].in_edges.empty();
}

} // namespace

TEST_SUITE("actors.net_channel") {

TEST_CASE("every message type that crosses nodes survives a serializer round trip") {
  testing::node_config cfg(1);
  caf::actor_system sys{cfg};

  auto b = round_trip(sys, net_batch_msg{3, std::string("\x01\x02\x00\x03", 4)});
  CHECK(b.channel == 3);
  CHECK(b.bytes == std::string("\x01\x02\x00\x03", 4));
  auto c = round_trip(sys, net_credit_msg{2, 5});
  CHECK(c.output == 2);
  CHECK(c.channel == 5);
  auto e = round_trip(sys, event_msg{1, static_cast<uint8_t>(channel_event::barrier), 42});
  CHECK(e.channel == 1);
  CHECK(e.event() == channel_event::barrier);
  CHECK(e.value == 42);
  auto t = round_trip(sys, checkpoint_trigger{7, 1234, true, true});
  CHECK(t.id == 7);
  CHECK(t.timestamp_ms == 1234);
  CHECK(t.stop);
  CHECK(t.savepoint);
  auto r = round_trip(sys, subtask_report{1, 2, 3, "boom", 4});
  CHECK(r.vertex == 1);
  CHECK(r.index == 2);
  CHECK(r.state_code == 3);
  CHECK(r.error == "boom");
  CHECK(r.attempt == 4);

  checkpoint_ack ack;
  ack.id = 9;
  ack.vertex = 1;
  ack.index = 1;
  ack.attempt = 2;
  ack.keyed_files = {"k", ""};
  ack.operator_files = {"", "o"};
  ack.bytes = {10, 20};
  sluice::state::native_file_ref f;
  f.name = "000012.sst";
  f.stored = "shared/c9/x-000012.sst";
  f.size = 77;
  f.crc32 = 0xdeadbeef;
  f.shared = true;
  f.prefix = true;
  ack.native_files = {{f}, {}};
  ack.channel_state_file = "n1.chan";
  ack.channel_bytes = 5;
  ack.unaligned = true;
  ack.alignment_ns = 1;
  ack.sync_ns = 2;
  ack.async_ns = 3;
  ack.acked_ms = 4;
  auto a = round_trip(sys, ack);
  CHECK(a.id == 9);
  CHECK(a.attempt == 2);
  CHECK(a.keyed_files == ack.keyed_files);
  CHECK(a.operator_files == ack.operator_files);
  CHECK(a.bytes == ack.bytes);
  REQUIRE(a.native_files.size() == 2);
  REQUIRE(a.native_files[0].size() == 1);
  CHECK(a.native_files[0][0] == f);
  CHECK(a.channel_state_file == "n1.chan");
  CHECK(a.channel_bytes == 5);
  CHECK(a.unaligned);
  CHECK(a.acked_ms == 4);

  // Wiring with handles: a real (local) actor survives as itself.
  // Only the handle matters here, not the behaviour behind it.
  // (It takes an argument: CAF 0.17 dereferences a null argument tuple for
  // actors spawned without one, which UBSan flags.)
  auto dummy = caf::actor_cast<subtask_actor>(
    sys.spawn([](int32_t) -> caf::behavior { return {[](int32_t) {}}; }, 0));
  subtask_wiring w;
  w.outputs = {{{dummy, 1}}};
  w.inputs = {dummy};
  auto w2 = round_trip(sys, w);
  REQUIRE(w2.outputs.size() == 1);
  REQUIRE(w2.outputs[0].size() == 1);
  CHECK(w2.outputs[0][0].first == dummy);
  CHECK(w2.outputs[0][0].second == 1);
  REQUIRE(w2.inputs.size() == 1);
  CHECK(w2.inputs[0] == dummy);
  auto h = round_trip(sys, dummy);
  CHECK(h == dummy);
  caf::anon_send_exit(dummy, caf::exit_reason::user_shutdown);
  caf::logger::set_current_actor_system(nullptr);
}

TEST_CASE("a keyed job with its sources and its keyed subtasks on two nodes gives exact "
          "results") {
  using record = std::pair<int64_t, int64_t>; // (key, value)
  constexpr uint64_t n = 200'000;
  constexpr int64_t keys = 97;
  sluice::configuration cfg;
  cfg.credits_per_channel = 4;
  cfg.batch_bytes = 4096;
  sluice::stream_environment env(cfg);
  env.set_parallelism(2);
  auto out = env
               .from_generator(n,
                               [](uint64_t i) {
                                 auto v = static_cast<int64_t>(i);
                                 return record{v % keys, v};
                               })
               .key_by([](const record& r) { return r.first; })
               .sum([](record& r) -> int64_t& { return r.second; })
               .collect();
  auto job = env.job("net keyed sum");
  REQUIRE(job->vertices().size() == 2);
  temp_dir dir("keyed");
  // Sources here, the keyed vertex (sum -> collect) on the other node.
  two_node_job run({job, env.config(), dir.path.string()},
                   [&](int32_t v, int32_t) { return !source_vertex(*job, v); });
  run.start();
  REQUIRE_MESSAGE(run.run_to_end(60s), run.first_error());

  // A running sum emits every intermediate value; per key the last (the
  // largest) is the key's total.
  std::map<int64_t, int64_t> expected;
  for (uint64_t i = 0; i < n; ++i)
    expected[static_cast<int64_t>(i) % keys] += static_cast<int64_t>(i);
  std::map<int64_t, int64_t> total;
  auto values = out->values();
  CHECK(values.size() == n);
  for (auto& [k, v] : values)
    total[k] = std::max(total[k], v);
  CHECK(total == expected);
  uint64_t far_in = run.cell(1, 0).records_in.load() + run.cell(1, 1).records_in.load();
  CHECK(far_in == n);
  uint64_t near_out = run.cell(0, 0).records_out.load() + run.cell(0, 1).records_out.load();
  CHECK(near_out == n);
}

TEST_CASE("credit bounds the batches in flight to a slow sink on another node") {
  constexpr uint64_t n = 600'000;
  sluice::configuration cfg;
  cfg.credits_per_channel = 4;
  cfg.batch_bytes = 4096; // 512 records per batch
  sluice::stream_environment env(cfg);
  env.set_parallelism(1);
  env.from_generator(n, [](uint64_t i) { return static_cast<int64_t>(i); })
    .add_sink(sleepy_sink{}, "sleepy")
    .disable_chaining();
  auto job = env.job("net backpressure");
  REQUIRE(job->vertices().size() == 2);
  temp_dir dir("credit");
  two_node_job run({job, env.config(), dir.path.string()},
                   [&](int32_t v, int32_t) { return !source_vertex(*job, v); });
  run.start();
  auto& src = run.cell(0, 0);
  auto& sink = run.cell(1, 0);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (sink.records_in.load() < n / 4 && std::chrono::steady_clock::now() < deadline &&
         !run.failed())
    std::this_thread::sleep_for(5ms);
  REQUIRE_MESSAGE(!run.failed(), run.first_error());
  REQUIRE(sink.records_in.load() >= n / 4);
  // Midway the source is ahead of the far sink by no more than its
  // credits plus what one source step produces.
  const uint64_t batch = 4096 / sizeof(int64_t);
  const uint64_t step_overdraft = cfg.source_step_records / batch + 1;
  uint64_t ahead = src.records_out.load() - sink.records_in.load();
  CAPTURE(ahead);
  CHECK(ahead <= (cfg.credits_per_channel + step_overdraft + 2) * batch);
  CHECK(src.blocked_since_ns.load() + src.backpressured_ns.load() > 0);

  REQUIRE_MESSAGE(run.run_to_end(120s), run.first_error());
  CHECK(sink.records_in.load() == n);
  CHECK(sink.peak_queued_batches.load() <= cfg.credits_per_channel);
  CHECK(src.peak_pending_batches.load() <= step_overdraft + 1);
}

TEST_CASE("an aligned checkpoint's barrier crosses nodes and both nodes acknowledge") {
  sluice::configuration cfg;
  cfg.credits_per_channel = 4;
  cfg.batch_bytes = 4096;
  cfg.checkpoints.interval = std::chrono::hours(1); // enabled; triggered by hand here
  cfg.state.backend = sluice::state::backend_kind::heap; // keyed state in one file
  temp_dir dir("checkpoint");
  cfg.checkpoints.directory = dir.path.string();
  sluice::stream_environment env(cfg);
  env.set_parallelism(2);
  // Small values: an unbounded generator's second subtask starts its
  // indices at 2^63, and their running sums must not overflow.
  env.from_generator(sluice::stream_environment::unbounded,
                     [](uint64_t i) { return static_cast<int64_t>(i % 1000); }, 200'000)
    .key_by([](const int64_t& v) { return v % 13; })
    .sum([](int64_t& v) -> int64_t& { return v; })
    .discard();
  auto job = env.job("net checkpoint");
  REQUIRE(job->vertices().size() == 2);
  auto chk_dir = dir.path / "job";
  two_node_job run({job, env.config(), chk_dir.string()},
                   [&](int32_t v, int32_t) { return !source_vertex(*job, v); });
  run.start();
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while ((run.cell(1, 0).records_in.load() == 0 || run.cell(1, 1).records_in.load() == 0) &&
         std::chrono::steady_clock::now() < deadline && !run.failed())
    std::this_thread::sleep_for(5ms);
  REQUIRE_MESSAGE(!run.failed(), run.first_error());
  REQUIRE(run.cell(1, 0).records_in.load() > 0);

  run.trigger_checkpoint(1);
  auto& log = run.log();
  REQUIRE_MESSAGE(log.wait([&] { return log.acks.size() == run.total() || !log.declines.empty(); },
                           30s),
                  "acks: " << log.acks.size());
  std::lock_guard<std::mutex> guard(log.mtx);
  REQUIRE(log.declines.empty());
  std::set<std::pair<int32_t, int32_t>> acked;
  for (auto& a : log.acks) {
    CHECK(a.id == 1);
    acked.emplace(a.vertex, a.index);
    if (a.vertex == 1) {
      // The keyed sum on the far node wrote its state where the near node
      // (the JobMaster's) reads it: one filesystem for both.
      bool any = false;
      for (auto& file : a.keyed_files)
        if (!file.empty()) {
          any = true;
          CHECK(std::filesystem::exists(chk_dir / "chk-1" / file));
        }
      CHECK(any);
    }
  }
  CHECK(acked == std::set<std::pair<int32_t, int32_t>>{{0, 0}, {0, 1}, {1, 0}, {1, 1}});
}

TEST_CASE("an unaligned barrier crosses nodes ahead of the batches in flight, which become "
          "channel state") {
  sluice::configuration cfg;
  cfg.credits_per_channel = 4;
  cfg.batch_bytes = 4096;
  cfg.checkpoints.interval = std::chrono::hours(1); // enabled; triggered by hand here
  cfg.checkpoints.unaligned = true;
  temp_dir dir("unaligned");
  sluice::stream_environment env(cfg);
  env.set_parallelism(1);
  env.from_generator(sluice::stream_environment::unbounded,
                     [](uint64_t i) { return static_cast<int64_t>(i); })
    .add_sink(sleepy_sink{}, "sleepy")
    .disable_chaining();
  auto job = env.job("net unaligned");
  REQUIRE(job->vertices().size() == 2);
  auto chk_dir = dir.path / "job";
  two_node_job run({job, env.config(), chk_dir.string()},
                   [&](int32_t v, int32_t) { return !source_vertex(*job, v); });
  run.start();
  // Backpressured: the far sink's input queue is full of batches.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (run.cell(0, 0).blocked_since_ns.load() == 0 &&
         std::chrono::steady_clock::now() < deadline && !run.failed())
    std::this_thread::sleep_for(5ms);
  REQUIRE_MESSAGE(!run.failed(), run.first_error());

  run.trigger_checkpoint(1);
  auto& log = run.log();
  REQUIRE(log.wait([&] { return log.acks.size() == run.total() || !log.declines.empty(); }, 30s));
  std::lock_guard<std::mutex> guard(log.mtx);
  REQUIRE(log.declines.empty());
  // The batches the barrier overtook: waiting for credit at the source,
  // or queued at the far sink (which of the two varies from run to run).
  uint64_t channel_bytes = 0;
  for (auto& a : log.acks) {
    CAPTURE(a.vertex);
    CHECK(a.id == 1);
    CHECK(a.unaligned);
    channel_bytes += a.channel_bytes;
    if (!a.channel_state_file.empty())
      CHECK(std::filesystem::exists(chk_dir / "chk-1" / a.channel_state_file));
  }
  CHECK(channel_bytes > 0);
}

TEST_CASE("a record type without a serializer on an edge between nodes fails the wiring, "
          "naming the edge") {
  sluice::configuration cfg;
  sluice::stream_environment env(cfg);
  env.set_parallelism(1);
  env.from_generator(10, [](uint64_t i) { return opaque_record{static_cast<int64_t>(i)}; })
    .discard()
    .disable_chaining();
  auto job = env.job("net opaque");
  REQUIRE(job->vertices().size() == 2);
  temp_dir dir("opaque");
  two_node_job run({job, env.config(), dir.path.string()},
                   [&](int32_t v, int32_t) { return !source_vertex(*job, v); });
  run.start();
  REQUIRE(run.log().wait([&] { return run.log().count(execution_state::failed) > 0; }, 30s));
  auto error = run.first_error();
  CAPTURE(error);
  CHECK(error.find("no serializer") != std::string::npos);
  CHECK(error.find("'Generator Source' -> 'Discard'") != std::string::npos);
}

TEST_CASE("a batch from another node that cannot be decoded fails the subtask, naming the "
          "channel") {
  sluice::configuration cfg;
  sluice::stream_environment env(cfg);
  env.set_parallelism(1);
  env.from_generator(10, [](uint64_t i) { return static_cast<int64_t>(i); })
    .discard()
    .disable_chaining();
  auto job = env.job("net garbage");
  REQUIRE(job->vertices().size() == 2);
  temp_dir dir("garbage");
  two_node_job run({job, env.config(), dir.path.string()},
                   [&](int32_t v, int32_t) { return !source_vertex(*job, v); });
  // Claims 1000 records in 3 bytes.
  caf::scoped_actor self{run.near_system()};
  self->send(run.subtask(1, 0), net_batch_msg{0, std::string("\xe8\x07\x00", 3)});
  REQUIRE(run.log().wait([&] { return run.log().count(execution_state::failed) > 0; }, 30s));
  auto error = run.first_error();
  CAPTURE(error);
  CHECK(error.find("cannot decode a batch from another node on input channel 0") !=
        std::string::npos);
}

TEST_CASE("a record type without a serializer still runs when both ends share a node") {
  sluice::configuration cfg;
  sluice::stream_environment env(cfg);
  env.set_parallelism(1);
  env.from_generator(1000, [](uint64_t i) { return opaque_record{static_cast<int64_t>(i)}; })
    .discard()
    .disable_chaining();
  auto job = env.job("local opaque");
  temp_dir dir("opaque-local");
  two_node_job run({job, env.config(), dir.path.string()}, [](int32_t, int32_t) { return false; });
  run.start();
  REQUIRE_MESSAGE(run.run_to_end(30s), run.first_error());
  CHECK(run.cell(1, 0).records_in.load() == 1000);
}

}
