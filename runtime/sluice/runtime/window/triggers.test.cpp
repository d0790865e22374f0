#include "sluice/runtime/window/evictors.hpp"
#include "sluice/runtime/window/triggers.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

using namespace sluice::runtime;
using namespace std::chrono_literals;
namespace state = sluice::state;

namespace {

constexpr int64_t no_ts = std::numeric_limits<int64_t>::min();

/// A window operator stand-in: a real heap backend for trigger state, timer
/// calls recorded in order as "+event 9", "-proc 9" and so on.
template <class W>
struct fake_context final : trigger_context<W> {
  state::heap_keyed_backend<std::string> backend{state::key_group_range{0, 127}, 128,
                                                 std::make_shared<state::manual_state_clock>()};
  int64_t watermark = no_ts;
  int64_t processing_time = 0;
  W current{};
  std::vector<std::string> timer_calls;

  fake_context() { backend.set_current_key("a"); }

  int64_t current_watermark() const override { return watermark; }
  int64_t current_processing_time() const override { return processing_time; }
  void register_event_time_timer(int64_t t) override { record("+event ", t); }
  void delete_event_time_timer(int64_t t) override { record("-event ", t); }
  void register_processing_time_timer(int64_t t) override { record("+proc ", t); }
  void delete_processing_time_timer(int64_t t) override { record("-proc ", t); }
  state::keyed_state_backend_base& state_backend() override { return backend; }
  const W& window() const override { return current; }

  void record(const char* what, int64_t t) { timer_calls.push_back(what + std::to_string(t)); }
};

using calls = std::vector<std::string>;
constexpr auto go_on = trigger_result::continue_;
constexpr auto fire = trigger_result::fire;
constexpr auto fire_and_purge = trigger_result::fire_and_purge;

/// Feeds `n` elements to `t` in `w` and returns what each call answered.
template <class W>
std::vector<trigger_result> feed(trigger<int, W>& t, fake_context<W>& ctx, const W& w, int n) {
  ctx.current = w;
  std::vector<trigger_result> out;
  for (int i = 0; i < n; ++i)
    out.push_back(t.on_element(i, 0, w, ctx));
  return out;
}

using results = std::vector<trigger_result>;

// Aliases for use inside doctest macros, which split on the commas of template arguments.
using int_count_trigger = count_trigger<int, time_window>;
using int_purging_trigger = purging_trigger<int, time_window>;
using int_count_evictor = count_evictor<int, time_window>;
using int_delta_evictor = delta_evictor<int, time_window>;

std::vector<int> values_of(const std::vector<timestamped_value<int>>& es) {
  std::vector<int> out;
  for (auto& e : es)
    out.push_back(e.value);
  return out;
}

std::vector<timestamped_value<int>> elements(std::vector<std::pair<int, int64_t>> in) {
  std::vector<timestamped_value<int>> out;
  for (auto [v, ts] : in)
    out.push_back({v, ts});
  return out;
}

} // namespace

TEST_SUITE("runtime.windows") {

TEST_CASE("trigger results say whether they fire and whether they purge") {
  CHECK_FALSE(is_fire(trigger_result::continue_));
  CHECK_FALSE(is_purge(trigger_result::continue_));
  CHECK(is_fire(trigger_result::fire));
  CHECK_FALSE(is_purge(trigger_result::fire));
  CHECK_FALSE(is_fire(trigger_result::purge));
  CHECK(is_purge(trigger_result::purge));
  CHECK(is_fire(trigger_result::fire_and_purge));
  CHECK(is_purge(trigger_result::fire_and_purge));
  CHECK(std::string(to_string(trigger_result::fire_and_purge)) == "fire_and_purge");
}

TEST_CASE("an event-time trigger sets a timer at the window end and fires on it") {
  fake_context<time_window> ctx;
  event_time_trigger<int, time_window> t;
  time_window w{0, 10};
  ctx.watermark = 3;
  CHECK(t.on_element(1, 3, w, ctx) == go_on);
  CHECK(ctx.timer_calls == calls{"+event 9"});
  CHECK(t.on_event_time(5, w, ctx) == go_on);
  CHECK(t.on_event_time(9, w, ctx) == fire);
  CHECK(t.on_processing_time(9, w, ctx) == go_on);
  t.clear(w, ctx);
  CHECK(ctx.timer_calls == calls{"+event 9", "-event 9"});
}

TEST_CASE("a late element within allowed lateness fires its window at once") {
  fake_context<time_window> ctx;
  event_time_trigger<int, time_window> t;
  time_window w{0, 10};
  ctx.watermark = 8;
  CHECK(t.on_element(1, 5, w, ctx) == go_on);
  ctx.watermark = 9;
  CHECK(t.on_element(2, 5, w, ctx) == fire);
  // Only the on-time element set a timer.
  CHECK(ctx.timer_calls == calls{"+event 9"});
}

TEST_CASE("an event-time trigger re-registers the merged window's timer unless it passed") {
  fake_context<time_window> ctx;
  event_time_trigger<int, time_window> t;
  CHECK(t.can_merge());
  ctx.watermark = 5;
  t.on_merge(time_window{0, 20}, ctx);
  ctx.watermark = 19;
  t.on_merge(time_window{0, 20}, ctx);
  CHECK(ctx.timer_calls == calls{"+event 19"});
}

TEST_CASE("a processing-time trigger fires when the clock reaches the window end") {
  fake_context<time_window> ctx;
  processing_time_trigger<int, time_window> t;
  time_window w{0, 10};
  CHECK(t.on_element(1, no_ts, w, ctx) == go_on);
  CHECK(t.on_event_time(9, w, ctx) == go_on);
  CHECK(t.on_processing_time(9, w, ctx) == fire);
  ctx.processing_time = 12;
  t.on_merge(time_window{0, 12}, ctx); // its end passed already
  ctx.processing_time = 5;
  t.on_merge(time_window{0, 20}, ctx);
  t.clear(w, ctx);
  CHECK(ctx.timer_calls == calls{"+proc 9", "+proc 19", "-proc 9"});
  CHECK(t.can_merge());
}

TEST_CASE("a count trigger fires every n elements and starts counting again") {
  fake_context<time_window> ctx;
  count_trigger<int, time_window> t(3);
  CHECK(feed<time_window>(t, ctx, {0, 10}, 7) ==
        results{go_on, go_on, fire, go_on, go_on, fire, go_on});
  CHECK(ctx.timer_calls.empty());
}

TEST_CASE("a count trigger counts each window and each key on its own") {
  fake_context<time_window> ctx;
  count_trigger<int, time_window> t(3);
  time_window a{0, 10};
  time_window b{10, 20};
  CHECK(feed(t, ctx, a, 2) == results{go_on, go_on});
  CHECK(feed(t, ctx, b, 2) == results{go_on, go_on});
  ctx.backend.set_current_key("other key");
  CHECK(feed(t, ctx, a, 2) == results{go_on, go_on});
  ctx.backend.set_current_key("a");
  CHECK(feed(t, ctx, a, 1) == results{fire});
  CHECK(feed(t, ctx, b, 2) == results{fire, go_on});
  ctx.backend.set_current_key("other key");
  CHECK(feed(t, ctx, a, 1) == results{fire});
}

TEST_CASE("clearing a window resets its count") {
  fake_context<time_window> ctx;
  count_trigger<int, time_window> t(3);
  time_window a{0, 10};
  CHECK(feed(t, ctx, a, 2) == results{go_on, go_on});
  t.clear(a, ctx);
  CHECK(feed(t, ctx, a, 3) == results{go_on, go_on, fire});
}

TEST_CASE("merging session windows sums their counts into the merged window") {
  fake_context<time_window> ctx;
  count_trigger<int, time_window> t(4);
  CHECK(t.can_merge());
  time_window a{0, 10};
  time_window b{15, 25};
  time_window far{100, 110};
  CHECK(feed(t, ctx, a, 2) == results{go_on, go_on});
  CHECK(feed(t, ctx, b, 1) == results{go_on});
  CHECK(feed(t, ctx, far, 3) == results{go_on, go_on, go_on});
  // As the window operator does: on_merge on the result, then clear the merged windows.
  time_window merged{0, 25};
  ctx.current = merged;
  t.on_merge(merged, ctx);
  t.clear(a, ctx);
  t.clear(b, ctx);
  CHECK(feed(t, ctx, merged, 2) == results{fire, go_on});
  // The window outside the merge kept its own count.
  CHECK(feed(t, ctx, far, 1) == results{fire});
}

TEST_CASE("a window that grows by merging keeps its count") {
  fake_context<time_window> ctx;
  count_trigger<int, time_window> t(3);
  time_window a{0, 10};
  CHECK(feed(t, ctx, a, 2) == results{go_on, go_on});
  time_window grown{0, 15};
  t.on_merge(grown, ctx);
  t.clear(a, ctx);
  CHECK(feed(t, ctx, grown, 1) == results{fire});
}

TEST_CASE("a count trigger on the global window fires every n elements") {
  fake_context<global_window> ctx;
  count_trigger<int, global_window> t(2);
  CHECK(feed(t, ctx, global_window{}, 5) == results{go_on, fire, go_on, fire, go_on});
}

TEST_CASE("a count trigger needs a positive count and one backend per instance") {
  CHECK_THROWS_WITH_AS(int_count_trigger(0), doctest::Contains("got 0"),
                       std::invalid_argument);
  fake_context<time_window> first;
  fake_context<time_window> second;
  count_trigger<int, time_window> t(2);
  CHECK(feed<time_window>(t, first, {0, 10}, 1) == results{go_on});
  CHECK_THROWS_AS(feed<time_window>(t, second, {0, 10}, 1), std::logic_error);
  auto copy = t.clone();
  CHECK(feed<time_window>(*copy, second, {0, 10}, 2) == results{go_on, fire});
}

TEST_CASE("a purging trigger turns every fire into fire and purge") {
  fake_context<time_window> ctx;
  purging_trigger<int, time_window> counting(std::make_unique<count_trigger<int, time_window>>(2));
  CHECK(feed<time_window>(counting, ctx, {0, 10}, 3) == results{go_on, fire_and_purge, go_on});
  CHECK(counting.can_merge());

  purging_trigger<int, time_window> timed(std::make_unique<event_time_trigger<int, time_window>>());
  time_window w{0, 10};
  CHECK(timed.on_element(1, 2, w, ctx) == go_on);
  CHECK(timed.on_event_time(5, w, ctx) == go_on);
  CHECK(timed.on_event_time(9, w, ctx) == fire_and_purge);
  auto copy = timed.clone();
  CHECK(copy->on_event_time(9, w, ctx) == fire_and_purge);
  timed.clear(w, ctx);
  CHECK(ctx.timer_calls == calls{"+event 9", "-event 9"});

  purging_trigger<int, global_window> never(std::make_unique<never_trigger<int>>());
  CHECK_FALSE(never.can_merge());
  CHECK_THROWS_AS(int_purging_trigger(nullptr), std::invalid_argument);
}

TEST_CASE("a custom trigger derived from trigger decides for itself") {
  /// Fires on large elements, purges on a processing-time timer.
  struct large_element_trigger final : trigger<int, time_window> {
    trigger_result on_element(const int& e, int64_t, const time_window&,
                              trigger_context<time_window>&) override {
      return e > 100 ? trigger_result::fire : trigger_result::continue_;
    }
    trigger_result on_event_time(int64_t, const time_window&,
                                 trigger_context<time_window>&) override {
      return trigger_result::continue_;
    }
    trigger_result on_processing_time(int64_t, const time_window&,
                                      trigger_context<time_window>&) override {
      return trigger_result::purge;
    }
    void clear(const time_window&, trigger_context<time_window>&) override {}
    std::unique_ptr<trigger<int, time_window>> clone() const override {
      return std::make_unique<large_element_trigger>();
    }
  };
  fake_context<time_window> ctx;
  purging_trigger<int, time_window> t(std::make_unique<large_element_trigger>());
  time_window w{0, 10};
  CHECK(t.on_element(5, 1, w, ctx) == go_on);
  CHECK(t.on_element(500, 1, w, ctx) == fire_and_purge);
  CHECK(t.on_processing_time(3, w, ctx) == trigger_result::purge);
  CHECK_FALSE(t.can_merge());
}

TEST_CASE("the never trigger never fires") {
  fake_context<global_window> ctx;
  never_trigger<int> t;
  CHECK(feed(t, ctx, global_window{}, 3) == results{go_on, go_on, go_on});
  CHECK(t.on_event_time(std::numeric_limits<int64_t>::max(), global_window{}, ctx) == go_on);
  CHECK(t.on_processing_time(0, global_window{}, ctx) == go_on);
  CHECK(ctx.timer_calls.empty());
}

TEST_CASE("a count evictor keeps the last n elements, before or after as configured") {
  const time_window w{0, 10};
  auto es = elements({{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}});
  count_evictor<int, time_window> before(2);
  before.evict_after(es, w, 0);
  CHECK(values_of(es) == std::vector<int>{1, 2, 3, 4, 5});
  before.evict_before(es, w, 0);
  CHECK(values_of(es) == std::vector<int>{4, 5});

  es = elements({{1, 1}, {2, 2}, {3, 3}});
  auto after = count_evictor<int, time_window>(2, true).clone();
  after->evict_before(es, w, 0);
  CHECK(es.size() == 3);
  after->evict_after(es, w, 0);
  CHECK(values_of(es) == std::vector<int>{2, 3});
  after->evict_after(es, w, 0);
  CHECK(values_of(es) == std::vector<int>{2, 3});

  CHECK_THROWS_AS(int_count_evictor(-1), std::invalid_argument);
}

TEST_CASE("a time evictor keeps elements within the size of the latest timestamp") {
  const time_window w{0, 100};
  auto es = elements({{1, 1}, {5, 5}, {10, 10}, {0, no_ts}, {12, 12}, {20, 20}, {15, 15}});
  time_evictor<int, time_window> before(10ms);
  before.evict_after(es, w, 0);
  CHECK(es.size() == 7);
  before.evict_before(es, w, 0);
  // Latest is 20, so timestamps <= 10 go; the element without a timestamp stays.
  CHECK(values_of(es) == std::vector<int>{0, 12, 20, 15});

  es = elements({{1, no_ts}, {2, no_ts}});
  before.evict_before(es, w, 0);
  CHECK(es.size() == 2);

  es = elements({{1, 1}, {30, 30}});
  time_evictor<int, time_window> after(10ms, true);
  after.evict_before(es, w, 0);
  CHECK(es.size() == 2);
  after.clone()->evict_after(es, w, 0);
  CHECK(values_of(es) == std::vector<int>{30});
}

TEST_CASE("a delta evictor drops elements at least the threshold away from the last one") {
  const time_window w{0, 10};
  auto distance = [](const int& a, const int& b) { return std::abs(double(a) - double(b)); };
  auto es = elements({{1, 0}, {9, 0}, {8, 0}, {10, 0}, {12, 0}, {14, 0}});
  delta_evictor<int, time_window> before(5.0, distance);
  before.evict_after(es, w, 0);
  CHECK(es.size() == 6);
  before.evict_before(es, w, 0);
  // Deltas to 14: 13, 5, 6, 4, 2, 0; a delta equal to the threshold is evicted.
  CHECK(values_of(es) == std::vector<int>{10, 12, 14});

  es = elements({{1, 0}, {14, 0}});
  delta_evictor<int, time_window> after(5.0, distance, true);
  after.evict_before(es, w, 0);
  CHECK(es.size() == 2);
  after.clone()->evict_after(es, w, 0);
  CHECK(values_of(es) == std::vector<int>{14});

  std::vector<timestamped_value<int>> none;
  after.evict_after(none, w, 0);
  CHECK(none.empty());
  CHECK_THROWS_AS(int_delta_evictor(1.0, nullptr), std::invalid_argument);
}

} // TEST_SUITE
