#include "sluice/actors/cluster.hpp"
#include "sluice/actors/distributed.hpp"

#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/runtime/restart_strategy.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <random>

/// The JobMaster: deploys a job's subtasks, runs its checkpoint coordinator
/// (triggers at the sources, collects acknowledgements, completes
/// checkpoints, notifies, aborts on timeout or decline), takes savepoints,
/// and restarts the job from its latest completed checkpoint after a
/// failure as the restart strategy allows. Blocking file work (writing
/// `_metadata`, moving a savepoint, deleting aborted checkpoints) runs on
/// detached workers that report back.
namespace sluice::actors {

using runtime::execution_state;
using runtime::job_status;

namespace {

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string random_hex(size_t n) {
  std::random_device rd;
  std::mt19937_64 rng(rd() ^ static_cast<uint64_t>(steady_now_ns()));
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += digits[rng() % 16];
  return out;
}

} // namespace

struct job_master_state {
  /// A checkpoint or savepoint between trigger and completion.
  struct pending_checkpoint {
    int64_t id = 0;
    int64_t trigger_ms = 0;
    bool savepoint = false;
    /// Stop with savepoint: the job finishes once it completes.
    bool stop = false;
    /// Taken at the end of data (every subtask, no barriers).
    bool final_checkpoint = false;
    /// Savepoints: the directory the savepoint goes to.
    std::string target;
    std::vector<caf::response_promise> waiters;
    std::map<std::pair<int32_t, int32_t>, checkpoint_ack> acks;
    bool writing = false;
    /// What `_metadata` records, once every subtask acknowledged.
    runtime::checkpoint_metadata metadata;
  };
  /// A stop-with-savepoint request waiting for the end of data (drain).
  struct stop_request {
    std::string dir;
    caf::response_promise promise;
  };

  job_submission sub;
  caf::actor job_manager;
  std::vector<caf::actor> slots;
  /// Some slot is on another node: restarts give the slots back and ask
  /// again, so a job lands on the TaskManagers that are still there.
  bool remote_slots = false;
  /// [vertex][index]: the slot (index into `slots`) of each subtask.
  std::vector<std::vector<size_t>> slot_of;
  /// [vertex]: index of the vertex's first metrics cell in the board.
  std::vector<size_t> first_cell;
  std::vector<std::vector<subtask_actor>> subtasks; // [vertex][index]
  std::vector<std::vector<execution_state>> states;
  std::vector<std::vector<char>> at_end;
  size_t total = 0;
  size_t deployed = 0;
  size_t running = 0;
  size_t terminal = 0;
  size_t ended = 0;
  int32_t attempt = 0;
  bool cancel_requested = false;
  bool failing = false;
  bool restarting = false;
  bool done = false;
  std::unique_ptr<runtime::restart_strategy> restart;
  std::chrono::milliseconds restart_delay{0};
  std::vector<std::string> failure_causes;
  // Checkpoints.
  /// Shared with the workers that write and delete checkpoints, which may
  /// outlive the JobMaster.
  std::shared_ptr<runtime::checkpoint_storage> storage;
  std::shared_ptr<const runtime::restore_point> restore;
  int64_t next_checkpoint_id = 1;
  std::map<int64_t, pending_checkpoint> pending;
  /// Completed checkpoints of this job still on disk, oldest first. Only the
  /// JobMaster deletes them, once a newer one completed, so the restore
  /// point is never deleted (checkpoint_storage::finalize).
  std::deque<int64_t> retained;
  int64_t last_completion_ns = 0;
  /// The periodic trigger found `max_concurrent` checkpoints in flight: the
  /// next one starts when one of them completes or fails (as Flink queues
  /// the request), instead of a whole interval later.
  bool trigger_due = false;
  /// Only the newest scheduled periodic trigger counts.
  int64_t trigger_generation = 0;
  int32_t failed_in_a_row = 0;
  /// The checkpoint whose completion lets every subtask finish.
  int64_t finish_on = -1;
  std::optional<stop_request> drain_stop;
  const char* name = "sluice.job_master";

  static bool is_terminal(execution_state s) {
    return s == execution_state::finished || s == execution_state::canceled ||
           s == execution_state::failed;
  }
  const runtime::checkpoint_settings& cp() const { return sub.config.checkpoints; }
};

namespace {

using jm_pointer = caf::stateful_actor<job_master_state>*;

void deploy(jm_pointer self);
void on_report(jm_pointer self, const subtask_report& r);
void wire_and_start(jm_pointer self);
void fail_job(jm_pointer self, const std::string& why);
void abort_checkpoint(jm_pointer self, int64_t id, const std::string& why, bool counts);

template <class... Ts>
void to_all(jm_pointer self, Ts&&... xs) {
  for (auto& per_vertex : self->state.subtasks)
    for (auto& s : per_vertex)
      if (s)
        self->send(s, xs...);
}

/// Runs `work` on a detached worker; its result (an error text, empty on
/// success) comes back as (written_atom, id, attempt, error).
template <class Work>
void run_blocking(jm_pointer self, int64_t id, Work work) {
  auto me = caf::actor_cast<caf::actor>(self);
  auto attempt = self->state.attempt;
  // The int argument: CAF 0.17 dereferences a null argument tuple otherwise.
  self->spawn<caf::detached>([me, id, attempt, work = std::move(work)](caf::event_based_actor* w,
                                                                      int) {
    std::string error;
    try {
      work();
    } catch (const std::exception& e) {
      error = e.what();
    }
    w->send(me, written_atom::value, id, attempt, error);
  }, 0);
}

/// state.checkpoints.dir, or <temp dir>/sluice-checkpoints.
std::filesystem::path checkpoint_base(jm_pointer self) {
  const auto& dir = self->state.cp().directory;
  return dir.empty() ? std::filesystem::temp_directory_path() / "sluice-checkpoints"
                     : std::filesystem::path(dir);
}

/// The job's checkpoint storage, created (with its directory) on first use.
runtime::checkpoint_storage& storage(jm_pointer self) {
  auto& st = self->state;
  if (!st.storage)
    st.storage = std::make_shared<runtime::checkpoint_storage>(
      checkpoint_base(self), st.sub.board->id, std::max(1, st.cp().num_retained));
  return *st.storage;
}

/// The storage for a worker to hold on to.
std::shared_ptr<runtime::checkpoint_storage> shared_storage(jm_pointer self) {
  (void)storage(self);
  return self->state.storage;
}

void finish_job(jm_pointer self) {
  auto& st = self->state;
  if (st.done)
    return;
  st.done = true;
  job_status end = st.failing            ? job_status::failed
                   : st.cancel_requested ? job_status::canceled
                                         : job_status::finished;
  for (auto& [id, p] : st.pending)
    for (auto& w : p.waiters)
      w.deliver(caf::make_error(caf::sec::runtime_error,
                                "the job ended before checkpoint " + std::to_string(id) +
                                  " completed"));
  if (st.drain_stop)
    st.drain_stop->promise.deliver(
      caf::make_error(caf::sec::runtime_error, "the job ended before its savepoint completed"));
  st.pending.clear();
  self->send(st.job_manager, release_atom::value, st.sub.board->id);
  // Checkpoints the user did not ask to keep go with the job.
  auto retention = st.cp().retention;
  bool drop = st.storage &&
              (retention == runtime::externalized_retention::none ||
               (retention == runtime::externalized_retention::delete_on_cancellation &&
                end == job_status::canceled));
  if (drop) {
    auto dir = st.storage->job_dir();
    run_blocking(self, -1, [dir] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
  }
  st.sub.board->set_status(end);
  self->quit();
}

void cancel_all(jm_pointer self) {
  auto& st = self->state;
  for (size_t v = 0; v < st.subtasks.size(); ++v)
    for (size_t i = 0; i < st.subtasks[v].size(); ++i)
      if (st.subtasks[v][i] && !job_master_state::is_terminal(st.states[v][i]))
        self->send<caf::message_priority::high>(st.subtasks[v][i], cancel_atom::value);
}

/// Aborts every checkpoint in flight (the job is restarting or ending).
void abort_all_pending(jm_pointer self, const std::string& why) {
  std::vector<int64_t> ids;
  for (auto& [id, p] : self->state.pending)
    ids.push_back(id);
  for (auto id : ids)
    abort_checkpoint(self, id, why, false);
}

void schedule_restart(jm_pointer self, std::chrono::milliseconds delay) {
  self->delayed_send(self, delay, restart_atom::value, self->state.attempt);
}

/// A subtask failed: restart if the strategy allows, else fail the job.
void on_failure(jm_pointer self, const std::string& why) {
  auto& st = self->state;
  if (st.done || st.failing)
    return;
  st.sub.board->add_failure(why);
  if (st.restarting) {
    st.failure_causes.push_back(why);
    return;
  }
  st.failure_causes.push_back(why);
  if (st.cancel_requested) {
    fail_job(self, why);
    return;
  }
  auto decision = st.restart->on_failure(std::chrono::steady_clock::now());
  if (!decision.restart) {
    std::string all = why;
    if (st.failure_causes.size() > 1) {
      all = decision.reason_if_not + "; failures (newest last):";
      size_t from = st.failure_causes.size() > 5 ? st.failure_causes.size() - 5 : 0;
      for (size_t k = from; k < st.failure_causes.size(); ++k)
        all += "\n  " + std::to_string(k + 1) + ". " + st.failure_causes[k];
    }
    fail_job(self, all);
    return;
  }
  st.restarting = true;
  st.restart_delay = decision.delay;
  st.sub.board->set_status(job_status::restarting);
  abort_all_pending(self, "the job is restarting: " + why);
  if (st.deployed < st.total)
    return; // deployment completes first, then everything is cancelled
  cancel_all(self);
  if (st.terminal == st.total)
    schedule_restart(self, decision.delay);
}

void fail_job(jm_pointer self, const std::string& why) {
  auto& st = self->state;
  if (st.done)
    return;
  if (!st.failing) {
    st.failing = true;
    st.sub.board->set_status(job_status::failing, why);
  }
  abort_all_pending(self, "the job is failing");
  if (st.deployed < st.total) {
    if (st.deployed == 0)
      finish_job(self);
    return; // the rest is cancelled once deployment completes
  }
  cancel_all(self);
  if (st.terminal == st.total)
    finish_job(self);
}

// ---- checkpoints -------------------------------------------------------------

void schedule_trigger(jm_pointer self, std::chrono::milliseconds after) {
  auto& st = self->state;
  if (!st.cp().enabled())
    return;
  self->delayed_send(self, after, checkpoint_atom::value, st.attempt, ++st.trigger_generation);
}

/// Starts a checkpoint (or savepoint) at the sources, or at every subtask
/// when the job is at its end of data.
int64_t trigger(jm_pointer self, bool savepoint, bool stop, const std::string& target,
                bool final_checkpoint) {
  auto& st = self->state;
  auto id = st.next_checkpoint_id++;
  job_master_state::pending_checkpoint p;
  p.id = id;
  p.trigger_ms = wall_ms();
  p.savepoint = savepoint;
  p.stop = stop;
  p.final_checkpoint = final_checkpoint;
  p.target = target;
  checkpoint_record rec;
  rec.id = id;
  rec.savepoint = savepoint;
  rec.trigger_timestamp_ms = p.trigger_ms;
  rec.num_subtasks = static_cast<int32_t>(st.total);
  st.sub.board->checkpoints.triggered(std::move(rec));
  st.pending.emplace(id, std::move(p));
  checkpoint_trigger t{id, wall_ms(), stop, savepoint};
  // Barriers start at the sources; subtasks that already reached the end of
  // their data get no barrier (their inputs ended) and are asked directly.
  const auto& job = *st.sub.job;
  for (const auto& v : job.vertices())
    for (int32_t i = 0; i < v.parallelism; ++i)
      if (final_checkpoint || v.is_source || st.at_end[v.id][i])
        self->send(st.subtasks[v.id][i], checkpoint_atom::value, t);
  self->delayed_send(self, st.cp().timeout, expire_atom::value, id);
  return id;
}

void on_periodic_trigger(jm_pointer self, int32_t attempt, int64_t generation) {
  auto& st = self->state;
  if (attempt != st.attempt || generation != st.trigger_generation || st.done || st.failing ||
      st.restarting || st.cancel_requested)
    return;
  st.trigger_due = false;
  auto interval = st.cp().interval;
  bool all_running = st.running == st.total && st.ended < st.total;
  int64_t since_last_ms = (steady_now_ns() - st.last_completion_ns) / 1000000;
  int64_t in_flight = 0;
  for (auto& [id, p] : st.pending)
    if (!p.savepoint)
      ++in_flight;
  if (all_running && in_flight >= st.cp().max_concurrent && st.finish_on < 0 && !st.drain_stop) {
    st.trigger_due = true; // run_due_trigger starts it; no timer until then
    ++st.trigger_generation;
    return;
  }
  if (!all_running || st.finish_on >= 0 || st.drain_stop) {
    schedule_trigger(self, interval);
    return;
  }
  if (st.last_completion_ns > 0 && since_last_ms < st.cp().min_pause.count()) {
    schedule_trigger(self, std::chrono::milliseconds(st.cp().min_pause.count() - since_last_ms));
    return;
  }
  try {
    trigger(self, false, false, {}, false);
  } catch (const std::exception& e) {
    // The storage is unusable: this counts as a failed checkpoint.
    ++st.failed_in_a_row;
    if (st.failed_in_a_row > st.cp().tolerable_failed) {
      on_failure(self, std::string("cannot start a checkpoint: ") + e.what());
      return;
    }
  }
  schedule_trigger(self, interval);
}

/// A checkpoint completed or failed: a periodic trigger that found the
/// in-flight limit reached runs next (min-pause still applies), after the
/// current handler has sent what it sends (the completion notice first).
void run_due_trigger(jm_pointer self) {
  auto& st = self->state;
  if (st.trigger_due)
    self->send(self, checkpoint_atom::value, st.attempt, st.trigger_generation);
}

void send_finish_to_all(jm_pointer self) { to_all(self, finish_atom::value); }

/// Every subtask has acknowledged: write the metadata (off the actor).
void write_checkpoint(jm_pointer self, job_master_state::pending_checkpoint& p) {
  auto& st = self->state;
  p.writing = true;
  const auto& job = *st.sub.job;
  runtime::checkpoint_metadata md;
  md.job_id = st.sub.board->id;
  md.checkpoint_id = p.id;
  md.timestamp_ms = p.trigger_ms;
  md.savepoint = p.savepoint;
  for (const auto& v : job.vertices()) {
    for (size_t k = 0; k < v.nodes.size(); ++k) {
      runtime::operator_state_handle op;
      op.uid = runtime::operator_uid(job.graph().nodes[v.nodes[k]]);
      op.parallelism = v.parallelism;
      op.max_parallelism = v.max_parallelism;
      bool any = false;
      for (int32_t i = 0; i < v.parallelism; ++i) {
        auto& ack = p.acks.at({v.id, i});
        runtime::subtask_state_handle h;
        h.subtask = i;
        if (k < ack.keyed_files.size()) {
          h.keyed_state_file = ack.keyed_files[k];
          h.operator_state_file = ack.operator_files[k];
          h.bytes = ack.bytes[k];
          if (k < ack.native_files.size())
            h.native_files = ack.native_files[k];
        }
        if (k == 0) {
          h.channel_state_file = ack.channel_state_file;
          h.bytes += ack.channel_bytes;
        }
        any = any || !h.keyed_state_file.empty() || !h.operator_state_file.empty() ||
              !h.channel_state_file.empty();
        op.subtasks.push_back(std::move(h));
      }
      if (any)
        md.operators.push_back(std::move(op));
    }
  }
  p.metadata = md;
  // Workers share the storage (and its reference counts of shared files):
  // they may outlive this actor and its state.
  auto store = shared_storage(self);
  auto src = store->checkpoint_dir(p.id);
  if (!p.savepoint) {
    run_blocking(self, p.id, [store, md] {
      // A job without state files wrote nothing into chk-N yet.
      std::filesystem::create_directories(store->checkpoint_dir(md.checkpoint_id));
      // Deletes nothing: the checkpoint to restore stays until this one
      // counts as complete (on_written).
      store->finalize(md);
    });
    return;
  }
  // A savepoint: the files move to the user's directory, self-contained.
  auto target = std::filesystem::path(p.target) /
                ("savepoint-" + md.job_id.substr(0, 6) + "-" + random_hex(12));
  p.target = target.string();
  run_blocking(self, p.id, [src, target, md] {
    std::filesystem::create_directories(src);
    std::filesystem::create_directories(target.parent_path());
    std::error_code ec;
    std::filesystem::rename(src, target, ec);
    if (ec) {
      std::filesystem::copy(src, target, std::filesystem::copy_options::recursive);
      std::filesystem::remove_all(src);
    }
    runtime::checkpoint_storage::write_atomically(target / "_metadata", md.to_json());
  });
}

/// A subtask's writer acknowledged or declined checkpoint `id` after it
/// was aborted (a failover, expiry, a decline elsewhere, or subsumed): what
/// it wrote into chk-N and shared/c<N> after the abort's discard is
/// deleted now. Completed checkpoints had every ack before they completed,
/// so none of them is touched (retained ones are skipped all the same).
void discard_late(jm_pointer self, int64_t id) {
  auto& st = self->state;
  if (id < 0 || st.pending.count(id) != 0 ||
      std::find(st.retained.begin(), st.retained.end(), id) != st.retained.end())
    return;
  run_blocking(self, -1, [store = shared_storage(self), id] { store->discard(id); });
}

void on_ack(jm_pointer self, checkpoint_ack& ack) {
  auto& st = self->state;
  auto it = st.pending.find(ack.id);
  if (ack.attempt != st.attempt || it == st.pending.end()) {
    discard_late(self, ack.id);
    return;
  }
  if (it->second.writing)
    return;
  auto& p = it->second;
  const auto& v = st.sub.job->vertices()[ack.vertex];
  subtask_checkpoint_stats s;
  s.index = ack.index;
  s.ack_timestamp_ms = ack.acked_ms;
  for (auto b : ack.bytes)
    s.state_size += b;
  s.sync_ms = ack.sync_ns / 1000000;
  s.async_ms = ack.async_ns / 1000000;
  s.alignment_ms = ack.alignment_ns / 1000000;
  s.persisted_data = ack.channel_bytes;
  st.sub.board->checkpoints.update(ack.id, [&](checkpoint_record& r) {
    r.persisted_data += ack.channel_bytes;
    r.unaligned = r.unaligned || ack.unaligned;
    r.tasks[v.hex_id].push_back(s);
    r.num_acknowledged_subtasks += 1;
    r.state_size += s.state_size;
    r.latest_ack_timestamp_ms = std::max(r.latest_ack_timestamp_ms, s.ack_timestamp_ms);
    r.alignment_ms = std::max(r.alignment_ms, s.alignment_ms);
  });
  p.acks[{ack.vertex, ack.index}] = std::move(ack);
  if (p.acks.size() == st.total)
    write_checkpoint(self, p);
}

void on_written(jm_pointer self, int64_t id, int32_t attempt, const std::string& error) {
  auto& st = self->state;
  auto it = st.pending.find(id);
  if (attempt != st.attempt || it == st.pending.end()) {
    // Aborted while its metadata was written (a failover, or subsumed):
    // the abort's discard may have run before the worker wrote into chk-N
    // (a chk-N with `_metadata` looks completed). Delete it again.
    run_blocking(self, -1, [store = shared_storage(self), id] { store->discard(id); });
    return;
  }
  if (!error.empty()) {
    abort_checkpoint(self, id, "cannot complete checkpoint " + std::to_string(id) + ": " + error,
                     true);
    return;
  }
  auto p = std::move(it->second);
  st.pending.erase(it);
  st.failed_in_a_row = 0;
  st.last_completion_ns = steady_now_ns();
  auto path = p.savepoint ? p.target : storage(self).checkpoint_dir(id).string();
  st.sub.board->checkpoints.completed(id, path);
  if (!p.savepoint) {
    st.restore = std::make_shared<runtime::restore_point>(
      runtime::restore_point{storage(self).checkpoint_dir(id), std::move(p.metadata), true});
    // Only now, with the restore point moved on, are older ones deleted
    // (the storage drops their references to shared files and deletes
    // those no retained checkpoint references), and uploads of older
    // checkpoints that never completed.
    st.retained.push_back(id);
    std::vector<int64_t> dropped;
    while (st.retained.size() > static_cast<size_t>(std::max(1, st.cp().num_retained))) {
      dropped.push_back(st.retained.front());
      st.retained.pop_front();
    }
    std::vector<int64_t> in_flight;
    for (auto& [pid, pp] : st.pending)
      if (pid < id && pp.savepoint)
        in_flight.push_back(pid); // not subsumed below
    run_blocking(self, -1, [store = shared_storage(self), dropped, id, in_flight] {
      for (auto old : dropped)
        store->discard(old);
      store->delete_orphans(id, in_flight);
    });
  }
  // Older checkpoints still in flight are subsumed.
  std::vector<int64_t> older;
  for (auto& [pid, pp] : st.pending)
    if (pid < id && !pp.savepoint)
      older.push_back(pid);
  for (auto pid : older)
    abort_checkpoint(self, pid, "subsumed by checkpoint " + std::to_string(id), false);
  // A savepoint that does not end the job commits nothing: a later failure
  // restores from a checkpoint, which must not find its output committed.
  if (!p.savepoint || p.stop || p.final_checkpoint)
    to_all(self, complete_atom::value, id);
  for (auto& w : p.waiters)
    w.deliver(path);
  if (st.finish_on == id)
    send_finish_to_all(self);
  run_due_trigger(self);
}

void abort_checkpoint(jm_pointer self, int64_t id, const std::string& why, bool counts) {
  auto& st = self->state;
  auto it = st.pending.find(id);
  if (it == st.pending.end())
    return;
  auto p = std::move(it->second);
  st.pending.erase(it);
  st.sub.board->checkpoints.failed(id, why);
  for (auto& w : p.waiters)
    w.deliver(caf::make_error(caf::sec::runtime_error, why));
  if (!st.restarting && !st.failing)
    to_all(self, abortchk_atom::value, id);
  run_blocking(self, -1, [store = shared_storage(self), id] { store->discard(id); });
  if (st.finish_on == id) {
    st.finish_on = -1;
    if (p.stop || p.final_checkpoint) {
      // The job cannot finish without it: that is a failure.
      on_failure(self, why);
      return;
    }
  }
  if (counts && !st.restarting && !st.failing && !st.done) {
    ++st.failed_in_a_row;
    if (st.failed_in_a_row > st.cp().tolerable_failed)
      on_failure(self, "Exceeded checkpoint tolerable failure threshold (" +
                         std::to_string(st.cp().tolerable_failed) + "): " + why);
  }
  run_due_trigger(self);
}

/// Every subtask processed all its data: take the final checkpoint (or the
/// drained savepoint), or let them finish.
void on_all_ended(jm_pointer self) {
  auto& st = self->state;
  if (st.finish_on >= 0)
    return; // a stop-with-savepoint is completing and will finish the job
  bool stop_savepoint_in_flight = false;
  for (auto& [id, p] : st.pending)
    if (p.stop)
      stop_savepoint_in_flight = true;
  if (stop_savepoint_in_flight)
    return;
  if (st.drain_stop) {
    auto req = std::move(*st.drain_stop);
    st.drain_stop.reset();
    try {
      auto id = trigger(self, true, true, req.dir, true);
      st.pending[id].waiters.push_back(std::move(req.promise));
      st.finish_on = id;
    } catch (const std::exception& e) {
      req.promise.deliver(caf::make_error(caf::sec::runtime_error, e.what()));
      on_failure(self, std::string("cannot take the savepoint: ") + e.what());
    }
    return;
  }
  if (st.cp().enabled()) {
    try {
      st.finish_on = trigger(self, false, false, {}, true);
    } catch (const std::exception& e) {
      on_failure(self, std::string("cannot take the final checkpoint: ") + e.what());
    }
    return;
  }
  send_finish_to_all(self);
}

void on_eod(jm_pointer self, int32_t v, int32_t i, int32_t attempt) {
  auto& st = self->state;
  if (attempt != st.attempt || st.done)
    return;
  if (v < 0 || static_cast<size_t>(v) >= st.at_end.size() || st.at_end[v][i])
    return;
  st.at_end[v][i] = 1;
  // Checkpoints in flight whose barrier can no longer reach this subtask
  // (its inputs ended first): it takes them directly (a subtask that took
  // one through its barrier ignores the repeat).
  for (auto& [id, p] : st.pending)
    if (!p.acks.count({v, i}) && !p.final_checkpoint)
      self->send(st.subtasks[v][i], checkpoint_atom::value, checkpoint_trigger{id, p.trigger_ms, false, p.savepoint});
  if (++st.ended == st.total && !st.restarting && !st.failing && !st.cancel_requested)
    on_all_ended(self);
}

using query_promise = caf::typed_response_promise<int32_t, std::string>;

/// Queryable state: finds the operator with `uid` and asks every subtask of
/// its vertex; the one owning the key's group answers, the others say
/// not_owner (the key's type, and so its group, is known only there).
void on_state_query(jm_pointer self, const std::string& uid, const std::string& key,
                    query_promise rp) {
  using runtime::state_query_status;
  auto& st = self->state;
  const auto& job = *st.sub.job;
  auto deliver = [&rp](state_query_status s, std::string body) {
    rp.deliver(static_cast<int32_t>(s), std::move(body));
  };
  int32_t vertex = -1, op = -1;
  std::string uids;
  for (const auto& v : job.vertices())
    for (size_t k = 0; k < v.nodes.size(); ++k) {
      auto u = runtime::operator_uid(job.graph().nodes[v.nodes[k]]);
      if (u == uid && vertex < 0) {
        vertex = v.id;
        op = static_cast<int32_t>(k);
      }
      uids += (uids.empty() ? "" : ", ") + u;
    }
  if (vertex < 0)
    return deliver(state_query_status::unknown_uid, uids);
  if (st.done || st.failing || st.restarting || st.cancel_requested ||
      st.running != st.total || st.ended == st.total ||
      static_cast<size_t>(vertex) >= st.subtasks.size())
    return deliver(state_query_status::not_running, {});
  struct gather {
    query_promise rp;
    size_t left = 0;
    bool delivered = false;
    /// What is answered when no subtask owns the key (or the owner failed).
    state_query_status status = state_query_status::failed;
    std::string body = "no subtask owns the key";
    void answer(state_query_status s, std::string b) {
      if (delivered)
        return;
      if (s != state_query_status::not_owner) {
        delivered = true;
        rp.deliver(static_cast<int32_t>(s), std::move(b));
      } else if (--left == 0) {
        delivered = true;
        rp.deliver(static_cast<int32_t>(status), std::move(body));
      }
    }
  };
  auto g = std::make_shared<gather>();
  g->rp = std::move(rp);
  const auto& subtasks = st.subtasks[static_cast<size_t>(vertex)];
  g->left = subtasks.size();
  for (const auto& sub : subtasks) {
    if (!sub) {
      g->status = state_query_status::not_running;
      g->body.clear();
      g->answer(state_query_status::not_owner, {});
      continue;
    }
    self->request(sub, std::chrono::seconds(10), query_atom::value, op, key)
      .then([g](int32_t s, std::string& body) {
              g->answer(static_cast<state_query_status>(s), std::move(body));
            },
            [self, g](caf::error& err) {
              // This subtask may have owned the key: say why it did not answer.
              g->status = err == caf::sec::request_timeout ? state_query_status::timeout
                                                           : state_query_status::not_running;
              g->body = self->system().render(err);
              g->answer(state_query_status::not_owner, {});
            });
  }
}

void on_savepoint_request(jm_pointer self, const std::string& dir, bool stop, bool drain,
                          caf::response_promise rp) {
  auto& st = self->state;
  auto target = dir.empty() ? (checkpoint_base(self) / "savepoints").string() : dir;
  if (st.done || st.failing || st.restarting || st.cancel_requested ||
      st.running != st.total || st.ended == st.total) {
    rp.deliver(caf::make_error(caf::sec::runtime_error,
                               "cannot take a savepoint: the job is not running "
                               "(every task must be RUNNING)"));
    return;
  }
  if (st.finish_on >= 0 || st.drain_stop) {
    rp.deliver(caf::make_error(caf::sec::runtime_error, "the job is already stopping"));
    return;
  }
  if (stop && drain) {
    // Sources end their input now; the savepoint is the final checkpoint.
    st.drain_stop = job_master_state::stop_request{target, std::move(rp)};
    const auto& job = *st.sub.job;
    for (const auto& v : job.vertices())
      if (v.is_source)
        for (auto& s : st.subtasks[v.id])
          self->send(s, stop_atom::value, true);
    return;
  }
  try {
    auto id = trigger(self, true, stop, target, false);
    st.pending[id].waiters.push_back(std::move(rp));
    if (stop)
      st.finish_on = id;
  } catch (const std::exception& e) {
    rp.deliver(caf::make_error(caf::sec::runtime_error,
                               std::string("cannot take a savepoint: ") + e.what()));
  }
}

// ---- deployment ----------------------------------------------------------------

void on_report(jm_pointer self, const subtask_report& r) {
  auto& st = self->state;
  if (r.attempt != st.attempt)
    return;
  if (r.vertex < 0 || static_cast<size_t>(r.vertex) >= st.states.size())
    return;
  auto& cur = st.states[r.vertex][r.index];
  if (job_master_state::is_terminal(cur))
    return;
  if (r.state() == execution_state::running && cur != execution_state::running)
    ++st.running;
  else if (cur == execution_state::running && r.state() != execution_state::running)
    --st.running;
  cur = r.state();
  if (!job_master_state::is_terminal(cur))
    return;
  if (!st.slots.empty() && st.slots[st.slot_of[r.vertex][r.index]].node() != self->node())
    // A remote subtask's last relayed counters may arrive after this
    // JobMaster is gone: its end state is written here.
    st.sub.board->cells[st.first_cell[r.vertex] + static_cast<size_t>(r.index)]->state.store(
      r.state_code);
  ++st.terminal;
  if (cur == execution_state::failed && !st.restarting && !st.failing && !st.done) {
    on_failure(self, r.error);
    if (st.done)
      return;
  }
  if (st.terminal < st.total)
    return;
  if (st.restarting && !st.failing)
    schedule_restart(self, st.restart_delay);
  else
    finish_job(self);
}

void wire_and_start(jm_pointer self) {
  auto& st = self->state;
  const auto& job = *st.sub.job;
  if (st.failing || st.cancel_requested || st.restarting) {
    cancel_all(self);
    return;
  }
  // channel_of[(vertex, index)][(in_edge, upstream subtask)] = input channel
  std::map<std::pair<int32_t, int32_t>, std::map<std::pair<int32_t, int32_t>, uint32_t>> channel_of;
  std::vector<std::vector<std::vector<runtime::channel_endpoint>>> ins(job.vertices().size());
  for (const auto& v : job.vertices()) {
    ins[v.id].resize(v.parallelism);
    for (int32_t i = 0; i < v.parallelism; ++i) {
      ins[v.id][i] = job.input_channels(v.id, i);
      auto& m = channel_of[{v.id, i}];
      for (size_t c = 0; c < ins[v.id][i].size(); ++c)
        m[{ins[v.id][i][c].in_edge, ins[v.id][i][c].upstream_subtask}] = static_cast<uint32_t>(c);
    }
  }
  for (const auto& v : job.vertices()) {
    for (int32_t i = 0; i < v.parallelism; ++i) {
      subtask_wiring w;
      for (auto e : v.out_edges) {
        auto dv = job.vertex_of_node(job.graph().edges[e].target);
        const auto& down = job.vertices()[dv];
        auto k = static_cast<int32_t>(std::find(down.in_edges.begin(), down.in_edges.end(), e) -
                                      down.in_edges.begin());
        std::vector<std::pair<subtask_actor, uint32_t>> chans;
        for (auto j : job.connected_subtasks(e, i))
          chans.emplace_back(st.subtasks[dv][j], channel_of[{dv, j}][{k, i}]);
        w.outputs.push_back(std::move(chans));
      }
      for (const auto& c : ins[v.id][i])
        w.inputs.push_back(st.subtasks[c.upstream_vertex][c.upstream_subtask]);
      self->send(st.subtasks[v.id][i], setup_atom::value, std::move(w));
    }
  }
  st.sub.board->set_status(job_status::running);
  for (auto& per_vertex : st.subtasks)
    for (auto& s : per_vertex)
      self->send(s, start_atom::value);
  schedule_trigger(self, st.cp().interval);
}

/// Resets the per-run bookkeeping for a new attempt.
void reset_run(jm_pointer self) {
  auto& st = self->state;
  const auto& job = *st.sub.job;
  st.subtasks.assign(job.vertices().size(), {});
  st.states.assign(job.vertices().size(), {});
  st.at_end.assign(job.vertices().size(), {});
  st.slot_of.assign(job.vertices().size(), {});
  st.first_cell.assign(job.vertices().size(), 0);
  size_t cells = 0;
  for (const auto& v : job.vertices()) {
    st.first_cell[v.id] = cells;
    cells += static_cast<size_t>(v.parallelism);
    st.slot_of[v.id].assign(v.parallelism, 0);
    st.subtasks[v.id].resize(v.parallelism);
    st.states[v.id].assign(v.parallelism, execution_state::created);
    st.at_end[v.id].assign(v.parallelism, 0);
  }
  st.deployed = st.running = st.terminal = st.ended = 0;
  st.finish_on = -1;
  st.trigger_due = false;
}

void deploy(jm_pointer self) {
  auto& st = self->state;
  const auto& job = *st.sub.job;
  // Slot sharing: subtask i of every vertex in a group shares the group's
  // slot i; groups get consecutive slot ranges.
  std::map<std::string, size_t> group_offset;
  size_t next = 0;
  for (const auto& v : job.vertices()) {
    if (!group_offset.count(v.slot_sharing_group)) {
      int32_t width = 0;
      for (const auto& w : job.vertices())
        if (w.slot_sharing_group == v.slot_sharing_group)
          width = std::max(width, w.parallelism);
      group_offset[v.slot_sharing_group] = next;
      next += static_cast<size_t>(width);
    }
  }
  auto checkpoint_dir = (checkpoint_base(self) / st.sub.board->id).string();
  size_t cell_index = 0;
  for (const auto& v : job.vertices()) {
    for (int32_t i = 0; i < v.parallelism; ++i, ++cell_index) {
      st.sub.board->cells[cell_index]->state.store(static_cast<int>(execution_state::deploying));
      auto slot = group_offset[v.slot_sharing_group] + static_cast<size_t>(i);
      st.slot_of[v.id][i] = slot;
      auto tm = st.slots[slot];
      auto vid = v.id;
      auto attempt = st.attempt;
      auto on_deployed = [self, vid, i, attempt](subtask_actor h) {
        auto& st = self->state;
        if (attempt != st.attempt || job_master_state::is_terminal(st.states[vid][i])) {
          // An older run, or its TaskManager was lost while it deployed.
          self->send_exit(h, caf::exit_reason::user_shutdown);
          if (attempt == st.attempt && ++st.deployed == st.total && !st.done)
            wire_and_start(self);
          return;
        }
        self->monitor(h);
        st.subtasks[vid][i] = h;
        if (++st.deployed == st.total)
          wire_and_start(self);
      };
      auto on_error = [self, vid, i, attempt](caf::error& err) {
        auto& st = self->state;
        if (attempt != st.attempt)
          return;
        // Counts as deployed (and failed), so the run can still end.
        ++st.deployed;
        auto why = err.context().empty() ? self->system().render(err)
                                         : caf::to_string(err.context());
        on_report(self, {vid, i, static_cast<int32_t>(execution_state::failed),
                         "cannot deploy subtask: " + why, attempt});
        if (st.deployed == st.total && !st.done)
          wire_and_start(self);
      };
      if (tm.node() != self->node()) {
        // Another node: only values travel; the TaskManager rebuilds the job.
        remote_deployment rd;
        rd.job_id = st.sub.board->id;
        rd.spec = st.sub.spec;
        rd.vertex = v.id;
        rd.index = i;
        rd.attempt = st.attempt;
        rd.checkpoint_dir = checkpoint_dir;
        if (st.restore) {
          rd.restore_dir = st.restore->dir.string();
          rd.restore_owns_shared_files = st.restore->owns_shared_files;
        }
        rd.job_master = caf::actor_cast<caf::actor>(self);
        self->request(tm, std::chrono::minutes(2), deploy_atom::value, std::move(rd))
          .then(on_deployed, on_error);
        continue;
      }
      subtask_deployment d{st.sub.job, st.sub.config, v.id, i, caf::actor_cast<caf::actor>(self),
                           st.sub.board->cells[cell_index], st.attempt, checkpoint_dir,
                           st.restore};
      self->request(tm, caf::infinite, deploy_atom::value, std::move(d))
        .then(on_deployed, on_error);
    }
  }
}

/// Asks the resource manager for the job's slots, then deploys.
void request_slots_and_deploy(jm_pointer self) {
  auto& st = self->state;
  auto need = st.sub.job->required_slots();
  auto attempt = st.attempt;
  self->request(st.job_manager, caf::infinite, slots_atom::value, st.sub.board->id, need)
    .then(
      [self, attempt](const std::vector<caf::actor>& slots) {
        auto& st = self->state;
        if (st.done || attempt != st.attempt) {
          self->send(st.job_manager, release_atom::value, st.sub.board->id);
          return;
        }
        st.slots = slots;
        st.remote_slots = std::any_of(slots.begin(), slots.end(), [self](const caf::actor& a) {
          return a.node() != self->node();
        });
        deploy(self);
      },
      [self, attempt](caf::error& err) {
        auto& st = self->state;
        if (st.done || attempt != st.attempt)
          return;
        auto why = err.context().empty() ? self->system().render(err)
                                         : caf::to_string(err.context());
        st.sub.board->add_failure("cannot run job: " + why);
        fail_job(self, "cannot run job: " + why);
      });
}

void on_restart(jm_pointer self, int32_t attempt) {
  auto& st = self->state;
  if (attempt != st.attempt || !st.restarting || st.done || st.failing)
    return;
  if (st.terminal < st.total)
    return; // on_report schedules again when the last subtask has ended
  ++st.attempt;
  st.sub.board->restarts.fetch_add(1);
  st.restarting = false;
  if (st.restore)
    st.sub.board->checkpoints.restored(st.restore->metadata.checkpoint_id,
                                       st.restore->dir.string(), st.restore->metadata.savepoint);
  st.sub.board->set_status(job_status::running);
  reset_run(self);
  if (!st.remote_slots) {
    // In-process: the slots stay (a mini-cluster loses no TaskManager).
    deploy(self);
    return;
  }
  // TaskManagers on other nodes may be gone: give the slots back and ask
  // again, so the job lands on those that remain (or waits for new ones).
  st.slots.clear();
  self->send(st.job_manager, release_atom::value, st.sub.board->id);
  request_slots_and_deploy(self);
}

/// A TaskManager left the cluster: its subtasks of this run failed.
void on_task_manager_lost(jm_pointer self, const caf::actor& executor, const std::string& tm_id,
                          const std::string& why) {
  auto& st = self->state;
  if (st.done || st.slots.empty())
    return;
  auto why_all = "TaskManager " + tm_id + " lost: " + why;
  for (size_t v = 0; v < st.slot_of.size(); ++v)
    for (size_t i = 0; i < st.slot_of[v].size(); ++i) {
      if (st.done)
        return;
      if (st.slots[st.slot_of[v][i]] == executor && !job_master_state::is_terminal(st.states[v][i]))
        on_report(self, {static_cast<int32_t>(v), static_cast<int32_t>(i),
                         static_cast<int32_t>(execution_state::failed), why_all, st.attempt});
    }
}

/// Counters a TaskManager on another node relayed for this job's subtasks.
void on_remote_metrics(jm_pointer self, const std::vector<subtask_metrics_sample>& samples) {
  auto& st = self->state;
  for (const auto& s : samples) {
    if (s.attempt != st.attempt || s.vertex < 0 ||
        static_cast<size_t>(s.vertex) >= st.first_cell.size() || s.index < 0 ||
        static_cast<size_t>(s.index) >= st.slot_of[s.vertex].size())
      continue;
    apply_metrics(s, *st.sub.board->cells[st.first_cell[s.vertex] + static_cast<size_t>(s.index)]);
  }
}

/// Takes the restore point the submitter read.
void load_initial_restore(jm_pointer self) {
  auto& st = self->state;
  if (!st.sub.restore)
    return;
  st.restore = st.sub.restore;
  st.next_checkpoint_id = st.restore->metadata.checkpoint_id + 1;
  st.sub.board->checkpoints.restored(st.restore->metadata.checkpoint_id,
                                     st.restore->dir.string(), st.restore->metadata.savepoint);
}

void on_kill(jm_pointer self, int32_t v, int32_t i) {
  auto& st = self->state;
  if (v < 0 || static_cast<size_t>(v) >= st.subtasks.size() || i < 0 ||
      static_cast<size_t>(i) >= st.subtasks[v].size() || !st.subtasks[v][i])
    return;
  self->send_exit(st.subtasks[v][i], caf::exit_reason::kill);
}

} // namespace

namespace {
caf::behavior job_master_impl(caf::stateful_actor<job_master_state>* self, job_submission sub,
                              caf::actor job_manager) {
  auto& st = self->state;
  st.sub = std::move(sub);
  st.job_manager = std::move(job_manager);
  st.total = 0;
  for (const auto& v : st.sub.job->vertices())
    st.total += static_cast<size_t>(v.parallelism);
  reset_run(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (size_t v = 0; v < st.subtasks.size(); ++v)
      for (size_t i = 0; i < st.subtasks[v].size(); ++i)
        if (st.subtasks[v][i] && st.subtasks[v][i].address() == dm.source &&
            !job_master_state::is_terminal(st.states[v][i])) {
          on_report(self, {static_cast<int32_t>(v), static_cast<int32_t>(i),
                           static_cast<int32_t>(execution_state::failed),
                           "subtask " + std::to_string(i + 1) + " of '" +
                             st.sub.job->vertices()[v].name + "' terminated unexpectedly: " +
                             self->system().render(dm.reason),
                           st.attempt});
        }
  });
  return {
    [self](start_atom) {
      auto& st = self->state;
      auto fail_now = [self](const std::string& why) {
        auto& st = self->state;
        st.failing = true;
        st.sub.board->set_status(job_status::failing, why);
        st.done = true;
        st.sub.board->set_status(job_status::failed);
        self->quit();
      };
      try {
        st.restart = runtime::make_restart_strategy(st.sub.config.restart, st.cp().enabled());
        load_initial_restore(self);
      } catch (const std::exception& e) {
        fail_now(std::string("cannot run job: ") + e.what());
        return;
      }
      request_slots_and_deploy(self);
    },
    [self](cancel_atom) {
      auto& st = self->state;
      if (st.done || st.cancel_requested || st.failing)
        return;
      st.cancel_requested = true;
      st.sub.board->set_status(job_status::cancelling);
      abort_all_pending(self, "the job is cancelled");
      if (st.slots.empty() && !st.restarting) {
        // Still waiting for slots: nothing runs (finish_job releases them).
        finish_job(self);
        return;
      }
      if (st.deployed == st.total || st.restarting)
        cancel_all(self);
      if (st.restarting && st.terminal == st.total)
        finish_job(self);
    },
    [self](state_atom, const subtask_report& r) { on_report(self, r); },
    [self](checkpoint_atom, int32_t attempt, int64_t generation) {
      on_periodic_trigger(self, attempt, generation);
    },
    [self](ack_atom, checkpoint_ack& ack) { on_ack(self, ack); },
    [self](decline_atom, int64_t id, int32_t, int32_t, int32_t attempt, const std::string& why) {
      if (attempt == self->state.attempt && self->state.pending.count(id) != 0)
        abort_checkpoint(self, id, "declined: " + why,
                         why.find("not running a source") == std::string::npos);
      else
        discard_late(self, id); // a writer may have written part of its files
    },
    [self](expire_atom, int64_t id) {
      auto it = self->state.pending.find(id);
      if (it != self->state.pending.end() && !it->second.writing)
        abort_checkpoint(self, id, "Checkpoint expired before completing", true);
    },
    [self](written_atom, int64_t id, int32_t attempt, const std::string& error) {
      if (id >= 0)
        on_written(self, id, attempt, error);
    },
    [self](eod_atom, int32_t v, int32_t i, int32_t attempt) { on_eod(self, v, i, attempt); },
    [self](savepoint_atom, const std::string& dir, bool stop, bool drain) -> caf::result<std::string> {
      auto rp = self->make_response_promise<std::string>();
      on_savepoint_request(self, dir, stop, drain, rp);
      return rp;
    },
    [self](query_atom, const std::string& uid,
           const std::string& key) -> caf::result<int32_t, std::string> {
      auto rp = self->make_response_promise<int32_t, std::string>();
      on_state_query(self, uid, key, rp);
      return rp;
    },
    [self](restart_atom, int32_t attempt) { on_restart(self, attempt); },
    [self](kill_atom, int32_t v, int32_t i) { on_kill(self, v, i); },
    [self](tmmetrics_atom, const std::vector<subtask_metrics_sample>& samples) {
      on_remote_metrics(self, samples);
    },
    [self](lost_atom, const caf::actor& executor, const std::string& tm_id,
           const std::string& why) { on_task_manager_lost(self, executor, tm_id, why); },
  };
}
} // namespace

caf::actor spawn_job_master(caf::local_actor* parent, job_submission sub, caf::actor job_manager) {
  return parent->spawn(job_master_impl, std::move(sub), std::move(job_manager));
}

} // namespace sluice::actors
