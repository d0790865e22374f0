#pragma once

#include "sluice/actors/messages.hpp"
#include "sluice/actors/metrics.hpp"
#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/runtime/job.hpp"
#include "sluice/runtime/job_graph.hpp"
#include "sluice/runtime/time/watermarks.hpp"
#include "sluice/state/native_snapshot.hpp"

#include <caf/all.hpp>

#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

namespace sluice::state {

/// Serialization of a native snapshot file reference, for checkpoint_ack
/// messages that cross nodes (found by argument-dependent lookup).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, native_file_ref& x) {
  return f(caf::meta::type_name("native_file_ref"), x.name, x.stored, x.size, x.crc32, x.shared,
           x.prefix);
}

} // namespace sluice::state

namespace sluice::actors {

/// What a TaskManager needs to start one subtask.
struct subtask_deployment {
  std::shared_ptr<const runtime::job_graph> job;
  runtime::configuration config;
  int32_t vertex = 0;
  int32_t index = 0;
  caf::actor job_master;
  std::shared_ptr<subtask_metrics_cell> metrics;
  /// Which run of the job this is (0, then +1 per restart); messages from
  /// older runs are ignored.
  int32_t attempt = 0;
  /// The job's checkpoint directory: checkpoint N's files go to chk-N/.
  std::string checkpoint_dir;
  /// The checkpoint or savepoint to restore from; null = fresh start.
  std::shared_ptr<const runtime::restore_point> restore;
};

/// A subtask's acknowledgement of a checkpoint: the files it wrote (per
/// operator of its chain, in chain order; "" = none) and its timings.
struct checkpoint_ack {
  int64_t id = 0;
  int32_t vertex = 0;
  int32_t index = 0;
  int32_t attempt = 0;
  std::vector<std::string> keyed_files;
  std::vector<std::string> operator_files;
  std::vector<uint64_t> bytes;
  /// Per operator: the files of its native keyed snapshot (empty = none).
  std::vector<std::vector<state::native_file_ref>> native_files;
  /// In-flight batches of an unaligned checkpoint ("" = none).
  std::string channel_state_file;
  uint64_t channel_bytes = 0;
  bool unaligned = false;
  int64_t alignment_ns = 0;
  int64_t sync_ns = 0;
  int64_t async_ns = 0;
  int64_t acked_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, checkpoint_ack& x) {
  return f(caf::meta::type_name("checkpoint_ack"), x.id, x.vertex, x.index, x.attempt,
           x.keyed_files, x.operator_files, x.bytes, x.native_files, x.channel_state_file,
           x.channel_bytes, x.unaligned, x.alignment_ns, x.sync_ns, x.async_ns, x.acked_ms);
}

/// Sent by a subtask to its JobMaster when its execution state changes.
struct subtask_report {
  int32_t vertex = 0;
  int32_t index = 0;
  int32_t state_code = 0;
  std::string error;
  int32_t attempt = 0;

  runtime::execution_state state() const noexcept {
    return static_cast<runtime::execution_state>(state_code);
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, subtask_report& x) {
  return f(caf::meta::type_name("subtask_report"), x.vertex, x.index, x.state_code, x.error,
           x.attempt);
}

/// The logic of one subtask: runs an operator chain, feeds it arriving
/// batches, moves its output batches under credit. Owned by the subtask's
/// actor; every method runs on that actor's thread.
class subtask_state : public runtime::output_gate,
                      public runtime::processing_time_service,
                      public runtime::input_hold {
public:
  subtask_state() = default;
  ~subtask_state() override;

  // output_gate
  runtime::batch_ptr hand_over(uint32_t output, uint32_t channel,
                               runtime::batch_ptr batch) override;
  bool has_credit(uint32_t output, uint32_t channel) const override;
  void send_event(uint32_t output, uint32_t channel, uint8_t kind, int64_t value) override;

  // processing_time_service
  int64_t now_ms() const override;
  void register_timer(int64_t time_ms, runtime::processing_time_callback* target) override;

  // input_hold
  void hold_input() override;
  void release_input() override;

  /// Builds the chain; throws on a bad program.
  void init(subtask_actor::pointer self, subtask_deployment d);
  /// Takes the peers; a channel to or from a subtask in another node
  /// (actor system) is flagged remote here, once, and its batches travel
  /// serialized. Fails the subtask if such a channel's records have no
  /// serializer.
  void wire(subtask_wiring w);
  /// Opens the chain, after reading restored state off this thread.
  void start();
  void on_restored(const restore_bundle_ptr& bundle);
  void on_batch(batch_msg& m);
  void on_credit(credit_msg& m);
  /// A batch from a sender in another node: decoded, then handled as
  /// on_batch handles a local one.
  void on_net_batch(net_batch_msg& m);
  void on_net_credit(const net_credit_msg& m);
  void on_event(const event_msg& m);
  void on_step();
  void on_resume();
  void on_flush_timer();
  void on_processing_timer();
  /// Runs an action posted to this subtask's mailbox (runtime::mailbox_executor).
  void on_mail(mail_msg& m);
  /// Queryable state: reads the keyed state of `key` in operator `op` of
  /// the chain, between batches. A failure to read is an answer, never a
  /// failure of the subtask.
  runtime::state_query_result on_query(int32_t op, const std::string& key);
  void on_cancel();
  /// A source starts checkpoint `t.id`; at the end of data, every subtask
  /// takes the final checkpoint this way.
  void on_checkpoint_trigger(const checkpoint_trigger& t);
  void on_checkpoint_complete(int64_t id);
  void on_checkpoint_aborted(int64_t id);
  /// The aligned-checkpoint timeout of checkpoint `id` ran out: switch it
  /// to unaligned if it is still aligning here.
  void on_alignment_timeout(int64_t id);
  /// Every subtask reached the end of its data: close and finish.
  void on_finish();
  /// Stop with savepoint and drain: sources end their input now.
  void on_stop(bool drain);
  /// Ends the subtask as FAILED with `why`, reported to the JobMaster.
  void fail(const std::string& why);

  const char* name = "sluice.subtask";

private:
  struct pending_item {
    runtime::batch_ptr batch; // null for an event
    uint8_t kind = 0;
    int64_t value = 0;
  };
  struct out_channel {
    subtask_actor target;
    uint32_t target_channel = 0;
    uint32_t credits = 0;
    /// Batches waiting for credit, and events queued behind them.
    std::deque<pending_item> pending;
    std::vector<runtime::batch_ptr> free;
    /// The receiver is in another node: batches go as net_batch_msg.
    bool remote = false;
    /// Bytes of the last batch serialized here (sizes the next buffer).
    size_t last_bytes = 0;
  };
  struct in_channel {
    subtask_actor sender;
    uint32_t sender_output = 0;
    uint32_t sender_channel = 0;
    int32_t feeder = 0;
    uint32_t queued = 0;
    bool ended = false;
    /// On a feedback edge: does not end the input, holds no event time
    /// back, and is recorded as channel state by every checkpoint.
    bool feedback = false;
    /// The sender is in another node: credit goes back as net_credit_msg.
    bool remote = false;
  };
  struct queued_item {
    uint32_t channel = 0;
    runtime::batch_ptr batch; // null for an event
    channel_event event = channel_event::end_of_partition;
    int64_t value = 0;
    /// Replayed from channel state: no sender waits for its credit.
    bool restored = false;
  };
  /// A snapshot taken, its files not yet written.
  struct pending_write {
    checkpoint_ack ack;
    /// Per operator of the chain, in chain order: its file base name and
    /// snapshot (possibly a native RocksDB one), written first.
    std::vector<std::pair<std::string, runtime::operator_snapshot>> snaps;
    /// Further files (name, bytes), written after the snapshots: the
    /// channel state.
    std::vector<std::pair<std::string, std::string>> files;
    std::string file_base; ///< names the channel state file
  };
  /// An unaligned checkpoint whose in-flight input is still being recorded:
  /// batches arriving on a channel count until that channel's barrier.
  struct capture {
    int64_t id = -1;
    std::vector<char> recording; ///< per input channel
    size_t recording_left = 0;
    /// Output channels whose barrier still waits behind batches (aligned,
    /// with a timeout that lets it overtake them).
    size_t outputs_waiting = 0;
    runtime::channel_state state;
    pending_write write;
  };
  /// finishing: end of input handled, waiting for credit to send the rest;
  /// ended: end of partition sent, waiting for the JobMaster's finish.
  enum class phase { created, running, finishing, ended, done };

  /// Runs `f`, accounting its time, and turns exceptions into a failure.
  template <class F>
  void guarded(F&& f);
  /// An arriving batch, local or decoded: queued or processed at once.
  void receive_batch(uint32_t channel, runtime::batch_ptr batch);
  void process_batch(uint32_t channel, runtime::batch_ptr batch, bool restored = false);
  /// Sends one batch to the channel's receiver (the caller spent a credit):
  /// the batch itself in-process; serialized to another node, where the
  /// emptied buffer stays on the channel's free list.
  void send_batch(out_channel& ch, runtime::batch_ptr batch);
  /// Returns one credit for input channel `in`, with the emptied `buffer`
  /// when the sender is in this node.
  void return_credit(const in_channel& in, runtime::batch_ptr buffer);
  /// Adds one credit to an output channel (and its buffer, if any) and
  /// sends what waits.
  void add_credit(uint32_t output, uint32_t channel, runtime::batch_ptr buffer);
  void process_event(uint32_t channel, channel_event kind, int64_t value);
  /// Passes a new combined watermark to the chain's inputs.
  void advance_watermark(int64_t wm);
  /// Sends what waits on an output channel as far as credit allows.
  void send_pending(out_channel& ch);
  void arm_processing_timer();
  void drain_queue();
  void schedule_drain();
  /// Opens the operators (restoring state from `restored`) and runs.
  void open_chain(restore_bundle* restored);
  void end_of_batch();
  /// `stopped`: stop with savepoint without drain, so operators are not
  /// finished and no maximum watermark is sent.
  void end_input(bool stopped = false);
  void try_finish();
  /// A barrier event (`value`: id and savepoint flag) is processed in order.
  void on_barrier(uint32_t channel, int64_t value);
  /// An unaligned checkpoint's barrier arrived on `channel` (-1: the
  /// alignment timed out): snapshot now, overtaking queued input and
  /// pending output, which become channel state.
  void start_unaligned(int64_t id, int32_t channel);
  /// `channel` delivered its barrier (or ended): its recording stops.
  void capture_channel_done(uint32_t channel);
  /// A capture of checkpoint `id` shaped like this subtask's channels that
  /// records the input channels flagged in `record` (queued batches now,
  /// arrivals until their barrier); `arrived` (-1: none) is the channel
  /// whose barrier just came, so only its queue counts.
  capture new_capture(int64_t id, std::vector<char> record, int32_t arrived);
  void finish_capture();
  /// Aligned snapshot of a subtask with feedback inputs: their in-flight
  /// records up to their barrier become channel state.
  void snapshot_with_feedback(int64_t id);
  /// The aligned-checkpoint timeout ran out for barriers still waiting
  /// behind output batches: they overtake, the batches become state.
  void overtake_waiting_barriers();
  /// Starts the aligned-checkpoint timeout of checkpoint `id`.
  void announce(int64_t id);
  /// Puts batches of an unaligned checkpoint back: output batches in front
  /// of anything new, input batches processed first.
  void replay_channel_state(const runtime::channel_state& cs);
  /// Counts channel `channel` as aligned (barrier or end of partition).
  void barrier_arrived(uint32_t channel);
  /// Drops the running alignment; what its channels held goes back in line.
  void release_held();
  /// Snapshots the chain for checkpoint `id`, forwards the barrier when
  /// `forward`, writes the state asynchronously and acknowledges.
  void take_checkpoint(int64_t id, int64_t timestamp_ms, bool forward, bool savepoint);
  /// Takes the synchronous part of every operator's snapshot. Savepoints
  /// are full, in the canonical format; checkpoints are incremental where
  /// the backend and configuration allow.
  pending_write snapshot_chain(int64_t id, int64_t timestamp_ms, bool savepoint);
  /// Sends barrier `id` on every output; with `overtake`, ahead of the
  /// batches waiting for credit, which go into `overtaken` as channel state.
  void forward_barrier(int64_t id, bool savepoint, runtime::channel_state* overtaken);
  /// Writes the files of a snapshot off this thread and acknowledges.
  void write_snapshot(pending_write w);
  [[nodiscard]] bool held(uint32_t channel) const noexcept {
    return aligning_ >= 0 && exactly_once_ && barrier_seen_[channel];
  }
  void report(runtime::execution_state s, const std::string& error = {});
  void set_blocked(bool blocked, int64_t now);
  void schedule_step();
  void publish_counters();
  void close_operators() noexcept;

  subtask_actor::pointer self_ = nullptr;
  subtask_deployment d_;
  std::string task_;
  runtime::element_context element_;
  runtime::chain_instance chain_;
  std::unique_ptr<runtime::watermark_valve> valve_;
  std::vector<runtime::any_collector*> heads_; ///< distinct chain inputs
  std::multimap<int64_t, runtime::processing_time_callback*> timers_;
  int64_t timer_armed_for_ = INT64_MAX;
  std::vector<std::vector<out_channel>> outputs_;
  std::vector<in_channel> inputs_;
  std::deque<queued_item> queue_;
  size_t pending_total_ = 0;
  size_t inputs_open_ = 0;
  uint32_t credits_per_channel_ = 8;
  size_t step_records_ = 8192;
  bool blocked_ = false;
  /// Holds of the input by operators waiting for asynchronous work.
  uint32_t input_holds_ = 0;
  bool step_scheduled_ = false;
  bool resume_scheduled_ = false;
  bool opened_ = false;
  phase phase_ = phase::created;
  // Checkpoints.
  bool exactly_once_ = true;
  bool unaligned_ = false;
  bool has_feedback_ = false;
  std::chrono::milliseconds aligned_timeout_{0};
  bool aligning_savepoint_ = false;
  int64_t announced_ = -1; ///< newest checkpoint whose alignment timer runs
  std::optional<capture> capture_;
  /// While a barrier overtakes pending output: where the batches go.
  runtime::channel_state* overtaken_ = nullptr;
  int64_t aligning_ = -1; ///< checkpoint being aligned, -1 = none
  std::vector<char> barrier_seen_;
  size_t barriers_missing_ = 0;
  int64_t align_start_ns_ = 0;
  int64_t last_checkpoint_ = 0; ///< newest checkpoint snapshotted
  /// Items of channels whose barrier arrived, held until alignment ends.
  std::deque<queued_item> held_;
  bool stop_seen_ = false;
  uint64_t records_in_ = 0;
  uint32_t peak_queued_ = 0;
  uint32_t peak_pending_ = 0;
};

/// Spawns the behaviour of a subtask actor.
subtask_actor::behavior_type subtask_impl(subtask_actor::stateful_pointer<subtask_state> self,
                                          subtask_deployment d);

} // namespace sluice::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(sluice::actors::subtask_deployment)
