#include "sluice/actors/cluster_view.hpp"

#include "sluice/runtime/job_graph.hpp"

#include <algorithm>

namespace sluice::actors {

std::shared_ptr<local_job_registry> local_job_registry::global() {
  static auto registry = std::make_shared<local_job_registry>();
  return registry;
}

void local_job_registry::add(std::shared_ptr<job_board> board, const runtime::job_graph& job,
                             const runtime::configuration& config,
                             std::weak_ptr<const slot_board> slots,
                             std::weak_ptr<runtime::job_client> client) {
  entry e;
  for (const auto& v : job.vertices())
    e.vertices.push_back({v.hex_id, v.name, v.parallelism, v.max_parallelism});
  e.checkpoints = config.checkpoints;
  e.state_backend = config.state.backend == state::backend_kind::heap ? "hashmap" : "rocksdb";
  e.plan_json = job.plan_json(board->id);
  e.marks.resize(board->cells.size());
  e.board = std::move(board);
  e.slots = std::move(slots);
  e.client = std::move(client);
  std::lock_guard<std::mutex> guard(mtx_);
  jobs_.push_back(std::move(e));
  // Keep the newest ended jobs; running ones are never dropped.
  size_t ended = 0;
  for (const auto& j : jobs_) {
    std::lock_guard<std::mutex> board_guard(j.board->mtx);
    ended += runtime::is_globally_terminal(j.board->status) ? 1 : 0;
  }
  for (auto it = jobs_.begin(); ended > max_ended_ && it != jobs_.end();) {
    bool terminal = false;
    {
      std::lock_guard<std::mutex> board_guard(it->board->mtx);
      terminal = runtime::is_globally_terminal(it->board->status);
    }
    if (terminal) {
      it = jobs_.erase(it);
      --ended;
    } else {
      ++it;
    }
  }
}

job_info local_job_registry::snapshot(entry& e) const {
  job_info out;
  const auto& b = *e.board;
  out.id = b.id;
  out.name = b.name;
  out.vertices = e.vertices;
  out.checkpoints = e.checkpoints;
  out.state_backend = e.state_backend;
  out.plan_json = e.plan_json;
  out.restarts = b.restarts.load();
  {
    std::lock_guard<std::mutex> guard(b.mtx);
    out.status = b.status;
    out.start_ms = b.start_ms;
    out.end_ms = runtime::is_globally_terminal(b.status) ? b.end_ms : -1;
    out.status_times = b.status_times;
    out.error = b.error;
    out.failures = b.failures;
    out.failures_dropped = b.failures_dropped;
  }
  // Steady-clock instants of the cells become wall-clock times relative to
  // one reading of both clocks.
  auto now_ns = steady_now_ns();
  auto now_ms = wall_now_ms();
  auto to_wall = [&](int64_t steady_ns) -> int64_t {
    return steady_ns > 0 ? now_ms - (now_ns - steady_ns) / 1000000 : -1;
  };
  e.marks.resize(b.cells.size());
  for (size_t c = 0; c < b.cells.size(); ++c) {
    const auto& cell = *b.cells[c];
    subtask_info s;
    // Figures averaged over at least a second, however often REST is polled.
    s.metrics = read_subtask_metrics(cell, now_ns, e.marks[c], 1000000000);
    s.start_ms = to_wall(cell.started_ns.load(std::memory_order_relaxed));
    s.end_ms = to_wall(cell.ended_ns.load(std::memory_order_relaxed));
    auto wm = cell.input_watermark.load(std::memory_order_relaxed);
    if (wm != INT64_MIN)
      s.input_watermark = wm;
    out.subtasks.push_back(std::move(s));
  }
  return out;
}

std::vector<job_info> local_job_registry::jobs() const {
  std::lock_guard<std::mutex> guard(mtx_);
  std::vector<job_info> out;
  out.reserve(jobs_.size());
  for (auto& e : jobs_)
    out.push_back(snapshot(e));
  return out;
}

std::optional<job_info> local_job_registry::job(const std::string& id) const {
  std::lock_guard<std::mutex> guard(mtx_);
  for (auto& e : jobs_)
    if (e.board->id == id)
      return snapshot(e);
  return std::nullopt;
}

std::optional<std::string> local_job_registry::checkpoint_stats_json(const std::string& id) const {
  std::shared_ptr<job_board> board;
  {
    std::lock_guard<std::mutex> guard(mtx_);
    for (auto& e : jobs_)
      if (e.board->id == id)
        board = e.board;
  }
  if (!board)
    return std::nullopt;
  return board->checkpoints.to_json();
}

std::vector<task_manager_info> local_job_registry::task_managers() const {
  std::vector<std::pair<std::string, std::shared_ptr<const slot_board>>> live;
  {
    std::lock_guard<std::mutex> guard(mtx_);
    for (auto& e : jobs_)
      if (auto s = e.slots.lock())
        live.emplace_back(e.board->id, std::move(s));
  }
  // Each job runs on its own mini-cluster: its TaskManagers are named after
  // the job so ids stay unique in the process.
  std::vector<task_manager_info> out;
  for (auto& [job, board] : live) {
    std::lock_guard<std::mutex> guard(board->mtx);
    for (const auto& tm : board->task_managers) {
      task_manager_info info;
      info.id = job.substr(0, 8) + "-" + tm.id;
      info.slots = tm.slots;
      info.free_slots = tm.free;
      out.push_back(std::move(info));
    }
  }
  return out;
}

std::shared_ptr<runtime::job_client> local_job_registry::client(const std::string& id) const {
  std::lock_guard<std::mutex> guard(mtx_);
  for (auto& e : jobs_)
    if (e.board->id == id)
      return e.client.lock();
  return nullptr;
}

} // namespace sluice::actors
