#pragma once

#include "sluice/runtime/job.hpp"

#include <atomic>
#include <chrono>
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
};

inline int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

} // namespace sluice::actors
