#include "sluice/actors/distributed.hpp"

#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/runtime/restart_strategy.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

namespace sluice::actors::detail {

/// What a helper actor prepared for a task executor: the rebuilt job (when
/// asked), the restore point read (when asked), or why it could not.
struct preparation {
  std::optional<resolved_job> job;
  std::shared_ptr<const runtime::restore_point> restore;
  std::string error;
};

} // namespace sluice::actors::detail

// Stays in the TaskManager's process: a helper actor hands it to its executor.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<sluice::actors::detail::preparation>)

namespace sluice::actors {

using detail::preparation;
using preparation_ptr = std::shared_ptr<preparation>;

// ---- metrics samples -----------------------------------------------------------

subtask_metrics_sample sample_metrics(const subtask_metrics_cell& c, int32_t vertex, int32_t index,
                                      int32_t attempt) {
  constexpr auto r = std::memory_order_relaxed;
  subtask_metrics_sample s;
  s.vertex = vertex;
  s.index = index;
  s.attempt = attempt;
  s.state = c.state.load(r);
  s.records_in = c.records_in.load(r);
  s.records_out = c.records_out.load(r);
  s.busy_ns = c.busy_ns.load(r);
  s.backpressured_ns = c.backpressured_ns.load(r);
  s.blocked_since_ns = c.blocked_since_ns.load(r);
  s.started_ns = c.started_ns.load(r);
  s.ended_ns = c.ended_ns.load(r);
  s.peak_queued_batches = c.peak_queued_batches.load(r);
  s.peak_pending_batches = c.peak_pending_batches.load(r);
  s.input_watermark = c.input_watermark.load(r);
  return s;
}

void apply_metrics(const subtask_metrics_sample& s, subtask_metrics_cell& c) {
  constexpr auto r = std::memory_order_relaxed;
  c.state.store(s.state, r);
  c.records_in.store(s.records_in, r);
  c.records_out.store(s.records_out, r);
  c.busy_ns.store(s.busy_ns, r);
  c.backpressured_ns.store(s.backpressured_ns, r);
  c.blocked_since_ns.store(s.blocked_since_ns, r);
  c.started_ns.store(s.started_ns, r);
  c.ended_ns.store(s.ended_ns, r);
  c.peak_queued_batches.store(s.peak_queued_batches, r);
  c.peak_pending_batches.store(s.peak_pending_batches, r);
  c.input_watermark.store(s.input_watermark, r);
}

void add_control_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<remote_deployment>("sluice::remote_deployment");
  // Also registers std::vector<subtask_metrics_sample>, what the relay sends.
  cfg.add_message_type<subtask_metrics_sample>("sluice::subtask_metrics_sample");
}

std::chrono::milliseconds
slot_request_timeout(const std::map<std::string, std::string>& settings) {
  auto it = settings.find("slot.request.timeout");
  if (it == settings.end())
    return std::chrono::minutes(5);
  auto timeout = runtime::parse_flink_duration(it->second, "slot.request.timeout");
  if (timeout.count() <= 0)
    throw std::invalid_argument("slot.request.timeout must be positive");
  return timeout;
}

// ---- task executor -------------------------------------------------------------

namespace {

using executor_pointer = caf::stateful_actor<task_executor_state>*;

/// A helper actor rebuilt a job or read a restore point for the executor.
using prepared_atom = caf::atom_constant<caf::atom("prepared")>;

constexpr auto relay_interval = std::chrono::milliseconds(500);

/// Sends the counters of this executor's subtasks to their JobMasters.
void relay_metrics(executor_pointer self) {
  std::map<caf::actor, std::vector<subtask_metrics_sample>> per_master;
  for (auto& [addr, s] : self->state.subtasks)
    per_master[s.job_master].push_back(sample_metrics(*s.cell, s.vertex, s.index, s.attempt));
  for (auto& [jm, samples] : per_master)
    self->send(jm, tmmetrics_atom::value, std::move(samples));
}

void schedule_relay(executor_pointer self) {
  if (self->state.relay_scheduled || self->state.subtasks.empty())
    return;
  self->state.relay_scheduled = true;
  self->delayed_send(self, relay_interval, relay_atom::value);
}

caf::error deploy_error(const remote_deployment& rd, const std::string& why) {
  return caf::make_error(caf::sec::runtime_error,
                         "cannot deploy subtask " + std::to_string(rd.index + 1) + " of vertex " +
                           std::to_string(rd.vertex) + " of job " + rd.job_id + ": " + why);
}

/// Spawns the subtask of `rd`, whose job (and restore point, if any) is
/// ready in the executor's cache.
caf::expected<subtask_actor> spawn_subtask(executor_pointer self, const remote_deployment& rd) {
  auto& st = self->state;
  auto& entry = st.jobs.at(rd.job_id);
  const auto& graph = entry.job.graph;
  if (rd.vertex < 0 || static_cast<size_t>(rd.vertex) >= graph->vertices().size() ||
      rd.index < 0 || rd.index >= graph->vertices()[rd.vertex].parallelism)
    return deploy_error(rd, "no such subtask in the job the resolver rebuilt");
  std::shared_ptr<const runtime::restore_point> restore;
  if (!rd.restore_dir.empty())
    restore = entry.restores.at(rd.restore_dir);
  const auto& v = graph->vertices()[rd.vertex];
  auto cell = std::make_shared<subtask_metrics_cell>();
  cell->task = v.name;
  cell->vertex_id = v.hex_id;
  cell->subtask = rd.index;
  cell->state.store(static_cast<int>(runtime::execution_state::deploying));
  subtask_deployment d{graph,          entry.job.config, rd.vertex, rd.index,
                       rd.job_master,  cell,             rd.attempt, rd.checkpoint_dir,
                       std::move(restore)};
  // Linked: when the executor goes (its TaskManager shuts down or is
  // killed), its subtasks go with it; the executor outlives theirs.
  auto h = self->spawn<caf::linked>(subtask_impl, std::move(d));
  self->monitor(h);
  st.linked.insert(h.address());
  ++entry.live;
  st.subtasks.emplace(h.address(), task_executor_state::subtask_entry{
                                     rd.job_id, rd.vertex, rd.index, rd.attempt, rd.job_master,
                                     std::move(cell)});
  schedule_relay(self);
  return h;
}

/// Rebuilds a job and reads a restore point on a detached actor of its own
/// (they load libraries, run the job's entry and read files: no blocking
/// call on the executor's thread), then reports to the executor.
void start_preparation(executor_pointer self, const std::string& key, const remote_deployment& rd,
                       bool resolve) {
  auto executor = caf::actor_cast<caf::actor>(self);
  auto resolver = self->state.resolver;
  self->spawn<caf::detached>(
    [executor, resolver, resolve, job_id = rd.job_id, spec = rd.spec, dir = rd.restore_dir,
     owns = rd.restore_owns_shared_files](caf::event_based_actor* worker, std::string key) {
      auto p = std::make_shared<preparation>();
      try {
        if (resolve) {
          p->job = resolver(job_id, spec);
          if (!p->job->graph)
            throw std::runtime_error("the job resolver returned no job graph");
        }
        if (!dir.empty()) {
          auto rp = std::make_shared<runtime::restore_point>(runtime::restore_point::read(dir));
          rp->owns_shared_files = owns;
          p->restore = std::move(rp);
        }
      } catch (const std::exception& e) {
        p->error = e.what();
      }
      worker->send(executor, prepared_atom::value, std::move(key), std::move(p));
    },
    key);
}

caf::result<subtask_actor> deploy_remote(executor_pointer self, remote_deployment& rd) {
  auto& st = self->state;
  auto job = st.jobs.find(rd.job_id);
  bool resolve = job == st.jobs.end();
  if (!resolve && (rd.restore_dir.empty() || job->second.restores.count(rd.restore_dir) != 0)) {
    auto h = spawn_subtask(self, rd);
    if (!h)
      return std::move(h.error());
    return *h;
  }
  auto key = rd.job_id + '\n' + rd.restore_dir;
  auto& waiting = st.preparing[key];
  if (waiting.empty())
    start_preparation(self, key, rd, resolve);
  auto promise = self->make_response_promise<subtask_actor>();
  waiting.push_back({std::move(rd), promise});
  return promise;
}

/// A preparation ended: caches its job and restore point and deploys (or
/// refuses) what waited for it.
void on_prepared(executor_pointer self, const std::string& key, const preparation_ptr& p) {
  auto& st = self->state;
  auto it = st.preparing.find(key);
  if (it == st.preparing.end())
    return;
  auto waiting = std::move(it->second);
  st.preparing.erase(it);
  if (waiting.empty())
    return;
  const auto& first = waiting.front().rd;
  if (p->error.empty()) {
    auto& entry = st.jobs[first.job_id];
    if (p->job && !entry.job.graph)
      entry.job = std::move(*p->job);
    if (p->restore)
      entry.restores[first.restore_dir] = p->restore;
  }
  for (auto& w : waiting) {
    if (!p->error.empty() || st.jobs.count(w.rd.job_id) == 0) {
      w.promise.deliver(deploy_error(w.rd, p->error.empty() ? "the job is gone" : p->error));
      continue;
    }
    auto h = spawn_subtask(self, w.rd);
    if (h)
      w.promise.deliver(*h);
    else
      w.promise.deliver(std::move(h.error()));
  }
  // Nothing of the job runs here (every deployment failed): forget it.
  if (auto job = st.jobs.find(first.job_id); job != st.jobs.end() && job->second.live == 0)
    st.jobs.erase(job);
}

} // namespace

caf::behavior task_executor_impl(caf::stateful_actor<task_executor_state>* self, int32_t slots,
                                 job_resolver resolver, runtime::configuration tm_config) {
  auto& st = self->state;
  st.slots = slots;
  st.resolver = std::move(resolver);
  st.tm_config = std::move(tm_config);
  // A subtask that fails or is killed must not take the executor along.
  self->set_exit_handler([self](caf::exit_msg& em) {
    if (self->state.linked.erase(em.source) == 0)
      self->quit(em.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto it = st.subtasks.find(dm.source);
    if (it == st.subtasks.end())
      return;
    // The last counters, so the JobMaster's board shows the final figures.
    auto& s = it->second;
    std::vector<subtask_metrics_sample> last{sample_metrics(*s.cell, s.vertex, s.index, s.attempt)};
    self->send(s.job_master, tmmetrics_atom::value, std::move(last));
    auto job = st.jobs.find(s.job_id);
    if (job != st.jobs.end() && --job->second.live == 0)
      st.jobs.erase(job);
    st.subtasks.erase(it);
  });
  return {
    [self](deploy_atom, remote_deployment& rd) -> caf::result<subtask_actor> {
      return deploy_remote(self, rd);
    },
    [self](prepared_atom, const std::string& key, const preparation_ptr& p) {
      on_prepared(self, key, p);
    },
    [self](relay_atom) {
      self->state.relay_scheduled = false;
      relay_metrics(self);
      schedule_relay(self);
    },
  };
}

// ---- cluster dispatcher ----------------------------------------------------------

namespace {

using dispatcher_pointer = caf::stateful_actor<cluster_dispatcher_state>*;

/// Answers waiting slot requests in arrival order, as long as the oldest
/// one can be met (later ones never overtake it).
void serve_waiting(dispatcher_pointer self) {
  auto& st = self->state;
  while (!st.waiting.empty()) {
    auto& w = st.waiting.front();
    std::vector<caf::actor> out;
    if (!st.pool.try_allocate(w.job, w.n, w.job_master, out))
      return;
    w.promise.deliver(std::move(out));
    st.waiting.pop_front();
  }
}

/// Forgets a TaskManager and tells the JobMasters that held slots on it.
void drop_task_manager(dispatcher_pointer self, const std::string& id, const std::string& why) {
  std::vector<caf::actor> affected;
  auto handle = self->state.pool.remove(id, affected);
  for (auto& jm : affected)
    self->send(jm, lost_atom::value, handle, id, why);
}

} // namespace

caf::behavior cluster_dispatcher_impl(caf::stateful_actor<cluster_dispatcher_state>* self,
                                      std::shared_ptr<slot_board> slots,
                                      std::chrono::milliseconds request_timeout) {
  auto& st = self->state;
  st.pool.set_board(std::move(slots));
  st.request_timeout = request_timeout;
  self->set_down_handler([self](caf::down_msg& dm) {
    for (auto& tm : self->state.pool.task_managers())
      if (tm.handle.address() == dm.source) {
        auto id = tm.id;
        drop_task_manager(self, id, self->system().render(dm.reason));
        return;
      }
  });
  auto add_task_manager = [self](caf::actor tm, int32_t slots, std::string id) {
    // A TaskManager that registers again (reconnected) replaces its entry.
    drop_task_manager(self, id, "registered again");
    self->monitor(tm);
    self->state.pool.add(std::move(id), std::move(tm), slots);
    serve_waiting(self);
  };
  return {
    [self, add_task_manager](register_atom, caf::actor tm, int32_t slots, std::string& id) {
      add_task_manager(std::move(tm), slots, std::move(id));
    },
    [self, add_task_manager](register_atom, caf::actor tm, int32_t slots) {
      add_task_manager(std::move(tm), slots, self->state.pool.unnamed_id());
    },
    [self](lost_atom, const std::string& id, const std::string& why) {
      drop_task_manager(self, id, why);
    },
    [self](slots_atom, const std::string& job,
           int32_t n) -> caf::result<std::vector<caf::actor>> {
      auto& st = self->state;
      auto jm = caf::actor_cast<caf::actor>(self->current_sender());
      std::vector<caf::actor> out;
      if (st.waiting.empty() && st.pool.try_allocate(job, n, jm, out))
        return out;
      auto rp = self->make_response_promise<std::vector<caf::actor>>();
      auto ticket = st.next_ticket++;
      st.waiting.push_back({ticket, job, n, jm, rp});
      self->delayed_send(self, st.request_timeout, slotwait_atom::value, ticket);
      return rp;
    },
    [self](slotwait_atom, uint64_t ticket) {
      auto& st = self->state;
      auto it = std::find_if(st.waiting.begin(), st.waiting.end(),
                             [&](const auto& w) { return w.ticket == ticket; });
      if (it == st.waiting.end())
        return;
      it->promise.deliver(caf::make_error(
        caf::sec::runtime_error,
        "slot request timed out after " + std::to_string(st.request_timeout.count()) +
          " ms (slot.request.timeout): the job needs " + std::to_string(it->n) +
          " task slots, the cluster has " + std::to_string(st.pool.free_slots()) + " free of " +
          std::to_string(st.pool.total_slots()) + " on " +
          std::to_string(st.pool.task_managers().size()) +
          " TaskManager(s)"));
      st.waiting.erase(it);
      // A large request that gave up may have blocked smaller ones.
      serve_waiting(self);
    },
    [self](release_atom, const std::string& job) {
      auto& st = self->state;
      st.pool.release(job);
      // A JobMaster that gave up while waiting (cancelled) wants no slots.
      for (auto it = st.waiting.begin(); it != st.waiting.end();)
        if (it->job == job) {
          it->promise.deliver(
            caf::make_error(caf::sec::runtime_error, "the slots of job " + job + " were released"));
          it = st.waiting.erase(it);
        } else {
          ++it;
        }
      serve_waiting(self);
    },
    [self](submit_atom, job_submission& sub) -> caf::actor {
      return spawn_job_master(self, std::move(sub), caf::actor_cast<caf::actor>(self));
    },
  };
}

// ---- cluster executor --------------------------------------------------------------

cluster_executor::cluster_executor(std::shared_ptr<caf::actor_system> system,
                                   caf::actor dispatcher, std::string spec,
                                   std::shared_ptr<const slot_board> slots)
  : owned_(std::move(system)), system_(owned_.get()), dispatcher_(std::move(dispatcher)),
    spec_(std::move(spec)), slots_(std::move(slots)) {}

cluster_executor::cluster_executor(caf::actor_system& system, caf::actor dispatcher,
                                   std::string spec, std::shared_ptr<const slot_board> slots)
  : system_(&system), dispatcher_(std::move(dispatcher)), spec_(std::move(spec)),
    slots_(std::move(slots)) {}

std::shared_ptr<runtime::job_client>
cluster_executor::submit(std::shared_ptr<const runtime::job_graph> job,
                         const runtime::configuration& config) {
  return submit_job(owned_, *system_, dispatcher_, slots_, std::move(job), config, spec_);
}

} // namespace sluice::actors
