#include "sluice/sluice.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

using namespace sluice;
using namespace sluice::runtime;
using namespace std::chrono_literals;

namespace {

struct rec {
  std::string key;
  int64_t ts = 0;
  int64_t value = 0;
  SLUICE_SERIALIZABLE(key, ts, value)
};

/// Watermark = highest timestamp so far - delay - 1, after every record.
watermark_strategy<rec> punctuated(int64_t delay) {
  return watermark_strategy<rec>::for_generator([delay] {
           auto max_ts = std::make_shared<int64_t>(INT64_MIN);
           return std::make_unique<punctuated_watermarks<rec>>(
             [delay, max_ts](const rec&, int64_t ts) -> std::optional<int64_t> {
               *max_ts = std::max(*max_ts, ts);
               return *max_ts - delay - 1;
             });
         })
    .with_timestamp_assigner([](const rec& r) { return r.ts; });
}

/// Emits "key,start,end,sum" for each firing.
struct format_window final : process_window_function<std::string, rec, std::string> {
  void process(const std::string& key, const window_context<time_window>& ctx,
               const std::vector<rec>& elements, collector<std::string>& out) override {
    int64_t sum = 0;
    for (auto& e : elements)
      sum += e.value;
    out.collect(key + "," + std::to_string(ctx.window.start) + "," +
                std::to_string(ctx.window.end) + "," + std::to_string(sum));
  }
};

rec add(const rec& a, const rec& b) { return {a.key, std::max(a.ts, b.ts), a.value + b.value}; }

struct late_log {
  std::mutex mu;
  std::vector<std::string> lines;
};

template <class W>
std::vector<std::string> run(std::vector<rec> input, int64_t delay, W assigner, int parallelism,
                             int64_t lateness = 0, bool incremental = true,
                             state::backend_kind backend = state::backend_kind::heap,
                             std::shared_ptr<late_log> late = nullptr) {
  configuration cfg;
  cfg.state.backend = backend;
  stream_environment env(cfg);
  env.set_parallelism(parallelism);
  auto src = env.from_collection(std::move(input));
  src.set_parallelism(1);
  auto stamped = src.assign_timestamps_and_watermarks(punctuated(delay));
  stamped.set_parallelism(1);
  auto windowed = stamped.key_by([](const rec& r) { return r.key; }).window(assigner);
  windowed.allowed_lateness(std::chrono::milliseconds(lateness));
  if (late)
    windowed.on_late_data([late](const rec& r, int64_t ts) {
      std::lock_guard<std::mutex> lock(late->mu);
      late->lines.push_back("late," + r.key + "," + std::to_string(ts) + "," +
                            std::to_string(r.value));
    });
  auto out = incremental ? windowed.reduce(add, format_window{}).collect()
                         : windowed.process(format_window{}).collect();
  auto r = env.execute("windows");
  REQUIRE_MESSAGE(r.ok(), r.error);
  auto got = out->values();
  std::sort(got.begin(), got.end());
  return got;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<rec> tumbling_input{{"a", 1, 1}, {"a", 4, 2},  {"b", 3, 10}, {"a", 12, 3},
                                      {"a", 7, 4}, {"b", 15, 20}, {"a", 8, 5},  {"a", 25, 6}};

} // namespace

TEST_SUITE("windows") {

TEST_CASE("tumbling event-time windows sum out-of-order input and drop late records") {
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb})
    for (int p : {1, 2})
      for (bool incremental : {true, false}) {
        CAPTURE(p);
        CAPTURE(incremental);
        auto late = std::make_shared<late_log>();
        auto got = run(tumbling_input, 5, tumbling_event_time_windows(10ms), p, 0, incremental,
                       backend, late);
        CHECK(got == sorted({"a,0,10,7", "b,0,10,10", "a,10,20,3", "b,10,20,20", "a,20,30,6"}));
        CHECK(late->lines == std::vector<std::string>{"late,a,8,5"});
      }
}

TEST_CASE("a late record within the allowed lateness re-fires its window") {
  auto late = std::make_shared<late_log>();
  auto got = run(tumbling_input, 5, tumbling_event_time_windows(10ms), 2, 5, true,
                 state::backend_kind::heap, late);
  CHECK(got == sorted({"a,0,10,7", "b,0,10,10", "a,0,10,12", "a,10,20,3", "b,10,20,20",
                       "a,20,30,6"}));
  CHECK(late->lines.empty());
}

TEST_CASE("sliding windows hold each record in size/slide windows") {
  std::vector<rec> in{{"a", 1, 1}, {"a", 6, 2}, {"a", 12, 4}};
  auto got = run(in, 0, sliding_event_time_windows(10ms, 5ms), 1);
  CHECK(got == sorted({"a,-5,5,1", "a,0,10,3", "a,5,15,6", "a,10,20,4"}));
}

TEST_CASE("a record that bridges two sessions merges them") {
  std::vector<rec> in{{"a", 1, 1}, {"a", 10, 2}, {"b", 2, 100}, {"a", 5, 4}, {"a", 40, 8}};
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb})
    for (bool incremental : {true, false}) {
      CAPTURE(incremental);
      auto got = run(in, 10, event_time_session_windows(5ms), 2, 0, incremental, backend);
      CHECK(got == sorted({"a,1,15,7", "b,2,7,100", "a,40,45,8"}));
    }
}

TEST_CASE("count windows fire every n records per key") {
  stream_environment env;
  env.set_parallelism(2);
  std::vector<std::pair<int64_t, int64_t>> in;
  for (int64_t i = 1; i <= 7; ++i) {
    in.emplace_back(1, i);
    in.emplace_back(2, 10 * i);
  }
  using T = std::pair<int64_t, int64_t>;
  auto out = env.from_collection(in)
               .key_by([](const T& r) { return r.first; })
               .window(global_windows())
               .trigger(std::make_shared<purging_trigger<T, global_window>>(
                 std::make_unique<count_trigger<T, global_window>>(3)))
               .reduce([](const T& a, const T& b) { return T{a.first, a.second + b.second}; })
               .collect();
  auto r = env.execute("count");
  REQUIRE_MESSAGE(r.ok(), r.error);
  auto got = out->values();
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<T>{{1, 6}, {1, 15}, {2, 60}, {2, 150}});
}

TEST_CASE("a record without a timestamp in an event-time window fails the job clearly") {
  stream_environment env;
  env.set_parallelism(1);
  env.from_elements<int64_t>(1, 2, 3)
    .key_by([](const int64_t& v) { return v; })
    .window(tumbling_event_time_windows(10ms))
    .reduce([](const int64_t& a, const int64_t& b) { return a + b; })
    .discard();
  auto r = env.execute("no timestamps");
  CHECK(r.status == job_status::failed);
  CHECK(r.error.find("no timestamp") != std::string::npos);
  CHECK(r.error.find("assign_timestamps_and_watermarks") != std::string::npos);
}

TEST_CASE("bad window sizes and lateness are rejected when the program is built") {
  CHECK_THROWS_AS(tumbling_event_time_windows(-5ms), std::invalid_argument);
  CHECK_THROWS_AS(sliding_event_time_windows(10ms, 0ms), std::invalid_argument);
  CHECK_THROWS_AS(event_time_session_windows(0ms), std::invalid_argument);
  stream_environment env;
  auto w = env.from_elements<int64_t>(1).key_by([](const int64_t& v) { return v; }).window(
    tumbling_event_time_windows(10ms));
  CHECK_THROWS_AS(w.allowed_lateness(-1ms), std::invalid_argument);
}

} // TEST_SUITE
