#include "sluice/actors/messages.hpp"

#include "sluice/actors/distributed.hpp"
#include "sluice/actors/subtask.hpp"

namespace sluice::actors {

void add_cluster_message_types(caf::actor_system_config& cfg) {
  // Data plane between nodes.
  cfg.add_message_type<net_batch_msg>("sluice.net_batch_msg");
  cfg.add_message_type<net_credit_msg>("sluice.net_credit_msg");
  cfg.add_message_type<event_msg>("sluice.event_msg");
  // Subtasks and their JobMaster.
  cfg.add_message_type<subtask_actor>("sluice.subtask_actor");
  cfg.add_message_type<subtask_wiring>("sluice.subtask_wiring");
  cfg.add_message_type<checkpoint_trigger>("sluice.checkpoint_trigger");
  cfg.add_message_type<subtask_report>("sluice.subtask_report");
  cfg.add_message_type<checkpoint_ack>("sluice.checkpoint_ack");
  // Control plane across nodes (distributed.hpp).
  add_control_message_types(cfg);
}

} // namespace sluice::actors
