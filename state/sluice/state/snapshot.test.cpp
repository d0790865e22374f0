#include "sluice/state/snapshot.hpp"

#include "sluice/state/keyed_state.hpp"
#include "sluice/state/test_backends.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unistd.h>

using namespace sluice::state;
using namespace std::chrono_literals;
using namespace sluice::state::testing;

namespace {

/// A snapshot written by From, restored by To.
template <class From, class To>
struct route {
  using from = From;
  using to = To;
};
using heap_to_heap = route<heap_fixture, heap_fixture>;
using rocksdb_to_rocksdb = route<rocksdb_fixture, rocksdb_fixture>;
using heap_to_rocksdb = route<heap_fixture, rocksdb_fixture>;
using rocksdb_to_heap = route<rocksdb_fixture, heap_fixture>;

/// The states an "operator" declares in open(), before a restore.
struct operator_states {
  value_state<int64_t> count;
  list_state<std::string, window_ns> events;
  map_state<std::string, double, window_ns> prices;
  reducing_state<int64_t, window_ns> sum;

  explicit operator_states(keyed_state_backend_base& b)
    : count(b, value_state_descriptor<int64_t>("count")),
      events(b, list_state_descriptor<std::string>("events")),
      prices(b, map_state_descriptor<std::string, double>("prices")),
      sum(b, reducing_state_descriptor<int64_t>(
               "sum", [](const int64_t& a, const int64_t& c) { return a + c; })) {}
};

const window_ns w1{0, 10};
const window_ns w2{10, 20};

/// Writes each key's data: what the key is determines its values.
void fill(keyed_state_backend<int64_t>& b, operator_states& s, int64_t from, int64_t to) {
  for (auto k = from; k < to; ++k) {
    b.set_current_key(k);
    s.count.update(k * 10);
    s.events.set_namespace(w1);
    s.events.add("a" + std::to_string(k));
    s.events.add("b" + std::to_string(k));
    s.events.set_namespace(w2);
    s.events.add("c" + std::to_string(k));
    s.prices.set_namespace(w2);
    s.prices.put("x", static_cast<double>(k) + 0.5);
    s.prices.put("y", -static_cast<double>(k));
    if (k % 2 == 0) {
      s.sum.set_namespace(w1);
      s.sum.add(k);
      s.sum.add(1);
    }
  }
}

/// Checks the data fill() wrote for key k.
void check_key(keyed_state_backend<int64_t>& b, operator_states& s, int64_t k) {
  CAPTURE(k);
  b.set_current_key(k);
  CHECK(s.count.value() == std::optional<int64_t>(k * 10));
  s.events.set_namespace(w1);
  CHECK(s.events.get() == std::vector<std::string>{"a" + std::to_string(k), "b" + std::to_string(k)});
  s.events.set_namespace(w2);
  CHECK(s.events.get() == std::vector<std::string>{"c" + std::to_string(k)});
  s.prices.set_namespace(w1);
  CHECK(s.prices.empty());
  s.prices.set_namespace(w2);
  CHECK(s.prices.get("x") == std::optional<double>(static_cast<double>(k) + 0.5));
  CHECK(s.prices.get("y") == std::optional<double>(-static_cast<double>(k)));
  CHECK(s.prices.entries().size() == 2);
  s.sum.set_namespace(w1);
  if (k % 2 == 0)
    CHECK(s.sum.get() == std::optional<int64_t>(k + 1));
  else
    CHECK_FALSE(s.sum.get().has_value());
  s.sum.set_namespace(w2);
  CHECK_FALSE(s.sum.get().has_value());
}

std::vector<std::string_view> views(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

/// Snapshots of `parallelism` From subtasks holding keys [0, n).
template <class From>
std::vector<std::string> snapshots_of(int32_t parallelism, int64_t n,
                                      std::shared_ptr<manual_state_clock> clock) {
  std::vector<std::string> out;
  for (int32_t i = 0; i < parallelism; ++i) {
    auto b = From::template make<int64_t>(
      clock, key_group_range_for_subtask(max_p, parallelism, i));
    operator_states s(*b);
    for (int64_t k = 0; k < n; ++k) {
      if (!b->key_groups().contains(key_group_of(k, max_p)))
        continue;
      fill(*b, s, k, k + 1);
    }
    out.push_back(b->snapshot());
  }
  return out;
}

/// Restores `snaps` into `parallelism` To subtasks and checks every key of
/// [0, n) is in exactly the one subtask owning it, with its values.
template <class To>
void check_rescaled(const std::vector<std::string>& snaps, int32_t parallelism, int64_t n,
                    std::shared_ptr<manual_state_clock> clock) {
  std::multiset<int64_t> seen;
  for (int32_t i = 0; i < parallelism; ++i) {
    auto b = To::template make<int64_t>(clock,
                                        key_group_range_for_subtask(max_p, parallelism, i));
    operator_states s(*b);
    b->restore(views(snaps));
    for (uint32_t idx = 0; idx < 4; ++idx)
      for (auto k : b->keys(idx))
        CHECK(b->key_groups().contains(key_group_of(k, max_p)));
    for (auto k : b->keys(0))
      seen.insert(k);
    for (int64_t k = 0; k < n; ++k)
      if (b->key_groups().contains(key_group_of(k, max_p)))
        check_key(*b, s, k);
  }
  CHECK(seen.size() == static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    CHECK(seen.count(k) == 1);
}

struct opaque {
  int x = 0;
};

} // namespace

TEST_SUITE("state.snapshot") {

TEST_CASE_TEMPLATE("value, list, map and reducing state with namespaces round-trip", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>(1000);
  auto src = R::from::template make<int64_t>(clock);
  operator_states s(*src);
  fill(*src, s, 0, 200);
  auto snap = src->snapshot();

  auto dst = R::to::template make<int64_t>(clock);
  operator_states d(*dst);
  dst->restore({snap});
  for (int64_t k = 0; k < 200; ++k)
    check_key(*dst, d, k);
  CHECK(dst->keys(0).size() == 200);
  CHECK(dst->keys(3).size() == 100);

  // The restored backend snapshots to the same entries: restoring that
  // again gives the same state.
  auto again = R::from::template make<int64_t>(clock);
  operator_states a(*again);
  again->restore({dst->snapshot()});
  for (int64_t k = 0; k < 200; k += 7)
    check_key(*again, a, k);
}

TEST_CASE_TEMPLATE("rescaling from 2 to 3 and from 3 to 1 subtasks keeps every key once", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>();
  const int64_t n = 300;
  auto two = snapshots_of<typename R::from>(2, n, clock);
  check_rescaled<typename R::to>(two, 3, n, clock);
  auto three = snapshots_of<typename R::from>(3, n, clock);
  check_rescaled<typename R::to>(three, 1, n, clock);
}

TEST_CASE_TEMPLATE("a subtask restores only its own key groups from a larger snapshot", R,
                   heap_to_heap, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>();
  auto snaps = snapshots_of<typename R::from>(1, 100, clock);
  auto range = key_group_range_for_subtask(max_p, 4, 2);
  auto b = R::to::template make<int64_t>(clock, range);
  operator_states s(*b);
  b->restore(views(snaps));
  size_t expected = 0;
  for (int64_t k = 0; k < 100; ++k)
    expected += range.contains(key_group_of(k, max_p)) ? 1 : 0;
  CHECK(b->keys(0).size() == expected);
}

TEST_CASE_TEMPLATE("TTL stamps survive a snapshot and expired entries are left out", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>(0);
  state_ttl ttl{100ms};
  auto src = R::from::template make<std::string>(clock);
  value_state<std::string> session(*src, value_state_descriptor<std::string>("session", ttl));
  list_state<int32_t> hits(*src, list_state_descriptor<int32_t>("hits", ttl));
  src->set_current_key("old");
  session.update("o");
  hits.add(1);
  clock->set(50);
  src->set_current_key("new");
  session.update("n");
  hits.add(2);
  src->set_current_key("old");
  hits.add(3); // stamped 50, outlives the element stamped 0
  clock->set(120);
  auto snap = src->snapshot();

  auto dst = R::to::template make<std::string>(clock);
  value_state<std::string> s2(*dst, value_state_descriptor<std::string>("session", ttl));
  list_state<int32_t> h2(*dst, list_state_descriptor<int32_t>("hits", ttl));
  dst->restore({snap});
  dst->set_current_key("old");
  CHECK_FALSE(s2.value().has_value());
  CHECK(h2.get() == std::vector<int32_t>{3});
  dst->set_current_key("new");
  CHECK(s2.value() == std::optional<std::string>("n"));
  CHECK(h2.get() == std::vector<int32_t>{2});
  clock->set(150); // 100 ms after the stamp of 50: the restored stamp counts
  CHECK_FALSE(s2.value().has_value());
  CHECK(h2.get().empty());
}

TEST_CASE_TEMPLATE("a dense value table round-trips", To, heap_fixture, rocksdb_fixture) {
  auto clock = std::make_shared<manual_state_clock>();
  heap_keyed_backend<int64_t> src(all_groups, max_p, clock);
  value_state_descriptor<int64_t> d("_aggregate");
  auto idx = src.declare<void_namespace, int64_t>(d, state_kind::value, "value<record>");
  auto& table = src.dense_value<int64_t>(idx);
  for (int64_t k = 0; k < 500; ++k)
    table.insert(k, src.dense_hash(k), k * k);
  auto snap = src.snapshot();

  auto dst = To::template make<int64_t>(clock);
  auto didx = dst->template declare<void_namespace, int64_t>(d, state_kind::value,
                                                             "value<record>");
  if (auto* heap = dynamic_cast<heap_keyed_backend<int64_t>*>(dst.get())) {
    auto& t2 = heap->dense_value<int64_t>(didx);
    dst->restore({snap});
    CHECK(t2.size() == 500);
    for (int64_t k = 0; k < 500; ++k) {
      auto* v = t2.find(k, heap->dense_hash(k));
      REQUIRE(v != nullptr);
      CHECK(*v == k * k);
    }
  } else {
    value_state<int64_t> acc(*dst, d);
    dst->restore({snap});
    for (int64_t k = 0; k < 500; ++k) {
      dst->set_current_key(k);
      CHECK(acc.value() == std::optional<int64_t>(k * k));
    }
    // And back from RocksDB into a dense table.
    heap_keyed_backend<int64_t> back(all_groups, max_p, clock);
    auto bidx = back.declare<void_namespace, int64_t>(d, state_kind::value, "value<record>");
    auto& t3 = back.dense_value<int64_t>(bidx);
    back.restore({dst->snapshot()});
    CHECK(t3.size() == 500);
    CHECK(*t3.find(21, back.dense_hash(21)) == 441);
  }
}

TEST_CASE_TEMPLATE("corrupt, truncated or unknown-version snapshots are rejected", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>();
  auto src = R::from::template make<int64_t>(clock);
  value_state<int64_t> v(*src, value_state_descriptor<int64_t>("v"));
  list_state<std::string> l(*src, list_state_descriptor<std::string>("l"));
  for (int64_t k = 0; k < 3; ++k) {
    src->set_current_key(k);
    v.update(k);
    l.add("e");
  }
  const auto snap = src->snapshot();

  auto dst = R::to::template make<int64_t>(clock);
  value_state<int64_t> v2(*dst, value_state_descriptor<int64_t>("v"));
  list_state<std::string> l2(*dst, list_state_descriptor<std::string>("l"));
  dst->restore({snap}); // the intact snapshot restores

  for (size_t i = 0; i < snap.size(); ++i) {
    CAPTURE(i);
    auto flipped = snap;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x20);
    CHECK_THROWS_AS(dst->restore({flipped}), state_error);
    CHECK_THROWS_AS(dst->restore({std::string_view(snap).substr(0, i)}), state_error);
  }
  auto longer = snap + "x";
  CHECK_THROWS_AS(dst->restore({longer}), state_error);

  auto newer = snap;
  newer[8] = 3; // the version field follows the 8-byte magic
  CHECK(contains(error_of([&] { dst->restore({newer}); }), "unsupported format version 3"));
  auto older = snap;
  older[8] = 1; // before timer queues: read as what it is, not misparsed
  CHECK(contains(error_of([&] { dst->restore({older}); }), "unsupported format version 1"));
}

TEST_CASE_TEMPLATE("restoring into a state declared with another type names the state", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>();
  auto src = R::from::template make<int64_t>(clock);
  value_state<int64_t> v(*src, value_state_descriptor<int64_t>("count"));
  src->set_current_key(1);
  v.update(1);
  auto snap = src->snapshot();

  SUBCASE("another value type") {
    auto dst = R::to::template make<int64_t>(clock);
    value_state<std::string> w(*dst, value_state_descriptor<std::string>("count"));
    auto msg = error_of([&] { dst->restore({snap}); });
    CHECK(contains(msg, "'count'"));
    CHECK(contains(msg, "int64"));
  }
  SUBCASE("another kind") {
    auto dst = R::to::template make<int64_t>(clock);
    list_state<int64_t> w(*dst, list_state_descriptor<int64_t>("count"));
    CHECK(contains(error_of([&] { dst->restore({snap}); }), "'count'"));
  }
  SUBCASE("another key type") {
    auto dst = R::to::template make<std::string>(clock);
    value_state<int64_t> w(*dst, value_state_descriptor<int64_t>("count"));
    CHECK(contains(error_of([&] { dst->restore({snap}); }), "keys are"));
  }
  SUBCASE("a state not declared yet") {
    auto dst = R::to::template make<int64_t>(clock);
    CHECK(contains(error_of([&] { dst->restore({snap}); }), "'count'"));
  }
  SUBCASE("the same key group in two snapshots") {
    auto dst = R::to::template make<int64_t>(clock);
    value_state<int64_t> w(*dst, value_state_descriptor<int64_t>("count"));
    CHECK(contains(error_of([&] { dst->restore({snap, snap}); }), "also in an earlier"));
  }
}

TEST_CASE("a heap state without a serializer fails the snapshot, naming the state") {
  auto clock = std::make_shared<manual_state_clock>();
  heap_keyed_backend<int64_t> b(all_groups, max_p, clock);
  value_state<opaque> blob(b, value_state_descriptor<opaque>("blob"));
  value_state<int64_t> fine(b, value_state_descriptor<int64_t>("fine"));
  b.set_current_key(3);
  blob.update(opaque{7});
  fine.update(1);
  auto msg = error_of([&] { (void)b.snapshot(); });
  CHECK(contains(msg, "'blob'"));
  CHECK(contains(msg, "opaque"));
}

} // TEST_SUITE

namespace {

/// A timer queue as an operator keeps one: (time, key, namespace) in a set;
/// the namespace is a window_ns.
struct test_timer_queue final : keyed_timer_queue<int64_t> {
  std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> timers; // time, key, ns start, end

  std::string timer_namespace_type() const override { return serializer<window_ns>::type_name(); }
  void for_each_snapshot_timer(
    const std::function<void(int64_t, const int64_t&, std::string_view)>& fn) override {
    for (auto& [t, k, s, e] : timers)
      fn(t, k, serialize(window_ns{s, e}));
  }
  void restore_timer(int64_t time, const int64_t& key, std::string_view ns) override {
    auto w = deserialize<window_ns>(ns);
    timers.emplace(time, key, w.start, w.end);
  }
};

/// An "operator" with states and an event and a processing-time timer queue.
struct timed_operator {
  operator_states states;
  test_timer_queue event;
  test_timer_queue processing;

  explicit timed_operator(keyed_state_backend<int64_t>& b) : states(b) {
    b.register_timer_queue("_timer_state/event", event);
    b.register_timer_queue("_timer_state/processing", processing);
  }
};

/// Sets key k's timers: two event-time timers in two windows and one
/// processing-time timer, all depending on k.
void set_timers(timed_operator& op, int64_t k) {
  op.event.timers.emplace(w1.end - 1, k, w1.start, w1.end);
  op.event.timers.emplace(w2.end - 1 + k % 3, k, w2.start, w2.end);
  op.processing.timers.emplace(1000 + k, k, w1.start, w1.end);
}

} // namespace

TEST_SUITE("state.snapshot.timers") {

TEST_CASE_TEMPLATE("event and processing-time timers round-trip with the keyed state", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>(1000);
  auto src = R::from::template make<int64_t>(clock);
  timed_operator a(*src);
  fill(*src, a.states, 0, 100);
  for (int64_t k = 0; k < 100; ++k)
    set_timers(a, k);
  auto snap = src->snapshot();

  auto dst = R::to::template make<int64_t>(clock);
  timed_operator b(*dst);
  dst->restore({snap});
  CHECK(b.event.timers == a.event.timers);
  CHECK(b.processing.timers == a.processing.timers);
  CHECK(b.event.timers.size() == 200);
  for (int64_t k = 0; k < 100; k += 9)
    check_key(*dst, b.states, k);

  // And back again, through the other kind.
  auto again = R::from::template make<int64_t>(clock);
  timed_operator c(*again);
  again->restore({dst->snapshot()});
  CHECK(c.event.timers == a.event.timers);
  CHECK(c.processing.timers == a.processing.timers);
}

TEST_CASE_TEMPLATE("rescaling from 2 to 3 subtasks keeps every timer once, where its key is", R,
                   heap_to_heap, rocksdb_to_rocksdb, heap_to_rocksdb, rocksdb_to_heap) {
  auto clock = std::make_shared<manual_state_clock>();
  const int64_t n = 300;
  std::vector<std::string> snaps;
  test_timer_queue all_event;
  test_timer_queue all_processing;
  for (int32_t i = 0; i < 2; ++i) {
    auto b = R::from::template make<int64_t>(clock, key_group_range_for_subtask(max_p, 2, i));
    timed_operator op(*b);
    for (int64_t k = 0; k < n; ++k)
      if (b->key_groups().contains(key_group_of(k, max_p))) {
        fill(*b, op.states, k, k + 1);
        set_timers(op, k);
      }
    all_event.timers.insert(op.event.timers.begin(), op.event.timers.end());
    all_processing.timers.insert(op.processing.timers.begin(), op.processing.timers.end());
    snaps.push_back(b->snapshot());
  }
  std::multiset<std::tuple<int64_t, int64_t, int64_t, int64_t>> seen_event;
  std::multiset<std::tuple<int64_t, int64_t, int64_t, int64_t>> seen_processing;
  for (int32_t i = 0; i < 3; ++i) {
    auto range = key_group_range_for_subtask(max_p, 3, i);
    auto b = R::to::template make<int64_t>(clock, range);
    timed_operator op(*b);
    b->restore(views(snaps));
    for (auto& t : op.event.timers) {
      CHECK(range.contains(key_group_of(std::get<1>(t), max_p)));
      seen_event.insert(t);
    }
    for (auto& t : op.processing.timers) {
      CHECK(range.contains(key_group_of(std::get<1>(t), max_p)));
      seen_processing.insert(t);
    }
    // Timers and state of a key land together.
    for (auto& t : op.processing.timers)
      check_key(*b, op.states, std::get<1>(t));
  }
  CHECK(seen_event.size() == all_event.timers.size());
  CHECK(std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>>(
          seen_event.begin(), seen_event.end()) == all_event.timers);
  CHECK(seen_processing.size() == all_processing.timers.size());
  CHECK(std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>>(
          seen_processing.begin(), seen_processing.end()) == all_processing.timers);
}

TEST_CASE_TEMPLATE("timers restored into a backend without their timer queue name it", R,
                   heap_to_heap, rocksdb_to_heap, heap_to_rocksdb) {
  auto clock = std::make_shared<manual_state_clock>();
  auto src = R::from::template make<int64_t>(clock);
  timed_operator a(*src);
  set_timers(a, 4);
  auto snap = src->snapshot();

  SUBCASE("no queue of that name") {
    auto dst = R::to::template make<int64_t>(clock);
    operator_states s(*dst);
    test_timer_queue event;
    dst->register_timer_queue("_timer_state/event", event);
    auto msg = error_of([&] { dst->restore({snap}); });
    CHECK(contains(msg, "'_timer_state/processing'"));
    CHECK(contains(msg, "not registered"));
  }
  SUBCASE("a queue of that name with another namespace type") {
    struct other_ns_queue final : keyed_timer_queue<int64_t> {
      std::string timer_namespace_type() const override { return "void_namespace"; }
      void for_each_snapshot_timer(
        const std::function<void(int64_t, const int64_t&, std::string_view)>&) override {}
      void restore_timer(int64_t, const int64_t&, std::string_view) override {}
    };
    auto dst = R::to::template make<int64_t>(clock);
    operator_states s(*dst);
    other_ns_queue e;
    other_ns_queue p;
    dst->register_timer_queue("_timer_state/event", e);
    dst->register_timer_queue("_timer_state/processing", p);
    CHECK(contains(error_of([&] { dst->restore({snap}); }), "'_timer_state/event'"));
  }
  SUBCASE("registering a name twice") {
    auto dst = R::to::template make<int64_t>(clock);
    test_timer_queue q;
    dst->register_timer_queue("_timer_state/event", q);
    CHECK(contains(error_of([&] { dst->register_timer_queue("_timer_state/event", q); }),
                   "registered twice"));
  }
}

TEST_CASE_TEMPLATE("a corrupt or truncated timer section is rejected", R, heap_to_heap,
                   rocksdb_to_heap, heap_to_rocksdb) {
  auto clock = std::make_shared<manual_state_clock>();
  auto src = R::from::template make<int64_t>(clock);
  test_timer_queue event;
  src->register_timer_queue("_timer_state/event", event);
  for (int64_t k = 0; k < 3; ++k)
    event.timers.emplace(10 + k, k, 0, 10);
  const auto snap = src->snapshot(); // timers only: every body byte is a timer section's

  auto dst = R::to::template make<int64_t>(clock);
  test_timer_queue restored;
  dst->register_timer_queue("_timer_state/event", restored);
  dst->restore({snap});
  CHECK(restored.timers == event.timers);
  for (size_t i = 0; i < snap.size(); ++i) {
    CAPTURE(i);
    auto flipped = snap;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x20);
    CHECK_THROWS_AS(dst->restore({flipped}), state_error);
    CHECK_THROWS_AS(dst->restore({std::string_view(snap).substr(0, i)}), state_error);
  }
}

TEST_CASE("a timer whose key or namespace cannot be read is a state_error naming the queue") {
  auto clock = std::make_shared<manual_state_clock>();
  heap_keyed_backend<int64_t> src(all_groups, max_p, clock);
  struct bad_ns_queue final : keyed_timer_queue<int64_t> {
    std::string timer_namespace_type() const override {
      return serializer<window_ns>::type_name();
    }
    void for_each_snapshot_timer(
      const std::function<void(int64_t, const int64_t&, std::string_view)>& fn) override {
      fn(5, 1, "x"); // not a window_ns, yet a well-formed, checksummed section
    }
    void restore_timer(int64_t, const int64_t&, std::string_view) override {}
  } bad;
  src.register_timer_queue("_timer_state/event", bad);
  auto snap = src.snapshot();
  heap_keyed_backend<int64_t> dst(all_groups, max_p, clock);
  test_timer_queue q;
  dst.register_timer_queue("_timer_state/event", q);
  auto msg = error_of([&] { dst.restore({snap}); });
  CHECK(contains(msg, "'_timer_state/event'"));
  CHECK(contains(msg, "key group"));
}

} // TEST_SUITE

TEST_CASE("snapshot_crc32 is CRC-32 (IEEE) and can be continued at any split") {
  CHECK(snapshot_crc32("") == 0u);
  CHECK(snapshot_crc32("123456789") == 0xCBF43926u); // the check value of the standard
  CHECK(snapshot_crc32("The quick brown fox jumps over the lazy dog") == 0x414FA339u);
  // Eight bytes at a time must equal the classic byte-at-a-time loop for
  // every length and alignment, and continuing a CRC over a split must
  // equal the CRC of the whole.
  auto by_bytes = [](std::string_view s) {
    uint32_t c = 0xFFFFFFFFu;
    for (unsigned char ch : s) {
      c ^= ch;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
  };
  std::string data(300, '\0');
  uint32_t x = 12345;
  for (auto& ch : data) {
    x = x * 1103515245u + 12345u;
    ch = static_cast<char>(x >> 16);
  }
  for (size_t from = 0; from < 9; ++from)
    for (size_t len = 0; from + len <= data.size(); len += 7) {
      std::string_view s(data.data() + from, len);
      REQUIRE(snapshot_crc32(s) == by_bytes(s));
      auto cut = len / 3;
      CHECK(snapshot_crc32_update(snapshot_crc32(s.substr(0, cut)), s.substr(cut)) ==
            by_bytes(s));
    }
}
