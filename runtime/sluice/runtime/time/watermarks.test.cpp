#include "sluice/runtime/time/watermarks.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sluice::runtime;
using namespace std::chrono_literals;

namespace {

/// Records everything a generator sends, in order: "wm:<n>", "idle", "active".
struct recording_output : watermark_output {
  std::vector<std::string> log;
  void emit_watermark(int64_t wm) override { log.push_back("wm:" + std::to_string(wm)); }
  void mark_idle() override { log.push_back("idle"); }
  void mark_active() override { log.push_back("active"); }
  std::vector<std::string> take() { return std::exchange(log, {}); }
};

using strings = std::vector<std::string>;

std::string wm(int64_t v) {
  return "wm:" + std::to_string(v);
}

} // namespace

TEST_SUITE("runtime.watermarks") {

  TEST_CASE("bounded out-of-orderness emits max minus delay minus one and never goes back") {
    bounded_out_of_orderness_watermarks<int> gen(10ms);
    recording_output out;
    int64_t events[] = {100, 50, 120, 90};
    strings expected = {wm(89), wm(89), wm(109), wm(109)};
    for (int64_t ts : events) {
      gen.on_event(0, ts, out);
      gen.on_periodic_emit(out);
    }
    CHECK(out.take() == expected);
  }

  TEST_CASE("the first periodic emit before any event is the minimum watermark without underflow") {
    for (auto delay : {0ms, 10ms, std::chrono::milliseconds::max()}) {
      bounded_out_of_orderness_watermarks<int> gen(delay);
      recording_output out;
      gen.on_periodic_emit(out);
      gen.on_event(0, no_timestamp, out); // a record without timestamp changes nothing
      gen.on_periodic_emit(out);
      CHECK(out.take() == strings{wm(min_watermark), wm(min_watermark)});
    }
    bounded_out_of_orderness_watermarks<int> gen(5ms);
    recording_output out;
    gen.on_event(0, max_watermark, out);
    gen.on_periodic_emit(out);
    CHECK(out.take() == strings{wm(max_watermark - 6)});
  }

  TEST_CASE("ascending timestamps emit the highest timestamp minus one") {
    ascending_timestamps_watermarks<int> gen;
    recording_output out;
    gen.on_event(0, 5, out);
    gen.on_periodic_emit(out);
    gen.on_event(0, 7, out);
    gen.on_periodic_emit(out);
    CHECK(out.take() == strings{wm(4), wm(6)});
  }

  TEST_CASE("punctuated watermarks are emitted only for records the function picks") {
    punctuated_watermarks<std::string> gen(
        [](const std::string& v, int64_t ts) -> std::optional<int64_t> {
          if (v == "mark")
            return ts - 1;
          return std::nullopt;
        });
    recording_output out;
    gen.on_event("a", 10, out);
    gen.on_periodic_emit(out);
    gen.on_event("mark", 20, out);
    gen.on_event("b", 30, out);
    gen.on_periodic_emit(out);
    gen.on_event("mark", 40, out);
    CHECK(out.take() == strings{wm(19), wm(39)});
  }

  TEST_CASE("no_watermarks never emits") {
    no_watermarks<int> gen;
    recording_output out;
    gen.on_event(0, 10, out);
    gen.on_periodic_emit(out);
    CHECK(out.log.empty());
  }

  TEST_CASE("an input without events for the idle timeout is marked idle once and resumes on the "
            "next event") {
    int64_t now = 0;
    auto gen = with_idleness<int>(std::make_unique<ascending_timestamps_watermarks<int>>(), 100ms,
                                  [&now] { return now; });
    recording_output out;
    gen->on_event(0, 10, out);
    now = 50;
    gen->on_periodic_emit(out);
    CHECK(out.take() == strings{wm(9)});

    now = 80; // an event restarts the timeout
    gen->on_event(0, 12, out);
    now = 150;
    gen->on_periodic_emit(out);
    CHECK(out.take() == strings{wm(11)});

    now = 179;
    gen->on_periodic_emit(out);
    CHECK(out.take() == strings{wm(11)});
    now = 180;
    gen->on_periodic_emit(out);
    now = 300;
    gen->on_periodic_emit(out);
    now = 900;
    gen->on_periodic_emit(out);
    CHECK(out.take() == strings{"idle"});

    gen->on_event(0, 20, out);
    gen->on_periodic_emit(out);
    CHECK(out.take() == strings{"active", wm(19)});
  }

  TEST_CASE("invalid delays and idle timeouts are rejected") {
    auto clock = [] { return int64_t{0}; };
    CHECK_THROWS_AS(bounded_out_of_orderness_watermarks<int>(-1ms), std::invalid_argument);
    CHECK_THROWS_AS(with_idleness<int>(std::make_unique<no_watermarks<int>>(), 0ms, clock),
                    std::invalid_argument);
    CHECK_THROWS_AS(with_idleness<int>(std::make_unique<no_watermarks<int>>(), -5ms, clock),
                    std::invalid_argument);
    CHECK_THROWS_AS(with_idleness<int>(std::make_unique<no_watermarks<int>>(), 5ms, nullptr),
                    std::invalid_argument);
    CHECK_THROWS_AS(watermark_strategy<int>::for_bounded_out_of_orderness(-1ms),
                    std::invalid_argument);
    auto s = watermark_strategy<int>::for_monotonous_timestamps();
    CHECK_THROWS_AS(s.with_idleness(0ms), std::invalid_argument);
    CHECK_THROWS_AS(s.with_idleness(-1ms), std::invalid_argument);
    CHECK_THROWS_AS(watermark_strategy<int>{}.create_generator(clock), std::invalid_argument);
  }

  TEST_CASE("the valve combines channels by minimum and emits only when it rises") {
    watermark_valve valve(3);
    CHECK(valve.channels() == 3);
    CHECK(valve.current() == min_watermark);
    CHECK(valve.on_watermark(0, 5) == std::nullopt);
    CHECK(valve.on_watermark(1, 7) == std::nullopt);
    CHECK(valve.on_watermark(2, 3) == std::optional<int64_t>{3});
    CHECK(valve.on_watermark(2, 6) == std::optional<int64_t>{5});
    CHECK(valve.on_watermark(0, 8) == std::optional<int64_t>{6});
    CHECK(valve.on_watermark(0, 9) == std::nullopt); // channel 2 still at 6
    CHECK(valve.current() == 6);
  }

  TEST_CASE("the valve ignores a watermark lower than the channel's last one") {
    watermark_valve valve(3);
    valve.on_watermark(0, 9);
    valve.on_watermark(1, 7);
    CHECK(valve.on_watermark(2, 6) == std::optional<int64_t>{6});
    CHECK(valve.on_watermark(1, 4) == std::nullopt);
    // Had channel 1 gone back to 4, the minimum would stay below 7.
    CHECK(valve.on_watermark(2, 10) == std::optional<int64_t>{7});
    CHECK_THROWS_AS(valve.on_watermark(3, 1), std::out_of_range);
  }

  TEST_CASE("an idle channel stops holding back the valve and all idle channels advance nothing") {
    watermark_valve valve(3);
    valve.on_watermark(0, 5);
    valve.on_watermark(1, 7);
    CHECK(valve.on_watermark(2, 3) == std::optional<int64_t>{3});
    CHECK(valve.on_idle(2) == std::optional<int64_t>{5});
    CHECK(valve.on_idle(2) == std::nullopt);
    CHECK(valve.on_watermark(2, 100) == std::nullopt); // ignored while idle
    CHECK(valve.on_idle(0) == std::optional<int64_t>{7});
    CHECK_FALSE(valve.all_idle());
    CHECK(valve.on_idle(1) == std::nullopt);
    CHECK(valve.all_idle());
    CHECK(valve.current() == 7);

    // Channel 2 returns at 3 (its watermark of 100 was ignored): behind, so unaligned.
    CHECK(valve.on_active(2) == std::nullopt);
    CHECK_FALSE(valve.all_idle());
    CHECK(valve.on_watermark(2, 6) == std::nullopt);
    CHECK(valve.current() == 7);
    CHECK(valve.on_watermark(2, 8) == std::optional<int64_t>{8});
  }

  TEST_CASE("a reactivated channel behind the valve neither pulls it back nor holds it back") {
    watermark_valve valve(2);
    valve.on_watermark(0, 10);
    CHECK(valve.on_watermark(1, 10) == std::optional<int64_t>{10});
    CHECK(valve.on_idle(1) == std::nullopt);
    CHECK(valve.on_watermark(0, 20) == std::optional<int64_t>{20});
    CHECK(valve.on_active(1) == std::nullopt); // channel 1 is at 10 < 20
    CHECK(valve.current() == 20);
    CHECK(valve.on_watermark(0, 30) == std::optional<int64_t>{30});
    CHECK(valve.on_watermark(1, 25) == std::nullopt);
    CHECK(valve.on_watermark(1, 35) == std::nullopt); // caught up: aligned again
    CHECK(valve.on_watermark(0, 40) == std::optional<int64_t>{35});
  }

  TEST_CASE("a channel returning from idle ahead of the valve advances it at once") {
    watermark_valve valve(2);
    valve.on_watermark(0, 5);
    CHECK(valve.on_watermark(1, 3) == std::optional<int64_t>{3});
    CHECK(valve.on_idle(0) == std::nullopt);
    CHECK(valve.on_idle(1) == std::nullopt);
    CHECK(valve.all_idle());
    CHECK(valve.on_active(0) == std::optional<int64_t>{5});
  }

  TEST_CASE(
      "an ended channel releases the valve and all ended channels give the maximum watermark") {
    watermark_valve valve(2);
    valve.on_watermark(0, 5);
    CHECK(valve.on_watermark(1, 8) == std::optional<int64_t>{5});
    CHECK(valve.on_end(0) == std::optional<int64_t>{8});
    CHECK(valve.on_watermark(0, 100) == std::nullopt);
    CHECK(valve.on_end(0) == std::nullopt);
    CHECK(valve.on_end(1) == std::optional<int64_t>{max_watermark});
    CHECK_FALSE(valve.all_idle());
  }

  TEST_CASE("ended and idle channels alone leave the valve idle where it was") {
    watermark_valve valve(2);
    valve.on_watermark(0, 5);
    CHECK(valve.on_watermark(1, 3) == std::optional<int64_t>{3});
    CHECK(valve.on_end(0) == std::nullopt);
    CHECK(valve.on_idle(1) == std::nullopt);
    CHECK(valve.all_idle());
    CHECK(valve.current() == 3);
  }

  TEST_CASE("strategy factories build working generators with and without idleness") {
    int64_t now = 0;
    auto clock = [&now] { return now; };
    recording_output out;

    auto bounded =
        watermark_strategy<int>::for_bounded_out_of_orderness(10ms).create_generator(clock);
    bounded->on_event(0, 100, out);
    bounded->on_periodic_emit(out);
    CHECK(out.take() == strings{wm(89)});

    auto mono = watermark_strategy<int>::for_monotonous_timestamps().create_generator(nullptr);
    mono->on_event(0, 100, out);
    mono->on_periodic_emit(out);
    CHECK(out.take() == strings{wm(99)});

    auto none = watermark_strategy<int>::no_watermarks().create_generator(nullptr);
    none->on_event(0, 100, out);
    none->on_periodic_emit(out);
    CHECK(out.log.empty());

    auto custom = watermark_strategy<int>::for_generator([] {
      return std::make_unique<punctuated_watermarks<int>>(
          [](const int& v, int64_t) { return std::optional<int64_t>{v}; });
    });
    auto gen = custom.create_generator(nullptr);
    gen->on_event(42, 0, out);
    CHECK(out.take() == strings{wm(42)});

    auto idle = watermark_strategy<int>::for_bounded_out_of_orderness(10ms).with_idleness(50ms);
    CHECK(idle.idle_timeout == 50ms);
    auto a = idle.create_generator(clock);
    auto b = idle.create_generator(clock); // each subtask gets its own state
    a->on_event(0, 100, out);
    now = 50;
    a->on_periodic_emit(out);
    b->on_periodic_emit(out);
    CHECK(out.take() == strings{"idle", "idle"});
    a->on_event(0, 200, out);
    a->on_periodic_emit(out);
    CHECK(out.take() == strings{"active", wm(189)});
    CHECK_THROWS_AS(idle.create_generator(nullptr), std::invalid_argument);
  }

  TEST_CASE(
      "a timestamp assigner may take the record alone or the record and its previous timestamp") {
    struct event {
      int64_t at;
    };
    auto plain = watermark_strategy<event>::for_monotonous_timestamps();
    CHECK(plain.assign_timestamp(event{7}, 3) == 3);

    auto by_value = plain.with_timestamp_assigner([](const event& e) { return e.at * 1000; });
    CHECK(by_value.assign_timestamp(event{7}, 3) == 7000);
    CHECK(plain.assign_timestamp(event{7}, 3) == 3); // the original is unchanged

    auto with_prev = plain.with_timestamp_assigner([](const event& e, int64_t previous) {
      return previous == no_timestamp ? e.at : previous;
    });
    CHECK(with_prev.assign_timestamp(event{7}, no_timestamp) == 7);
    CHECK(with_prev.assign_timestamp(event{7}, 3) == 3);
    // A block at a time: with each record's previous timestamp, or one for all.
    const event values[3] = {event{1}, event{2}, event{3}};
    const int64_t previous[3] = {no_timestamp, 20, no_timestamp};
    int64_t out[3] = {};
    with_prev.assign_timestamps(values, previous, 0, out, 3);
    CHECK(out[0] == 1);
    CHECK(out[1] == 20);
    CHECK(out[2] == 3);
    by_value.assign_timestamps(values, nullptr, 5, out, 3);
    CHECK(out[0] == 1000);
    CHECK(out[2] == 3000);
    plain.assign_timestamps(values, nullptr, 5, out, 3);
    CHECK(out[0] == 5);
    CHECK(out[2] == 5);
  }

  TEST_CASE("a block of events moves a periodic generator as the events one by one do") {
    struct event {
      int64_t at;
    };
    struct block_output final : watermark_output {
      std::vector<int64_t> wms;
      int active = 0;
      void emit_watermark(int64_t wm) override { wms.push_back(wm); }
      void mark_idle() override {}
      void mark_active() override { ++active; }
    } one, block;
    const event values[4] = {event{1}, event{2}, event{3}, event{4}};
    const int64_t ts[4] = {40, 10, 70, 50};
    bounded_out_of_orderness_watermarks<event> a(std::chrono::milliseconds(5));
    bounded_out_of_orderness_watermarks<event> b(std::chrono::milliseconds(5));
    CHECK_FALSE(a.emits_on_event());
    for (size_t i = 0; i < 4; ++i)
      a.on_event(values[i], ts[i], one);
    b.on_events(values, ts, 4, block);
    a.on_periodic_emit(one);
    b.on_periodic_emit(block);
    CHECK(one.wms == std::vector<int64_t>{64});
    CHECK(block.wms == one.wms);

    // Punctuated generators emit from events: they keep the record-by-record path.
    punctuated_watermarks<event> p([](const event&, int64_t t) { return std::optional<int64_t>(t); });
    CHECK(p.emits_on_event());

    // Idleness: a block of events marks an idle input active once.
    int64_t now = 0;
    watermarks_with_idleness<event> idle(
      std::make_unique<bounded_out_of_orderness_watermarks<event>>(std::chrono::milliseconds(0)),
      std::chrono::milliseconds(10), [&] { return now; });
    CHECK_FALSE(idle.emits_on_event());
    now = 20;
    idle.on_periodic_emit(block);
    CHECK(idle.idle());
    idle.on_events(values, ts, 4, block);
    CHECK_FALSE(idle.idle());
    CHECK(block.active == 1);
    idle.on_periodic_emit(block);
    CHECK(block.wms.back() == 69);
  }

} // TEST_SUITE
