// Windows in panes (window_panes) against the per-key path they replace,
// and the stamped blocks that feed them.
#include "sluice/runtime/process_function.hpp"
#include "sluice/runtime/time/watermarks.hpp"
#include "sluice/runtime/window/window_operator.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <typeindex>
#include <vector>

using namespace sluice::runtime;
namespace state = sluice::state;

namespace {

constexpr int32_t max_p = 128;

/// Everything an operator sends, in order: records with the timestamp
/// they carry, and watermarks.
template <class T>
struct recording_collector final : collector<T> {
  element_context* element = nullptr;
  std::vector<std::tuple<T, int64_t>> records;
  std::vector<std::string> log;
  void collect(T&& v) override {
    records.emplace_back(v, element->timestamp);
    log.push_back("r" + std::to_string(v));
  }
  void process_watermark(int64_t wm) override { log.push_back("wm" + std::to_string(wm)); }
};

/// The default event-time trigger's behaviour in a class of its own: the
/// window operator only keeps panes with the default trigger itself, so
/// this one keeps the per-key path.
struct same_as_event_time final : trigger<int64_t, time_window> {
  trigger_result on_element(const int64_t&, int64_t, const time_window& w,
                            trigger_context<time_window>& ctx) override {
    if (w.max_timestamp() <= ctx.current_watermark())
      return trigger_result::fire;
    ctx.register_event_time_timer(w.max_timestamp());
    return trigger_result::continue_;
  }
  trigger_result on_event_time(int64_t t, const time_window& w,
                               trigger_context<time_window>&) override {
    return t == w.max_timestamp() ? trigger_result::fire : trigger_result::continue_;
  }
  trigger_result on_processing_time(int64_t, const time_window&,
                                    trigger_context<time_window>&) override {
    return trigger_result::continue_;
  }
  [[nodiscard]] bool can_merge() const override { return true; }
  void on_merge(const time_window&, trigger_context<time_window>&) override {}
  void clear(const time_window& w, trigger_context<time_window>& ctx) override {
    ctx.delete_event_time_timer(w.max_timestamp());
  }
  [[nodiscard]] std::unique_ptr<trigger<int64_t, time_window>> clone() const override {
    return std::make_unique<same_as_event_time>();
  }
};

struct key_of {
  int64_t operator()(const int64_t& v) const { return v % 13; }
};
struct plus {
  int64_t operator()(const int64_t& a, const int64_t& b) const { return a + b; }
};
using sum_operator = window_operator<int64_t, int64_t, time_window, int64_t, key_of>;

std::unique_ptr<sum_operator> make_sum(bool default_trigger, int64_t lateness = 0) {
  window_spec<int64_t, int64_t, time_window, int64_t> spec;
  spec.assigner = std::make_shared<tumbling_event_time_windows>(std::chrono::milliseconds(10));
  if (default_trigger)
    spec.trigger_prototype = std::make_shared<event_time_trigger<int64_t, time_window>>();
  else
    spec.trigger_prototype = std::make_shared<same_as_event_time>();
  spec.contents_prototype = std::make_shared<
    incremental_contents<int64_t, int64_t, time_window, int64_t, reduce_ops<int64_t, plus>>>(
    reduce_ops<int64_t, plus>{plus{}}, nullptr);
  spec.allowed_lateness = lateness;
  spec.late_tag = "late";
  return std::make_unique<sum_operator>("Window(Reduce)", key_of{}, std::move(spec));
}

/// One opened window operator subtask on the heap backend.
struct subtask {
  state_settings settings;
  element_context element;
  recording_collector<int64_t> out;
  recording_collector<int64_t> late;
  runtime_context ctx{"op", 0, 1, max_p};
  std::unique_ptr<sum_operator> op;

  explicit subtask(std::unique_ptr<sum_operator> o) : op(std::move(o)) {
    settings.backend = state::backend_kind::heap;
    ctx.set_state_config(&settings);
    ctx.set_element_context(&element);
    out.element = &element;
    late.element = &element;
    op->set_output(&out);
    op->set_side_output("late", std::type_index(typeid(int64_t)), &late);
    op->open_operator(ctx);
  }
  ~subtask() { op->close(); }
  void watermark(int64_t wm) {
    element.watermark = wm;
    op->process_watermark(wm);
  }
};

/// A number in [0, bound) from `rng`.
uint64_t next(std::mt19937_64& rng, uint64_t bound) {
  return rng() % bound;
}

} // namespace

TEST_SUITE("runtime.windows.panes") {

TEST_CASE("panes emit what the per-key path emits, in the same order, late data included") {
  subtask panes(make_sum(true));
  subtask per_key(make_sum(false));
  REQUIRE(panes.op->uses_panes());
  REQUIRE_FALSE(per_key.op->uses_panes());

  // Out-of-order timestamps over many windows; blocks of uneven size; a
  // watermark between blocks, so some records arrive late.
  std::mt19937_64 rng{11};
  int64_t wm = -1;
  int64_t next_value = 1;
  for (int round = 0; round < 300; ++round) {
    const size_t n = 1 + next(rng, 100);
    std::vector<int64_t> values, stamps;
    for (size_t i = 0; i < n; ++i) {
      values.push_back(next_value++);
      stamps.push_back(wm - 20 + static_cast<int64_t>(next(rng, 80)));
    }
    auto copy = values;
    panes.op->collect_stamped(copy.data(), stamps.data(), n, panes.element);
    CHECK(panes.element.timestamp == stamps.back());
    for (size_t i = 0; i < n; ++i) {
      per_key.element.timestamp = stamps[i];
      per_key.op->collect(int64_t(values[i]));
    }
    if (next(rng, 3) == 0) {
      wm += static_cast<int64_t>(next(rng, 30));
      panes.watermark(wm);
      per_key.watermark(wm);
      REQUIRE(panes.out.records == per_key.out.records);
    }
  }
  panes.watermark(max_watermark);
  per_key.watermark(max_watermark);
  CHECK(panes.out.records.size() > 500);
  CHECK(panes.out.records == per_key.out.records);
  CHECK(panes.late.records.size() > 100);
  CHECK(panes.late.records == per_key.late.records);
  CHECK(panes.op->late_records_dropped() == per_key.op->late_records_dropped());
  CHECK(panes.op->event_timer_count() == 0);
}

TEST_CASE("panes survive a snapshot into the per-key path and back, timers included") {
  subtask a(make_sum(true));
  REQUIRE(a.op->uses_panes());
  for (int64_t i = 1; i <= 400; ++i) {
    a.element.timestamp = (i * 7) % 100;
    a.op->collect(int64_t(i));
  }
  a.watermark(40);
  const auto timers = a.op->event_timer_count();
  CHECK(timers > 0);
  CHECK(a.op->timers().event_timers() == 0); // implied by the panes
  auto snap = a.op->snapshot_keyed_state();
  a.out.records.clear();

  subtask b(make_sum(false));
  b.op->restore_keyed_state({snap});
  CHECK(b.op->event_timer_count() == timers);
  auto snap2 = b.op->snapshot_keyed_state();

  subtask c(make_sum(true));
  c.op->restore_keyed_state({snap2});
  CHECK(c.op->event_timer_count() == timers);
  CHECK(c.op->timers().event_timers() == 0); // taken back into the panes

  a.watermark(max_watermark);
  b.watermark(max_watermark);
  c.watermark(max_watermark);
  // Within a window, restored keys come in snapshot order (by key group).
  for (auto* s : {&a, &b, &c})
    std::sort(s->out.records.begin(), s->out.records.end());
  CHECK_FALSE(a.out.records.empty());
  CHECK(b.out.records == a.out.records);
  CHECK(c.out.records == a.out.records);
}

TEST_CASE("windows with allowed lateness or another trigger keep the per-key path") {
  subtask late(make_sum(true, 5));
  CHECK_FALSE(late.op->uses_panes());
}

TEST_CASE("a record without a timestamp fails on the pane path as on the per-key path") {
  subtask s(make_sum(true));
  REQUIRE(s.op->uses_panes());
  int64_t values[] = {1, 2};
  int64_t stamps[] = {5, INT64_MIN};
  CHECK_THROWS_WITH(s.op->collect_stamped(values, stamps, 2, s.element),
                    doctest::Contains("timestamp"));
}

TEST_CASE("a pane entry with a corrupt window or value fails its restore, naming the problem") {
  state::dense_pane_table<int64_t, time_window, int64_t> table;
  const auto window = state::serialize(time_window{0, 10});
  const auto value = state::serialize(int64_t{7});
  table.restore(1, 1, window, value);
  CHECK(table.size() == 1);
  CHECK_THROWS_WITH(table.restore(2, 2, window.substr(0, 3), value),
                    doctest::Contains("deserialize"));
  CHECK_THROWS_WITH(table.restore(2, 2, window, value + "x"), doctest::Contains("trailing"));
  CHECK(table.size() == 1); // nothing half restored
}

TEST_CASE("a new pane starts empty when it takes the storage of one that went") {
  state::dense_pane_table<int64_t, time_window, int64_t> table;
  auto& first = table.pane_of(time_window{0, 10});
  for (int64_t k = 0; k < 100; ++k)
    table.insert(first, k, static_cast<uint32_t>(k), k);
  CHECK(table.size() == 100);
  table.erase(table.panes().begin());
  CHECK(table.size() == 0);
  auto& second = table.pane_of(time_window{10, 20});
  CHECK(second.find(5, 5) == nullptr);
  table.insert(second, 5, 5, 500);
  CHECK(*second.find(5, 5) == 500);
  std::vector<int64_t> seen;
  second.for_each([&](const int64_t& k, int64_t& v) {
    seen.push_back(k);
    CHECK(v == 500);
  });
  CHECK(seen == std::vector<int64_t>{5});
  CHECK(table.size() == 1);
}

/// A timestamp assigner with strategy `s` (no periodic emission) writing
/// into a recording collector.
struct stamping {
  explicit stamping(const watermark_strategy<int64_t>& s)
    : op("stamp", s, std::chrono::milliseconds(0)), ctx("stamp", 0, 1, max_p) {
    ctx.set_element_context(&element);
    out.element = &element;
    op.set_output(&out);
    op.open_operator(ctx);
  }
  /// Hands the records 1..150 over as one block.
  void feed_1_to_150() {
    std::vector<int64_t> block;
    for (int64_t v = 1; v <= 150; ++v)
      block.push_back(v);
    op.collect_batch(block.data(), block.size());
  }
  timestamps_and_watermarks_operator<int64_t> op;
  element_context element;
  runtime_context ctx;
  recording_collector<int64_t> out;
};

TEST_CASE("a periodic watermark strategy stamps whole blocks and emits only on its period") {
  auto strategy = watermark_strategy<int64_t>::for_bounded_out_of_orderness(
                    std::chrono::milliseconds(3))
                    .with_timestamp_assigner([](const int64_t& v) { return v * 2; });
  stamping stamp(strategy);
  auto& out = stamp.out;
  stamp.feed_1_to_150();
  stamp.op.process_watermark(max_watermark); // end of input
  std::vector<std::string> expected;
  for (int64_t v = 1; v <= 150; ++v)
    expected.push_back("r" + std::to_string(v));
  expected.push_back("wm" + std::to_string(max_watermark));
  CHECK(out.log == expected);
  REQUIRE(out.records.size() == 150);
  for (int64_t v = 1; v <= 150; ++v)
    CHECK(std::get<1>(out.records[static_cast<size_t>(v - 1)]) == v * 2);
}

TEST_CASE("a timestamp assigner forwards blocks, each cut after a record that makes a watermark") {
  // Punctuated: a watermark after every record divisible by 10.
  auto strategy = watermark_strategy<int64_t>::for_generator([] {
                    return std::make_unique<punctuated_watermarks<int64_t>>(
                      [](const int64_t& v, int64_t ts) -> std::optional<int64_t> {
                        if (v % 10 == 0)
                          return ts - 1;
                        return std::nullopt;
                      });
                  })
                    .with_timestamp_assigner([](const int64_t& v) { return v * 2; });
  stamping stamp(strategy);
  auto& out = stamp.out;

  stamp.feed_1_to_150();
  CHECK(stamp.element.timestamp == INT64_MIN); // left as it came

  std::vector<std::string> expected;
  for (int64_t v = 1; v <= 150; ++v) {
    expected.push_back("r" + std::to_string(v));
    if (v % 10 == 0)
      expected.push_back("wm" + std::to_string(v * 2 - 1));
  }
  CHECK(out.log == expected);
  for (auto& [v, ts] : out.records)
    CHECK(ts == v * 2);
  stamp.op.close();
}

} // TEST_SUITE
