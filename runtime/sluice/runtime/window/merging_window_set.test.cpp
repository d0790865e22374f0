#include "sluice/runtime/window/merging_window_set.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <optional>
#include <vector>

using namespace sluice::runtime;
using namespace std::chrono_literals;

namespace {

using windows = std::vector<time_window>;
using window_map = std::map<time_window, time_window>;

/// One call of the merge callback.
struct merge_call {
  time_window merge_result;
  windows merged_windows;
  time_window state_window_result;
  windows merged_state_windows;
};

/// Adds windows to a set and records the merge callbacks.
struct session_fixture {
  event_time_session_windows assigner{10ms};
  merging_window_set<time_window> set;
  std::vector<merge_call> merges;

  time_window add(time_window w) {
    return set.add_window(w, assigner,
                          [this](const time_window& result, const windows& merged,
                                 const time_window& state_result, const windows& merged_state) {
                            merges.push_back({result, merged, state_result, merged_state});
                          });
  }
};

} // namespace

TEST_SUITE("runtime.windows") {

TEST_CASE("a window that merges with nothing is its own state window") {
  session_fixture f;
  CHECK(f.add({0, 10}) == time_window{0, 10});
  CHECK(f.add({50, 60}) == time_window{50, 60});
  CHECK(f.merges.empty());
  CHECK(f.set.mapping() == window_map{{{0, 10}, {0, 10}}, {{50, 60}, {50, 60}}});
  CHECK(f.set.state_window({0, 10}) == std::optional<time_window>(time_window{0, 10}));
  CHECK_FALSE(f.set.state_window({5, 15}).has_value());
}

TEST_CASE("a session that bridges two others merges all three with one callback") {
  session_fixture f;
  f.add({0, 10});
  f.add({15, 25});
  CHECK(f.merges.empty());
  CHECK(f.add({8, 18}) == time_window{0, 25});
  REQUIRE(f.merges.size() == 1);
  const auto& m = f.merges[0];
  CHECK(m.merge_result == time_window{0, 25});
  CHECK(m.merged_windows == windows{{0, 10}, {15, 25}});
  CHECK(m.state_window_result == time_window{0, 10});
  CHECK(m.merged_state_windows == windows{{15, 25}});
  CHECK(f.set.mapping() == window_map{{{0, 25}, {0, 10}}});
  CHECK(f.set.state_window({0, 25}) == std::optional<time_window>(time_window{0, 10}));
}

TEST_CASE("touching sessions merge") {
  session_fixture f;
  f.add({0, 10});
  f.add({20, 30});
  CHECK(f.add({10, 20}) == time_window{0, 30});
  REQUIRE(f.merges.size() == 1);
  CHECK(f.merges[0].merged_windows == windows{{0, 10}, {20, 30}});
  CHECK(f.merges[0].merged_state_windows == windows{{20, 30}});
  CHECK(f.set.mapping() == window_map{{{0, 30}, {0, 10}}});
}

TEST_CASE("a window inside an existing session joins it without a callback") {
  session_fixture f;
  f.add({0, 10});
  f.add({15, 25});
  f.add({8, 18});
  f.merges.clear();
  CHECK(f.add({12, 22}) == time_window{0, 25});
  CHECK(f.merges.empty());
  CHECK(f.set.mapping() == window_map{{{0, 25}, {0, 10}}});
}

TEST_CASE("a window that extends a session calls back with no state to merge") {
  session_fixture f;
  f.add({0, 10});
  f.add({15, 25});
  f.add({8, 18});
  f.merges.clear();
  CHECK(f.add({20, 30}) == time_window{0, 30});
  REQUIRE(f.merges.size() == 1);
  const auto& m = f.merges[0];
  CHECK(m.merge_result == time_window{0, 30});
  CHECK(m.merged_windows == windows{{0, 25}});
  CHECK(m.state_window_result == time_window{0, 10});
  CHECK(m.merged_state_windows.empty());
  CHECK(f.set.mapping() == window_map{{{0, 30}, {0, 10}}});
}

TEST_CASE("the merged window takes the state window of the first existing window") {
  session_fixture f;
  f.add({5, 15});
  f.add({18, 28});
  // The new window starts first but has no state of its own.
  CHECK(f.add({0, 20}) == time_window{0, 28});
  REQUIRE(f.merges.size() == 1);
  CHECK(f.merges[0].merged_windows == windows{{5, 15}, {18, 28}});
  CHECK(f.merges[0].state_window_result == time_window{5, 15});
  CHECK(f.merges[0].merged_state_windows == windows{{18, 28}});
}

TEST_CASE("a set restored from its mapping continues where it left off") {
  session_fixture f;
  f.add({0, 10});
  f.add({15, 25});
  f.add({8, 18});
  session_fixture g;
  g.set = merging_window_set<time_window>(f.set.mapping());
  // The same window again keeps its state window instead of becoming its own.
  CHECK(g.add({0, 25}) == time_window{0, 25});
  CHECK(g.merges.empty());
  CHECK(g.set.mapping() == window_map{{{0, 25}, {0, 10}}});
  CHECK(g.add({30, 40}) == time_window{30, 40});
  CHECK(g.set.mapping() == window_map{{{0, 25}, {0, 10}}, {{30, 40}, {30, 40}}});
}

TEST_CASE("retiring a window removes it, and retiring an unknown window throws") {
  session_fixture f;
  f.add({0, 10});
  f.add({30, 40});
  f.set.retire_window({0, 10});
  CHECK(f.set.mapping() == window_map{{{30, 40}, {30, 40}}});
  CHECK_THROWS_WITH_AS(f.set.retire_window({0, 10}), doctest::Contains("[0, 10)"),
                       std::logic_error);
  // A retired window no longer merges with new ones.
  CHECK(f.add({5, 15}) == time_window{5, 15});
  CHECK(f.merges.empty());
}

} // TEST_SUITE
