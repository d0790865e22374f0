#include "sluice/actors/metrics.hpp"

#include <algorithm>

namespace sluice::actors {

runtime::subtask_metrics read_subtask_metrics(const subtask_metrics_cell& cell, int64_t now_ns,
                                              metrics_window_mark& prev, int64_t min_window_ns) {
  runtime::subtask_metrics m;
  m.task = cell.task;
  m.vertex_id = cell.vertex_id;
  m.subtask = cell.subtask;
  m.state = static_cast<runtime::execution_state>(cell.state.load(std::memory_order_relaxed));
  m.records_in = cell.records_in.load(std::memory_order_relaxed);
  m.records_out = cell.records_out.load(std::memory_order_relaxed);
  m.peak_queued_batches = cell.peak_queued_batches.load(std::memory_order_relaxed);
  m.peak_pending_batches = cell.peak_pending_batches.load(std::memory_order_relaxed);
  auto started = cell.started_ns.load(std::memory_order_relaxed);
  auto ended = cell.ended_ns.load(std::memory_order_relaxed);
  auto until = ended > 0 ? ended : now_ns;
  int64_t busy = cell.busy_ns.load(std::memory_order_relaxed);
  int64_t bp = cell.backpressured_ns.load(std::memory_order_relaxed);
  auto since = cell.blocked_since_ns.load(std::memory_order_relaxed);
  if (since > 0 && ended == 0)
    bp += now_ns - since;
  int64_t alive = started > 0 ? std::max<int64_t>(0, until - started) : 0;
  int64_t idle = std::max<int64_t>(0, alive - busy - bp);
  m.busy_ms_total = static_cast<uint64_t>(busy / 1000000);
  m.backpressured_ms_total = static_cast<uint64_t>(bp / 1000000);
  m.idle_ms_total = static_cast<uint64_t>(idle / 1000000);
  // A mark at 0 stands for the subtask's start, when both counters were 0.
  auto span_from = [&](const metrics_window_mark::point& p) {
    return until - (p.at > 0 ? p.at : started);
  };
  int64_t recent = span_from(prev.last);
  const auto& base =
    recent >= min_window_ns || prev.before.at == 0 ? prev.last : prev.before;
  int64_t window = span_from(base);
  if (started > 0 && window > 0) {
    auto per_second = [window](int64_t delta) {
      return std::clamp(static_cast<double>(delta) * 1000.0 / static_cast<double>(window), 0.0,
                        1000.0);
    };
    m.busy_ms_per_second = per_second(busy - base.busy);
    m.backpressured_ms_per_second = per_second(bp - base.bp);
    m.idle_ms_per_second =
      std::max(0.0, 1000.0 - m.busy_ms_per_second - m.backpressured_ms_per_second);
    if (recent >= min_window_ns && recent > 0) {
      prev.before = prev.last.at > 0 ? prev.last : metrics_window_mark::point{started, 0, 0};
      prev.last = {until, busy, bp};
    }
  }
  return m;
}

} // namespace sluice::actors
