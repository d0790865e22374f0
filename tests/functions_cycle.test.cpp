#include "sluice/sluice.hpp"
#include "sluice/functions/application.hpp"
#include "sluice/functions/serialization.hpp"
#include "exactly_once_job.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <random>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace fn = sluice::functions;

namespace {

constexpr int64_t ids = 400;
constexpr int32_t rounds = 10;

/// Two functions play ping-pong per id: each counts the messages it got in
/// its state and sends n + 1 to the other; at n == rounds the receiver
/// reports "id,its count" to the egress.
std::shared_ptr<fn::function_registry> ping_pong() {
  auto reg = std::make_shared<fn::function_registry>();
  fn::function_type a{"test", "a"}, b{"test", "b"};
  auto play = [](fn::function_type other) {
    return [other](fn::context& ctx, const fn::message& m) {
      auto n = m.as<int32_t>();
      auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
      ctx.storage().set<int32_t>("seen", seen);
      if (n >= rounds)
        ctx.send_egress(fn::egress_id{"test", "out"},
                        ctx.self().id + "," + std::to_string(seen));
      else
        ctx.send(fn::address{other, ctx.self().id}, n + 1);
    };
  };
  auto spec = std::vector<fn::value_spec>{fn::value_spec::of<int32_t>("seen")};
  REQUIRE(!reg->bind(a, play(b), spec));
  REQUIRE(!reg->bind(b, play(a), spec));
  return reg;
}

/// Ingress: the first `ids` numbers of a source that keeps running (so
/// checkpoint barriers keep coming) start a game each at function a.
runtime::data_stream<fn::envelope> ingress(stream_environment& env) {
  return env.from_generator(uint64_t{1} << 40, [](uint64_t i) { return static_cast<int64_t>(i); },
                            20000)
    .uid("numbers")
    .filter([](int64_t i) { return i < ids; })
    .map([](int64_t i) {
      return fn::envelope::to_function(fn::address{{"test", "a"}, "g" + std::to_string(i)},
                                       fn::make_typed(int32_t{0}));
    });
}

std::string egress_line(const fn::envelope& e) {
  return fn::typed_as<std::string>(e.payload).value_or("?");
}

int64_t completed(runtime::job_client& job) {
  return nlohmann::json::parse(job.checkpoint_stats_json())["counts"]["completed"].get<int64_t>();
}

} // namespace

TEST_SUITE("integration.functions") {

TEST_CASE("functions message each other in a cycle and report to the egress") {
  configuration cfg;
  cfg.parallelism = 2;
  stream_environment env(cfg);
  auto out = fn::run_functions(ingress(env), ping_pong()).map(egress_line).collect();
  auto job = env.execute_async("ping pong");
  CHECK(sluice::test::eventually([&] { return out->size() >= static_cast<size_t>(ids); }, 30s));
  job->cancel();
  job->wait();
  std::map<std::string, int> seen;
  for (auto& l : out->values())
    ++seen[l];
  CHECK(seen.size() == static_cast<size_t>(ids));
  // a gets 0, 2, ..., 10: six messages, and reports at 10.
  CHECK(seen.count("g7,6") == 1);
  for (auto& [l, n] : seen)
    CHECK_MESSAGE((n == 1 && l.substr(l.find(',')) == ",6"), l);
}

void run_cycle_under_failures(bool unaligned) {
  sluice::test::temp_dir dir;
  configuration cfg;
  cfg.checkpoints.unaligned = unaligned;
  cfg.parallelism = 2;
  cfg.state.backend = state::backend_kind::rocksdb;
  cfg.checkpoints.interval = 40ms;
  cfg.checkpoints.directory = (fs::path(dir.path()) / "checkpoints").string();
  cfg.restart.type = runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = 100;
  cfg.restart.fixed_delay.delay = 0ms;
  stream_environment env(cfg);
  file_sink_options sink;
  sink.directory = (fs::path(dir.path()) / "out").string();
  fn::run_functions(ingress(env), ping_pong())
    .map(egress_line)
    .sink_to_files(sink)
    .uid("egress");
  auto job = env.execute_async("ping pong under failures");
  std::mt19937_64 rng(11);
  const int kills = 3;
  for (int round = 0; round < kills; ++round) {
    REQUIRE(sluice::test::eventually([&] {
      return job->status() == runtime::job_status::running && job->restarts() >= round;
    }, 30s));
    auto before = completed(*job);
    REQUIRE(sluice::test::eventually([&] { return completed(*job) >= before + 2; }, 30s));
    job->kill_subtask(1, static_cast<int32_t>(rng() % 2));
    // The kill lands once the subtask reads it; wait for its restart.
    REQUIRE(sluice::test::eventually([&] { return job->restarts() >= round + 1; }, 30s));
  }
  std::map<std::string, int> seen;
  auto read = [&] {
    seen.clear();
    for (auto& l : exactly_once::finished_output(sink.directory))
      ++seen[l];
    return seen.size() >= static_cast<size_t>(ids);
  };
  CHECK(sluice::test::eventually(read, 60s));
  job->cancel();
  job->wait();
  read();
  CHECK(seen.size() == static_cast<size_t>(ids));
  for (auto& [l, n] : seen)
    CHECK_MESSAGE((n == 1 && l.substr(l.find(',')) == ",6"), l);
  CHECK(job->restarts() == kills);
}

TEST_CASE("cyclic messaging under failures and checkpoints: state and output exactly once") {
  run_cycle_under_failures(false);
}

TEST_CASE("cyclic messaging with unaligned checkpoints (which StateFun refuses): exactly once") {
  run_cycle_under_failures(true);
}

}
