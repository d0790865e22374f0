#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace sluice;
using sluice::test::sorted;

namespace {

struct ride {
  int64_t id = 0;
  int64_t ts = 0;
  std::string driver;
  SLUICE_SERIALIZABLE(id, ts, driver)
};

struct fare {
  int64_t id = 0;
  int64_t ts = 0;
  int64_t cents = 0;
  SLUICE_SERIALIZABLE(id, ts, cents)
};

template <class T>
watermark_strategy<T> by_ts() {
  return watermark_strategy<T>::for_monotonous_timestamps().with_timestamp_assigner(
    [](const T& v) { return v.ts; });
}

/// Joins each ride with its fare, whichever comes first (Flink training's
/// enrichment exercise); a side without its partner after 1000 ms of event
/// time goes to the "unmatched" side output.
struct ride_fare_join final : runtime::keyed_co_process_function<int64_t, ride, fare, std::string> {
  state::value_state<ride> pending_ride;
  state::value_state<fare> pending_fare;
  runtime::output_tag<std::string> unmatched{"unmatched"};

  void open(const runtime_context& ctx) override {
    pending_ride = ctx.get_state(value_state_descriptor<ride>("ride"));
    pending_fare = ctx.get_state(value_state_descriptor<fare>("fare"));
  }
  void process_element1(const ride& r, context& ctx, collector<std::string>& out) override {
    if (auto f = pending_fare.value()) {
      pending_fare.clear();
      ctx.timer_service().delete_event_time_timer(f->ts + 1000);
      out.collect(describe(r, *f));
    } else {
      pending_ride.update(r);
      ctx.timer_service().register_event_time_timer(r.ts + 1000);
    }
  }
  void process_element2(const fare& f, context& ctx, collector<std::string>& out) override {
    if (auto r = pending_ride.value()) {
      pending_ride.clear();
      ctx.timer_service().delete_event_time_timer(r->ts + 1000);
      out.collect(describe(*r, f));
    } else {
      pending_fare.update(f);
      ctx.timer_service().register_event_time_timer(f.ts + 1000);
    }
  }
  void on_timer(int64_t, context& ctx, collector<std::string>&) override {
    if (auto r = pending_ride.value())
      ctx.output(unmatched, "ride " + std::to_string(ctx.current_key()));
    if (auto f = pending_fare.value())
      ctx.output(unmatched, "fare " + std::to_string(ctx.current_key()));
    pending_ride.clear();
    pending_fare.clear();
  }
  static std::string describe(const ride& r, const fare& f) {
    return std::to_string(r.id) + ":" + r.driver + ":" + std::to_string(f.cents);
  }
};

} // namespace

TEST_SUITE("integration.connect") {

TEST_CASE("co-map with one function per side merges two types into one stream") {
  stream_environment env;
  env.set_parallelism(2);
  auto numbers = env.from_elements<int64_t>(1, 2, 3);
  auto words = env.from_elements<std::string>("a", "bb");
  auto out = numbers.connect(words)
               .map([](const int64_t& v) { return "n" + std::to_string(v); },
                    [](const std::string& s) { return "s" + s; })
               .collect();
  auto r = env.execute("co-map");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(sorted(out->values()) == std::vector<std::string>{"n1", "n2", "n3", "sa", "sbb"});
}

TEST_CASE("a co-flat-map function class gets open/close and both sides") {
  struct splitter final : runtime::co_flat_map_function<std::string, int64_t, std::string> {
    std::string prefix;
    void open(const runtime_context& ctx) override {
      prefix = std::to_string(ctx.parallelism()) + ":";
    }
    void flat_map1(const std::string& s, collector<std::string>& out) override {
      for (char c : s)
        out.collect(prefix + std::string(1, c));
    }
    void flat_map2(const int64_t& n, collector<std::string>& out) override {
      for (int64_t i = 0; i < n; ++i)
        out.collect(prefix + "#");
    }
  };
  stream_environment env;
  env.set_parallelism(3);
  auto out = env.from_elements<std::string>("ab", "c")
               .connect(env.from_elements<int64_t>(2))
               .flat_map(splitter{})
               .collect();
  auto r = env.execute("co-flat-map");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(sorted(out->values()) == std::vector<std::string>{"3:#", "3:#", "3:a", "3:b", "3:c"});
}

TEST_CASE("a non-keyed co-process function sees timestamps of both sides") {
  struct stamp final : runtime::co_process_function<int64_t, int64_t, std::string> {
    void process_element1(const int64_t& v, process_context& ctx,
                          collector<std::string>& out) override {
      out.collect("a" + std::to_string(v) + "@" + std::to_string(ctx.timestamp().value_or(-1)));
    }
    void process_element2(const int64_t& v, process_context& ctx,
                          collector<std::string>& out) override {
      out.collect("b" + std::to_string(v) + "@" + std::to_string(ctx.timestamp().value_or(-1)));
    }
  };
  stream_environment env;
  env.set_parallelism(2);
  auto ts = watermark_strategy<int64_t>::for_monotonous_timestamps().with_timestamp_assigner(
    [](const int64_t& v) { return v * 10; });
  auto a = env.from_elements<int64_t>(1, 2).assign_timestamps_and_watermarks(ts);
  auto b = env.from_elements<int64_t>(3).assign_timestamps_and_watermarks(ts);
  // Same element type on both sides: the side still decides the method.
  auto out = a.connect(b).process(stamp{}).collect();
  auto r = env.execute("co-process");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(sorted(out->values()) == std::vector<std::string>{"a1@10", "a2@20", "b3@30"});
}

TEST_CASE("keyed connected streams join rides and fares with state and timers") {
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
    for (int p : {1, 2, 3}) {
      CAPTURE(p);
      CAPTURE(state::to_string(backend));
      configuration cfg;
      cfg.state.backend = backend;
      stream_environment env(cfg);
      env.set_parallelism(p);
      std::vector<ride> rides;
      std::vector<fare> fares;
      for (int64_t i = 0; i < 200; ++i) {
        if (i % 10 != 3) // rides 3, 13, ... never get a ride
          rides.push_back({i, i * 5, "d" + std::to_string(i % 7)});
        if (i % 10 != 7) // ... and 7, 17, ... never get a fare
          fares.push_back({i, i * 5 + 2, 100 + i});
      }
      auto joined = env.from_collection(rides)
                      .assign_timestamps_and_watermarks(by_ts<ride>())
                      .key_by([](const ride& r) { return r.id; })
                      .connect(env.from_collection(fares)
                                 .assign_timestamps_and_watermarks(by_ts<fare>())
                                 .key_by([](const fare& f) { return f.id; }))
                      .process(ride_fare_join{});
      auto out = joined.collect();
      auto unmatched = joined.get_side_output(runtime::output_tag<std::string>("unmatched")).collect();
      auto r = env.execute("enrichment");
      REQUIRE_MESSAGE(r.ok(), r.error);
      std::vector<std::string> want;
      std::vector<std::string> want_unmatched;
      for (int64_t i = 0; i < 200; ++i) {
        if (i % 10 == 3)
          want_unmatched.push_back("fare " + std::to_string(i));
        else if (i % 10 == 7)
          want_unmatched.push_back("ride " + std::to_string(i));
        else
          want.push_back(std::to_string(i) + ":d" + std::to_string(i % 7) + ":" +
                         std::to_string(100 + i));
      }
      CHECK(sorted(out->values()) == sorted(want));
      CHECK(sorted(unmatched->values()) == sorted(want_unmatched));
    }
  }
}

TEST_CASE("connected streams keyed with key_by share keyed state across both sides") {
  // Flink training's control stream: words on the first input block words
  // of the second input that arrive later. Each word is blocked before it
  // is sent, because the control source's records carry lower timestamps
  // and... order across inputs is not guaranteed, so block everything in
  // state and count per side instead.
  struct tally final : runtime::co_flat_map_function<std::string, std::string, std::string> {
    state::value_state<int64_t> seen;
    void open(const runtime_context& ctx) override {
      seen = ctx.get_state(value_state_descriptor<int64_t>("seen"));
    }
    void flat_map1(const std::string& w, collector<std::string>& out) override { bump(w, out); }
    void flat_map2(const std::string& w, collector<std::string>& out) override { bump(w, out); }
    void bump(const std::string& w, collector<std::string>& out) {
      auto n = seen.value_or(0) + 1;
      seen.update(n);
      if (n == 2)
        out.collect(w);
    }
  };
  stream_environment env;
  env.set_parallelism(2);
  auto out = env.from_elements<std::string>("apple", "kiwi", "plum")
               .connect(env.from_elements<std::string>("kiwi", "plum", "fig"))
               .key_by([](const std::string& s) { return s; }, [](const std::string& s) { return s; })
               .flat_map(tally{})
               .collect();
  auto r = env.execute("keyed co-flat-map");
  REQUIRE_MESSAGE(r.ok(), r.error);
  // Only words seen on both sides reach a count of two for their key.
  CHECK(sorted(out->values()) == std::vector<std::string>{"kiwi", "plum"});
}

TEST_CASE("the broadcast-state pattern applies rules to keyed events in any arrival order") {
  struct threshold_alerts final
    : runtime::keyed_broadcast_process_function<std::string, std::pair<std::string, int64_t>,
                                                std::pair<std::string, int64_t>, std::string> {
    state::map_state_descriptor<std::string, int64_t> rules{"rules"};
    state::value_state_descriptor<int64_t> last{"last"};
    state::value_state<int64_t> value;

    void open(const runtime_context& ctx) override { value = ctx.get_state(last); }
    void process_element(const std::pair<std::string, int64_t>& e, read_only_context& ctx,
                         collector<std::string>& out) override {
      value.update(e.second);
      if (auto* limit = ctx.get_broadcast_state(rules).get("limit"); limit && e.second > *limit)
        out.collect(ctx.current_key() + ">" + std::to_string(*limit));
    }
    void process_broadcast_element(const std::pair<std::string, int64_t>& rule, context& ctx,
                                   collector<std::string>& out) override {
      ctx.get_broadcast_state(rules).put(rule.first, rule.second);
      // Events that came before the rule: judge them now.
      ctx.apply_to_keyed_state(last, [&](const std::string& key, state::value_state<int64_t>& v) {
        if (v.value_or(0) > rule.second)
          out.collect(key + ">" + std::to_string(rule.second));
      });
    }
  };
  for (int p : {1, 2, 4}) {
    CAPTURE(p);
    configuration cfg;
    cfg.state.backend = state::backend_kind::heap;
    stream_environment env(cfg);
    env.set_parallelism(p);
    std::vector<std::pair<std::string, int64_t>> events;
    for (int i = 0; i < 50; ++i)
      events.emplace_back("k" + std::to_string(i), i);
    auto rules = env.from_elements(std::pair<std::string, int64_t>("limit", 44))
                   .broadcast(state::map_state_descriptor<std::string, int64_t>("rules"));
    auto out = env.from_collection(events)
                 .key_by([](const std::pair<std::string, int64_t>& e) { return e.first; })
                 .connect(rules)
                 .process(threshold_alerts{})
                 .collect();
    auto r = env.execute("broadcast rules");
    REQUIRE_MESSAGE(r.ok(), r.error);
    CHECK(sorted(out->values()) ==
          std::vector<std::string>{"k45>44", "k46>44", "k47>44", "k48>44", "k49>44"});
  }
}

TEST_CASE("every subtask of a non-keyed broadcast operator gets every rule") {
  struct rule_counter final : runtime::broadcast_process_function<int64_t, std::string, std::string> {
    state::map_state_descriptor<std::string, bool> rules{"rules"};
    int64_t elements = 0;
    int32_t subtask = 0;
    void open(const runtime_context& ctx) override { subtask = ctx.subtask_index(); }
    void process_element(const int64_t&, read_only_context& ctx, collector<std::string>&) override {
      ++elements;
      (void)ctx.get_broadcast_state(rules).entries().size();
    }
    void process_broadcast_element(const std::string& rule, context& ctx,
                                   collector<std::string>& out) override {
      ctx.get_broadcast_state(rules).put(rule, true);
      out.collect(std::to_string(subtask) + ":" + rule);
    }
  };
  stream_environment env;
  env.set_parallelism(3);
  auto rules = env.from_elements<std::string>("r1", "r2")
                 .broadcast(state::map_state_descriptor<std::string, bool>("rules"));
  auto out = env.from_elements<int64_t>(1, 2, 3, 4).rebalance().connect(rules)
               .process(rule_counter{})
               .collect();
  auto r = env.execute("broadcast");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(sorted(out->values()) ==
        std::vector<std::string>{"0:r1", "0:r2", "1:r1", "1:r2", "2:r1", "2:r2"});
}

TEST_CASE("misuse of connect is a clear error") {
  stream_environment env;
  auto keyed = env.from_elements<int64_t>(1).key_by([](const int64_t& v) { return v; });
  auto plain = env.from_elements<int64_t>(2);
  // Keyed on one side only: the operator could not own the keys.
  CHECK_THROWS_WITH_AS(static_cast<const data_stream<int64_t>&>(keyed)
                         .connect(plain)
                         .map([](const int64_t& v) { return v; }, [](const int64_t& v) { return v; }),
                       doctest::Contains("keyed"), std::invalid_argument);

  struct undeclared final : runtime::broadcast_process_function<int64_t, int64_t, int64_t> {
    void process_element(const int64_t&, read_only_context&, collector<int64_t>&) override {}
    void process_broadcast_element(const int64_t& v, context& ctx, collector<int64_t>&) override {
      ctx.get_broadcast_state(state::map_state_descriptor<int64_t, int64_t>("other")).put(v, v);
    }
  };
  stream_environment env2;
  auto rules = env2.from_elements<int64_t>(1).broadcast(
    state::map_state_descriptor<int64_t, int64_t>("declared"));
  env2.from_elements<int64_t>(1).connect(rules).process(undeclared{}).discard();
  auto r = env2.execute("undeclared broadcast state");
  CHECK(!r.ok());
  CHECK(r.error.find("'other' was not declared") != std::string::npos);
}

} // TEST_SUITE
