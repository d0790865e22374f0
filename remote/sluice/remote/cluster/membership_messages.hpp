#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>

/// The messages TaskManager processes and the JobManager exchange over
/// CAF's middleman to keep the cluster's membership: registration,
/// heartbeats both ways, deregistration. Plain structs, each with an
/// `inspect` overload and registered by `add_membership_types`.
namespace sluice::remote::cluster {

/// TaskManager -> JobManager: `(tm_reg_atom, task_manager_registration,
/// caf::actor tm, caf::actor executor)` (the TaskManager actor, which the
/// JobManager monitors and sends heartbeats to, and the executor that
/// deploys subtasks, whose slots the JobManager's dispatcher offers to
/// JobMasters; may be null), answered with `tm_reg_atom` once registered.
using tm_reg_atom = caf::atom_constant<caf::atom("tm_reg")>;
/// TaskManager -> JobManager every heartbeat.interval: `(tm_hb_atom, id)`.
using tm_hb_atom = caf::atom_constant<caf::atom("tm_hb")>;
/// JobManager -> TaskManager every heartbeat.interval: `(jm_hb_atom)`.
using jm_hb_atom = caf::atom_constant<caf::atom("jm_hb")>;
/// JobManager -> TaskManager: a heartbeat from an id it does not know
/// (marked lost, or the JobManager restarted): register again.
using tm_unknown_atom = caf::atom_constant<caf::atom("tm_unknown")>;
/// TaskManager -> JobManager on a clean exit: `(tm_bye_atom, id)`,
/// answered with `tm_bye_atom`.
using tm_bye_atom = caf::atom_constant<caf::atom("tm_bye")>;

/// What a TaskManager tells the JobManager about itself when it registers.
struct task_manager_registration {
  /// The resource id: taskmanager.resource-id, else host:port-<random>.
  std::string id;
  /// The host the TaskManager is reachable at (taskmanager.host).
  std::string host;
  /// The port its actor is published on (its RPC and future data port).
  uint16_t port = 0;
  /// taskmanager.numberOfTaskSlots.
  int32_t slots = 1;
  /// Hardware: logical cores and physical memory in bytes.
  int32_t cpu_cores = 0;
  int64_t physical_memory = 0;
  /// Free physical memory in bytes when it registered.
  int64_t free_memory = 0;
};

/// Serializes a registration (CAF 0.17 inspection).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_manager_registration& x) {
  return f(caf::meta::type_name("sluice.task_manager_registration"), x.id, x.host, x.port,
           x.slots, x.cpu_cores, x.physical_memory, x.free_memory);
}

/// Registers every membership message type that crosses processes; call on
/// the configuration of each actor system that talks membership.
inline void add_membership_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<task_manager_registration>("sluice.task_manager_registration");
}

} // namespace sluice::remote::cluster
