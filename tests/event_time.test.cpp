#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <memory>
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

/// A record of the two-input idleness tests: which source subtask emitted
/// it, and its event time.
struct tick {
  int32_t input = 0;
  int64_t ts = 0;
};

/// What the test and the source subtasks of the idleness tests share.
struct idle_inputs {
  /// The stalling input has emitted all its records.
  std::atomic<bool> stalled{false};
  /// Both inputs end: the stalling one finishes, the steady one stops.
  std::atomic<bool> release{false};
};

/// Records the stalling input (subtask 1) emits, at event times 0, 10, ...
constexpr int64_t stalled_records = 5;

/// Two inputs at parallelism 2. Subtask 1 emits `stalled_records` records
/// at once and then nothing, without ending, until released. Subtask 0
/// starts after that and emits one record per millisecond, event time 10 ms
/// apart, until released. Neither sleeps: a source that has nothing asks to
/// be stepped again 1 ms later.
class stalling_source final : public source_function<tick> {
public:
  explicit stalling_source(std::shared_ptr<idle_inputs> shared) : shared_(std::move(shared)) {}

  void open(const runtime_context& ctx) override { input_ = ctx.subtask_index(); }

  source_step run(collector<tick>& out, size_t) override {
    if (shared_->release)
      return source_step::finished();
    if (input_ == 1) {
      if (!shared_->stalled) {
        for (int64_t i = 0; i < stalled_records; ++i)
          out.collect(tick{1, i * 10});
        shared_->stalled = true;
      }
    } else if (shared_->stalled) {
      // Start only after the stalled records: were the stalled input marked
      // idle before its first step, this input's watermarks alone could
      // close the window and make those records late.
      out.collect(tick{0, next_ts_});
      next_ts_ += 10;
    }
    return source_step::wait(1ms);
  }

private:
  std::shared_ptr<idle_inputs> shared_;
  int32_t input_ = 0;
  int64_t next_ts_ = 0;
};

/// Emits "start,records from input 0,records from input 1" for each window.
struct count_inputs final
  : runtime::process_window_function<int32_t, tick, std::string, runtime::time_window> {
  void process(const int32_t&, const runtime::window_context<runtime::time_window>& ctx,
               const std::vector<tick>& elements, collector<std::string>& out) override {
    int64_t from[2] = {0, 0};
    for (auto& e : elements)
      ++from[e.input];
    out.collect(std::to_string(ctx.window.start) + "," + std::to_string(from[0]) + "," +
                std::to_string(from[1]));
  }
};

/// A two-input job: the stalling source -> timestamps and a watermark of
/// timestamp - 1 after every record (so a channel's watermark is in order
/// with its records), idle after `idle_timeout` if that is set -> one
/// 1-second tumbling event-time window over every record -> collected.
struct idle_job {
  std::shared_ptr<idle_inputs> shared = std::make_shared<idle_inputs>();
  std::shared_ptr<runtime::collected<std::string>> out;
  std::shared_ptr<runtime::job_client> client;

  explicit idle_job(std::chrono::milliseconds idle_timeout) {
    configuration cfg;
    cfg.state.backend = state::backend_kind::heap;
    // Idleness is checked on every periodic emit.
    cfg.auto_watermark_interval = 10ms;
    stream_environment env(cfg);
    auto strategy = watermark_strategy<tick>::for_generator([] {
                      return std::make_unique<runtime::punctuated_watermarks<tick>>(
                        [](const tick&, int64_t ts) { return std::optional<int64_t>(ts - 1); });
                    }).with_timestamp_assigner([](const tick& t) { return t.ts; });
    if (idle_timeout.count() > 0)
      strategy = strategy.with_idleness(idle_timeout);
    auto src = env.add_source(stalling_source{shared}, "Ticks");
    src.set_parallelism(2);
    auto stamped = src.assign_timestamps_and_watermarks(strategy);
    stamped.set_parallelism(2);
    auto windows = stamped.key_by([](const tick&) { return int32_t{0}; })
                     .window(runtime::tumbling_event_time_windows(1000ms))
                     .process(count_inputs{});
    windows.set_parallelism(1);
    out = windows.collect();
    client = env.execute_async("stalled input");
  }

  /// Records the window subtask has taken in from both inputs.
  uint64_t window_records_in() {
    auto m = client->metrics().of_task("Window");
    return m.empty() ? 0 : m[0].records_in;
  }
};

/// Window [0, 1000): the steady input's event times 0..990, all of the
/// stalled input's.
const std::string first_window = "0,100," + std::to_string(stalled_records);

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

TEST_CASE("with idleness, an event-time window fires while one input is stalled") {
  idle_job job(100ms);
  // The stalled input's watermark stays at 39, so window [0, 1000) can fire
  // only once that input is marked idle: 100 ms after its last record,
  // checked every 10 ms.
  REQUIRE(sluice::test::eventually([&] { return job.out->size() >= 1; }, 5s));
  CHECK(job.client->status() == job_status::running);
  CHECK(job.out->values().front() == first_window);
  job.shared->release = true;
  auto r = job.client->wait_for(5s);
  REQUIRE(r.has_value());
  REQUIRE_MESSAGE(r->ok(), r->error);
}

TEST_CASE("without idleness, a stalled input holds the window back until the end of input") {
  idle_job job(0ms);
  // Wait until the window subtask has taken in 300 records of the steady
  // input: at least 300 ms after the stall (one record per ms), event time
  // up to 2990, each record's watermark in order behind it. With idleness
  // (previous test) the first window has fired about 0.1 s after the stall.
  REQUIRE(sluice::test::eventually(
    [&] { return job.window_records_in() >= uint64_t{stalled_records} + 300; }, 10s));
  CHECK(job.out->size() == 0);
  // End of input: the maximum watermark fires every window.
  job.shared->release = true;
  auto r = job.client->wait_for(5s);
  REQUIRE(r.has_value());
  REQUIRE_MESSAGE(r->ok(), r->error);
  auto got = job.out->values();
  REQUIRE(got.size() >= 3);
  CHECK(got.front() == first_window);
}

} // TEST_SUITE
