#pragma once

#include "sluice/remote/cluster/membership.hpp"
#include "sluice/runtime/job.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

/// A TaskManager process (`sluice taskmanager`): registers with the
/// JobManager's membership actor, exchanges heartbeats with it, registers
/// again whenever the JobManager is lost, and deregisters when stopped. It
/// offers its slots, and runs the subtasks the JobMasters deploy to it:
/// it rebuilds each job from the job library the JobManager sends along
/// (job_spec.hpp) and runs its subtasks in its own actor system, with
/// batches to and from other processes serialized under credit.
namespace sluice::remote::cluster {

/// The keys a TaskManager reads.
struct task_manager_settings {
  /// jobmanager.rpc.address / jobmanager.rpc.port: where to register.
  std::string job_manager_address = "localhost";
  uint16_t job_manager_port = 6123;
  /// taskmanager.host: the address it publishes its actor on and tells the
  /// JobManager (localhost = 127.0.0.1).
  std::string host = "localhost";
  /// taskmanager.rpc.port (0 = any free one).
  uint16_t port = 0;
  /// taskmanager.resource-id (empty = host:port-<6 random hex digits>).
  std::string resource_id;
  /// taskmanager.numberOfTaskSlots (1).
  int32_t slots = 1;
  heartbeat_settings heartbeats;
  /// Every other key, as runtime::apply_settings reads it: the defaults of
  /// the subtasks this TaskManager runs (scheduler threads and profile,
  /// state backend memory). Jobs bring their own settings from the
  /// JobManager.
  runtime::configuration job_config;
};

/// Reads the TaskManager's keys out of `settings`; every other key is
/// checked as a job setting (runtime::apply_settings) and, when unknown,
/// returned as a warning. Throws std::invalid_argument on a bad value.
[[nodiscard]] task_manager_settings
read_task_manager_settings(const std::map<std::string, std::string>& settings,
                           std::vector<std::string>& warnings);

/// A running TaskManager. `stop` (or destruction) deregisters it.
class task_manager {
public:
  /// Publishes its actor and starts registering (in the background, every
  /// second until the JobManager answers). `log` gets one line per state
  /// change (registered, JobManager lost and why, cannot reach it), never
  /// one per attempt. Fails with `invalid_configuration` or, when its port
  /// is taken, `server_failed`.
  [[nodiscard]] static caf::expected<std::unique_ptr<task_manager>>
  start(const task_manager_settings& settings, std::function<void(const std::string&)> log);

  ~task_manager();
  task_manager(const task_manager&) = delete;
  task_manager& operator=(const task_manager&) = delete;

  /// The resource id it registers with.
  [[nodiscard]] const std::string& id() const noexcept;
  /// Whether it is registered with the JobManager right now.
  [[nodiscard]] bool registered() const;
  /// Deregisters (waiting up to a second for the JobManager's answer) and
  /// stops (idempotent).
  void stop();

  struct impl;

private:
  task_manager() = default;
  std::shared_ptr<impl> impl_;
};

} // namespace sluice::remote::cluster
