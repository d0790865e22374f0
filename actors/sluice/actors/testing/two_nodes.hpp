#pragma once

#include "sluice/actors/messages.hpp"
#include "sluice/actors/subtask.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

/// A harness for tests and benchmarks of the cross-node data plane: two CAF
/// actor systems in one process, joined by the middleman over loopback, that
/// run the subtasks of one job split between them. It stands in for the
/// JobMaster (a recording actor) and deploys and wires subtasks the way
/// job_master.cpp does. Needs CAF::io; not part of the sluice_actors library.
namespace sluice::actors::testing {

/// Configuration of one node: the middleman and every cluster message type.
struct node_config : caf::actor_system_config {
  explicit node_config(size_t threads) {
    set("scheduler.max-threads", threads);
    load<caf::io::middleman>();
    add_cluster_message_types(*this);
  }
};

/// What the subtasks told their (fake) JobMaster; read from the test thread.
struct master_log {
  std::mutex mtx;
  std::condition_variable changed;
  std::vector<subtask_report> reports;
  std::vector<checkpoint_ack> acks;
  std::vector<std::string> declines;
  int eods = 0;

  /// Waits until `pred()` holds (under the lock), at most `timeout`.
  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> guard(mtx);
    return changed.wait_for(guard, timeout, pred);
  }
  /// Reports in state `s`.
  size_t count(runtime::execution_state s) const {
    size_t n = 0;
    for (auto& r : reports)
      n += r.state() == s ? 1 : 0;
    return n;
  }
};

/// A JobMaster that only records what reaches it.
inline caf::behavior recording_master(caf::event_based_actor*, std::shared_ptr<master_log> log) {
  auto note = [log](auto&& f) {
    {
      std::lock_guard<std::mutex> guard(log->mtx);
      f(*log);
    }
    log->changed.notify_all();
  };
  return {
    [note](state_atom, const subtask_report& r) { note([&](master_log& l) { l.reports.push_back(r); }); },
    [note](ack_atom, const checkpoint_ack& a) { note([&](master_log& l) { l.acks.push_back(a); }); },
    [note](decline_atom, int64_t, int32_t, int32_t, int32_t, const std::string& why) {
      note([&](master_log& l) { l.declines.push_back(why); });
    },
    [note](eod_atom, int32_t, int32_t, int32_t) { note([](master_log& l) { ++l.eods; }); },
  };
}

/// The live metrics cells of every subtask of the job, by (vertex, index).
using cell_map = std::map<std::pair<int32_t, int32_t>, std::shared_ptr<subtask_metrics_cell>>;

/// What a node needs to start subtasks of the job.
struct job_setup {
  std::shared_ptr<const runtime::job_graph> job;
  runtime::configuration config;
  std::string checkpoint_dir;
};

/// Spawns a subtask in `sys` for the job, reporting to `master`.
inline subtask_actor spawn_subtask(caf::actor_system& sys, const job_setup& s, int32_t vertex,
                                   int32_t index, caf::actor master,
                                   std::shared_ptr<subtask_metrics_cell> cell) {
  subtask_deployment d{s.job,         s.config,         vertex, index, std::move(master),
                       std::move(cell), 0, s.checkpoint_dir, nullptr};
  return sys.spawn(subtask_impl, std::move(d));
}

/// The far node's TaskManager stand-in: spawns a subtask on request of
/// another node and replies with its handle.
inline caf::behavior test_executor(caf::event_based_actor* self, job_setup s,
                                   std::shared_ptr<cell_map> cells) {
  return {
    [self, s, cells](deploy_atom, int32_t vertex, int32_t index, caf::actor master) {
      return spawn_subtask(self->system(), s, vertex, index, std::move(master),
                           cells->at({vertex, index}));
    },
  };
}

/// Two nodes running one job: subtask (v, i) runs on node 1 when
/// `on_far(v, i)`, else on node 0 with the JobMaster.
class two_node_job {
public:
  two_node_job(job_setup s, std::function<bool(int32_t, int32_t)> on_far, size_t threads = 2)
    : setup_(std::move(s)), near_cfg_(threads), far_cfg_(threads),
      near_(std::make_unique<caf::actor_system>(near_cfg_)),
      far_(std::make_unique<caf::actor_system>(far_cfg_)), log_(std::make_shared<master_log>()),
      cells_(std::make_shared<cell_map>()) {
    const auto& job = *setup_.job;
    for (const auto& v : job.vertices())
      for (int32_t i = 0; i < v.parallelism; ++i)
        (*cells_)[{v.id, i}] = std::make_shared<subtask_metrics_cell>();
    master_ = near_->spawn(recording_master, log_);
    executor_ = far_->spawn(test_executor, setup_, cells_);
    auto port = far_->middleman().publish(executor_, 0, "127.0.0.1");
    if (!port)
      throw std::runtime_error("publish: " + far_->render(port.error()));
    auto remote = near_->middleman().remote_actor("127.0.0.1", *port);
    if (!remote)
      throw std::runtime_error("remote_actor: " + near_->render(remote.error()));
    // Deploy as the JobMaster does: a handle per subtask, then the wiring.
    caf::scoped_actor self{*near_};
    subtasks_.resize(job.vertices().size());
    for (const auto& v : job.vertices()) {
      for (int32_t i = 0; i < v.parallelism; ++i) {
        if (!on_far(v.id, i)) {
          subtasks_[v.id].push_back(
            spawn_subtask(*near_, setup_, v.id, i, master_, cells_->at({v.id, i})));
          continue;
        }
        subtask_actor h;
        std::string error;
        self->request(*remote, std::chrono::seconds(10), deploy_atom::value, v.id, i, master_)
          .receive([&](subtask_actor& x) { h = std::move(x); },
                   [&](caf::error& e) { error = near_->render(e); });
        if (!h)
          throw std::runtime_error("remote deploy failed: " + error);
        subtasks_[v.id].push_back(std::move(h));
      }
    }
  }

  ~two_node_job() {
    for (auto& per_vertex : subtasks_)
      for (auto& s : per_vertex)
        caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(master_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(executor_, caf::exit_reason::user_shutdown);
    subtasks_.clear();
    master_ = nullptr;
    executor_ = nullptr;
    // CAF 0.17 pins the logger of the last system a thread used; drop it
    // so the systems can go (see cluster.cpp).
    caf::logger::set_current_actor_system(nullptr);
    far_.reset();
    near_.reset();
  }

  /// Wires every subtask (as job_master.cpp's wire_and_start) and starts it.
  void start() {
    const auto& job = *setup_.job;
    std::map<std::pair<int32_t, int32_t>, std::map<std::pair<int32_t, int32_t>, uint32_t>>
      channel_of;
    for (const auto& v : job.vertices())
      for (int32_t i = 0; i < v.parallelism; ++i) {
        auto ins = job.input_channels(v.id, i);
        for (size_t c = 0; c < ins.size(); ++c)
          channel_of[{v.id, i}][{ins[c].in_edge, ins[c].upstream_subtask}] =
            static_cast<uint32_t>(c);
      }
    caf::scoped_actor self{*near_};
    for (const auto& v : job.vertices()) {
      for (int32_t i = 0; i < v.parallelism; ++i) {
        subtask_wiring w;
        for (auto e : v.out_edges) {
          auto dv = job.vertex_of_node(job.graph().edges[e].target);
          const auto& down = job.vertices()[dv];
          auto k = static_cast<int32_t>(
            std::find(down.in_edges.begin(), down.in_edges.end(), e) - down.in_edges.begin());
          std::vector<std::pair<subtask_actor, uint32_t>> chans;
          for (auto j : job.connected_subtasks(e, i))
            chans.emplace_back(subtasks_[dv][j], channel_of[{dv, j}][{k, i}]);
          w.outputs.push_back(std::move(chans));
        }
        for (const auto& c : job.input_channels(v.id, i))
          w.inputs.push_back(subtasks_[c.upstream_vertex][c.upstream_subtask]);
        self->send(subtasks_[v.id][i], setup_atom::value, std::move(w));
      }
    }
    for (auto& per_vertex : subtasks_)
      for (auto& s : per_vertex)
        self->send(s, start_atom::value);
  }

  size_t total() const {
    size_t n = 0;
    for (auto& per_vertex : subtasks_)
      n += per_vertex.size();
    return n;
  }

  /// Waits for every subtask's end of data, lets them finish, and waits for
  /// their FINISHED reports; false if a subtask failed or time ran out.
  bool run_to_end(std::chrono::milliseconds timeout) {
    auto n = total();
    bool at_end = log_->wait(
      [&] {
        return log_->eods == static_cast<int>(n) ||
               log_->count(runtime::execution_state::failed) > 0;
      },
      timeout);
    if (!at_end || failed())
      return false;
    send_to_all(finish_atom::value);
    return log_->wait([&] { return log_->count(runtime::execution_state::finished) == n; },
                      timeout);
  }

  /// Starts checkpoint `id` at the sources (vertices without inputs).
  void trigger_checkpoint(int64_t id) {
    caf::scoped_actor self{*near_};
    for (const auto& v : setup_.job->vertices())
      if (v.in_edges.empty())
        for (auto& s : subtasks_[v.id])
          self->send(s, checkpoint_atom::value, checkpoint_trigger{id, 0, false, false});
  }

  template <class... Ts>
  void send_to_all(Ts... xs) {
    caf::scoped_actor self{*near_};
    for (auto& per_vertex : subtasks_)
      for (auto& s : per_vertex)
        self->send(s, xs...);
  }

  bool failed() {
    std::lock_guard<std::mutex> guard(log_->mtx);
    return log_->count(runtime::execution_state::failed) > 0;
  }
  /// The first failure reported, or "".
  std::string first_error() {
    std::lock_guard<std::mutex> guard(log_->mtx);
    for (auto& r : log_->reports)
      if (r.state() == runtime::execution_state::failed)
        return r.error;
    return {};
  }

  master_log& log() { return *log_; }
  subtask_metrics_cell& cell(int32_t vertex, int32_t index) { return *cells_->at({vertex, index}); }
  const subtask_actor& subtask(int32_t vertex, int32_t index) const {
    return subtasks_[vertex][index];
  }
  caf::actor_system& near_system() { return *near_; }
  caf::actor_system& far_system() { return *far_; }

private:
  job_setup setup_;
  node_config near_cfg_;
  node_config far_cfg_;
  std::unique_ptr<caf::actor_system> near_;
  std::unique_ptr<caf::actor_system> far_;
  std::shared_ptr<master_log> log_;
  std::shared_ptr<cell_map> cells_;
  caf::actor master_;
  caf::actor executor_; ///< in the far node
  std::vector<std::vector<subtask_actor>> subtasks_;
};

} // namespace sluice::actors::testing
