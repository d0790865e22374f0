#pragma once

#include "sluice/actors/cluster.hpp"
#include "sluice/actors/cluster_view.hpp"
#include "sluice/remote/cluster/membership_messages.hpp"

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

/// The JobManager's side of TaskManager membership: the registry of
/// TaskManager processes with their heartbeats, the membership actor
/// published on jobmanager.rpc.address:port, and the cluster view the REST
/// API reads (the jobs' in-process TaskManagers plus the registered ones).
namespace sluice::remote::cluster {

/// heartbeat.interval and heartbeat.timeout (1 s and 5 s by default: a lost
/// TaskManager is noticed in seconds, not Flink's 50 s).
struct heartbeat_settings {
  std::chrono::milliseconds interval{1000};
  std::chrono::milliseconds timeout{5000};
};

/// Takes heartbeat.interval and heartbeat.timeout out of `settings`; throws
/// std::invalid_argument when one is not a positive duration or the
/// timeout is shorter than the interval.
[[nodiscard]] heartbeat_settings take_heartbeat_settings(std::map<std::string, std::string>& settings);

/// The TaskManager processes registered with the JobManager and when each
/// was last heard from. Pure bookkeeping (no actor, no clock of its own):
/// the membership actor writes it, the REST threads read it. Thread-safe.
class task_manager_registry {
public:
  using clock = std::chrono::steady_clock;

  /// Adds (or replaces, for a TaskManager that registers again) `r`.
  void add(const task_manager_registration& r, clock::time_point now);
  /// Records a heartbeat; false if `id` is not registered.
  [[nodiscard]] bool heartbeat(const std::string& id, clock::time_point now);
  /// Removes `id`; false if it was not registered.
  bool remove(const std::string& id);
  /// Removes and returns the ids not heard from for longer than `timeout`.
  [[nodiscard]] std::vector<std::string> expire(clock::time_point now,
                                                std::chrono::milliseconds timeout);
  /// The registered TaskManagers, by id (free slots = all: they run no
  /// subtasks yet).
  [[nodiscard]] std::vector<actors::task_manager_info> list() const;
  [[nodiscard]] size_t size() const;

private:
  struct entry {
    task_manager_registration registration;
    clock::time_point last_heartbeat;
    int64_t last_heartbeat_ms = 0; ///< wall clock, for the REST API
  };
  mutable std::mutex mtx_;
  std::map<std::string, entry> entries_;
};

/// The membership service of a JobManager: an actor system with CAF's
/// middleman, the membership actor published on `address`:`port`, and the
/// dispatcher of jobs on TaskManager processes, which the membership actor
/// tells of every TaskManager that registers (with its executor and slots)
/// or is lost.
/// Stopping (or destruction) closes every TaskManager connection.
class membership_service {
public:
  /// Publishes the membership actor on `address` (an IP address or host
  /// name) and `port` (0 = any free one). `log` gets one line per
  /// membership change (registered, deregistered, lost and why). Fails with
  /// `server_failed` when the port is in use.
  [[nodiscard]] static caf::expected<std::unique_ptr<membership_service>>
  start(const std::string& address, uint16_t port, heartbeat_settings heartbeats,
        std::function<void(const std::string&)> log,
        std::chrono::milliseconds slot_request_timeout = std::chrono::minutes(5));

  ~membership_service();
  membership_service(const membership_service&) = delete;
  membership_service& operator=(const membership_service&) = delete;

  /// The bound RPC port.
  [[nodiscard]] uint16_t port() const noexcept { return port_; }
  /// The registered TaskManagers.
  [[nodiscard]] const std::shared_ptr<task_manager_registry>& registry() const noexcept {
    return registry_;
  }
  /// The actor system of the membership actor; the JobMasters of jobs on
  /// TaskManager processes run in it too.
  [[nodiscard]] caf::actor_system& system();
  /// The dispatcher that hands the registered TaskManagers' slots to the
  /// JobMasters (actors/distributed.hpp).
  [[nodiscard]] caf::actor dispatcher() const;
  /// The registered TaskManagers' slots as the dispatcher hands them out.
  [[nodiscard]] const std::shared_ptr<actors::slot_board>& slots() const noexcept {
    return slots_;
  }
  /// Closes the published port and stops the actor system (idempotent).
  void stop();

private:
  membership_service() = default;
  struct impl;
  std::unique_ptr<impl> impl_;
  std::shared_ptr<task_manager_registry> registry_;
  std::shared_ptr<actors::slot_board> slots_;
  uint16_t port_ = 0;
};

/// What the JobManager's REST API reads: the jobs of `jobs` (the
/// process-wide registry of mini-cluster jobs) and their in-process
/// TaskManagers, plus the TaskManager processes in `members` with the free
/// slots the dispatcher counts.
class session_cluster_view final : public actors::cluster_view {
public:
  /// `slots` (may be null): the dispatcher's account of the registered
  /// TaskManagers' free slots.
  session_cluster_view(std::shared_ptr<const actors::cluster_view> jobs,
                       std::shared_ptr<const task_manager_registry> members,
                       std::shared_ptr<const actors::slot_board> slots = nullptr)
      : jobs_(std::move(jobs)), members_(std::move(members)), slots_(std::move(slots)) {}

  [[nodiscard]] std::vector<actors::job_info> jobs() const override { return jobs_->jobs(); }
  [[nodiscard]] std::optional<actors::job_info> job(const std::string& id) const override {
    return jobs_->job(id);
  }
  [[nodiscard]] std::optional<std::string>
  checkpoint_stats_json(const std::string& id) const override {
    return jobs_->checkpoint_stats_json(id);
  }
  [[nodiscard]] std::vector<actors::task_manager_info> task_managers() const override;
  [[nodiscard]] std::shared_ptr<runtime::job_client>
  client(const std::string& id) const override {
    return jobs_->client(id);
  }

private:
  std::shared_ptr<const actors::cluster_view> jobs_;
  std::shared_ptr<const task_manager_registry> members_;
  std::shared_ptr<const actors::slot_board> slots_;
};

} // namespace sluice::remote::cluster
