#include "sluice/remote/cluster/task_manager.hpp"

#include "sluice/actors/cluster.hpp"
#include "sluice/actors/distributed.hpp"
#include "sluice/remote/cluster/job_manager.hpp"
#include "sluice/remote/cluster/job_spec.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/settings_file.hpp"
#include "sluice/runtime/settings.hpp"
#include "sluice/state/work_dir.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include <unistd.h>

namespace sluice::remote::cluster {

namespace fs = std::filesystem;

namespace {

using connect_atom = caf::atom_constant<caf::atom("tm_conn")>;
using tick_atom = caf::atom_constant<caf::atom("tm_tick")>;
using id_atom = caf::atom_constant<caf::atom("tm_id")>;
using clock_type = std::chrono::steady_clock;

/// What the TaskManager actor and the registering thread share: whether the
/// TaskManager is registered, with which JobManager, and why it was lost.
struct registration_link {
  std::mutex mtx;
  std::condition_variable cv;
  bool stopping = false;
  bool registered = false;
  caf::actor job_manager;
  std::string lost_reason;
};

struct tm_state {
  std::shared_ptr<registration_link> link;
  caf::actor job_manager;
  clock_type::time_point last_heartbeat;
  std::string id;
  heartbeat_settings heartbeats;
  static inline const char* name = "sluice.taskmanager";
};

using tm_actor = caf::stateful_actor<tm_state>;

/// The TaskManager actor: heartbeats to the JobManager it was connected to,
/// and the watch on the JobManager's heartbeats and connection. Registering
/// (a blocking connect) is the registering thread's job, not an actor's.
caf::behavior tm_impl(tm_actor* self, std::shared_ptr<registration_link> link,
                      heartbeat_settings hb) {
  self->state.link = std::move(link);
  self->state.heartbeats = hb;
  auto lose = [self](const std::string& why) {
    auto& st = self->state;
    if (!st.job_manager)
      return;
    self->demonitor(st.job_manager);
    st.job_manager = nullptr;
    {
      std::lock_guard<std::mutex> guard{st.link->mtx};
      st.link->registered = false;
      st.link->job_manager = nullptr;
      st.link->lost_reason = why;
    }
    st.link->cv.notify_all();
  };
  self->set_down_handler([self, lose](caf::down_msg& dm) {
    if (self->state.job_manager && dm.source == self->state.job_manager.address())
      lose("connection closed");
  });
  self->delayed_send(self, hb.interval, tick_atom::value);
  return {
    [self](id_atom, std::string& id) { self->state.id = std::move(id); },
    [self](connect_atom, caf::actor& jm) {
      auto& st = self->state;
      if (st.job_manager)
        self->demonitor(st.job_manager);
      st.job_manager = std::move(jm);
      self->monitor(st.job_manager);
      st.last_heartbeat = clock_type::now();
    },
    [self](jm_hb_atom) {
      auto& st = self->state;
      if (st.job_manager &&
          caf::actor_cast<caf::actor_addr>(self->current_sender()) == st.job_manager.address())
        st.last_heartbeat = clock_type::now();
    },
    [lose](tm_unknown_atom) { lose("it no longer knows this TaskManager"); },
    [self, lose](tick_atom) {
      auto& st = self->state;
      if (st.job_manager) {
        if (clock_type::now() - st.last_heartbeat > st.heartbeats.timeout)
          lose("no heartbeat for " + std::to_string(st.heartbeats.timeout.count()) + " ms");
        else
          self->send(st.job_manager, tm_hb_atom::value, st.id);
      }
      self->delayed_send(self, st.heartbeats.interval, tick_atom::value);
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

std::string random_suffix() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 6; ++i)
    s += hex[rd() % 16];
  return s;
}

} // namespace

task_manager_settings read_task_manager_settings(const std::map<std::string, std::string>& in,
                                                 std::vector<std::string>& warnings) {
  auto rest = in;
  task_manager_settings s;
  auto take = [&](const char* key) { return take_setting(rest, key); };
  auto address = [](const char* key, const std::string& v) {
    if (v.empty() || v.find_first_of(" \t/") != std::string::npos)
      throw std::invalid_argument(std::string(key) + ": '" + v + "' is not a host name or address");
    return v;
  };
  if (auto v = take("jobmanager.rpc.address"))
    s.job_manager_address = address("jobmanager.rpc.address", *v);
  if (auto v = take("jobmanager.rpc.port"))
    s.job_manager_port =
      static_cast<uint16_t>(runtime::parse_setting_int("jobmanager.rpc.port", *v, 1, 65535));
  if (auto v = take("taskmanager.host"))
    s.host = address("taskmanager.host", *v);
  if (auto v = take("taskmanager.rpc.port"))
    s.port = static_cast<uint16_t>(runtime::parse_setting_int("taskmanager.rpc.port", *v, 0, 65535));
  if (auto v = take("taskmanager.resource-id")) {
    if (v->empty() || v->find_first_of(" \t/") != std::string::npos)
      throw std::invalid_argument("taskmanager.resource-id: '" + *v +
                                  "' must be non-empty, without spaces or slashes");
    s.resource_id = *v;
  }
  if (auto v = take("taskmanager.numberOfTaskSlots"))
    s.slots = static_cast<int32_t>(
      runtime::parse_setting_int("taskmanager.numberOfTaskSlots", *v, 1, 1024));
  s.heartbeats = take_heartbeat_settings(rest);
  // The file is shared with the JobManager: its keys are no surprise here.
  for (const auto& key : job_manager_keys())
    rest.erase(key);
  for (auto& w : runtime::apply_settings(s.job_config, rest))
    warnings.push_back(std::move(w));
  return s;
}

struct task_manager::impl {
  task_manager_settings settings;
  std::function<void(const std::string&)> log;
  task_manager_registration registration;
  std::shared_ptr<registration_link> link = std::make_shared<registration_link>();
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> system;
  caf::actor actor;
  /// Deploys and runs the subtasks JobMasters send (actors/distributed.hpp).
  caf::actor executor;
  /// Where the job libraries JobMasters sent are stored (removed on stop).
  std::string library_dir;
  std::shared_ptr<job_library_cache> libraries;
  uint16_t port = 0;
  std::thread registering;

  /// Waits `d`, or less when stopping; true when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock{link->mtx};
    return link->cv.wait_for(lock, d, [this] { return link->stopping; });
  }

  /// Registers, waits until the JobManager is lost, registers again; every
  /// second while it cannot. Each state is logged once, when entered.
  void run() {
    release_thread_logger release;
    auto& sys = *system;
    auto where = settings.job_manager_address + ":" + std::to_string(settings.job_manager_port);
    std::string state;
    auto enter = [&](const std::string& next, const std::string& line) {
      if (next != state)
        log(line);
      state = next;
    };
    for (;;) {
      {
        std::lock_guard<std::mutex> guard{link->mtx};
        if (link->stopping)
          return;
      }
      auto jm = sys.middleman().remote_actor(settings.job_manager_address,
                                             settings.job_manager_port);
      if (!jm) {
        enter("retrying", "cannot reach the JobManager at " + where + " (" +
                            sys.render(jm.error()) + "): retrying every second");
        if (pause(std::chrono::seconds(1)))
          return;
        continue;
      }
      bool ok = false;
      std::string why;
      {
        caf::scoped_actor self{sys};
        self->request(*jm, std::chrono::seconds(5), tm_reg_atom::value, registration, actor,
                      executor)
          .receive([&](tm_reg_atom) { ok = true; },
                   [&](caf::error& err) { why = sys.render(err); });
      }
      if (!ok) {
        enter("retrying", "the JobManager at " + where + " did not register this TaskManager (" +
                            why + "): retrying every second");
        if (pause(std::chrono::seconds(1)))
          return;
        continue;
      }
      {
        std::lock_guard<std::mutex> guard{link->mtx};
        link->registered = true;
        link->job_manager = *jm;
        link->lost_reason.clear();
      }
      caf::anon_send(actor, connect_atom::value, *jm);
      enter("registered", "registered at the JobManager at " + where + " as " + registration.id +
                            " (" + std::to_string(registration.slots) + " slots)");
      std::string reason;
      {
        std::unique_lock<std::mutex> lock{link->mtx};
        link->cv.wait(lock, [this] { return link->stopping || !link->registered; });
        if (link->stopping)
          return;
        reason = link->lost_reason;
      }
      enter("retrying", "lost the JobManager at " + where + " (" + reason +
                          "): registering again every second");
      if (pause(std::chrono::seconds(1)))
        return;
    }
  }
};

caf::expected<std::unique_ptr<task_manager>>
task_manager::start(const task_manager_settings& settings,
                    std::function<void(const std::string&)> log) {
  release_thread_logger release;
  std::unique_ptr<task_manager> tm{new task_manager()};
  tm->impl_ = std::make_shared<impl>();
  auto& d = *tm->impl_;
  d.settings = settings;
  d.log = std::move(log);
  // Subtasks run on this system: the scheduler is set up as a mini-cluster's.
  try {
    actors::configure_scheduler(d.cfg, settings.job_config);
  } catch (const std::exception& e) {
    return make_error(remote_errc::invalid_configuration, std::string("taskmanager: ") + e.what());
  }
  d.cfg.load<caf::io::middleman>();
  add_membership_types(d.cfg);
  actors::add_cluster_message_types(d.cfg);
  {
    // Named after host and pid, so the next TaskManager removes the
    // directory of one that was killed (state/work_dir.hpp).
    std::error_code ec;
    auto dir = state::make_process_dir(fs::temp_directory_path(), "sluice-taskmanager", ec);
    if (ec)
      return make_error(remote_errc::invalid_configuration,
                        "taskmanager: cannot make a directory for job libraries under " +
                          fs::temp_directory_path().string() + ": " + ec.message());
    d.library_dir = dir.string();
  }
  d.libraries = std::make_shared<job_library_cache>(d.library_dir);
  d.system = std::make_unique<caf::actor_system>(d.cfg);
  actors::job_resolver resolver = [libraries = d.libraries, log = d.log](
                                    const std::string& job_id, const std::string& spec) {
    auto built = libraries->resolve(job_id, spec);
    log("job " + job_id + ": running its subtasks here (" + built.graph->name() + ")");
    return actors::resolved_job{std::move(built.graph), std::move(built.config)};
  };
  d.executor = d.system->spawn(actors::task_executor_impl, settings.slots, std::move(resolver),
                               settings.job_config);
  auto& r = d.registration;
  r.host = settings.host;
  r.slots = settings.slots;
  r.cpu_cores = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  auto page = static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
  r.physical_memory = page * static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES));
  r.free_memory = page * static_cast<int64_t>(::sysconf(_SC_AVPHYS_PAGES));
  // The id names the port, known once the actor is published: the actor
  // is told its id afterwards, before the first registration.
  auto bind = settings.host == "localhost" ? std::string("127.0.0.1") : settings.host;
  d.actor = d.system->spawn(tm_impl, d.link, settings.heartbeats);
  auto bound = d.system->middleman().publish(d.actor, settings.port, bind.c_str(), true);
  if (!bound) {
    auto why = d.system->render(bound.error());
    caf::anon_send_exit(d.actor, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(d.executor, caf::exit_reason::user_shutdown);
    d.system.reset();
    std::error_code ec;
    fs::remove_all(d.library_dir, ec);
    return make_error(remote_errc::server_failed, "taskmanager: cannot listen on " + bind + ":" +
                                                    std::to_string(settings.port) + ": " + why);
  }
  d.port = *bound;
  r.port = d.port;
  r.id = settings.resource_id.empty()
           ? settings.host + ":" + std::to_string(d.port) + "-" + random_suffix()
           : settings.resource_id;
  caf::anon_send(d.actor, id_atom::value, r.id);
  d.registering = std::thread([impl = tm->impl_.get()] { impl->run(); });
  return tm;
}

task_manager::~task_manager() {
  stop();
}

const std::string& task_manager::id() const noexcept {
  return impl_->registration.id;
}

bool task_manager::registered() const {
  std::lock_guard<std::mutex> guard{impl_->link->mtx};
  return impl_->link->registered;
}

void task_manager::stop() {
  if (!impl_ || !impl_->system)
    return;
  auto& d = *impl_;
  {
    std::lock_guard<std::mutex> guard{d.link->mtx};
    d.link->stopping = true;
  }
  d.link->cv.notify_all();
  if (d.registering.joinable())
    d.registering.join();
  release_thread_logger release;
  caf::actor jm;
  {
    std::lock_guard<std::mutex> guard{d.link->mtx};
    if (d.link->registered)
      jm = d.link->job_manager;
  }
  if (jm) {
    // Deregister and wait for the answer: the JobManager drops this
    // TaskManager at once instead of after the heartbeat timeout.
    caf::scoped_actor self{*d.system};
    self->request(jm, std::chrono::seconds(1), tm_bye_atom::value, d.registration.id)
      .receive([](tm_bye_atom) {}, [](caf::error&) {});
  }
  (void) d.system->middleman().unpublish(d.actor, d.port);
  caf::anon_send_exit(d.actor, caf::exit_reason::user_shutdown);
  // The executor's subtasks end with it (they are linked to it).
  caf::anon_send_exit(d.executor, caf::exit_reason::user_shutdown);
  d.actor = nullptr;
  d.executor = nullptr;
  d.system.reset();
  std::error_code ec;
  fs::remove_all(d.library_dir, ec);
}

} // namespace sluice::remote::cluster
