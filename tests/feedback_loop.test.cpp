#include "sluice/sluice.hpp"
#include "exactly_once_job.hpp"
#include "exactly_once_util.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <map>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// (id, rounds left): each record goes around the loop until no round is
/// left, then leaves it.
using hop = std::pair<int64_t, int64_t>;

constexpr int64_t ids = 3000;

/// The loop: numbers -> step -> (rounds left > 0: back to step, keyed by
/// id) / (done: out). Returns the records that left the loop.
data_stream<hop> build_loop(stream_environment& env) {
  // The source keeps running (checkpoint barriers start there); only its
  // first `ids` numbers enter the loop.
  auto start = env.from_generator(
                    uint64_t{1} << 40, [](uint64_t i) { return static_cast<int64_t>(i); }, 20000)
                 .uid("numbers")
                 .filter([](int64_t i) { return i < ids; })
                 .map([](int64_t i) { return hop{i, 1 + i % 9}; });
  auto stepped = start.rebalance()
                   .map([](const hop& h) { return hop{h.first, h.second - 1}; })
                   .uid("step");
  stepped.filter([](const hop& h) { return h.second > 0; })
    .key_by([](const hop& h) { return h.first; })
    .feed_back_into(stepped);
  return stepped.filter([](const hop& h) { return h.second == 0; });
}

} // namespace

TEST_SUITE("integration.feedback") {

TEST_CASE("records go around a feedback loop until done and every one leaves it once") {
  configuration cfg;
  cfg.parallelism = 2;
  stream_environment env(cfg);
  auto done = build_loop(env).collect();
  auto job = env.execute_async("loop");
  CHECK(sluice::test::eventually([&] { return done->size() >= static_cast<size_t>(ids); }, 30s));
  job->cancel();
  job->wait();
  std::map<int64_t, int> seen;
  for (auto& h : done->values())
    ++seen[h.first];
  CHECK(seen.size() == static_cast<size_t>(ids));
  for (auto& [id, n] : seen)
    CHECK_MESSAGE(n == 1, "id " << id);
}

TEST_CASE("a loop's in-flight records survive failures: exactly once with checkpoints") {
  sluice::test::temp_dir dir;
  auto cfg = sluice::test::exactly_once::checkpointed(dir.path(), state::backend_kind::rocksdb, 2);
  stream_environment env(cfg);
  file_sink_options sink;
  sink.directory = (fs::path(dir.path()) / "out").string();
  build_loop(env)
    .map([](const hop& h) { return std::to_string(h.first); })
    .sink_to_files(sink)
    .uid("sink");
  auto job = env.execute_async("loop under failures");
  const int kills = 4;
  sluice::test::exactly_once::kill_between_checkpoints(*job, 1, 2, kills, 5);
  // Everything committed: every id exactly once.
  std::map<std::string, int> seen;
  CHECK(sluice::test::eventually([&] {
    seen.clear();
    for (auto& l : exactly_once::finished_output(sink.directory))
      ++seen[l];
    return seen.size() >= static_cast<size_t>(ids);
  }, 60s));
  job->cancel();
  job->wait();
  seen.clear();
  for (auto& l : exactly_once::finished_output(sink.directory))
    ++seen[l];
  CHECK(seen.size() == static_cast<size_t>(ids));
  int dup = 0;
  for (auto& [id, n] : seen)
    dup += n > 1;
  CHECK(dup == 0);
  // One restart per kill: every restore (with the loop's channel state) worked.
  CHECK(job->restarts() == kills);
}

}

TEST_SUITE("integration.feedback") {

TEST_CASE("a loop must go back to an earlier operator") {
  stream_environment env;
  auto a = env.from_elements(int64_t{1}, int64_t{2}).map([](int64_t i) { return i + 1; });
  auto b = a.map([](int64_t i) { return i * 2; });
  CHECK_THROWS_WITH_AS(a.feed_back_into(b), doctest::Contains("earlier operator"),
                       std::invalid_argument);
}

}
