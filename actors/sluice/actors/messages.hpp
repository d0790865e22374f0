#pragma once

#include "sluice/runtime/channel_state.hpp"
#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/exchange.hpp"

#include <caf/all.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

/// The message vocabulary of sluice's actors. Data-plane messages carry
/// batches between subtasks; control messages go between the JobManager,
/// JobMasters, TaskManagers and subtasks.
namespace sluice::actors {

// Atoms (at most 10 characters in CAF 0.17).
using setup_atom = caf::atom_constant<caf::atom("setup")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using state_atom = caf::atom_constant<caf::atom("state")>;
using register_atom = caf::atom_constant<caf::atom("register")>;
using slots_atom = caf::atom_constant<caf::atom("slots")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using deploy_atom = caf::atom_constant<caf::atom("deploy")>;
using submit_atom = caf::atom_constant<caf::atom("submit")>;
/// A processing-time timer of the subtask is due.
using ptimer_atom = caf::atom_constant<caf::atom("ptimer")>;
// Checkpoints.
using checkpoint_atom = caf::atom_constant<caf::atom("chkpt")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;
using decline_atom = caf::atom_constant<caf::atom("decline")>;
using complete_atom = caf::atom_constant<caf::atom("complete")>;
using abortchk_atom = caf::atom_constant<caf::atom("abortchk")>;
using savepoint_atom = caf::atom_constant<caf::atom("savepoint")>;
using written_atom = caf::atom_constant<caf::atom("written")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
/// A subtask processed all its input and waits to be let go.
using eod_atom = caf::atom_constant<caf::atom("eod")>;
/// The JobMaster lets a subtask at end of data finish.
using finish_atom = caf::atom_constant<caf::atom("finish")>;
/// Sources stop now (stop with savepoint and drain).
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;
/// A subtask's restored state was read.
using restored_atom = caf::atom_constant<caf::atom("restored")>;
/// The aligned-checkpoint timeout of a checkpoint ran out at a subtask.
/// Queryable state: read the keyed state of one key.
using query_atom = caf::atom_constant<caf::atom("query")>;
using alignto_atom = caf::atom_constant<caf::atom("alignto")>;

/// A batch of records for input channel `channel` of the receiving subtask.
/// In-process the batch holds the records themselves and is never copied.
struct batch_msg {
  uint32_t channel = 0;
  runtime::batch_ptr batch;
};

/// Returns one credit for channel `channel` of output `output` of the
/// receiving (sending-side) subtask, with the emptied buffer for reuse.
struct credit_msg {
  uint32_t output = 0;
  uint32_t channel = 0;
  runtime::batch_ptr buffer;
};

/// A batch for input channel `channel` of a subtask in another actor system
/// (node): the records serialized with the sending output's write_records().
/// The receiver decodes it with its input feeder's read_batch() and treats
/// it as a batch_msg; the buffer stays with the sender.
struct net_batch_msg {
  uint32_t channel = 0;
  std::string bytes;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, net_batch_msg& x) {
  return f(caf::meta::type_name("net_batch_msg"), x.channel, x.bytes);
}

/// Returns one credit for channel `channel` of output `output` to a sender
/// in another node; no buffer travels back.
struct net_credit_msg {
  uint32_t output = 0;
  uint32_t channel = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, net_credit_msg& x) {
  return f(caf::meta::type_name("net_credit_msg"), x.output, x.channel);
}

using runtime::channel_event;

/// An in-band control event on a data channel (end of partition, watermark,
/// idleness); it travels in order with the channel's batches and needs no
/// credit.
struct event_msg {
  uint32_t channel = 0;
  uint8_t kind = static_cast<uint8_t>(channel_event::end_of_partition);
  int64_t value = 0;

  channel_event event() const noexcept { return static_cast<channel_event>(kind); }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_msg& x) {
  return f(caf::meta::type_name("event_msg"), x.channel, x.kind, x.value);
}

/// Starts checkpoint `id` at a source subtask, or at every subtask for the
/// final checkpoint of a job whose subtasks all reached the end of their
/// data.
struct checkpoint_trigger {
  int64_t id = 0;
  int64_t timestamp_ms = 0;
  /// Stop with savepoint (no drain): the sources stop right after the
  /// barrier, and nothing downstream finishes its operators.
  bool stop = false;
  /// Savepoints are always aligned, as in Flink: their barriers never
  /// overtake data, so a savepoint holds no in-flight batches.
  bool savepoint = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, checkpoint_trigger& x) {
  return f(caf::meta::type_name("checkpoint_trigger"), x.id, x.timestamp_ms, x.stop,
           x.savepoint);
}

/// The value a barrier event carries: the checkpoint id, with a flag for
/// savepoints (which must stay aligned).
constexpr int64_t barrier_value(int64_t id, bool savepoint) noexcept {
  return savepoint ? (id | (int64_t{1} << 62)) : id;
}
constexpr int64_t barrier_id(int64_t value) noexcept { return value & ~(int64_t{1} << 62); }
constexpr bool barrier_is_savepoint(int64_t value) noexcept {
  return (value & (int64_t{1} << 62)) != 0;
}

/// State read for a restoring subtask: per operator of its chain, what it
/// restores (empty = nothing for it); or why it could not be read.
struct restore_bundle {
  std::vector<std::optional<runtime::operator_restore>> ops;
  /// In-flight batches of an unaligned checkpoint, replayed first.
  std::optional<runtime::channel_state> channels;
  std::string error;
};
using restore_bundle_ptr = std::shared_ptr<restore_bundle>;

/// An action posted to a subtask's mailbox from another thread
/// (runtime::mailbox_executor), run on the subtask's thread.
struct mail_msg {
  std::function<void()> action;
};

/// The interface of a subtask actor: everything that reaches it.
using subtask_actor = caf::typed_actor<
  caf::reacts_to<setup_atom, struct subtask_wiring>, caf::reacts_to<start_atom>,
  caf::reacts_to<batch_msg>, caf::reacts_to<credit_msg>, caf::reacts_to<event_msg>,
  caf::reacts_to<net_batch_msg>, caf::reacts_to<net_credit_msg>,
  caf::reacts_to<step_atom>, caf::reacts_to<resume_atom>, caf::reacts_to<flush_atom>,
  caf::reacts_to<ptimer_atom>, caf::reacts_to<cancel_atom>,
  caf::reacts_to<checkpoint_atom, checkpoint_trigger>, caf::reacts_to<complete_atom, int64_t>,
  caf::reacts_to<abortchk_atom, int64_t>, caf::reacts_to<finish_atom>,
  caf::reacts_to<stop_atom, bool>, caf::reacts_to<restored_atom, restore_bundle_ptr>,
  caf::reacts_to<alignto_atom, int64_t>, caf::reacts_to<mail_msg>,
  // Queryable state: (operator index in the chain, key as URL text) ->
  // (runtime::state_query_status, body).
  caf::replies_to<query_atom, int32_t, std::string>::with<int32_t, std::string>>;

/// Peer actors of one subtask, known once every subtask of the job exists.
struct subtask_wiring {
  /// outputs[output][channel]: the receiving subtask and its input channel.
  std::vector<std::vector<std::pair<subtask_actor, uint32_t>>> outputs;
  /// inputs[channel]: the sending subtask.
  std::vector<subtask_actor> inputs;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, subtask_wiring& x) {
  return f(caf::meta::type_name("subtask_wiring"), x.outputs, x.inputs);
}

/// Registers every message type that crosses nodes (actor systems joined by
/// CAF's middleman): the data plane's net_batch_msg, net_credit_msg and
/// event_msg, and the control messages between JobMasters, TaskManagers and
/// subtasks. Call it on the config of every actor system of a cluster, before
/// the system starts: CAF 0.17 drops a message of an unregistered type.
void add_cluster_message_types(caf::actor_system_config& cfg);

} // namespace sluice::actors

// Batches hold C++ records by pointer and never leave the process in this
// form; the cross-process transport serializes them separately.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sluice::actors::batch_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sluice::actors::credit_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sluice::actors::restore_bundle_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sluice::actors::mail_msg)
