#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
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

const std::vector<state::backend_kind> both_backends{state::backend_kind::heap,
                                                     state::backend_kind::rocksdb};

/// The window function an evictor test uses.
enum class fn_kind { reduce, reduce_process, aggregate, process };

/// Counts elements and sums their values: the result is "count/sum".
struct count_and_sum final
  : state::aggregate_function<rec, std::pair<int64_t, int64_t>, std::string> {
  std::pair<int64_t, int64_t> create_accumulator() const override { return {0, 0}; }
  void add(const rec& r, std::pair<int64_t, int64_t>& acc) const override {
    ++acc.first;
    acc.second += r.value;
  }
  std::string get_result(const std::pair<int64_t, int64_t>& acc) const override {
    return std::to_string(acc.first) + "/" + std::to_string(acc.second);
  }
  std::pair<int64_t, int64_t> merge(const std::pair<int64_t, int64_t>& a,
                                    const std::pair<int64_t, int64_t>& b) const override {
    return {a.first + b.first, a.second + b.second};
  }
};

/// Emits "key:sum" of the elements it gets (a reduced value or all).
struct sum_values final : process_window_function<std::string, rec, std::string, global_window> {
  void process(const std::string& key, const window_context<global_window>&,
               const std::vector<rec>& elements, collector<std::string>& out) override {
    int64_t sum = 0;
    for (auto& e : elements)
      sum += e.value;
    out.collect(key + ":" + std::to_string(sum));
  }
};

/// Values 1..6 for key "a" at the given timestamps (or the values and
/// timestamps given), in a global window that fires every 2 elements
/// without purging, with evictor `ev`: what each firing emits, in order.
std::vector<std::string> count_fired(std::shared_ptr<const evictor<rec, global_window>> ev,
                                     fn_kind fn, state::backend_kind backend,
                                     std::vector<rec> input) {
  configuration cfg;
  cfg.state.backend = backend;
  stream_environment env(cfg);
  env.set_parallelism(1);
  auto windowed = env.from_collection(std::move(input))
                    .assign_timestamps_and_watermarks(punctuated(0))
                    .key_by([](const rec& r) { return r.key; })
                    .window(global_windows());
  windowed.trigger(std::make_shared<count_trigger<rec, global_window>>(2)).evictor(ev);
  std::shared_ptr<collected<std::string>> out;
  auto show = [](const rec& r) { return r.key + ":" + std::to_string(r.value); };
  switch (fn) {
    case fn_kind::reduce:
      out = windowed.reduce(add).map(show).collect();
      break;
    case fn_kind::reduce_process:
      out = windowed.reduce(add, sum_values{}).collect();
      break;
    case fn_kind::aggregate:
      out = windowed.aggregate(std::shared_ptr<const state::aggregate_function<
                                 rec, std::pair<int64_t, int64_t>, std::string>>(
                                 std::make_shared<count_and_sum>()))
              .collect();
      break;
    case fn_kind::process:
      out = windowed.process(sum_values{}).collect();
      break;
  }
  auto r = env.execute("evictors");
  REQUIRE_MESSAGE(r.ok(), r.error);
  return out->values();
}

/// "a:<sum>" per firing (or "<count>/<sum>" for the aggregate).
std::vector<std::string> sums(fn_kind fn, std::vector<std::pair<int64_t, int64_t>> count_sum) {
  std::vector<std::string> out;
  for (auto [count, sum] : count_sum)
    out.push_back(fn == fn_kind::aggregate ? std::to_string(count) + "/" + std::to_string(sum)
                                           : "a:" + std::to_string(sum));
  return out;
}

std::vector<rec> values_at(std::vector<std::pair<int64_t, int64_t>> value_ts) {
  std::vector<rec> out;
  for (auto [v, ts] : value_ts)
    out.push_back({"a", ts, v});
  return out;
}

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

TEST_CASE("a count evictor keeps the last n elements, before or after the window function") {
  // Elements 1..6, firing after 2, 4 and 6 elements (no purge), keep 3:
  // before the function the firings see [1,2], [2,3,4], [4,5,6]; after it
  // they see [1,2], [1,2,3,4], [2,3,4,5,6].
  auto input = values_at({{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}, {7, 7}});
  for (auto backend : both_backends)
    for (auto fn : {fn_kind::reduce, fn_kind::reduce_process, fn_kind::aggregate,
                    fn_kind::process}) {
      CAPTURE(backend);
      CAPTURE(static_cast<int>(fn));
      auto before = count_fired(std::make_shared<count_evictor<rec, global_window>>(3), fn,
                                backend, input);
      CHECK(before == sums(fn, {{2, 3}, {3, 9}, {3, 15}}));
      auto after = count_fired(std::make_shared<count_evictor<rec, global_window>>(3, true), fn,
                               backend, input);
      CHECK(after == sums(fn, {{2, 3}, {4, 10}, {5, 20}}));
    }
}

TEST_CASE("a time evictor keeps the elements within its size of the newest timestamp") {
  // (value, timestamp): size 3 keeps timestamps > max - 3. Before: [1,2],
  // [3,4] (max 6), [6] (max 12); after: [1,2], [1,2,3,4] -> [3,4],
  // [3,4,5,6] -> [6].
  auto input = values_at({{1, 1}, {2, 2}, {3, 5}, {4, 6}, {5, 7}, {6, 12}});
  for (auto backend : both_backends)
    for (auto fn : {fn_kind::reduce, fn_kind::aggregate, fn_kind::process}) {
      CAPTURE(backend);
      CAPTURE(static_cast<int>(fn));
      auto before = count_fired(std::make_shared<time_evictor<rec, global_window>>(3ms), fn,
                                backend, input);
      CHECK(before == sums(fn, {{2, 3}, {2, 7}, {1, 6}}));
      auto after = count_fired(std::make_shared<time_evictor<rec, global_window>>(3ms, true), fn,
                               backend, input);
      CHECK(after == sums(fn, {{2, 3}, {4, 10}, {4, 18}}));
    }
}

TEST_CASE("a delta evictor drops the elements too far from the last one") {
  // Values 1, 2, 5, 6, 7, 12 with delta |a - b| and threshold 3. Before:
  // [1,2], [5,6], [12]; after: [1,2], [1,2,5,6] -> [5,6], [5,6,7,12] -> [12].
  auto input = values_at({{1, 1}, {2, 2}, {5, 3}, {6, 4}, {7, 5}, {12, 6}});
  auto delta = [](const rec& a, const rec& b) {
    return static_cast<double>(std::abs(a.value - b.value));
  };
  for (auto backend : both_backends)
    for (auto fn : {fn_kind::reduce, fn_kind::aggregate, fn_kind::process}) {
      CAPTURE(backend);
      CAPTURE(static_cast<int>(fn));
      auto before = count_fired(std::make_shared<delta_evictor<rec, global_window>>(3.0, delta),
                                fn, backend, input);
      CHECK(before == sums(fn, {{2, 3}, {2, 11}, {1, 12}}));
      auto after = count_fired(
        std::make_shared<delta_evictor<rec, global_window>>(3.0, delta, true), fn, backend, input);
      CHECK(after == sums(fn, {{2, 3}, {4, 14}, {4, 30}}));
    }
}

TEST_CASE("an evictor's leftovers stay in the window for its late firing") {
  // tumbling_input with 5 ms lateness: window a [0,10) fires with 1, 2, 4,
  // then again when the late 5 arrives. Keeping the last 2 before the
  // function: [2,4] = 6, then [2,4,5] -> [4,5] = 9. After it: 7 (leaves
  // [2,4]), then [2,4,5] = 11.
  for (auto backend : both_backends)
    for (bool after : {false, true})
      for (bool incremental : {true, false}) {
        CAPTURE(backend);
        CAPTURE(after);
        CAPTURE(incremental);
        configuration cfg;
        cfg.state.backend = backend;
        stream_environment env(cfg);
        env.set_parallelism(2);
        auto src = env.from_collection(tumbling_input);
        src.set_parallelism(1);
        auto stamped = src.assign_timestamps_and_watermarks(punctuated(5));
        stamped.set_parallelism(1);
        auto windowed = stamped.key_by([](const rec& r) { return r.key; })
                          .window(tumbling_event_time_windows(10ms));
        windowed.allowed_lateness(5ms).evictor(
          std::make_shared<count_evictor<rec, time_window>>(2, after));
        auto out = incremental ? windowed.reduce(add, format_window{}).collect()
                               : windowed.process(format_window{}).collect();
        auto r = env.execute("evicting windows");
        REQUIRE_MESSAGE(r.ok(), r.error);
        auto first = after ? "a,0,10,7" : "a,0,10,6";
        auto second = after ? "a,0,10,11" : "a,0,10,9";
        CHECK(sorted(out->values()) == sorted({first, second, "b,0,10,10", "a,10,20,3",
                                               "b,10,20,20", "a,20,30,6"}));
      }
}

TEST_CASE("a null evictor or aggregate function is rejected when the program is built") {
  stream_environment env;
  auto w = env.from_elements<int64_t>(1).key_by([](const int64_t& v) { return v; }).window(
    tumbling_event_time_windows(10ms));
  CHECK_THROWS_AS(w.evictor(nullptr), std::invalid_argument);
  using no_function = std::shared_ptr<const state::aggregate_function<int64_t, int64_t, int64_t>>;
  CHECK_THROWS_AS(w.aggregate(no_function()), std::invalid_argument);
}

/// Emits "start,end,count,sum" for a window of the whole stream.
struct format_all_window final : process_all_window_function<rec, std::string> {
  void process(const window_context<time_window>& ctx, const std::vector<rec>& elements,
               collector<std::string>& out) override {
    int64_t sum = 0;
    for (auto& e : elements)
      sum += e.value;
    out.collect(std::to_string(ctx.window.start) + "," + std::to_string(ctx.window.end) + "," +
                std::to_string(elements.size()) + "," + std::to_string(sum));
  }
};

TEST_CASE("window_all windows the whole stream in one subtask") {
  // tumbling_input across both keys: [0,10) holds 1, 2, 10, 4, [10,20)
  // holds 3, 20, [20,30) holds 6.
  for (auto backend : both_backends)
    for (bool incremental : {true, false}) {
      CAPTURE(backend);
      CAPTURE(incremental);
      configuration cfg;
      cfg.state.backend = backend;
      stream_environment env(cfg);
      env.set_parallelism(3);
      // Without tumbling_input's late record: behind a parallel stage a record
      // late at the source may arrive before the watermark that made it late.
      auto input = tumbling_input;
      input.erase(input.begin() + 6);
      auto stamped = env.from_collection(input).assign_timestamps_and_watermarks(punctuated(5));
      stamped.set_parallelism(1);
      // A parallel stage before the window: the window still sees it all.
      auto spread = stamped.rebalance().map([](rec r) { return r; });
      auto windowed = spread.window_all(tumbling_event_time_windows(10ms));
      auto out = incremental ? windowed.reduce(add, format_all_window{}).collect()
                             : windowed.process(format_all_window{}).collect();
      auto r = env.execute("window all");
      REQUIRE_MESSAGE(r.ok(), r.error);
      if (incremental)
        CHECK(sorted(out->values()) == sorted({"0,10,1,17", "10,20,1,23", "20,30,1,6"}));
      else
        CHECK(sorted(out->values()) == sorted({"0,10,4,17", "10,20,2,23", "20,30,1,6"}));
    }
}

TEST_CASE("window_all supports triggers, evictors, aggregates and sums") {
  stream_environment env;
  env.set_parallelism(2);
  std::vector<std::pair<int64_t, int64_t>> in;
  for (int64_t i = 1; i <= 7; ++i)
    in.emplace_back(i % 2, i);
  using T = std::pair<int64_t, int64_t>;
  // Every 3 records over both keys, keeping the last 2: [1,2,3] -> 2+3,
  // [2,3,4,5,6] -> 5+6.
  auto sums = env.from_collection(in)
                .window_all(global_windows())
                .trigger(std::make_shared<count_trigger<T, global_window>>(3))
                .evictor(std::make_shared<count_evictor<T, global_window>>(2))
                .sum(&T::second)
                .collect();
  struct count_records final : state::aggregate_function<T, int64_t, int64_t> {
    int64_t create_accumulator() const override { return 0; }
    void add(const T&, int64_t& acc) const override { ++acc; }
    int64_t get_result(const int64_t& acc) const override { return acc; }
    int64_t merge(const int64_t& a, const int64_t& b) const override { return a + b; }
  };
  auto counts = env.from_collection(in)
                  .window_all(global_windows())
                  .trigger(std::make_shared<purging_trigger<T, global_window>>(
                    std::make_unique<count_trigger<T, global_window>>(3)))
                  .aggregate(std::shared_ptr<const state::aggregate_function<T, int64_t, int64_t>>(
                    std::make_shared<count_records>()))
                  .collect();
  auto r = env.execute("window all functions");
  REQUIRE_MESSAGE(r.ok(), r.error);
  std::vector<int64_t> got;
  for (auto& v : sums->values())
    got.push_back(v.second);
  CHECK(got == std::vector<int64_t>{5, 11});
  CHECK(counts->values() == std::vector<int64_t>{3, 3});
}

TEST_CASE("a window_all operator refuses a parallelism above 1") {
  stream_environment env;
  env.set_parallelism(4);
  auto all = env.from_elements<int64_t>(1, 2, 3)
               .window_all(global_windows())
               .trigger(std::make_shared<count_trigger<int64_t, global_window>>(2))
               .reduce([](const int64_t& a, const int64_t& b) { return a + b; });
  try {
    all.set_parallelism(2);
    FAIL("set_parallelism(2) was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("AllWindow(Reduce)") != std::string::npos);
    CHECK(std::string(e.what()).find("parallelism must be 1") != std::string::npos);
  }
  CHECK_NOTHROW(all.set_parallelism(1));
  auto plan = nlohmann::json::parse(env.explain("window all"));
  int found = 0;
  for (const auto& node : plan["nodes"])
    if (node["description"].get<std::string>().find("AllWindow(Reduce)") != std::string::npos) {
      ++found;
      CHECK(node["parallelism"] == 1);
    }
  CHECK(found == 1);
}

TEST_CASE("window sums match a brute-force model with many windows in flight per key") {
  // Disordered timestamps (up to 200 ms) under a 300 ms watermark delay: no
  // record is late, and each key has dozens of windows open, fired oldest
  // first while new ones open.
  std::vector<rec> in;
  uint64_t x = 12345;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    auto jitter = static_cast<int64_t>((x >> 33) % 200);
    in.push_back(
      {"k" + std::to_string((x >> 20) % 50), i / 10 + jitter, static_cast<int64_t>(i % 7)});
  }
  auto model = [&](const auto& assigner) {
    std::map<std::tuple<std::string, int64_t, int64_t>, int64_t> sums;
    for (const auto& r : in)
      for (const auto& w : assigner.assign_windows(r.ts, 0))
        sums[{r.key, w.start, w.end}] += r.value;
    std::vector<std::string> out;
    for (const auto& [k, sum] : sums)
      out.push_back(std::get<0>(k) + "," + std::to_string(std::get<1>(k)) + "," +
                    std::to_string(std::get<2>(k)) + "," + std::to_string(sum));
    return sorted(out);
  };
  auto tumbling = tumbling_event_time_windows(10ms);
  auto sliding = sliding_event_time_windows(30ms, 10ms);
  for (auto backend : both_backends)
    for (bool incremental : {true, false}) {
      CAPTURE(backend);
      CAPTURE(incremental);
      CHECK(run(in, 300, tumbling, 2, 0, incremental, backend) == model(tumbling));
      CHECK(run(in, 300, sliding, 2, 0, incremental, backend) == model(sliding));
    }
}

/// Emits "key,start,end,count" for a processing-time window.
struct count_window final : process_window_function<int64_t, std::pair<int64_t, int64_t>,
                                                     std::string> {
  void process(const int64_t& key, const window_context<time_window>& ctx,
               const std::vector<std::pair<int64_t, int64_t>>& elements,
               collector<std::string>& out) override {
    out.collect(std::to_string(key) + "," + std::to_string(ctx.window.start) + "," +
                std::to_string(ctx.window.end) + "," + std::to_string(elements.size()));
  }
};

TEST_CASE("processing-time windows fire as the clock passes their end") {
  for (bool with_evictor : {false, true}) {
    CAPTURE(with_evictor);
    configuration cfg;
    cfg.state.backend = state::backend_kind::heap;
    cfg.buffer_timeout = 5ms;
    stream_environment env(cfg);
    env.set_parallelism(2);
    using T = std::pair<int64_t, int64_t>;
    auto src = env.from_generator(
      stream_environment::unbounded, [](uint64_t i) { return T{static_cast<int64_t>(i % 3), 1}; },
      2000.0);
    src.set_parallelism(1);
    auto windowed = src.key_by([](const T& r) { return r.first; })
                      .window(tumbling_processing_time_windows(20ms));
    if (with_evictor)
      windowed.evictor(std::make_shared<count_evictor<T, time_window>>(1000));
    auto out = windowed.process(count_window{}).collect();
    auto client = env.execute_async("processing-time windows");
    CHECK(test::eventually([&] { return out->size() >= 30; }));
    client->cancel();
    client->wait();
    // A window fires again only for a record that arrives in its last
    // millisecond after its timer fired (as in Flink), so nearly every
    // firing is of another window.
    std::set<std::pair<int64_t, int64_t>> windows;
    for (const auto& line : out->values()) {
      CAPTURE(line);
      long key = 0, start = 0, end = 0, count = 0;
      REQUIRE(std::sscanf(line.c_str(), "%ld,%ld,%ld,%ld", &key, &start, &end, &count) == 4);
      windows.insert({key, start});
      CHECK(end - start == 20);
      CHECK(count > 0);
    }
    CHECK(windows.size() >= 20);
  }
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
