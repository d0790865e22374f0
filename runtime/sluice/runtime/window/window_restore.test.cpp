#include "sluice/state/test_backends.hpp"
#include "sluice/runtime/window/window_operator.hpp"
#include "sluice/runtime/testing/vector_collector.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unistd.h>
#include <vector>

using namespace sluice::runtime;
using sluice::runtime::testing::vector_collector;
namespace state = sluice::state;

namespace {

constexpr int32_t max_p = 128;

/// A processing_time_service whose clock and timers the test drives.
struct fake_clock final : processing_time_service {
  int64_t now = 0;
  std::multimap<int64_t, processing_time_callback*> armed;
  int64_t now_ms() const override { return now; }
  void register_timer(int64_t t, processing_time_callback* cb) override { armed.emplace(t, cb); }
  /// Advances to `to`, calling what is due.
  void advance(int64_t to) {
    now = to;
    while (!armed.empty() && armed.begin()->first <= to) {
      auto [t, cb] = *armed.begin();
      armed.erase(armed.begin());
      cb->on_processing_time(t);
    }
  }
};

/// One opened operator subtask with its context, clock and output.
template <class Op, class Out>
struct harness {
  state_settings settings;
  element_context element;
  fake_clock clock;
  vector_collector<Out> out;
  runtime_context ctx;
  std::unique_ptr<Op> op;

  harness(std::unique_ptr<Op> o, state::backend_kind kind, int32_t index, int32_t parallelism)
    : ctx("op", index, parallelism, max_p), op(std::move(o)) {
    settings.backend = kind;
    settings.ttl_cleanup_interval = std::chrono::milliseconds(0);
    ctx.set_state_config(&settings);
    ctx.set_element_context(&element);
    ctx.set_time_service(&clock);
    ctx.set_instance_id(state::testing::instance_name());
    op->set_output(&out);
    op->open_operator(ctx);
  }
  ~harness() { op->close(); }
  bool owns(int64_t key) const {
    return state::key_group_range_for_subtask(max_p, ctx.parallelism(), ctx.subtask_index())
      .contains(state::key_group_of(key, max_p));
  }
};

// ---- window operator ---------------------------------------------------------

struct key_of {
  int64_t operator()(const int64_t& v) const { return v % 7; }
};
struct plus {
  int64_t operator()(const int64_t& a, const int64_t& b) const { return a + b; }
};
using sum_window_operator = window_operator<int64_t, int64_t, time_window, int64_t, key_of>;
using window_harness = harness<sum_window_operator, int64_t>;

std::unique_ptr<sum_window_operator> make_window_operator() {
  window_spec<int64_t, int64_t, time_window, int64_t> spec;
  spec.assigner = std::make_shared<tumbling_event_time_windows>(std::chrono::milliseconds(10));
  spec.trigger_prototype = std::make_shared<event_time_trigger<int64_t, time_window>>();
  spec.contents_prototype = std::make_shared<
    incremental_contents<int64_t, int64_t, time_window, int64_t, reduce_ops<int64_t, plus>>>(
    reduce_ops<int64_t, plus>{plus{}}, nullptr);
  return std::make_unique<sum_window_operator>("Window(Reduce)", key_of{}, std::move(spec));
}

/// Record i: a distinct value; its timestamp puts it in one of many windows,
/// in no order, so each key keeps many windows open.
int64_t value_of(int64_t i) { return i * 1000 + 1; }
int64_t timestamp_of(int64_t i) { return (i * 37) % 200; }

/// Feeds records [from, to) with timestamps at least `min_ts` to whichever
/// of `subtasks` owns their key.
void feed(std::vector<std::unique_ptr<window_harness>>& subtasks, int64_t from, int64_t to,
          int64_t min_ts) {
  for (int64_t i = from; i < to; ++i) {
    auto v = value_of(i);
    auto ts = std::max(timestamp_of(i), min_ts + (i % 50));
    for (auto& h : subtasks)
      if (h->owns(key_of{}(v))) {
        h->element.timestamp = ts;
        h->op->collect(int64_t(v));
      }
  }
}

void watermark(std::vector<std::unique_ptr<window_harness>>& subtasks, int64_t wm) {
  for (auto& h : subtasks) {
    h->element.watermark = wm;
    h->op->process_watermark(wm);
  }
}

std::multiset<int64_t> outputs(const std::vector<std::unique_ptr<window_harness>>& subtasks) {
  std::multiset<int64_t> out;
  for (auto& h : subtasks)
    out.insert(h->out.items.begin(), h->out.items.end());
  return out;
}

std::vector<std::unique_ptr<window_harness>> subtasks_of(state::backend_kind kind, int32_t p) {
  std::vector<std::unique_ptr<window_harness>> out;
  for (int32_t i = 0; i < p; ++i)
    out.push_back(std::make_unique<window_harness>(make_window_operator(), kind, i, p));
  return out;
}

/// Runs the job: records, a watermark that fires part of the windows, then
/// (maybe) a snapshot and restore into `to_kind` at `to_p`, more records
/// into windows restored and new ones, and the final watermark.
std::multiset<int64_t> run(state::backend_kind from_kind, int32_t from_p,
                           std::optional<std::pair<state::backend_kind, int32_t>> restore_into) {
  auto subtasks = subtasks_of(from_kind, from_p);
  feed(subtasks, 0, 2000, INT64_MIN);
  watermark(subtasks, 95);
  auto fired = outputs(subtasks);
  for (auto& h : subtasks)
    h->out.items.clear();
  if (restore_into) {
    std::vector<std::string> snaps;
    for (auto& h : subtasks)
      snaps.push_back(h->op->snapshot_keyed_state());
    auto old = std::move(subtasks);
    subtasks = subtasks_of(restore_into->first, restore_into->second);
    std::vector<std::string_view> views(snaps.begin(), snaps.end());
    size_t timers_before = 0;
    for (auto& h : old)
      timers_before += h->op->event_timer_count();
    size_t timers_after = 0;
    for (auto& h : subtasks) {
      h->op->restore_keyed_state(views);
      timers_after += h->op->event_timer_count();
    }
    CHECK(timers_after == timers_before);
    watermark(subtasks, 95);
    CHECK(outputs(subtasks).empty()); // nothing fires twice
  }
  feed(subtasks, 2000, 3000, 96);
  watermark(subtasks, 150);
  watermark(subtasks, max_watermark);
  auto rest = outputs(subtasks);
  fired.insert(rest.begin(), rest.end());
  for (auto& h : subtasks)
    CHECK(h->op->event_timer_count() == 0);
  return fired;
}

} // namespace

TEST_SUITE("runtime.windows.restore") {

TEST_CASE("a window operator restored from a snapshot fires what an uninterrupted run fires") {
  using state::backend_kind;
  const auto expected = run(backend_kind::heap, 1, std::nullopt);
  REQUIRE(expected.size() > 100);
  CHECK(run(backend_kind::rocksdb, 1, std::nullopt) == expected);

  SUBCASE("RocksDB to heap") {
    CHECK(run(backend_kind::rocksdb, 1, std::make_pair(backend_kind::heap, 1)) == expected);
  }
  SUBCASE("heap at parallelism 2 to heap at 3") {
    CHECK(run(backend_kind::heap, 2, std::make_pair(backend_kind::heap, 3)) == expected);
  }
  SUBCASE("RocksDB at 2 to heap at 3, and heap at 3 to RocksDB at 1") {
    CHECK(run(backend_kind::rocksdb, 2, std::make_pair(backend_kind::heap, 3)) == expected);
    CHECK(run(backend_kind::heap, 3, std::make_pair(backend_kind::rocksdb, 1)) == expected);
  }
}

TEST_CASE("heap window contents restored out of order are put back in the operator's order") {
  // Entries arrive in snapshot order; from RocksDB that is byte order, which
  // sort_descending must turn into an order the accumulators can search.
  state::heap_keyed_backend<int64_t> b({0, max_p - 1}, max_p);
  sluice::runtime::internal::window_accumulators<time_window, int64_t> acc;
  acc.open(b, state::value_state_descriptor<int64_t>("window-contents"),
           state::state_kind::reducing);
  state::rocksdb_config cfg;
  auto src = state::make_keyed_backend<int64_t>(state::backend_kind::rocksdb, {0, max_p - 1},
                                                max_p, nullptr, cfg, state::testing::instance_name());
  sluice::runtime::internal::window_accumulators<time_window, int64_t> src_acc;
  src_acc.open(*src, state::value_state_descriptor<int64_t>("window-contents"),
               state::state_kind::reducing);
  src->set_current_key(3);
  // Negative and positive starts: their little-endian bytes sort apart.
  std::vector<int64_t> starts{-300, 250, -20, 0, 70, 1000, -1000, 10, 130};
  for (auto s : starts)
    src_acc.upsert(time_window{s, s + 10}, [](int64_t&) {}, [s] { return s; });
  b.restore({src->snapshot()});
  b.set_current_key(3);
  for (auto s : starts) {
    const int64_t* v = acc.get(time_window{s, s + 10});
    REQUIRE(v != nullptr);
    CHECK(*v == s);
  }
  // New windows and firings oldest first work on the restored cell.
  CHECK(acc.upsert(time_window{2000, 2010}, [](int64_t&) {}, [] { return int64_t{1}; }));
  CHECK_FALSE(acc.upsert(time_window{70, 80}, [](int64_t& a) { a += 1; }, [] { return 0; }));
  std::sort(starts.begin(), starts.end());
  for (auto s : starts) {
    REQUIRE(acc.get(time_window{s, s + 10}) != nullptr);
    acc.erase(time_window{s, s + 10});
    CHECK(acc.get(time_window{s, s + 10}) == nullptr);
  }
  CHECK(*acc.get(time_window{2000, 2010}) == 1);
  acc.close();
  src_acc.close();
}

} // TEST_SUITE

// ---- keyed process function: processing-time timers after a restore ---------

namespace {

/// Sets a processing-time timer 100 ms after each record and an event-time
/// timer at the record's value; emits "key@time" when one fires.
struct timing_function final : keyed_process_function<int64_t, int64_t, std::string> {
  void process_element(const int64_t& v, context& ctx, collector<std::string>&) override {
    ctx.timer_service().register_processing_time_timer(
      ctx.timer_service().current_processing_time() + 100);
    ctx.timer_service().register_event_time_timer(v);
  }
  void on_timer(int64_t t, context& ctx, collector<std::string>& out) override {
    out.collect((ctx.time_domain() == time_domain::processing_time ? "p" : "e") +
                std::to_string(ctx.current_key()) + "@" + std::to_string(t));
  }
};
struct mod_5 {
  int64_t operator()(const int64_t& v) const { return v % 5; }
};
using process_operator =
  keyed_process_function_operator<int64_t, int64_t, std::string, mod_5, timing_function>;
using process_harness = harness<process_operator, std::string>;

std::unique_ptr<process_operator> make_process_operator() {
  return std::make_unique<process_operator>("Process", mod_5{}, timing_function{});
}

} // namespace

TEST_SUITE("runtime.process.restore") {

TEST_CASE("restored processing-time timers are armed again with the subtask's clock and fire") {
  using state::backend_kind;
  for (auto [from, to] : {std::pair{backend_kind::heap, backend_kind::rocksdb},
                          std::pair{backend_kind::rocksdb, backend_kind::heap}}) {
  CAPTURE(from);
  CAPTURE(to);
  process_harness a(make_process_operator(), from, 0, 1);
  a.clock.now = 1000;
  for (int64_t v = 0; v < 10; ++v) {
    a.element.timestamp = v;
    a.op->collect(int64_t(v));
    a.clock.now += 10; // timers at 1100, 1110, ..., 1190: one time per record
  }
  CHECK(a.op->timers().processing_timers() == 10);
  CHECK(a.op->timers().event_timers() == 10);
  auto snap = a.op->snapshot_keyed_state();

  std::set<std::string> fired;
  std::vector<std::unique_ptr<process_harness>> subtasks;
  for (int32_t i = 0; i < 2; ++i) {
    subtasks.push_back(std::make_unique<process_harness>(make_process_operator(), to, i, 2));
    auto& h = *subtasks.back();
    h.clock.now = 1050;
    CHECK(h.clock.armed.empty());
    h.op->restore_keyed_state({snap});
    std::set<int64_t> armed;
    for (auto& [t, cb] : h.clock.armed)
      armed.insert(t);
    // Every distinct time of this subtask's timers, once.
    CHECK(armed.size() == h.clock.armed.size());
    CHECK(armed.size() == h.op->timers().processing_timers());
    h.clock.advance(1200);
    h.element.watermark = 100;
    h.op->process_watermark(100);
    for (auto& s : h.out.items) {
      CHECK(fired.insert(s).second);
    }
  }
  std::set<std::string> expected;
  for (int64_t v = 0; v < 10; ++v) {
    expected.insert("p" + std::to_string(v % 5) + "@" + std::to_string(1100 + 10 * v));
    expected.insert("e" + std::to_string(v % 5) + "@" + std::to_string(v));
  }
  CHECK(fired == expected);
  }
}

} // TEST_SUITE
