#include "sluice/runtime/window/window_operator.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <tuple>
#include <vector>

using namespace sluice::runtime;
namespace state = sluice::state;

namespace {

using timers = keyed_timers<int64_t, time_window>;
using fired = std::vector<std::tuple<int64_t, int64_t, int64_t>>; // time, key, window start

time_window win(int64_t start) { return {start, start + 10}; }

fired fire_event(timers& t, int64_t wm) {
  fired out;
  t.advance_watermark(wm,
                      [&](const timers::timer& x) { out.emplace_back(x.time, x.key, x.ns.start); });
  return out;
}

/// A small deterministic random generator.
struct lcg {
  uint64_t x;
  uint64_t next(uint64_t bound) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return (x >> 33) % bound;
  }
};

} // namespace

TEST_SUITE("runtime.windows") {

TEST_CASE("keyed timers fire once per time, key and window, in time order then setting order") {
  timers t;
  t.add_event(20, 1, win(10));
  t.add_event(9, 2, win(0));
  t.add_event(9, 1, win(0));
  t.add_event(20, 1, win(10)); // again: still one
  t.add_event(9, 2, win(0));
  t.add_event(9, 2, win(-10)); // same key and time, another window
  CHECK(t.event_timers() == 4);
  CHECK(fire_event(t, 8).empty());
  CHECK(fire_event(t, 19) == fired{{9, 2, 0}, {9, 1, 0}, {9, 2, -10}});
  CHECK(fire_event(t, 100) == fired{{20, 1, 10}});
  CHECK(t.event_timers() == 0);
}

TEST_CASE("a deleted keyed timer does not fire, and one set again after deletion fires once") {
  timers t;
  t.add_event(5, 1, win(0));
  t.add_event(5, 2, win(0));
  t.add_event(7, 1, win(0));
  t.remove_event(5, 1, win(0));
  t.remove_event(5, 3, win(0)); // never set
  t.remove_event(6, 1, win(0)); // no timer at that time
  t.remove_event(7, 1, win(0));
  CHECK(t.event_timers() == 1);
  t.add_event(5, 1, win(0));
  t.add_event(5, 1, win(0));
  CHECK(t.event_timers() == 2);
  CHECK(fire_event(t, 10) == fired{{5, 2, 0}, {5, 1, 0}});
}

TEST_CASE("timers set while timers fire fire in the same advance when due, in time order") {
  timers t;
  t.add_event(10, 1, win(0));
  t.add_event(10, 2, win(0));
  fired out;
  bool first = true;
  t.advance_watermark(20, [&](const timers::timer& x) {
    out.emplace_back(x.time, x.key, x.ns.start);
    if (x.key == 1 && first) {
      first = false;
      t.add_event(5, 7, win(0));   // earlier than the one firing: next
      t.add_event(10, 1, win(0));  // itself again: fires again after key 2
      t.add_event(30, 9, win(0));  // not due
      t.remove_event(10, 2, win(0));
      t.add_event(10, 2, win(0));  // deleted and set again: behind key 1
    }
  });
  CHECK(out == fired{{10, 1, 0}, {5, 7, 0}, {10, 1, 0}, {10, 2, 0}});
  CHECK(t.event_timers() == 1);
}

TEST_CASE("a processing-time timer asks to arm the clock only for a time without timers") {
  timers t;
  CHECK(t.add_processing(100, 1, win(0)));
  CHECK_FALSE(t.add_processing(100, 2, win(0)));
  CHECK_FALSE(t.add_processing(100, 2, win(0)));
  CHECK(t.add_processing(50, 1, win(0)));
  t.remove_processing(50, 1, win(0));
  CHECK(t.add_processing(50, 1, win(0))); // its time had no timer left
  std::vector<int64_t> times;
  t.advance_processing_time(100, [&](const timers::timer& x) { times.push_back(x.time); });
  CHECK(times == std::vector<int64_t>{50, 100, 100});
  CHECK(t.processing_timers() == 0);
}

TEST_CASE("keyed timers agree with an ordered set under random setting, deleting and firing") {
  timers t;
  std::set<std::tuple<int64_t, int64_t, int64_t>> model;
  lcg rng{7};
  int64_t wm = 0;
  for (int step = 0; step < 50000; ++step) {
    auto op = rng.next(10);
    int64_t time = wm + static_cast<int64_t>(rng.next(20));
    int64_t key = static_cast<int64_t>(rng.next(300));
    int64_t start = static_cast<int64_t>(rng.next(3)) * 10;
    if (op < 6) {
      t.add_event(time, key, win(start));
      model.emplace(time, key, start);
    } else if (op < 9) {
      t.remove_event(time, key, win(start));
      model.erase({time, key, start});
    } else {
      wm += static_cast<int64_t>(rng.next(4));
      std::set<std::tuple<int64_t, int64_t, int64_t>> due;
      for (auto it = model.begin(); it != model.end() && std::get<0>(*it) <= wm;)
        due.insert(*it), it = model.erase(it);
      auto got = fire_event(t, wm);
      std::set<std::tuple<int64_t, int64_t, int64_t>> got_set(got.begin(), got.end());
      REQUIRE(got.size() == got_set.size());
      REQUIRE(got_set == due);
      for (size_t i = 1; i < got.size(); ++i)
        REQUIRE(std::get<0>(got[i - 1]) <= std::get<0>(got[i]));
    }
    REQUIRE(t.event_timers() == model.size());
  }
}

TEST_CASE("window accumulators on the heap agree with a map under windows opened and fired in "
          "order") {
  for (auto kind : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
    CAPTURE(kind);
    auto b = state::make_keyed_backend<int64_t>(kind, {0, 127}, 128, nullptr,
                                                state::rocksdb_config{},
                                                "sluice-test-window-accumulators");
    sluice::runtime::internal::window_accumulators<time_window, int64_t> acc;
    acc.open(*b, state::value_state_descriptor<int64_t>("window-contents"),
             state::state_kind::reducing);
    std::map<std::pair<int64_t, int64_t>, int64_t> model; // (key, start) -> sum
    lcg rng{42};
    int64_t now = 0;
    int64_t fired_until = -100;
    const int steps = kind == state::backend_kind::heap ? 200000 : 20000;
    for (int step = 0; step < steps; ++step) {
      if (rng.next(1000) == 0) {
        // The watermark jumps: fire (read and drop) every window before it,
        // oldest first across keys, as timers do.
        int64_t until = now - static_cast<int64_t>(rng.next(50));
        for (int64_t start = fired_until; start < until; start += 10)
          for (int64_t key = 0; key < 20; ++key) {
            b->set_current_key(key);
            auto it = model.find({key, start});
            const int64_t* v = acc.get(win(start));
            REQUIRE((v != nullptr) == (it != model.end()));
            if (v != nullptr) {
              REQUIRE(*v == it->second);
              model.erase(it);
            }
            acc.erase(win(start));
            REQUIRE(acc.get(win(start)) == nullptr);
          }
        fired_until = std::max(fired_until, until - until % 10);
        continue;
      }
      now += static_cast<int64_t>(rng.next(3));
      int64_t key = static_cast<int64_t>(rng.next(20));
      int64_t ts = now - static_cast<int64_t>(rng.next(30));
      int64_t start = ts - ((ts % 10) + 10) % 10;
      if (start < fired_until)
        continue; // late
      b->set_current_key(key);
      int64_t v = static_cast<int64_t>(rng.next(100));
      bool created = acc.upsert(
        win(start), [&](int64_t& a) { a += v; }, [&] { return v; });
      auto [it, inserted] = model.try_emplace({key, start}, 0);
      it->second += v;
      REQUIRE(created == inserted);
    }
    for (auto& [k, sum] : model) {
      b->set_current_key(k.first);
      const int64_t* v = acc.get(win(k.second));
      REQUIRE(v != nullptr);
      CHECK(*v == sum);
    }
    acc.close();
  }
}

TEST_CASE("window accumulators on the heap agree with a map under windows opened and dropped in "
          "any order") {
  state::heap_keyed_backend<int64_t> b({0, 127}, 128);
  sluice::runtime::internal::window_accumulators<time_window, int64_t> acc;
  acc.open(b, state::value_state_descriptor<int64_t>("window-contents"),
           state::state_kind::aggregating);
  std::map<std::pair<int64_t, int64_t>, int64_t> model;
  lcg rng{9};
  for (int step = 0; step < 300000; ++step) {
    int64_t key = static_cast<int64_t>(rng.next(4));
    int64_t start = static_cast<int64_t>(rng.next(60)) * 10;
    b.set_current_key(key);
    auto op = rng.next(10);
    if (op < 5) {
      bool created = acc.upsert(
        win(start), [](int64_t& a) { a += 1; }, [] { return int64_t{1}; });
      auto [it, inserted] = model.try_emplace({key, start}, 0);
      ++it->second;
      REQUIRE(created == inserted);
    } else if (op < 8) {
      acc.erase(win(start));
      model.erase({key, start});
    } else {
      auto it = model.find({key, start});
      const int64_t* v = acc.get(win(start));
      REQUIRE((v != nullptr) == (it != model.end()));
      if (v != nullptr)
        REQUIRE(*v == it->second);
    }
  }
  CHECK(b.key_count() <= 4);
}

} // TEST_SUITE
