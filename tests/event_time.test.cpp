#include "sluice/sluice.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace sluice;
using namespace std::chrono_literals;

namespace {

constexpr int64_t hour = 3'600'000;

struct ride_event {
  std::string key;
  std::string type; // START or END
  int64_t ts = 0;
};

/// Flink's documentation example: a START registers a timer 4 hours later;
/// an END before it emits the duration and drops the timer; the timer
/// firing first reports a timeout.
struct ride_duration final : keyed_process_function<std::string, ride_event, std::string> {
  state::value_state<int64_t> start;

  void open(const runtime_context& ctx) override {
    start = ctx.get_state(value_state_descriptor<int64_t>("start"));
  }
  void process_element(const ride_event& e, context& ctx, collector<std::string>& out) override {
    // Runs on a subtask thread: a wrong timestamp fails the job, and the
    // test sees that in the job result.
    if (ctx.timestamp() != std::optional<int64_t>(e.ts))
      throw std::logic_error("record timestamp not visible to the process function");
    if (e.type == "START") {
      start.update(e.ts);
      ctx.timer_service().register_event_time_timer(e.ts + 4 * hour);
    } else if (auto s = start.value()) {
      out.collect(ctx.current_key() + ",duration," + std::to_string(e.ts - *s));
      ctx.timer_service().delete_event_time_timer(*s + 4 * hour);
      start.clear();
    }
  }
  void on_timer(int64_t t, context& ctx, collector<std::string>& out) override {
    if (ctx.time_domain() != time_domain::event_time || ctx.timestamp() != std::optional<int64_t>(t))
      throw std::logic_error("timer fired with the wrong domain or timestamp");
    if (auto s = start.value()) {
      out.collect(ctx.current_key() + ",timeout," + std::to_string(*s));
      start.clear();
    }
  }
};

std::vector<ride_event> rides() {
  return {{"a", "START", 0},          {"b", "START", 1 * hour}, {"a", "END", 2 * hour},
          {"c", "START", 3 * hour},   {"d", "START", 6 * hour}, {"c", "END", 10 * hour}};
}

/// Watermark = timestamp - 1 after every record (punctuated).
watermark_strategy<ride_event> punctuated() {
  return watermark_strategy<ride_event>::for_generator([] {
           return std::make_unique<runtime::punctuated_watermarks<ride_event>>(
             [](const ride_event&, int64_t ts) { return std::optional<int64_t>(ts - 1); });
         })
    .with_timestamp_assigner([](const ride_event& e) { return e.ts; });
}

} // namespace

TEST_SUITE("event time") {

TEST_CASE("the START/END example fires timeouts and durations on both backends") {
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
    for (int p : {1, 2}) {
      CAPTURE(p);
      CAPTURE(state::to_string(backend));
      configuration cfg;
      cfg.state.backend = backend;
      stream_environment env(cfg);
      env.set_parallelism(p);
      auto out = env.from_collection(rides())
                   .assign_timestamps_and_watermarks(punctuated())
                   .key_by([](const ride_event& e) { return e.key; })
                   .process(ride_duration{})
                   .collect();
      auto r = env.execute("rides");
      REQUIRE_MESSAGE(r.ok(), r.error);
      auto got = out->values();
      std::sort(got.begin(), got.end());
      CHECK(got == std::vector<std::string>{"a,duration,7200000", "b,timeout,3600000",
                                            "c,duration,25200000", "d,timeout,21600000"});
    }
  }
}

TEST_CASE("end of input fires every event-time timer") {
  struct remind final : keyed_process_function<int64_t, int64_t, int64_t> {
    void process_element(const int64_t& v, context& ctx, collector<int64_t>&) override {
      ctx.timer_service().register_event_time_timer(v + 1'000'000);
    }
    void on_timer(int64_t t, context&, collector<int64_t>& out) override { out.collect(t); }
  };
  stream_environment env;
  env.set_parallelism(2);
  auto out = env.from_elements<int64_t>(5, 7, 5, 9)
               .assign_timestamps_and_watermarks(
                 watermark_strategy<int64_t>::for_monotonous_timestamps().with_timestamp_assigner(
                   [](const int64_t& v) { return v; }))
               .key_by([](const int64_t& v) { return v; })
               .process(remind{})
               .collect();
  auto r = env.execute("remind");
  REQUIRE_MESSAGE(r.ok(), r.error);
  auto got = out->values();
  std::sort(got.begin(), got.end());
  // The two registrations at 1000005 are one timer.
  CHECK(got == std::vector<int64_t>{1'000'005, 1'000'007, 1'000'009});
}

} // TEST_SUITE
