#pragma once

#include "sluice/runtime/job.hpp"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <string>

namespace sluice::actors {

/// Live counters of one subtask. Written by the subtask's actor (relaxed
/// atomics, once per batch or step) and, for DEPLOYING only, by its
/// JobMaster; read by job clients from any thread.
struct subtask_metrics_cell {
  std::string task;
  std::string vertex_id;
  int32_t subtask = 0;
  std::atomic<int> state{static_cast<int>(runtime::execution_state::created)};
  std::atomic<uint64_t> records_in{0};
  std::atomic<uint64_t> records_out{0};
  std::atomic<int64_t> busy_ns{0};
  std::atomic<int64_t> backpressured_ns{0};
  /// steady_clock nanoseconds when the subtask became backpressured, or 0.
  std::atomic<int64_t> blocked_since_ns{0};
  std::atomic<int64_t> started_ns{0};
  std::atomic<int64_t> ended_ns{0};
  std::atomic<uint32_t> peak_queued_batches{0};
  std::atomic<uint32_t> peak_pending_batches{0};
  /// The subtask's combined input watermark (event time), or INT64_MIN
  /// until the subtask publishes one (with its other counters).
  std::atomic<int64_t> input_watermark{INT64_MIN};
};

/// Where earlier readings of a cell's time counters ended, so the
/// per-second figures cover the time since then.
struct metrics_window_mark {
  struct point {
    int64_t at = 0;
    int64_t busy = 0;
    int64_t bp = 0;
  };
  point last;   ///< the newest mark
  point before; ///< the mark before it
};

/// Reads one subtask's counters at steady time `now_ns`. The per-second
/// figures average over the window since the newest mark when that window
/// is at least `min_window_ns` long, and since the mark before otherwise
/// (at least `min_window_ns` older), so a reading just after the mark moved
/// still averages over a useful span; the newest mark moves to now when the
/// window since it is that long. Readers that poll often thus see figures
/// over one to two `min_window_ns`, never over the few milliseconds since
/// their last poll.
runtime::subtask_metrics read_subtask_metrics(const subtask_metrics_cell& cell, int64_t now_ns,
                                              metrics_window_mark& prev,
                                              int64_t min_window_ns = 0);

inline int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

} // namespace sluice::actors
