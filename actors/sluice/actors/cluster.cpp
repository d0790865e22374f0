#include "sluice/actors/cluster.hpp"

#include "sluice/actors/cluster_view.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

namespace sluice::actors {

using runtime::execution_state;
using runtime::job_status;

int64_t wall_now_ms() noexcept {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void job_board::set_status(job_status s, const std::string& why) {
  {
    std::lock_guard<std::mutex> guard(mtx);
    status = s;
    status_times[s] = wall_now_ms();
    if (!why.empty() && error.empty())
      error = why;
    if (runtime::is_globally_terminal(s)) {
      end_ns = steady_now_ns();
      end_ms = wall_now_ms();
    }
  }
  cv.notify_all();
}

void job_board::add_failure(const std::string& why) {
  std::lock_guard<std::mutex> guard(mtx);
  if (failures.size() == max_failures) {
    failures.erase(failures.begin());
    ++failures_dropped;
  }
  failures.push_back({wall_now_ms(), why});
}

// ---- TaskManager -----------------------------------------------------------

caf::behavior task_manager_impl(caf::event_based_actor* self, int32_t slots) {
  // Slot accounting lives in the JobManager's resource manager for now; the
  // count arrives here for the heartbeat/slot-offer protocol of issue 6.
  (void)slots;
  return {
    [self](deploy_atom, subtask_deployment& d) -> subtask_actor {
      return self->spawn(subtask_impl, std::move(d));
    },
  };
}

// ---- JobManager ------------------------------------------------------------

void slot_pool::set_board(std::shared_ptr<slot_board> board) {
  board_ = std::move(board);
  publish();
}

void slot_pool::add(std::string id, caf::actor handle, int32_t slots) {
  task_managers_.push_back({std::move(id), std::move(handle), slots, slots});
  publish();
}

caf::actor slot_pool::remove(const std::string& id, std::vector<caf::actor>& affected) {
  auto tm = std::find_if(task_managers_.begin(), task_managers_.end(),
                         [&](const auto& t) { return t.id == id; });
  if (tm == task_managers_.end())
    return nullptr;
  auto handle = tm->handle;
  task_managers_.erase(tm);
  for (auto& [job, alloc] : allocations_) {
    auto& taken = alloc.taken;
    auto before = taken.size();
    taken.erase(std::remove_if(taken.begin(), taken.end(),
                               [&](const auto& t) { return t.first == id; }),
                taken.end());
    if (taken.size() != before && alloc.job_master)
      affected.push_back(alloc.job_master);
  }
  publish();
  return handle;
}

bool slot_pool::try_allocate(const std::string& job, int32_t n, const caf::actor& job_master,
                             std::vector<caf::actor>& out) {
  if (free_slots() < n)
    return false;
  auto& alloc = allocations_[job];
  alloc.job_master = job_master;
  int32_t given = 0;
  for (auto& tm : task_managers_) {
    if (given == n)
      break;
    int32_t take = std::min(tm.free, n - given);
    if (take == 0)
      continue;
    tm.free -= take;
    given += take;
    alloc.taken.emplace_back(tm.id, take);
    for (int32_t i = 0; i < take; ++i)
      out.push_back(tm.handle);
  }
  publish();
  return true;
}

void slot_pool::release(const std::string& job) {
  auto it = allocations_.find(job);
  if (it == allocations_.end())
    return;
  for (auto& [id, n] : it->second.taken)
    for (auto& tm : task_managers_)
      if (tm.id == id)
        tm.free = std::min(tm.slots, tm.free + n);
  allocations_.erase(it);
  publish();
}

int32_t slot_pool::free_slots() const noexcept {
  int32_t n = 0;
  for (auto& tm : task_managers_)
    n += tm.free;
  return n;
}

int32_t slot_pool::total_slots() const noexcept {
  int32_t n = 0;
  for (auto& tm : task_managers_)
    n += tm.slots;
  return n;
}

void slot_pool::publish() const {
  if (!board_)
    return;
  std::lock_guard<std::mutex> guard(board_->mtx);
  board_->task_managers.clear();
  for (auto& tm : task_managers_)
    board_->task_managers.push_back({tm.id, tm.slots, tm.free});
}

struct job_manager_state {
  slot_pool pool;
  std::string cluster_name;
  const char* name = "sluice.job_manager";
};

caf::behavior job_manager_impl(caf::stateful_actor<job_manager_state>* self,
                               std::string cluster_name, std::shared_ptr<slot_board> slots) {
  self->state.cluster_name = std::move(cluster_name);
  self->state.pool.set_board(std::move(slots));
  return {
    [self](register_atom, caf::actor tm, int32_t slots) {
      auto& pool = self->state.pool;
      pool.add(pool.unnamed_id(), std::move(tm), slots);
    },
    [self](slots_atom, const std::string& job, int32_t n) -> caf::result<std::vector<caf::actor>> {
      auto& pool = self->state.pool;
      std::vector<caf::actor> out;
      if (!pool.try_allocate(job, n, caf::actor{}, out))
        return caf::make_error(caf::sec::runtime_error,
                               "not enough task slots: the job needs " + std::to_string(n) +
                                 ", the cluster has " + std::to_string(pool.free_slots()) +
                                 " free");
      return out;
    },
    [self](release_atom, const std::string& job) { self->state.pool.release(job); },
    [self](submit_atom, job_submission& sub) -> caf::actor {
      auto jm = spawn_job_master(self, std::move(sub), caf::actor_cast<caf::actor>(self));
      return jm;
    },
  };
}

// ---- mini-cluster ------------------------------------------------------------

namespace {

/// Drops, when it goes out of scope, the calling thread's reference to the
/// logger of the last actor system it used. CAF 0.17 keeps a thread-local
/// strong reference to the logger of the last system a thread constructed,
/// spawned on or made a scoped_actor on, and ~actor_system waits until that
/// logger is destroyed. A mini-cluster used from one thread (the JobManager's
/// REST threads submit jobs and take savepoints) and destroyed on another
/// would wait forever while the first thread lives. Every non-actor thread
/// that touches a mini-cluster's system holds one of these.
struct release_thread_logger {
  release_thread_logger() = default;
  release_thread_logger(const release_thread_logger&) = delete;
  release_thread_logger& operator=(const release_thread_logger&) = delete;
  ~release_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
};

} // namespace

void configure_scheduler(caf::actor_system_config& cfg, const runtime::configuration& config) {
  auto threads = config.scheduler_threads;
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  // CAF 0.17 lets an actor run until its mailbox is empty. A source whose
  // records are all filtered out never waits for credit and sends itself a
  // step message after every step, so it would hold a worker forever and
  // starve the JobMaster (cancel, checkpoints) and every other subtask:
  // actors yield after a bounded number of messages.
  if (config.scheduler_max_throughput > 0)
    cfg.set("scheduler.max-throughput", static_cast<size_t>(config.scheduler_max_throughput));
  if (config.scheduler_profile == "throughput") {
    // Idle workers keep polling and steal at once, so a woken subtask runs
    // on the other core instead of queueing behind its producer
    // (research/engine-prototype.md: 1.6x on a 2-stage pipeline).
    cfg.set("work-stealing.aggressive-steal-interval", size_t{1});
    cfg.set("work-stealing.moderate-steal-interval", size_t{1});
    cfg.set("work-stealing.moderate-sleep-duration", caf::timespan{0});
    cfg.set("work-stealing.aggressive-poll-attempts", size_t{1000000000});
  } else if (config.scheduler_profile != "balanced") {
    throw std::invalid_argument("unknown scheduler profile '" + config.scheduler_profile +
                                "' (use balanced or throughput)");
  }
}

mini_cluster::mini_cluster(const runtime::configuration& config, int32_t slots_per_taskmanager) {
  release_thread_logger release;
  configure_scheduler(cfg_, config);
  system_ = std::make_unique<caf::actor_system>(cfg_);
  job_manager_ = system_->spawn(job_manager_impl, std::string("local"), slots_);
  int32_t tms = std::max(1, config.taskmanagers);
  for (int32_t t = 0; t < tms; ++t) {
    auto tm = system_->spawn(task_manager_impl, slots_per_taskmanager);
    caf::anon_send(job_manager_, register_atom::value, tm, slots_per_taskmanager);
    task_managers_.push_back(tm);
  }
}

mini_cluster::~mini_cluster() {
  for (auto& tm : task_managers_)
    caf::anon_send_exit(tm, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(job_manager_, caf::exit_reason::user_shutdown);
  task_managers_.clear();
  job_manager_ = nullptr;
  system_.reset(); // waits for every actor to end
}

// ---- job client --------------------------------------------------------------

namespace {

std::string random_job_id() {
  std::random_device rd;
  std::mt19937_64 rng(rd() ^ static_cast<uint64_t>(steady_now_ns()));
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

class local_job_client final : public runtime::job_client {
public:
  /// `owner` keeps `system` alive while the client lives.
  local_job_client(std::shared_ptr<void> owner, caf::actor_system& system,
                   std::shared_ptr<job_board> board, caf::actor job_master)
    : cluster_(std::move(owner)), system_(&system), board_(std::move(board)),
      job_master_(std::move(job_master)) {}

  ~local_job_client() override {
    if (!runtime::is_globally_terminal(status())) {
      cancel();
      wait();
    }
    job_master_ = nullptr;
    cluster_.reset();
  }

  const std::string& job_id() const override { return board_->id; }

  job_status status() const override {
    std::lock_guard<std::mutex> guard(board_->mtx);
    return board_->status;
  }

  runtime::job_metrics metrics() override {
    std::lock_guard<std::mutex> guard(mtx_);
    runtime::job_metrics out;
    auto now = steady_now_ns();
    last_.resize(board_->cells.size());
    for (size_t c = 0; c < board_->cells.size(); ++c)
      // Figures over at least a second, however often the client polls.
      out.subtasks.push_back(read_subtask_metrics(*board_->cells[c], now, last_[c], 1000000000));
    return out;
  }

  void cancel() override { caf::anon_send(job_master_, cancel_atom::value); }

  std::string trigger_savepoint(const std::string& directory) override {
    return savepoint(directory, false, false);
  }
  std::string stop_with_savepoint(const std::string& directory, bool drain) override {
    return savepoint(directory, true, drain);
  }
  std::string cancel_with_savepoint(const std::string& directory) override {
    auto path = savepoint(directory, false, false);
    cancel();
    return path;
  }
  std::string checkpoint_stats_json() override { return board_->checkpoints.to_json(); }
  void kill_subtask(int32_t vertex, int32_t subtask) override {
    caf::anon_send(job_master_, kill_atom::value, vertex, subtask);
  }
  int32_t restarts() const override { return board_->restarts.load(); }

  runtime::state_query_result query_state(const std::string& uid, const std::string& key,
                                          std::chrono::milliseconds timeout) override {
    using runtime::state_query_status;
    if (!job_master_ || runtime::is_globally_terminal(status()))
      return {state_query_status::not_running, {}};
    release_thread_logger release; // outlives `self`
    caf::scoped_actor self{*system_};
    runtime::state_query_result out;
    self->request(job_master_, timeout, query_atom::value, uid, key)
      .receive(
        [&](int32_t s, std::string& body) {
          out.status = static_cast<state_query_status>(s);
          out.body = std::move(body);
        },
        [&](caf::error& err) {
          // The JobMaster is gone once the job has ended.
          out.status = err == caf::sec::request_timeout ? state_query_status::timeout
                                                        : state_query_status::not_running;
          out.body = system_->render(err);
        });
    return out;
  }

  runtime::job_result wait() override {
    std::unique_lock<std::mutex> lock(board_->mtx);
    board_->cv.wait(lock, [&] { return runtime::is_globally_terminal(board_->status); });
    return result_locked();
  }

  std::optional<runtime::job_result> wait_for(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(board_->mtx);
    if (!board_->cv.wait_for(lock, timeout,
                             [&] { return runtime::is_globally_terminal(board_->status); }))
      return std::nullopt;
    return result_locked();
  }

private:
  std::string savepoint(const std::string& directory, bool stop, bool drain) {
    if (!job_master_)
      throw runtime::checkpoint_error("the job is not running");
    release_thread_logger release; // outlives `self`
    caf::scoped_actor self{*system_};
    std::string path, error;
    self->request(job_master_, std::chrono::minutes(10), savepoint_atom::value, directory, stop,
                  drain)
      .receive([&](std::string& p) { path = std::move(p); },
               [&](caf::error& err) {
                 error = err.context().empty() ? system_->render(err)
                                               : caf::to_string(err.context());
               });
    if (!error.empty())
      throw runtime::checkpoint_error("savepoint failed: " + error);
    return path;
  }

  runtime::job_result result_locked() const {
    runtime::job_result r;
    r.status = board_->status;
    r.error = board_->error;
    r.duration = std::chrono::milliseconds((board_->end_ns - board_->start_ns) / 1000000);
    return r;
  }

  std::shared_ptr<void> cluster_;
  caf::actor_system* system_;
  std::shared_ptr<job_board> board_;
  caf::actor job_master_;
  std::mutex mtx_;
  std::vector<metrics_window_mark> last_;
};

} // namespace

std::shared_ptr<runtime::job_client>
submit_job(std::shared_ptr<void> owner, caf::actor_system& system, caf::actor dispatcher,
           std::weak_ptr<const slot_board> slots, std::shared_ptr<const runtime::job_graph> job,
           const runtime::configuration& config, std::string spec) {
  auto board = std::make_shared<job_board>();
  board->id = random_job_id();
  board->name = job->name();
  board->start_ns = steady_now_ns();
  board->start_ms = wall_now_ms();
  board->status_times[job_status::created] = board->start_ms;
  for (const auto& v : job->vertices())
    for (int32_t i = 0; i < v.parallelism; ++i) {
      auto cell = std::make_shared<subtask_metrics_cell>();
      cell->task = v.name;
      cell->vertex_id = v.hex_id;
      cell->subtask = i;
      board->cells.push_back(std::move(cell));
    }
  // Every job is visible to the REST API of this process from here on.
  auto registered = [&](caf::actor job_master) -> std::shared_ptr<runtime::job_client> {
    auto client = std::make_shared<local_job_client>(owner, system, board, std::move(job_master));
    local_job_registry::global()->add(board, *job, config, slots, client);
    return client;
  };
  auto refused = [&](const std::string& why) {
    board->add_failure(why);
    board->set_status(job_status::failed, why);
    return registered(caf::actor{});
  };
  // Settings are checked and the restore point is read here, on the
  // caller's thread, not in an actor.
  std::shared_ptr<const runtime::restore_point> restore;
  try {
    runtime::validate(config.checkpoints);
    runtime::validate(config.restart);
  } catch (const std::exception& e) {
    return refused(std::string("cannot run job: ") + e.what());
  }
  if (!config.restore.path.empty()) {
    try {
      auto rp = std::make_shared<runtime::restore_point>(
        runtime::restore_point::read(config.restore.path));
      std::vector<std::string> uids;
      for (const auto& n : job->graph().nodes)
        uids.push_back(runtime::operator_uid(n));
      runtime::check_state_mapping(*rp, uids, config.restore.allow_non_restored_state);
      restore = std::move(rp);
    } catch (const std::exception& e) {
      return refused(std::string("cannot run job: ") + e.what());
    }
  }
  release_thread_logger release; // outlives `self`
  caf::scoped_actor self{system};
  caf::actor job_master;
  std::string error;
  job_submission sub{job, config, board, std::move(restore), std::move(spec)};
  self->request(dispatcher, std::chrono::seconds(30), submit_atom::value, std::move(sub))
    .receive([&](caf::actor jm) { job_master = std::move(jm); },
             [&](caf::error& err) { error = system.render(err); });
  if (!job_master)
    return refused("cannot submit job: " + error);
  self->send(job_master, start_atom::value);
  return registered(std::move(job_master));
}

std::shared_ptr<runtime::job_client>
local_executor::submit(std::shared_ptr<const runtime::job_graph> job,
                       const runtime::configuration& config) {
  auto slots = config.slots_per_taskmanager > 0 ? config.slots_per_taskmanager
                                                : job->required_slots();
  auto cluster = std::make_shared<mini_cluster>(config, slots);
  auto& system = cluster->system();
  auto dispatcher = cluster->job_manager();
  std::weak_ptr<const slot_board> board = cluster->slots();
  return submit_job(std::move(cluster), system, std::move(dispatcher), std::move(board),
                    std::move(job), config, {});
}

} // namespace sluice::actors
