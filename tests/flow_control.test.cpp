#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <array>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
using sluice::test::eventually;

namespace {

/// 64-byte records, so unbounded buffering of 10 M records would need 640 MB.
using wide_record = std::array<int64_t, 8>;

/// A sink that sleeps after every batch it receives: far slower than the
/// source, so the source must be held back by credits.
class sleepy_sink : public sink_function<wide_record> {
public:
  void invoke(wide_record&& r) override { checksum_ += r[0]; }
  // Slow enough that the source is backpressured even in the sanitizer
  // build, where generating records is several times slower.
  void end_of_batch() override { std::this_thread::sleep_for(250us); }

private:
  int64_t checksum_ = 0;
};

} // namespace

TEST_SUITE("integration.flow_control") {

TEST_CASE("a slow sink holds back the source: bounded buffers, bounded memory, "
          "backpressured source") {
  constexpr uint64_t n = 10'000'000;
  configuration cfg;
  cfg.credits_per_channel = 4;
  stream_environment env(cfg);
  env.set_parallelism(1);
  env.from_generator(n, [](uint64_t i) { return wide_record{static_cast<int64_t>(i)}; })
    .add_sink(sleepy_sink{}, "sleepy")
    .disable_chaining();
  auto rss_before = sluice::test::rss_kib();
  auto client = env.execute_async("backpressure");

  // Midway: the source cannot be ahead of the sink by more than what the
  // credits (plus one step's overdraft) allow.
  REQUIRE(eventually([&] {
    auto m = client->metrics().of_task("sleepy");
    return !m.empty() && m[0].records_in > n / 4;
  }, 60s));
  auto m = client->metrics();
  auto src = m.of_task("Generator")[0];
  auto sink = m.of_task("sleepy")[0];
  const uint64_t batch = 64 * 1024 / sizeof(wide_record);       // records per batch
  const uint64_t step_overdraft = cfg.source_step_records / batch + 1; // batches
  uint64_t ahead = src.records_out - sink.records_in;
  CAPTURE(ahead);
  CHECK(ahead <= (cfg.credits_per_channel + step_overdraft + 2) * batch);
  CHECK(src.backpressured_ms_per_second > 500);
  CHECK(src.busy_ms_per_second < 500);

  auto r = client->wait_for(120s);
  REQUIRE(r.has_value());
  REQUIRE_MESSAGE(r->ok(), r->error);
  m = client->metrics();
  src = m.of_task("Generator")[0];
  sink = m.of_task("sleepy")[0];
  CHECK(sink.records_in == n);
  // Buffered batches never exceeded the credits of the channel.
  CHECK(sink.peak_queued_batches <= cfg.credits_per_channel);
  CHECK(src.peak_pending_batches <= step_overdraft + 1);
  CHECK(src.backpressured_ms_total > 1000);
  // 10 M x 64 B = 640 MB went through; the process grew by far less.
  auto grown_mib = (sluice::test::peak_rss_kib() - rss_before) / 1024;
  CAPTURE(grown_mib);
  CHECK(grown_mib < 64);
}

TEST_CASE("keyed exchange at parallelism 2 under backpressure loses nothing") {
  configuration cfg;
  cfg.credits_per_channel = 2;
  cfg.batch_bytes = 4096;
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto out = env.from_generator(200000, [](uint64_t i) { return static_cast<int64_t>(i); })
               .key_by([](const int64_t& v) { return v % 97; })
               .sum([](int64_t& v) -> int64_t& { return v; })
               .rebalance()
               .filter([](const int64_t&) { return true; })
               .collect();
  auto r = env.execute();
  REQUIRE(r.ok());
  CHECK(out->size() == 200000);
}

} // TEST_SUITE
