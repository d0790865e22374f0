#include "sluice/runtime/window/assigners.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

using namespace sluice::runtime;
using namespace std::chrono_literals;

namespace {

constexpr int64_t no_ts = std::numeric_limits<int64_t>::min();
constexpr int64_t now_unused = 0;

using windows = std::vector<time_window>;
using merge_groups = std::vector<std::pair<windows, time_window>>;

merge_groups merges_of(const window_assigner<time_window>& a, windows in) {
  merge_groups out;
  a.merge_windows(std::move(in),
                  [&out](windows from, time_window result) { out.emplace_back(from, result); });
  return out;
}

} // namespace

TEST_SUITE("runtime.windows") {

TEST_CASE("a time window is half open, touching windows intersect, and cover spans both") {
  time_window a{0, 10};
  time_window b{10, 20};
  time_window c{11, 20};
  CHECK(a.max_timestamp() == 9);
  CHECK(a.intersects(b));
  CHECK(b.intersects(a));
  CHECK_FALSE(a.intersects(c));
  CHECK(a.cover(c) == time_window{0, 20});
  CHECK(time_window{0, 20}.contains(c));
  CHECK_FALSE(c.contains(a));
  CHECK(time_window{0, 10} < time_window{0, 11});
  CHECK(time_window{0, 11} < time_window{1, 2});
  CHECK(to_string(time_window{-5, 5}) == "[-5, 5)");
}

TEST_CASE("windows serialize as state namespaces") {
  using sluice::state::deserialize;
  using sluice::state::serialize;
  using sluice::state::serializer;
  CHECK(deserialize<time_window>(serialize(time_window{-3, 7})) == time_window{-3, 7});
  CHECK(serializer<time_window>::type_name() == "time_window");
  CHECK(serialize(global_window{}).empty());
  CHECK(deserialize<global_window>("") == global_window{});
  CHECK(serializer<global_window>::type_name() == "global_window");
  CHECK(global_window{}.max_timestamp() == std::numeric_limits<int64_t>::max());
}

TEST_CASE("window start with offset rounds down toward negative infinity") {
  CHECK(window_start_with_offset(-1, 0, 10) == -10);
  CHECK(window_start_with_offset(-10, 0, 10) == -10);
  CHECK(window_start_with_offset(9, 0, 10) == 0);
  CHECK(window_start_with_offset(10, 0, 10) == 10);
  CHECK(window_start_with_offset(7, 2, 5) == 7);
  CHECK(window_start_with_offset(1, 2, 5) == -3);
  CHECK(window_start_with_offset(-15, -3, 10) == -23);
  CHECK(window_start_with_offset(12, -3, 10) == 7);
}

TEST_CASE("window start with offset does not overflow at the int64 limits") {
  constexpr int64_t max = std::numeric_limits<int64_t>::max(); // ...807, 7 mod 10
  CHECK(window_start_with_offset(max, 0, 10) == max - 7);
  // Flink's ts - offset would overflow here; windows start at 7 mod 10.
  CHECK(window_start_with_offset(max, -3, 10) == max);
}

TEST_CASE("tumbling event-time windows hold each timestamp in exactly one window") {
  tumbling_event_time_windows a(10ms);
  CHECK(a.is_event_time());
  CHECK_FALSE(a.is_merging());
  CHECK(a.assign_windows(0, now_unused) == windows{{0, 10}});
  CHECK(a.assign_windows(9, now_unused) == windows{{0, 10}});
  CHECK(a.assign_windows(-1, now_unused) == windows{{-10, 0}});
}

TEST_CASE("tumbling windows with an offset start at the offset") {
  tumbling_event_time_windows a(10ms, 3ms);
  CHECK(a.assign_windows(12, now_unused) == windows{{3, 13}});
  CHECK(a.assign_windows(13, now_unused) == windows{{13, 23}});
  CHECK(a.assign_windows(2, now_unused) == windows{{-7, 3}});
  CHECK(a.offset() == 3ms);
}

TEST_CASE("tumbling processing-time windows use the arrival time, not the timestamp") {
  tumbling_processing_time_windows a(10ms);
  CHECK_FALSE(a.is_event_time());
  CHECK(a.assign_windows(no_ts, 25) == windows{{20, 30}});
  CHECK(a.assign_windows(3, 25) == windows{{20, 30}});
}

TEST_CASE("sliding windows give every window that contains the timestamp, latest first") {
  sliding_event_time_windows a(10ms, 5ms);
  CHECK(a.assign_windows(12, now_unused) == windows{{10, 20}, {5, 15}});
  CHECK(a.assign_windows(10, now_unused) == windows{{10, 20}, {5, 15}});
  CHECK(a.assign_windows(9, now_unused) == windows{{5, 15}, {0, 10}});
  CHECK(a.assign_windows(-1, now_unused) == windows{{-5, 5}, {-10, 0}});
  sliding_event_time_windows uneven(10ms, 4ms);
  CHECK(uneven.assign_windows(12, now_unused) == windows{{12, 22}, {8, 18}, {4, 14}});
}

TEST_CASE("sliding windows with an offset start at the offset modulo the slide") {
  sliding_event_time_windows a(10ms, 5ms, 2ms);
  CHECK(a.assign_windows(12, now_unused) == windows{{12, 22}, {7, 17}});
  CHECK(a.assign_windows(11, now_unused) == windows{{7, 17}, {2, 12}});
}

TEST_CASE("sliding windows with a slide larger than the size leave gaps") {
  sliding_event_time_windows a(5ms, 10ms);
  CHECK(a.assign_windows(3, now_unused) == windows{{0, 5}});
  CHECK(a.assign_windows(5, now_unused).empty()); // [0, 5) ends just before it
  CHECK(a.assign_windows(7, now_unused).empty());
  CHECK(a.assign_windows(10, now_unused) == windows{{10, 15}});
}

TEST_CASE("sliding processing-time windows use the arrival time") {
  sliding_processing_time_windows a(10ms, 5ms);
  CHECK(a.assign_windows(no_ts, 12) == windows{{10, 20}, {5, 15}});
}

TEST_CASE("session windows open a gap-long window per element and merge") {
  event_time_session_windows a(10ms);
  CHECK(a.is_event_time());
  CHECK(a.is_merging());
  CHECK(a.assign_windows(5, now_unused) == windows{{5, 15}});
  processing_time_session_windows p(10ms);
  CHECK_FALSE(p.is_event_time());
  CHECK(p.is_merging());
  CHECK(p.assign_windows(no_ts, 40) == windows{{40, 50}});
}

TEST_CASE("merging session windows groups overlapping and touching windows") {
  event_time_session_windows a(10ms);
  auto groups = merges_of(a, {{50, 60}, {30, 40}, {10, 20}, {25, 35}, {0, 10}});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].first == windows{{0, 10}, {10, 20}});
  CHECK(groups[0].second == time_window{0, 20});
  CHECK(groups[1].first == windows{{25, 35}, {30, 40}});
  CHECK(groups[1].second == time_window{25, 40});
}

TEST_CASE("merging reports nothing for disjoint windows or a window given twice") {
  event_time_session_windows a(10ms);
  CHECK(merges_of(a, {{0, 10}, {11, 21}}).empty());
  CHECK(merges_of(a, {{0, 10}, {0, 10}}).empty());
  CHECK(merges_of(a, {}).empty());
  auto groups = merges_of(a, {{0, 10}, {5, 15}, {0, 10}});
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].first == windows{{0, 10}, {5, 15}});
}

TEST_CASE("a window that bridges two others merges all three into their cover") {
  event_time_session_windows a(10ms);
  auto groups = merges_of(a, {{0, 10}, {15, 25}, {8, 18}});
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].first == windows{{0, 10}, {8, 18}, {15, 25}});
  CHECK(groups[0].second == time_window{0, 25});
}

TEST_CASE("non-merging assigners refuse to merge") {
  tumbling_event_time_windows a(10ms);
  CHECK_THROWS_AS(merges_of(a, {{0, 10}, {5, 15}}), std::logic_error);
}

TEST_CASE("invalid sizes, slides, offsets and gaps are rejected with the value") {
  CHECK_THROWS_WITH_AS(tumbling_event_time_windows(0ms), doctest::Contains("size"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(tumbling_event_time_windows(-5ms), doctest::Contains("-5 ms"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(tumbling_processing_time_windows(10ms, 10ms), doctest::Contains("10 ms"),
                       std::invalid_argument);
  CHECK_THROWS_AS(tumbling_event_time_windows(10ms, -10ms), std::invalid_argument);
  CHECK_NOTHROW(tumbling_event_time_windows(10ms, -9ms));
  CHECK_THROWS_WITH_AS(sliding_event_time_windows(10ms, 0ms), doctest::Contains("slide"),
                       std::invalid_argument);
  CHECK_THROWS_AS(sliding_event_time_windows(0ms, 5ms), std::invalid_argument);
  CHECK_THROWS_WITH_AS(sliding_processing_time_windows(10ms, 5ms, 5ms),
                       doctest::Contains("offset 5 ms"), std::invalid_argument);
  CHECK_NOTHROW(sliding_processing_time_windows(10ms, 5ms, 4ms));
  CHECK_THROWS_WITH_AS(event_time_session_windows(0ms), doctest::Contains("gap"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(processing_time_session_windows(-1ms), doctest::Contains("-1 ms"),
                       std::invalid_argument);
}

TEST_CASE("a record without a timestamp cannot go to an event-time window") {
  const auto hint = doctest::Contains("assign_timestamps_and_watermarks");
  CHECK_THROWS_WITH_AS(tumbling_event_time_windows(10ms).assign_windows(no_ts, 5), hint,
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(sliding_event_time_windows(10ms, 5ms).assign_windows(no_ts, 5), hint,
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(event_time_session_windows(10ms).assign_windows(no_ts, 5), hint,
                       std::invalid_argument);
}

TEST_CASE("a time too close to the int64 limits for its windows is refused") {
  constexpr int64_t max = std::numeric_limits<int64_t>::max();
  CHECK_THROWS_AS(tumbling_event_time_windows(10ms).assign_windows(max - 5, 0), std::out_of_range);
  CHECK_THROWS_AS(sliding_event_time_windows(10ms, 5ms).assign_windows(no_ts + 3, 0),
                  std::out_of_range);
  CHECK_THROWS_AS(processing_time_session_windows(10ms).assign_windows(0, max), std::out_of_range);
}

TEST_CASE("global windows put everything in the one global window") {
  global_windows a;
  CHECK_FALSE(a.is_event_time());
  CHECK_FALSE(a.is_merging());
  CHECK(a.assign_windows(no_ts, 0) == std::vector<global_window>{global_window{}});
  CHECK(a.assign_windows(42, 7).size() == 1);
}

/// assign_windows_to with room for `capacity` windows, as a vector.
template <class W>
std::vector<W> assigned_to(const window_assigner<W>& a, int64_t ts, int64_t now, size_t capacity) {
  std::vector<W> out(capacity);
  auto n = a.assign_windows_to(ts, now, out.data(), capacity);
  REQUIRE(n <= capacity);
  out.resize(n);
  return out;
}

TEST_CASE("assigning without allocation gives the windows assign_windows gives") {
  const std::vector<std::pair<int64_t, int64_t>> size_offset{{10, 0}, {10, 3}, {10, -7}, {7, 2}};
  const std::vector<int64_t> times{-25, -10, -1, 0, 1, 9, 10, 11, 1234567, no_ts + 40,
                                   std::numeric_limits<int64_t>::max() - 40};
  for (auto [size, offset] : size_offset)
    for (auto ts : times) {
      CAPTURE(size);
      CAPTURE(offset);
      CAPTURE(ts);
      auto ms = [](int64_t v) { return std::chrono::milliseconds(v); };
      tumbling_event_time_windows te(ms(size), ms(offset));
      CHECK(assigned_to(te, ts, now_unused, 8) == te.assign_windows(ts, now_unused));
      tumbling_processing_time_windows tp(ms(size), ms(offset));
      CHECK(assigned_to(tp, 0, ts, 8) == tp.assign_windows(0, ts));
      sliding_event_time_windows se(ms(3 * size), ms(size), ms(offset));
      CHECK(assigned_to(se, ts, now_unused, 8) == se.assign_windows(ts, now_unused));
      sliding_processing_time_windows sp(ms(3 * size), ms(size), ms(offset));
      CHECK(assigned_to(sp, 0, ts, 8) == sp.assign_windows(0, ts));
      event_time_session_windows ss(ms(size));
      CHECK(assigned_to(ss, ts, now_unused, 8) == ss.assign_windows(ts, now_unused));
    }
  global_windows g;
  CHECK(assigned_to(g, no_ts, 0, 1) == g.assign_windows(no_ts, 0));
}

TEST_CASE("assigning without allocation reports windows that do not fit") {
  sliding_event_time_windows a(100ms, 10ms);
  time_window out[4];
  CHECK(a.assign_windows_to(55, now_unused, out, 4) == 10);
  CHECK(out[0] == time_window{50, 150});
  CHECK(out[3] == time_window{20, 120});
  CHECK_THROWS_AS((void)a.assign_windows_to(no_ts, now_unused, out, 4), std::invalid_argument);
  CHECK_FALSE(a.needs_processing_time());
  CHECK(sliding_processing_time_windows(100ms, 10ms).needs_processing_time());
}

} // TEST_SUITE
