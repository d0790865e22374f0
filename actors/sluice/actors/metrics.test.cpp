#include "sluice/actors/metrics.hpp"

#include <doctest/doctest.h>

using namespace sluice::actors;

namespace {

constexpr int64_t ms = 1'000'000; // nanoseconds

/// Sets the cell's time counters as the subtask would have them by then.
void spent(subtask_metrics_cell& cell, int64_t busy_ms, int64_t backpressured_ms) {
  cell.busy_ns = busy_ms * ms;
  cell.backpressured_ns = backpressured_ms * ms;
}

} // namespace

TEST_SUITE("actors.metrics") {

TEST_CASE("per-second figures cover at least the minimum window, however often one reads") {
  subtask_metrics_cell cell;
  const int64_t t0 = 1000 * ms;
  cell.started_ns = t0;
  metrics_window_mark mark;
  const int64_t second = 1000 * ms;

  // 2 s after the start: 1.5 s backpressured, 0.3 s busy.
  spent(cell, 300, 1500);
  auto m = read_subtask_metrics(cell, t0 + 2000 * ms, mark, second);
  CHECK(m.backpressured_ms_per_second == doctest::Approx(750));
  CHECK(m.busy_ms_per_second == doctest::Approx(150));

  // 10 ms later, all of them busy: the figures still span the 2.01 s since
  // the start, not the 10 ms since the last reading.
  spent(cell, 310, 1500);
  m = read_subtask_metrics(cell, t0 + 2010 * ms, mark, second);
  CHECK(m.backpressured_ms_per_second == doctest::Approx(1500.0 / 2.01));
  CHECK(m.busy_ms_per_second == doctest::Approx(310.0 / 2.01));

  // 1.5 s after the 2 s reading: the window since it is long enough.
  spent(cell, 400, 2900);
  m = read_subtask_metrics(cell, t0 + 3500 * ms, mark, second);
  CHECK(m.backpressured_ms_per_second == doctest::Approx(1400.0 / 1.5));
  CHECK(m.busy_ms_per_second == doctest::Approx(100.0 / 1.5));

  // Right after that reading moved the mark: back to the one before (2 s).
  spent(cell, 500, 2900);
  m = read_subtask_metrics(cell, t0 + 3600 * ms, mark, second);
  CHECK(m.backpressured_ms_per_second == doctest::Approx(875));
  CHECK(m.busy_ms_per_second == doctest::Approx(125));
  CHECK(m.busy_ms_total == 500);
  CHECK(m.backpressured_ms_total == 2900);
}

TEST_CASE("without a minimum window the figures cover the time since the last reading") {
  subtask_metrics_cell cell;
  cell.started_ns = 1000 * ms;
  metrics_window_mark mark;
  spent(cell, 0, 1000);
  (void) read_subtask_metrics(cell, 2000 * ms, mark);
  spent(cell, 100, 1000);
  auto m = read_subtask_metrics(cell, 2200 * ms, mark);
  CHECK(m.busy_ms_per_second == doctest::Approx(500));
  CHECK(m.backpressured_ms_per_second == doctest::Approx(0));
  CHECK(m.idle_ms_per_second == doctest::Approx(500));
}

TEST_CASE("a subtask that is backpressured right now counts the time so far") {
  subtask_metrics_cell cell;
  cell.started_ns = 1000 * ms;
  cell.blocked_since_ns = 1500 * ms;
  metrics_window_mark mark;
  auto m = read_subtask_metrics(cell, 2000 * ms, mark, 1000 * ms);
  CHECK(m.backpressured_ms_total == 500);
  CHECK(m.backpressured_ms_per_second == doctest::Approx(500));
}

}
