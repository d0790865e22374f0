#include "sluice/remote/cluster/membership.hpp"

#include "sluice/actors/cluster_view.hpp"
#include "sluice/actors/distributed.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/runtime/settings.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <stdexcept>

namespace sluice::remote::cluster {

namespace {

using tick_atom = caf::atom_constant<caf::atom("mb_tick")>;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// The membership actor's state: the connection to each registered
/// TaskManager (to send heartbeats and notice a closed connection) next to
/// the shared registry the REST API reads.
struct membership_state {
  std::shared_ptr<task_manager_registry> registry;
  std::map<std::string, caf::actor> connections;
  heartbeat_settings heartbeats;
  std::function<void(const std::string&)> log;
  /// The dispatcher whose slots the TaskManagers' executors offer; told of
  /// every registration and loss (null: membership only).
  caf::actor dispatcher;
  /// Ticks come every half interval; heartbeats go out on every other one.
  uint64_t ticks = 0;

  /// Tells the dispatcher that TaskManager `id` is gone: its slots go, and
  /// the jobs that ran subtasks on it fail over.
  template <class Self>
  void lost(Self* self, const std::string& id, const std::string& why) {
    if (dispatcher)
      self->send(dispatcher, actors::lost_atom::value, id, why);
  }
  static inline const char* name = "sluice.membership";
};

using membership_actor = caf::stateful_actor<membership_state>;

caf::behavior membership_impl(membership_actor* self, std::shared_ptr<task_manager_registry> reg,
                              heartbeat_settings hb, std::function<void(const std::string&)> log,
                              caf::actor dispatcher) {
  self->state.registry = std::move(reg);
  self->state.dispatcher = std::move(dispatcher);
  self->state.heartbeats = hb;
  self->state.log = std::move(log);
  // A closed connection (the TaskManager process exited or was killed) is
  // noticed at once; the heartbeat timeout covers a TaskManager that hangs
  // or a network that drops packets without closing anything.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto i = st.connections.begin(); i != st.connections.end(); ++i)
      if (i->second.address() == dm.source) {
        auto id = i->first;
        st.connections.erase(i);
        if (st.registry->remove(id)) {
          st.log("TaskManager " + id + " lost: connection closed");
          st.lost(self, id, "connection closed");
        }
        return;
      }
  });
  self->delayed_send(self, hb.interval, tick_atom::value);
  return {
    // The sender is whoever asked (a TaskManager's registering thread);
    // the TaskManager actor to watch comes with the message.
    [self](tm_reg_atom, task_manager_registration& r, caf::actor& tm, caf::actor& executor) {
      auto& st = self->state;
      if (auto old = st.connections.find(r.id); old != st.connections.end())
        self->demonitor(old->second);
      if (tm) {
        self->monitor(tm);
        st.connections[r.id] = tm;
      }
      st.registry->add(r, task_manager_registry::clock::now());
      st.log("TaskManager " + r.id + " registered (" + std::to_string(r.slots) + " slots, " +
             r.host + ":" + std::to_string(r.port) + ")");
      // A TaskManager registering again replaces its earlier self: the
      // dispatcher drops the old slots first.
      st.lost(self, r.id, "it registered again");
      if (st.dispatcher && executor)
        self->send(st.dispatcher, actors::register_atom::value, executor, r.slots, r.id);
      return tm_reg_atom::value;
    },
    [self](tm_hb_atom, const std::string& id) {
      if (!self->state.registry->heartbeat(id, task_manager_registry::clock::now()))
        if (auto tm = caf::actor_cast<caf::actor>(self->current_sender()))
          self->send(tm, tm_unknown_atom::value);
    },
    [self](tm_bye_atom, const std::string& id) {
      auto& st = self->state;
      if (auto i = st.connections.find(id); i != st.connections.end()) {
        self->demonitor(i->second);
        st.connections.erase(i);
      }
      if (st.registry->remove(id)) {
        st.log("TaskManager " + id + " deregistered");
        st.lost(self, id, "it stopped");
      }
      return tm_bye_atom::value;
    },
    [self](tick_atom) {
      auto& st = self->state;
      if (st.ticks++ % 2 == 0)
        for (auto& [id, tm] : st.connections)
          self->send(tm, jm_hb_atom::value);
      for (auto& id : st.registry->expire(task_manager_registry::clock::now(),
                                          st.heartbeats.timeout)) {
        if (auto i = st.connections.find(id); i != st.connections.end()) {
          self->demonitor(i->second);
          st.connections.erase(i);
        }
        auto why = "no heartbeat for " + std::to_string(st.heartbeats.timeout.count()) + " ms";
        st.log("TaskManager " + id + " lost: " + why);
        st.lost(self, id, why);
      }
      // Checked twice per interval, so a loss is noticed at most half an
      // interval after the timeout.
      self->delayed_send(self, st.heartbeats.interval / 2, tick_atom::value);
    },
  };
}

/// Drops this thread's reference to the logger of the last actor system it
/// used (see actors/cluster.cpp: ~actor_system waits for it otherwise).
struct release_thread_logger {
  release_thread_logger() = default;
  release_thread_logger(const release_thread_logger&) = delete;
  release_thread_logger& operator=(const release_thread_logger&) = delete;
  ~release_thread_logger() { caf::logger::set_current_actor_system(nullptr); }
};

} // namespace

heartbeat_settings take_heartbeat_settings(std::map<std::string, std::string>& settings) {
  heartbeat_settings hb;
  if (auto i = settings.find("heartbeat.interval"); i != settings.end()) {
    hb.interval = runtime::parse_flink_duration(i->second, "heartbeat.interval");
    settings.erase(i);
  }
  if (auto i = settings.find("heartbeat.timeout"); i != settings.end()) {
    hb.timeout = runtime::parse_flink_duration(i->second, "heartbeat.timeout");
    settings.erase(i);
  }
  if (hb.interval.count() <= 0)
    throw std::invalid_argument("heartbeat.interval must be positive");
  if (hb.timeout < hb.interval)
    throw std::invalid_argument("heartbeat.timeout (" + std::to_string(hb.timeout.count()) +
                                " ms) must not be shorter than heartbeat.interval (" +
                                std::to_string(hb.interval.count()) + " ms)");
  return hb;
}

void task_manager_registry::add(const task_manager_registration& r, clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  entries_[r.id] = entry{r, now, wall_ms()};
}

bool task_manager_registry::heartbeat(const std::string& id, clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = entries_.find(id);
  if (i == entries_.end())
    return false;
  i->second.last_heartbeat = now;
  i->second.last_heartbeat_ms = wall_ms();
  return true;
}

bool task_manager_registry::remove(const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  return entries_.erase(id) > 0;
}

std::vector<std::string> task_manager_registry::expire(clock::time_point now,
                                                       std::chrono::milliseconds timeout) {
  std::vector<std::string> lost;
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto i = entries_.begin(); i != entries_.end();) {
    if (now - i->second.last_heartbeat > timeout) {
      lost.push_back(i->first);
      i = entries_.erase(i);
    } else {
      ++i;
    }
  }
  return lost;
}

std::vector<actors::task_manager_info> task_manager_registry::list() const {
  std::vector<actors::task_manager_info> out;
  std::lock_guard<std::mutex> guard{mtx_};
  for (const auto& [id, e] : entries_) {
    const auto& r = e.registration;
    actors::task_manager_info tm;
    tm.id = id;
    tm.slots = r.slots;
    tm.free_slots = r.slots;
    tm.path = "caf.tcp://" + r.host + ":" + std::to_string(r.port) + "/taskmanager";
    tm.data_port = r.port;
    tm.last_heartbeat_ms = e.last_heartbeat_ms;
    tm.cpu_cores = r.cpu_cores;
    tm.physical_memory = r.physical_memory;
    tm.free_memory = r.free_memory;
    out.push_back(std::move(tm));
  }
  return out;
}

size_t task_manager_registry::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return entries_.size();
}

struct membership_service::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> system;
  caf::actor membership;
  caf::actor dispatcher;
};

caf::expected<std::unique_ptr<membership_service>>
membership_service::start(const std::string& address, uint16_t port,
                          heartbeat_settings heartbeats,
                          std::function<void(const std::string&)> log,
                          std::chrono::milliseconds slot_request_timeout) {
  release_thread_logger release;
  std::unique_ptr<membership_service> svc{new membership_service()};
  svc->registry_ = std::make_shared<task_manager_registry>();
  svc->slots_ = std::make_shared<actors::slot_board>();
  svc->impl_ = std::make_unique<impl>();
  auto& cfg = svc->impl_->cfg;
  // Membership is a few messages per second: two workers are plenty, and
  // every thread is a stack in the JobManager's memory.
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.load<caf::io::middleman>();
  add_membership_types(cfg);
  actors::add_cluster_message_types(cfg);
  svc->impl_->system = std::make_unique<caf::actor_system>(cfg);
  auto& sys = *svc->impl_->system;
  svc->impl_->dispatcher = sys.spawn(actors::cluster_dispatcher_impl, svc->slots_,
                                                slot_request_timeout);
  svc->impl_->membership = sys.spawn(membership_impl, svc->registry_, heartbeats, std::move(log),
                                     svc->impl_->dispatcher);
  auto bind = address == "localhost" ? std::string("127.0.0.1") : address;
  // SO_REUSEADDR: a JobManager restarted on its port must not wait for the
  // old connections' TIME_WAIT; a live listener still makes this fail.
  auto bound = sys.middleman().publish(svc->impl_->membership, port, bind.c_str(), true);
  if (!bound) {
    auto why = sys.render(bound.error());
    svc->stop();
    return make_error(remote_errc::server_failed, "cannot listen for TaskManagers on " + bind +
                                                    ":" + std::to_string(port) + ": " + why);
  }
  svc->port_ = *bound;
  return svc;
}

membership_service::~membership_service() {
  stop();
}

void membership_service::stop() {
  if (!impl_ || !impl_->system)
    return;
  release_thread_logger release;
  auto& sys = *impl_->system;
  if (port_ != 0)
    (void) sys.middleman().unpublish(impl_->membership, port_);
  caf::anon_send_exit(impl_->membership, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(impl_->dispatcher, caf::exit_reason::user_shutdown);
  impl_->membership = nullptr;
  impl_->dispatcher = nullptr;
  impl_->system.reset();
}

caf::actor_system& membership_service::system() {
  return *impl_->system;
}

caf::actor membership_service::dispatcher() const {
  return impl_->dispatcher;
}

std::vector<actors::task_manager_info> session_cluster_view::task_managers() const {
  auto out = jobs_->task_managers();
  std::map<std::string, int32_t> free;
  if (slots_) {
    std::lock_guard<std::mutex> guard{slots_->mtx};
    for (const auto& tm : slots_->task_managers)
      free[tm.id] = tm.free;
  }
  for (auto& tm : members_->list()) {
    if (auto i = free.find(tm.id); i != free.end())
      tm.free_slots = std::min(tm.free_slots, i->second);
    out.push_back(std::move(tm));
  }
  return out;
}

} // namespace sluice::remote::cluster
