#include "sluice/actors/subtask.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <chrono>
#include <unistd.h>

namespace sluice::actors {

using runtime::execution_state;

namespace {
/// Queued input batches processed per handler call before the subtask
/// yields to its mailbox (so cancel and credits are never starved).
constexpr int drain_budget = 16;
constexpr int64_t drain_time_budget_ns = 5'000'000;

/// A subtask's mailbox for other threads: holds only the actor's address,
/// so pending callbacks never keep a finished subtask alive; what is posted
/// after it is gone is dropped.
class subtask_mailbox final : public runtime::mailbox_executor {
public:
  explicit subtask_mailbox(caf::actor_addr addr) : addr_(std::move(addr)) {}
  void execute(std::function<void()> action) override {
    if (auto handle = caf::actor_cast<subtask_actor>(addr_))
      caf::anon_send(handle, mail_msg{std::move(action)});
  }

private:
  caf::actor_addr addr_;
};
} // namespace

subtask_state::~subtask_state() { close_operators(); }

void subtask_state::init(subtask_actor::pointer self, subtask_deployment d) {
  self_ = self;
  d_ = std::move(d);
  // A RocksDB backend prepares for native snapshots (it keeps a log).
  d_.config.state.rocksdb.native_snapshots =
    d_.config.checkpoints.enabled() && d_.config.checkpoints.incremental;
  const auto& v = d_.job->vertices()[d_.vertex];
  runtime::runtime_context ctx(v.name, d_.index, v.parallelism, v.max_parallelism);
  task_ = ctx.task_name_with_subtasks();
  credits_per_channel_ = std::max<uint32_t>(1, d_.config.credits_per_channel);
  step_records_ = std::max<size_t>(1, d_.config.source_step_records);
  runtime::exchange_params params;
  params.batch_bytes = d_.config.batch_bytes;
  params.flush_every_record = d_.config.buffer_timeout.count() == 0;
  chain_ = d_.job->instantiate(d_.vertex, d_.index, *this, params, &element_);
  outputs_.resize(chain_.outputs.size());
  auto ins = d_.job->input_channels(d_.vertex, d_.index);
  inputs_.resize(ins.size());
  for (size_t i = 0; i < ins.size(); ++i) {
    inputs_[i].sender_output = ins[i].upstream_output;
    inputs_[i].sender_channel = ins[i].upstream_channel;
    inputs_[i].feeder = ins[i].in_edge;
    inputs_[i].feedback = ins[i].feedback;
    has_feedback_ = has_feedback_ || ins[i].feedback;
  }
  // Feedback channels never end the input: a loop runs until cancelled.
  inputs_open_ = static_cast<size_t>(std::count_if(
    inputs_.begin(), inputs_.end(), [](const in_channel& in) { return !in.feedback; }));
  barrier_seen_.assign(inputs_.size(), 0);
  exactly_once_ = d_.config.checkpoints.mode == runtime::checkpointing_mode::exactly_once;
  unaligned_ = exactly_once_ && d_.config.checkpoints.unaligned && d_.config.checkpoints.enabled();
  aligned_timeout_ = d_.config.checkpoints.aligned_checkpoint_timeout;
  if (unaligned_ || (has_feedback_ && d_.config.checkpoints.enabled())) {
    // Overtaken batches (and what a loop carries) are stored as channel
    // state: the record types involved need a serializer.
    bool ok = true;
    if (unaligned_)
      for (auto& o : chain_.outputs)
        ok = ok && o->records_serializable();
    for (auto& in : inputs_)
      if (unaligned_ || in.feedback)
        ok = ok && chain_.feeders[in.feeder]->records_serializable();
    if (!ok)
      throw std::invalid_argument(
        "unaligned checkpoints store records in flight, but a record type exchanged by " + task_ +
        " has no serializer (declare one, or disable "
        "execution.checkpointing.unaligned.enabled)");
  }
  if (!inputs_.empty()) {
    valve_ = std::make_unique<runtime::watermark_valve>(inputs_.size());
    // What comes back over a loop is behind the subtask's own event time.
    for (size_t c = 0; c < inputs_.size(); ++c)
      if (inputs_[c].feedback)
        (void)valve_->on_idle(c);
  }
  if (chain_.source == nullptr && !chain_.operators.empty())
    heads_.push_back(chain_.operators.front()->input());
}

void subtask_state::wire(subtask_wiring w) {
  guarded([&] {
    const auto& v = d_.job->vertices()[d_.vertex];
    const auto& g = d_.job->graph();
    auto edge_name = [&](int32_t e) {
      return "'" + g.nodes[g.edges[e].source].name + "' -> '" + g.nodes[g.edges[e].target].name +
             "'";
    };
    auto unserializable = [&](int32_t e) {
      return std::invalid_argument(
        "the edge " + edge_name(e) +
        " crosses TaskManagers, but its record type has no serializer (declare a "
        "sluice::state::serializer for it, or keep both ends in one TaskManager)");
    };
    // Local or remote is decided here, once per channel, so the in-process
    // path pays nothing per batch.
    auto here = self_->node();
    for (size_t o = 0; o < outputs_.size() && o < w.outputs.size(); ++o) {
      auto& chans = outputs_[o];
      chans.resize(w.outputs[o].size());
      for (size_t c = 0; c < chans.size(); ++c) {
        chans[c].target = w.outputs[o][c].first;
        chans[c].target_channel = w.outputs[o][c].second;
        chans[c].remote = chans[c].target && chans[c].target.node() != here;
        // Receivers grant their initial credit implicitly: both sides know it.
        chans[c].credits = credits_per_channel_;
        if (chans[c].remote && !chain_.outputs[o]->records_serializable())
          throw unserializable(v.out_edges[o]);
      }
    }
    for (size_t i = 0; i < inputs_.size() && i < w.inputs.size(); ++i) {
      auto& in = inputs_[i];
      in.sender = w.inputs[i];
      in.remote = in.sender && in.sender.node() != here;
      if (in.remote && !chain_.feeders[in.feeder]->records_serializable())
        throw unserializable(v.in_edges[in.feeder]);
    }
  });
}

template <class F>
void subtask_state::guarded(F&& f) {
  if (phase_ == phase::done)
    return;
  auto t0 = steady_now_ns();
  bool count_busy = !blocked_;
  try {
    f();
  } catch (const std::exception& e) {
    fail(e.what());
  } catch (...) {
    fail("unknown exception");
  }
  if (count_busy && d_.metrics)
    d_.metrics->busy_ns.fetch_add(steady_now_ns() - t0, std::memory_order_relaxed);
}

void subtask_state::start() {
  guarded([&] {
    d_.metrics->started_ns.store(steady_now_ns(), std::memory_order_relaxed);
    if (!d_.restore) {
      open_chain(nullptr);
      return;
    }
    // Restored state is read from files by a worker, not on this actor's
    // thread; batches that arrive meanwhile wait (bounded by credits).
    const auto& v = d_.job->vertices()[d_.vertex];
    std::vector<std::string> uids;
    for (auto node : v.nodes)
      uids.push_back(runtime::operator_uid(d_.job->graph().nodes[node]));
    auto me = caf::actor_cast<subtask_actor>(self_);
    self_->spawn<caf::detached>(
      [me, rp = d_.restore, uids = std::move(uids), index = d_.index, p = v.parallelism,
       mp = v.max_parallelism,
       staging = d_.config.state.rocksdb.local_dir](caf::event_based_actor* w, int) {
        auto bundle = std::make_shared<restore_bundle>();
        try {
          if (auto* head = uids.empty() ? nullptr : rp->find(uids.front()))
            bundle->channels = runtime::load_channel_state(*rp, *head, index, p);
        } catch (const std::exception& e) {
          bundle->error = e.what();
        }
        for (auto& uid : uids) {
          if (!bundle->error.empty())
            break;
          bundle->ops.emplace_back();
          auto* handle = rp->find(uid);
          if (handle == nullptr)
            continue;
          try {
            bundle->ops.back() =
              runtime::load_operator_restore(*rp, *handle, index, p, mp, staging);
          } catch (const std::exception& e) {
            bundle->error = e.what();
            break;
          }
        }
        w->send(me, restored_atom::value, std::move(bundle));
      },
      0); // an argument: CAF 0.17 dereferences a null argument tuple otherwise
  });
}

void subtask_state::on_restored(const restore_bundle_ptr& bundle) {
  guarded([&] {
    if (phase_ != phase::created)
      return;
    if (!bundle->error.empty())
      throw runtime::checkpoint_error(bundle->error);
    open_chain(bundle.get());
  });
}

void subtask_state::open_chain(restore_bundle* restored) {
  const auto& v = d_.job->vertices()[d_.vertex];
  runtime::runtime_context ctx(v.name, d_.index, v.parallelism, v.max_parallelism);
  ctx.set_state_config(&d_.config.state);
  ctx.set_element_context(&element_);
  ctx.set_time_service(this);
  ctx.set_mailbox(std::make_shared<subtask_mailbox>(self_->address()));
  ctx.set_input_hold(this);
  // Unique per process, actor and subtask: names working files (RocksDB).
  ctx.set_instance_id(std::to_string(::getpid()) + "-" + std::to_string(self_->id()) + "-v" +
                      std::to_string(d_.vertex) + "-" + std::to_string(d_.index));
  ctx.set_checkpointing_enabled(d_.config.checkpoints.enabled());
  opened_ = true;
  for (size_t k = 0; k < chain_.operators.size(); ++k) {
    auto& op = chain_.operators[k];
    auto* r = restored != nullptr && restored->ops[k] ? &*restored->ops[k] : nullptr;
    try {
      op->open_operator(ctx, r);
    } catch (const state::state_error& e) {
      if (r == nullptr)
        throw;
      throw runtime::checkpoint_error(
        "cannot restore operator '" + runtime::operator_uid(d_.job->graph().nodes[v.nodes[k]]) +
        "' from " + d_.restore->dir.string() + ": " + e.what());
    }
  }
  if (restored != nullptr && restored->channels)
    replay_channel_state(*restored->channels);
  phase_ = phase::running;
  report(execution_state::running);
  if (!outputs_.empty() && d_.config.buffer_timeout.count() > 0)
    self_->delayed_send(self_, d_.config.buffer_timeout, flush_atom::value);
  if (chain_.source != nullptr)
    schedule_step();
  else if (inputs_.empty())
    end_input();
  else
    drain_queue();
}

runtime::batch_ptr subtask_state::hand_over(uint32_t output, uint32_t channel,
                                            runtime::batch_ptr batch) {
  auto& ch = outputs_[output][channel];
  if (ch.credits > 0 && ch.pending.empty()) {
    --ch.credits;
    send_batch(ch, std::move(batch));
  } else {
    // No credit: the batch waits here and the subtask takes no more input
    // until credit returns, so what waits is bounded by one step's output.
    ch.pending.push_back({std::move(batch), 0, 0});
    ++pending_total_;
    peak_pending_ = std::max(peak_pending_, static_cast<uint32_t>(ch.pending.size()));
    if (!blocked_)
      set_blocked(true, steady_now_ns());
  }
  if (ch.free.empty())
    return nullptr;
  auto b = std::move(ch.free.back());
  ch.free.pop_back();
  return b;
}

void subtask_state::send_batch(out_channel& ch, runtime::batch_ptr batch) {
  if (!ch.remote) {
    self_->send(ch.target, batch_msg{ch.target_channel, std::move(batch)});
    return;
  }
  // The message owns its bytes until the middleman has written them, so
  // each batch needs a string; sizing it from the previous batch spares
  // the regrowth while the records are written.
  net_batch_msg m{ch.target_channel, {}};
  m.bytes.reserve(ch.last_bytes);
  batch->write_records(m.bytes);
  ch.last_bytes = m.bytes.size();
  self_->send(ch.target, std::move(m));
  // No buffer comes back from another node: this one is refilled here.
  batch->clear();
  ch.free.push_back(std::move(batch));
}

void subtask_state::return_credit(const in_channel& in, runtime::batch_ptr buffer) {
  if (in.remote)
    self_->send(in.sender, net_credit_msg{in.sender_output, in.sender_channel});
  else
    self_->send(in.sender, credit_msg{in.sender_output, in.sender_channel, std::move(buffer)});
}

bool subtask_state::has_credit(uint32_t output, uint32_t channel) const {
  const auto& ch = outputs_[output][channel];
  return ch.credits > 0 && ch.pending.empty();
}

void subtask_state::send_event(uint32_t output, uint32_t channel, uint8_t kind, int64_t value) {
  auto& ch = outputs_[output][channel];
  if (overtaken_ != nullptr && kind == static_cast<uint8_t>(channel_event::barrier)) {
    // An unaligned barrier goes ahead of the batches waiting for credit;
    // they stay queued and are sent later, and the checkpoint keeps a copy.
    for (auto& item : ch.pending)
      if (item.batch)
        item.batch->write_records(overtaken_->outputs[output][channel].emplace_back());
    self_->send(ch.target, event_msg{ch.target_channel, kind, value});
    return;
  }
  if (ch.pending.empty()) {
    self_->send(ch.target, event_msg{ch.target_channel, kind, value});
    return;
  }
  // Behind batches waiting for credit. A watermark right behind another
  // replaces it (only the latest matters), so a long stall with periodic
  // watermarks cannot grow this queue.
  auto& last = ch.pending.back();
  if (!last.batch && last.kind == kind &&
      kind == static_cast<uint8_t>(channel_event::watermark)) {
    last.value = value;
    return;
  }
  ch.pending.push_back({nullptr, kind, value});
}

void subtask_state::send_pending(out_channel& ch) {
  while (!ch.pending.empty()) {
    auto& f = ch.pending.front();
    if (f.batch) {
      if (ch.credits == 0)
        break;
      --ch.credits;
      --pending_total_;
      send_batch(ch, std::move(f.batch));
    } else {
      self_->send(ch.target, event_msg{ch.target_channel, f.kind, f.value});
      // A barrier that waited for the batches before it left in time.
      if (capture_ && capture_->outputs_waiting > 0 &&
          f.kind == static_cast<uint8_t>(channel_event::barrier) &&
          barrier_id(f.value) == capture_->id && --capture_->outputs_waiting == 0 &&
          capture_->recording_left == 0) {
        ch.pending.pop_front();
        finish_capture();
        continue;
      }
    }
    ch.pending.pop_front();
  }
}

int64_t subtask_state::now_ms() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void subtask_state::register_timer(int64_t time_ms, runtime::processing_time_callback* target) {
  timers_.emplace(time_ms, target);
  arm_processing_timer();
}

void subtask_state::hold_input() {
  ++input_holds_;
}

void subtask_state::release_input() {
  if (input_holds_ > 0 && --input_holds_ == 0)
    schedule_drain();
}

void subtask_state::on_mail(mail_msg& m) {
  guarded([&] {
    // Operators are open only while running; an action for a subtask that
    // has ended its input or failed is dropped (runtime::mailbox_executor).
    if (phase_ != phase::running || !m.action)
      return;
    m.action();
    end_of_batch();
  });
}

runtime::state_query_result subtask_state::on_query(int32_t op, const std::string& key) {
  using runtime::state_query_status;
  if (phase_ != phase::running || !opened_)
    return {state_query_status::not_running, {}};
  if (op < 0 || static_cast<size_t>(op) >= chain_.operators.size())
    return {state_query_status::failed, "no operator " + std::to_string(op) + " in the chain"};
  try {
    return chain_.operators[static_cast<size_t>(op)]->query_keyed_state(key);
  } catch (const std::exception& e) {
    return {state_query_status::failed, "subtask " + std::to_string(d_.index + 1) + " of '" +
                                          task_ + "': " + e.what()};
  }
}

void subtask_state::arm_processing_timer() {
  if (timers_.empty() || phase_ == phase::done)
    return;
  auto first = timers_.begin()->first;
  if (first >= timer_armed_for_)
    return;
  timer_armed_for_ = first;
  auto delay = std::max<int64_t>(0, first - now_ms());
  self_->delayed_send(self_, std::chrono::milliseconds(delay), ptimer_atom::value);
}

void subtask_state::on_processing_timer() {
  timer_armed_for_ = INT64_MAX;
  guarded([&] {
    if (phase_ != phase::running && phase_ != phase::finishing)
      return;
    auto now = now_ms();
    bool fired = false;
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto [t, cb] = *timers_.begin();
      timers_.erase(timers_.begin());
      cb->on_processing_time(t);
      fired = true;
    }
    if (fired)
      end_of_batch();
  });
  arm_processing_timer();
}

void subtask_state::set_blocked(bool blocked, int64_t now) {
  blocked_ = blocked;
  if (blocked) {
    d_.metrics->blocked_since_ns.store(now, std::memory_order_relaxed);
  } else {
    auto since = d_.metrics->blocked_since_ns.exchange(0, std::memory_order_relaxed);
    if (since > 0)
      d_.metrics->backpressured_ns.fetch_add(now - since, std::memory_order_relaxed);
  }
}

void subtask_state::on_batch(batch_msg& m) {
  guarded([&] {
    if (m.channel >= inputs_.size())
      throw std::logic_error("batch for unknown input channel " + std::to_string(m.channel));
    receive_batch(m.channel, std::move(m.batch));
  });
}

void subtask_state::on_net_batch(net_batch_msg& m) {
  guarded([&] {
    if (m.channel >= inputs_.size())
      throw std::logic_error("batch for unknown input channel " + std::to_string(m.channel));
    auto& in = inputs_[m.channel];
    runtime::batch_ptr batch;
    try {
      state::byte_reader r(m.bytes);
      batch = chain_.feeders[in.feeder]->read_batch(r);
    } catch (const state::serialization_error& e) {
      throw std::runtime_error("cannot decode a batch from another node on input channel " +
                               std::to_string(m.channel) + ": " + e.what());
    }
    // Not needed any more: free it before the records are processed.
    std::string().swap(m.bytes);
    receive_batch(m.channel, std::move(batch));
  });
}

void subtask_state::on_net_credit(const net_credit_msg& m) {
  guarded([&] { add_credit(m.output, m.channel, nullptr); });
}

void subtask_state::receive_batch(uint32_t channel, runtime::batch_ptr batch) {
  auto& in = inputs_[channel];
  ++in.queued;
  peak_queued_ = std::max(peak_queued_, in.queued);
  // In flight when an unaligned checkpoint was taken: part of its state.
  if (capture_ && capture_->recording[channel])
    batch->write_records(capture_->state.inputs[channel].emplace_back());
  // A loop with bounded credit on every edge deadlocks once it is full
  // (each side waits for the other to take a batch): a feedback channel
  // is credited on arrival, and its batches wait here instead (the one
  // unbounded buffer, as StateFun's feedback queue is; see
  // docs/architecture.md).
  if (in.feedback)
    return_credit(in, nullptr);
  // Batches that arrive before start() (an upstream started first) or
  // while blocked wait in order; credits bound how many. With unaligned
  // checkpoints every batch waits in the queue, not in the mailbox, so a
  // barrier behind it in the mailbox is seen after one batch at most.
  if (phase_ != phase::running || blocked_ || input_holds_ > 0 || !queue_.empty() ||
      held(channel) || unaligned_) {
    queue_.push_back({channel, std::move(batch), {}});
    schedule_drain();
    return;
  }
  process_batch(channel, std::move(batch));
}

void subtask_state::process_batch(uint32_t channel, runtime::batch_ptr batch, bool restored) {
  auto& in = inputs_[channel];
  records_in_ += chain_.feeders[in.feeder]->feed(*batch);
  end_of_batch();
  if (restored)
    return; // replayed channel state: no sender waits for this credit
  --in.queued;
  if (in.feedback)
    return; // credited on arrival
  // The batch is consumed: its buffer goes back with the credit (to a
  // sender in this node).
  return_credit(in, std::move(batch));
}

void subtask_state::end_of_batch() {
  for (auto& op : chain_.operators)
    op->end_of_batch();
  publish_counters();
}

void subtask_state::publish_counters() {
  auto& m = *d_.metrics;
  m.records_in.store(records_in_, std::memory_order_relaxed);
  uint64_t out = 0;
  for (auto& o : chain_.outputs)
    out += o->records_out();
  m.records_out.store(out, std::memory_order_relaxed);
  m.peak_queued_batches.store(peak_queued_, std::memory_order_relaxed);
  m.peak_pending_batches.store(peak_pending_, std::memory_order_relaxed);
  m.input_watermark.store(element_.watermark, std::memory_order_relaxed);
}

void subtask_state::on_event(const event_msg& m) {
  guarded([&] {
    if (m.channel >= inputs_.size())
      throw std::logic_error("event for unknown input channel " + std::to_string(m.channel));
    if (m.event() == channel_event::barrier && unaligned_ && phase_ == phase::running &&
        !barrier_is_savepoint(m.value)) {
      // Unaligned: the barrier overtakes what is queued before it.
      auto id = barrier_id(m.value);
      if (capture_ && capture_->id == id) {
        capture_channel_done(m.channel);
        return;
      }
      if (id <= last_checkpoint_)
        return; // taken already (switched to unaligned) or given up
      if (aligned_timeout_.count() == 0) {
        start_unaligned(id, static_cast<int32_t>(m.channel));
        return;
      }
      announce(id);
    }
    if (m.event() == channel_event::end_of_partition && capture_)
      capture_channel_done(m.channel); // nothing follows on this channel
    if (phase_ != phase::running || blocked_ || input_holds_ > 0 || !queue_.empty() ||
        held(m.channel)) {
      queue_.push_back({m.channel, nullptr, m.event(), m.value});
      schedule_drain();
      return;
    }
    process_event(m.channel, m.event(), m.value);
  });
}

void subtask_state::process_event(uint32_t channel, channel_event kind, int64_t value) {
  switch (kind) {
    case channel_event::barrier:
      on_barrier(channel, value);
      break;
    case channel_event::end_of_partition: {
      auto& in = inputs_[channel];
      if (in.feedback) {
        in.ended = true;
        break;
      }
      if (!in.ended) {
        in.ended = true;
        if (value != 0)
          stop_seen_ = true;
        // A finished channel sends no barrier: it counts as aligned.
        if (aligning_ >= 0 && !barrier_seen_[channel])
          barrier_arrived(channel);
        // An ended channel no longer holds event time back; when all have
        // ended this is the maximum watermark, so every window fires.
        if (auto wm = valve_->on_end(channel))
          advance_watermark(*wm);
        if (--inputs_open_ == 0 && phase_ == phase::running)
          end_input(stop_seen_);
      }
      break;
    }
    case channel_event::watermark:
      if (inputs_[channel].feedback)
        break;
      if (auto wm = valve_->on_watermark(channel, value))
        advance_watermark(*wm);
      break;
    case channel_event::idle: {
      if (inputs_[channel].feedback)
        break;
      auto wm = valve_->on_idle(channel);
      if (wm)
        advance_watermark(*wm);
      if (valve_->all_idle())
        for (auto* h : heads_)
          h->process_idleness(true);
      break;
    }
    case channel_event::active: {
      if (inputs_[channel].feedback)
        break;
      bool was_idle = valve_->all_idle();
      auto wm = valve_->on_active(channel);
      if (was_idle && !valve_->all_idle())
        for (auto* h : heads_)
          h->process_idleness(false);
      if (wm)
        advance_watermark(*wm);
      break;
    }
  }
}

void subtask_state::advance_watermark(int64_t wm) {
  element_.watermark = wm;
  for (auto* h : heads_)
    h->process_watermark(wm);
  end_of_batch();
}

void subtask_state::drain_queue() {
  int budget = drain_budget;
  // Slow operators (per-record RocksDB access) must not hold the mailbox
  // for long either: stop after a few milliseconds as well.
  auto deadline = steady_now_ns() + drain_time_budget_ns;
  while (!blocked_ && input_holds_ == 0 && !queue_.empty() && phase_ == phase::running &&
         budget-- > 0 && steady_now_ns() < deadline) {
    auto item = std::move(queue_.front());
    queue_.pop_front();
    if (held(item.channel)) {
      ++budget;
      // A held channel's batches are bounded by its credits; its watermarks
      // need none, so one right behind another of the channel replaces it.
      auto& last = held_.empty() ? item : held_.back();
      if (!held_.empty() && !item.batch && !last.batch && last.channel == item.channel &&
          item.event == channel_event::watermark && last.event == channel_event::watermark)
        last.value = item.value;
      else
        held_.push_back(std::move(item));
      continue;
    }
    if (item.batch)
      process_batch(item.channel, std::move(item.batch), item.restored);
    else
      process_event(item.channel, item.event, item.value);
  }
  if (!blocked_ && input_holds_ == 0 && !queue_.empty() && phase_ == phase::running &&
      !resume_scheduled_) {
    resume_scheduled_ = true;
    self_->send(self_, resume_atom::value);
  }
}

void subtask_state::schedule_drain() {
  // Items queued behind a held channel wait for nothing else: make sure the
  // queue is looked at again (drain_queue holds back what is still held).
  if (phase_ == phase::running && !blocked_ && input_holds_ == 0 && !resume_scheduled_) {
    resume_scheduled_ = true;
    self_->send(self_, resume_atom::value);
  }
}

void subtask_state::on_resume() {
  resume_scheduled_ = false;
  guarded([&] { drain_queue(); });
}

void subtask_state::on_credit(credit_msg& m) {
  guarded([&] { add_credit(m.output, m.channel, std::move(m.buffer)); });
}

void subtask_state::add_credit(uint32_t output, uint32_t channel, runtime::batch_ptr buffer) {
  if (output >= outputs_.size() || channel >= outputs_[output].size())
    throw std::logic_error("credit for unknown output channel");
  auto& ch = outputs_[output][channel];
  ++ch.credits;
  if (buffer)
    ch.free.push_back(std::move(buffer));
  send_pending(ch);
  if (blocked_ && pending_total_ == 0) {
    set_blocked(false, steady_now_ns());
    if (phase_ == phase::finishing) {
      try_finish();
    } else if (phase_ == phase::running) {
      if (chain_.source != nullptr && !step_scheduled_)
        schedule_step();
      drain_queue();
    }
  }
}

void subtask_state::schedule_step() {
  step_scheduled_ = true;
  self_->send(self_, step_atom::value);
}

void subtask_state::on_step() {
  step_scheduled_ = false;
  guarded([&] {
    if (phase_ != phase::running || blocked_ || chain_.source == nullptr)
      return;
    auto st = chain_.source->step(step_records_);
    end_of_batch();
    switch (st.what) {
      case runtime::source_step::kind::finished:
        end_input();
        break;
      case runtime::source_step::kind::more:
        if (!blocked_)
          schedule_step();
        break;
      case runtime::source_step::kind::wait:
        step_scheduled_ = true;
        self_->delayed_send(self_, st.delay, step_atom::value);
        break;
    }
  });
}

void subtask_state::on_flush_timer() {
  guarded([&] {
    if (phase_ != phase::running)
      return;
    for (auto& o : chain_.outputs)
      o->flush(true);
    self_->delayed_send(self_, d_.config.buffer_timeout, flush_atom::value);
  });
}

void subtask_state::end_input(bool stopped) {
  stop_seen_ = stopped;
  if (!stopped) {
    // A bounded source ends event time: the maximum watermark fires every
    // window and timer before the operators finish.
    if (chain_.source != nullptr) {
      element_.watermark = runtime::max_watermark;
      chain_.source->process_end_watermark();
    }
    // Finish operators head first, so what one emits reaches the next
    // before that one finishes.
    for (auto& op : chain_.operators)
      op->finish();
  }
  // Then push out every partial batch.
  end_of_batch();
  for (auto& o : chain_.outputs)
    o->flush(false);
  phase_ = phase::finishing;
  try_finish();
}

void subtask_state::try_finish() {
  if (pending_total_ > 0)
    return; // waits for credit; on_credit calls again
  for (auto& chans : outputs_)
    for (auto& ch : chans)
      self_->send(ch.target, event_msg{ch.target_channel,
                                       static_cast<uint8_t>(channel_event::end_of_partition),
                                       stop_seen_ ? 1 : 0});
  publish_counters();
  // Operators stay open: the job's final checkpoint may still snapshot them
  // and its completion commits what transactional sinks hold.
  phase_ = phase::ended;
  caf::anon_send(d_.job_master, eod_atom::value, d_.vertex, d_.index, d_.attempt);
}

void subtask_state::on_finish() {
  if (phase_ != phase::ended)
    return;
  guarded([&] {
    publish_counters();
    close_operators();
    phase_ = phase::done;
    report(execution_state::finished);
    self_->quit();
  });
}

void subtask_state::on_stop(bool drain) {
  guarded([&] {
    if (phase_ != phase::running || chain_.source == nullptr)
      return;
    end_input(!drain);
  });
}

// ---- checkpoints -------------------------------------------------------------

void subtask_state::on_barrier(uint32_t channel, int64_t value) {
  auto id = barrier_id(value);
  bool savepoint = barrier_is_savepoint(value);
  if (capture_ && capture_->id == id) {
    capture_channel_done(channel);
    return;
  }
  if (id <= last_checkpoint_)
    return; // a barrier of a checkpoint this subtask already took or gave up
  if (unaligned_ && !savepoint) {
    if (aligned_timeout_.count() == 0) {
      start_unaligned(id, static_cast<int32_t>(channel));
      return;
    }
    announce(id);
  }
  if (aligning_ >= 0 && id > aligning_) {
    // A newer checkpoint overtook the one being aligned (that one was
    // aborted upstream): give it up.
    release_held();
  }
  if (aligning_ < 0) {
    aligning_ = id;
    aligning_savepoint_ = savepoint;
    std::fill(barrier_seen_.begin(), barrier_seen_.end(), 0);
    barriers_missing_ = 0;
    for (size_t c = 0; c < inputs_.size(); ++c)
      if (!inputs_[c].ended && !inputs_[c].feedback)
        ++barriers_missing_;
    align_start_ns_ = steady_now_ns();
  }
  if (!barrier_seen_[channel])
    barrier_arrived(channel);
}

void subtask_state::barrier_arrived(uint32_t channel) {
  barrier_seen_[channel] = 1;
  // A loop's barrier comes back only after this subtask forwarded its own:
  // waiting for it would never end. It is recorded instead (below).
  if (inputs_[channel].feedback)
    return;
  if (barriers_missing_ > 0)
    --barriers_missing_;
  if (barriers_missing_ > 0)
    return;
  if (has_feedback_) {
    snapshot_with_feedback(aligning_);
    return;
  }
  take_checkpoint(aligning_, now_ms(), true, aligning_savepoint_);
  release_held();
}

void subtask_state::snapshot_with_feedback(int64_t id) {
  // Every forward input delivered its barrier. Feedback channels whose
  // barrier has not come back yet carry records that were sent before it:
  // they are processed after this snapshot, so the checkpoint keeps them
  // (queued ones now, arriving ones until the barrier), as Chandy-Lamport
  // records a channel's messages.
  std::vector<char> record(inputs_.size(), 0);
  for (size_t ch = 0; ch < inputs_.size(); ++ch)
    record[ch] = inputs_[ch].feedback && !inputs_[ch].ended && !barrier_seen_[ch];
  auto c = new_capture(id, std::move(record), -1);
  c.write = snapshot_chain(id, now_ms(), aligning_savepoint_);
  forward_barrier(id, aligning_savepoint_, nullptr);
  capture_ = std::move(c);
  release_held();
  if (capture_->recording_left == 0)
    finish_capture();
}

void subtask_state::release_held() {
  aligning_ = -1;
  std::fill(barrier_seen_.begin(), barrier_seen_.end(), 0);
  if (held_.empty())
    return;
  // Held items arrived before anything still queued on their channels.
  while (!held_.empty()) {
    queue_.push_front(std::move(held_.back()));
    held_.pop_back();
  }
  if (!resume_scheduled_) {
    resume_scheduled_ = true;
    self_->send(self_, resume_atom::value);
  }
}

namespace {
std::string file_token(const std::string& uid) {
  std::string out;
  for (char c : uid)
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return out.substr(0, 80);
}
} // namespace

subtask_state::pending_write subtask_state::snapshot_chain(int64_t id, int64_t timestamp_ms,
                                                           bool savepoint) {
  auto t0 = steady_now_ns();
  last_checkpoint_ = id;
  pending_write w;
  auto& ack = w.ack;
  ack.id = id;
  ack.vertex = d_.vertex;
  ack.index = d_.index;
  ack.attempt = d_.attempt;
  ack.alignment_ns = aligning_ >= 0 ? t0 - align_start_ns_ : 0;
  const auto& v = d_.job->vertices()[d_.vertex];
  // Savepoints are full snapshots in the canonical format (self-contained).
  bool incremental = d_.config.checkpoints.incremental && !savepoint;
  for (size_t k = 0; k < chain_.operators.size(); ++k) {
    const auto& node = d_.job->graph().nodes[v.nodes[k]];
    auto base = "n" + std::to_string(node.id) + "-" + file_token(runtime::operator_uid(node)) +
                "-s" + std::to_string(d_.index);
    if (k == 0)
      w.file_base = base;
    w.snaps.emplace_back(base,
                         chain_.operators[k]->snapshot_operator(id, timestamp_ms, incremental));
  }
  ack.sync_ns = steady_now_ns() - t0;
  return w;
}

void subtask_state::forward_barrier(int64_t id, bool savepoint,
                                    runtime::channel_state* overtaken) {
  overtaken_ = overtaken; // shaped by new_capture()
  for (auto& o : chain_.outputs)
    o->broadcast_event(channel_event::barrier, barrier_value(id, savepoint));
  overtaken_ = nullptr;
}

void subtask_state::take_checkpoint(int64_t id, int64_t timestamp_ms, bool forward,
                                    bool savepoint) {
  auto w = snapshot_chain(id, timestamp_ms, savepoint);
  if (!forward) {
    write_snapshot(std::move(w));
    return;
  }
  if (unaligned_ && !savepoint && aligned_timeout_.count() == 0) {
    // A source (or a subtask asked directly) of an unaligned checkpoint:
    // its barrier overtakes the output waiting for credit.
    auto c = new_capture(id, std::vector<char>(inputs_.size(), 0), -1);
    c.write = std::move(w);
    forward_barrier(id, false, &c.state);
    c.write.ack.unaligned = true;
    capture_ = std::move(c);
    finish_capture();
    return;
  }
  forward_barrier(id, savepoint, nullptr);
  if (unaligned_ && !savepoint) {
    // Aligned first: barriers queued behind output batches may overtake
    // them when the aligned-checkpoint timeout runs out, so the snapshot is
    // acknowledged once every barrier has left.
    auto c = new_capture(id, std::vector<char>(inputs_.size(), 0), -1);
    for (size_t o = 0; o < outputs_.size(); ++o) {
      for (auto& ch : outputs_[o])
        for (auto& item : ch.pending)
          if (!item.batch && item.kind == static_cast<uint8_t>(channel_event::barrier) &&
              barrier_id(item.value) == id)
            ++c.outputs_waiting;
    }
    if (c.outputs_waiting > 0) {
      c.write = std::move(w);
      capture_ = std::move(c);
      self_->delayed_send(self_, aligned_timeout_, alignto_atom::value, id);
      return;
    }
  }
  write_snapshot(std::move(w));
}

void subtask_state::overtake_waiting_barriers() {
  auto is_mine = [&](const pending_item& item) {
    return !item.batch && item.kind == static_cast<uint8_t>(channel_event::barrier) &&
           barrier_id(item.value) == capture_->id;
  };
  for (size_t o = 0; o < outputs_.size(); ++o) {
    for (size_t c = 0; c < outputs_[o].size(); ++c) {
      auto& ch = outputs_[o][c];
      auto barrier = std::find_if(ch.pending.begin(), ch.pending.end(), is_mine);
      if (barrier == ch.pending.end())
        continue; // sent already: the batches behind it come after it
      // The batches before the barrier stay queued and are sent later; the
      // checkpoint keeps a copy.
      for (auto it = ch.pending.begin(); it != barrier; ++it)
        if (it->batch)
          it->batch->write_records(capture_->state.outputs[o][c].emplace_back());
      self_->send(ch.target, event_msg{ch.target_channel, barrier->kind, barrier->value});
      ch.pending.erase(barrier);
    }
  }
  capture_->outputs_waiting = 0;
  capture_->write.ack.unaligned = true;
  if (capture_->recording_left == 0)
    finish_capture();
}

void subtask_state::write_snapshot(pending_write w) {
  // The files are written off the subtask's thread; processing goes on.
  auto dir = std::filesystem::path(d_.checkpoint_dir) / ("chk-" + std::to_string(w.ack.id));
  auto jm = d_.job_master;
  self_->spawn<caf::detached>(
    [dir, jm, snaps = std::move(w.snaps), files = std::move(w.files),
     ack = std::move(w.ack)](caf::event_based_actor* wk, int) mutable {
      auto t = steady_now_ns();
      try {
        for (auto& [base, snap] : snaps) {
          auto written = runtime::write_operator_snapshot(dir, ack.id, base, snap);
          ack.keyed_files.push_back(std::move(written.keyed_state_file));
          ack.operator_files.push_back(std::move(written.operator_state_file));
          ack.bytes.push_back(written.bytes);
          ack.native_files.push_back(std::move(written.native_files));
        }
        // Then the channel state of an unaligned checkpoint (or a loop's).
        if (!files.empty())
          std::filesystem::create_directories(dir);
        for (auto& [name, bytes] : files)
          runtime::checkpoint_storage::write_atomically(dir / name, bytes);
        ack.async_ns = steady_now_ns() - t;
        using namespace std::chrono;
        ack.acked_ms =
          duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
        wk->send(jm, ack_atom::value, std::move(ack));
      } catch (const std::exception& e) {
        wk->send(jm, decline_atom::value, ack.id, ack.vertex, ack.index, ack.attempt,
                 std::string("cannot write checkpoint state: ") + e.what());
      }
    },
    0); // an argument: CAF 0.17 dereferences a null argument tuple otherwise
}

void subtask_state::announce(int64_t id) {
  if (announced_ >= id)
    return;
  announced_ = id;
  self_->delayed_send(self_, aligned_timeout_, alignto_atom::value, id);
}

void subtask_state::on_alignment_timeout(int64_t id) {
  guarded([&] {
    if (capture_ && capture_->id == id && capture_->outputs_waiting > 0) {
      overtake_waiting_barriers();
      return;
    }
    if (phase_ != phase::running || id <= last_checkpoint_ || capture_)
      return;
    start_unaligned(id, -1);
  });
}

subtask_state::capture subtask_state::new_capture(int64_t id, std::vector<char> record,
                                                  int32_t arrived) {
  capture c;
  c.id = id;
  c.state.inputs.resize(inputs_.size());
  c.state.outputs.resize(outputs_.size());
  for (size_t o = 0; o < outputs_.size(); ++o)
    c.state.outputs[o].resize(outputs_[o].size());
  // Queued batches of a recorded channel up to its barrier (or end) are in
  // flight; after that the channel records arrivals, unless its barrier is
  // the one that just `arrived` (-1: none).
  auto scanning = record;
  for (auto& item : queue_) {
    auto ch = item.channel;
    if (!scanning[ch])
      continue;
    if (item.batch) {
      item.batch->write_records(c.state.inputs[ch].emplace_back());
    } else if ((item.event == channel_event::barrier && barrier_id(item.value) == id) ||
               item.event == channel_event::end_of_partition) {
      scanning[ch] = 0;
      record[ch] = 0;
    }
  }
  if (arrived >= 0)
    record[static_cast<size_t>(arrived)] = 0;
  c.recording = std::move(record);
  c.recording_left = static_cast<size_t>(std::count(c.recording.begin(), c.recording.end(), 1));
  return c;
}

void subtask_state::start_unaligned(int64_t id, int32_t channel) {
  if (capture_) {
    // An older capture still waits for barriers that will not come (its
    // checkpoint was given up upstream): it cannot complete.
    caf::anon_send(d_.job_master, decline_atom::value, capture_->id, d_.vertex, d_.index,
                   d_.attempt, std::string("superseded by checkpoint ") + std::to_string(id));
    capture_.reset();
  }
  bool switching = aligning_ == id; // aligned so far, timed out
  if (aligning_ >= 0 && !switching)
    release_held(); // an older alignment given up: what it held precedes this barrier
  // Channels whose barrier was processed hold only data after it (held_);
  // the others contribute what is queued before their barrier, and, if it
  // has not arrived yet, what arrives until it does.
  std::vector<char> record(inputs_.size(), 0);
  for (size_t ch = 0; ch < inputs_.size(); ++ch)
    record[ch] = !(switching && barrier_seen_[ch]) && !inputs_[ch].ended;
  auto c = new_capture(id, std::move(record), channel);
  c.write = snapshot_chain(id, now_ms(), false);
  c.write.ack.unaligned = true;
  forward_barrier(id, false, &c.state);
  capture_ = std::move(c);
  if (switching)
    release_held(); // what the alignment held came after the barrier
  if (capture_->recording_left == 0)
    finish_capture();
}

void subtask_state::capture_channel_done(uint32_t channel) {
  if (!capture_ || !capture_->recording[channel])
    return;
  capture_->recording[channel] = 0;
  if (--capture_->recording_left == 0 && capture_->outputs_waiting == 0)
    finish_capture();
}

void subtask_state::finish_capture() {
  auto c = std::move(*capture_);
  capture_.reset();
  auto& w = c.write;
  if (!c.state.empty()) {
    w.ack.channel_state_file = w.file_base + ".chan";
    w.ack.channel_bytes = c.state.bytes();
    w.files.emplace_back(w.ack.channel_state_file, c.state.encode());
  }
  write_snapshot(std::move(w));
}

void subtask_state::replay_channel_state(const runtime::channel_state& cs) {
  auto mismatch = [&](const std::string& what) {
    return runtime::checkpoint_error(
      "the channel state of " + task_ + " does not fit the job (" + what +
      "): in-flight data of an unaligned checkpoint needs the same job graph and parallelism");
  };
  if (cs.inputs.size() != inputs_.size())
    throw mismatch(std::to_string(cs.inputs.size()) + " input channels recorded, " +
                   std::to_string(inputs_.size()) + " now");
  // A capture that overtook no output records no outputs at all.
  if (!cs.outputs.empty() && cs.outputs.size() != outputs_.size())
    throw mismatch(std::to_string(cs.outputs.size()) + " outputs recorded, " +
                   std::to_string(outputs_.size()) + " now");
  for (size_t o = 0; o < cs.outputs.size(); ++o)
    if (cs.outputs[o].size() != outputs_[o].size())
      throw mismatch("output " + std::to_string(o) + " had " +
                     std::to_string(cs.outputs[o].size()) + " channels, now " +
                     std::to_string(outputs_[o].size()));
  try {
    for (size_t o = 0; o < cs.outputs.size(); ++o) {
      for (size_t c = 0; c < outputs_[o].size(); ++c) {
        auto& ch = outputs_[o][c];
        for (const auto& bytes : cs.outputs[o][c]) {
          state::byte_reader r(bytes);
          ch.pending.push_back({chain_.outputs[o]->read_batch(r), 0, 0});
          ++pending_total_;
        }
        send_pending(ch);
      }
    }
    std::deque<queued_item> replay;
    for (size_t c = 0; c < inputs_.size(); ++c) {
      for (const auto& bytes : cs.inputs[c]) {
        state::byte_reader r(bytes);
        queued_item item;
        item.channel = static_cast<uint32_t>(c);
        item.batch = chain_.feeders[inputs_[c].feeder]->read_batch(r);
        item.restored = true;
        replay.push_back(std::move(item));
      }
    }
    // Replayed input goes before anything that arrived meanwhile.
    while (!replay.empty()) {
      queue_.push_front(std::move(replay.back()));
      replay.pop_back();
    }
  } catch (const state::serialization_error& e) {
    throw runtime::checkpoint_error("the channel state of " + task_ +
                                    " cannot be read: " + e.what());
  }
  if (pending_total_ > 0 && !blocked_)
    set_blocked(true, steady_now_ns());
}

void subtask_state::on_checkpoint_trigger(const checkpoint_trigger& t) {
  guarded([&] {
    if (t.id <= last_checkpoint_)
      return; // taken already through its barrier
    if (phase_ == phase::ended) {
      // All input processed (the final checkpoint, or one whose barrier
      // cannot arrive because the inputs ended): nothing to forward.
      take_checkpoint(t.id, t.timestamp_ms, false, t.savepoint);
      return;
    }
    if (phase_ != phase::running || chain_.source == nullptr) {
      caf::anon_send(d_.job_master, decline_atom::value, t.id, d_.vertex, d_.index, d_.attempt,
                     std::string("subtask is not running a source"));
      return;
    }
    take_checkpoint(t.id, t.timestamp_ms, true, t.savepoint);
    if (t.stop)
      end_input(true);
  });
}

void subtask_state::on_checkpoint_complete(int64_t id) {
  guarded([&] {
    if (!opened_)
      return;
    for (auto& op : chain_.operators)
      op->notify_checkpoint_complete(id);
  });
}

void subtask_state::on_checkpoint_aborted(int64_t id) {
  guarded([&] {
    if (!opened_)
      return;
    if (aligning_ == id)
      release_held();
    if (capture_ && capture_->id == id)
      capture_.reset();
    last_checkpoint_ = std::max(last_checkpoint_, id);
    for (auto& op : chain_.operators)
      op->notify_checkpoint_aborted(id);
  });
}

void subtask_state::on_cancel() {
  if (phase_ == phase::done)
    return;
  publish_counters();
  close_operators();
  phase_ = phase::done;
  report(execution_state::canceled);
  self_->quit();
}

void subtask_state::fail(const std::string& why) {
  if (phase_ == phase::done)
    return;
  close_operators();
  phase_ = phase::done;
  report(execution_state::failed, task_ + ": " + why);
  self_->quit();
}

void subtask_state::close_operators() noexcept {
  if (!opened_)
    return;
  opened_ = false;
  for (auto& op : chain_.operators) {
    try {
      op->close();
    } catch (...) {
      // A failing close() must not hide the original outcome.
    }
  }
}

void subtask_state::report(execution_state s, const std::string& error) {
  if (d_.metrics) {
    d_.metrics->state.store(static_cast<int>(s), std::memory_order_relaxed);
    if (s == execution_state::finished || s == execution_state::canceled ||
        s == execution_state::failed) {
      auto now = steady_now_ns();
      if (blocked_)
        set_blocked(false, now);
      d_.metrics->ended_ns.store(now, std::memory_order_relaxed);
    }
  }
  caf::anon_send(d_.job_master, state_atom::value,
                 subtask_report{d_.vertex, d_.index, static_cast<int32_t>(s), error, d_.attempt});
}

subtask_actor::behavior_type subtask_impl(subtask_actor::stateful_pointer<subtask_state> self,
                                          subtask_deployment d) {
  auto& st = self->state;
  try {
    st.init(self, std::move(d));
  } catch (const std::exception& e) {
    st.fail(std::string("cannot create subtask: ") + e.what());
  }
  return {
    [self](setup_atom, subtask_wiring& w) { self->state.wire(std::move(w)); },
    [self](start_atom) { self->state.start(); },
    [self](restored_atom, const restore_bundle_ptr& b) { self->state.on_restored(b); },
    [self](batch_msg& m) { self->state.on_batch(m); },
    [self](credit_msg& m) { self->state.on_credit(m); },
    [self](net_batch_msg& m) { self->state.on_net_batch(m); },
    [self](const net_credit_msg& m) { self->state.on_net_credit(m); },
    [self](const event_msg& m) { self->state.on_event(m); },
    [self](step_atom) { self->state.on_step(); },
    [self](resume_atom) { self->state.on_resume(); },
    [self](flush_atom) { self->state.on_flush_timer(); },
    [self](ptimer_atom) { self->state.on_processing_timer(); },
    [self](cancel_atom) { self->state.on_cancel(); },
    [self](checkpoint_atom, const checkpoint_trigger& t) { self->state.on_checkpoint_trigger(t); },
    [self](complete_atom, int64_t id) { self->state.on_checkpoint_complete(id); },
    [self](abortchk_atom, int64_t id) { self->state.on_checkpoint_aborted(id); },
    [self](finish_atom) { self->state.on_finish(); },
    [self](stop_atom, bool drain) { self->state.on_stop(drain); },
    [self](alignto_atom, int64_t id) { self->state.on_alignment_timeout(id); },
    [self](mail_msg& m) { self->state.on_mail(m); },
    [self](query_atom, int32_t op, const std::string& key) -> caf::result<int32_t, std::string> {
      auto r = self->state.on_query(op, key);
      return {static_cast<int32_t>(r.status), std::move(r.body)};
    },
  };
}

} // namespace sluice::actors
