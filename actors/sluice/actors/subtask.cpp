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
} // namespace

subtask_state::~subtask_state() { close_operators(); }

void subtask_state::init(subtask_actor::pointer self, subtask_deployment d) {
  self_ = self;
  d_ = std::move(d);
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
  }
  inputs_open_ = inputs_.size();
  barrier_seen_.assign(inputs_.size(), 0);
  exactly_once_ = d_.config.checkpoints.mode == runtime::checkpointing_mode::exactly_once;
  if (!inputs_.empty())
    valve_ = std::make_unique<runtime::watermark_valve>(inputs_.size());
  if (chain_.source == nullptr && !chain_.operators.empty())
    heads_.push_back(chain_.operators.front()->input());
}

void subtask_state::wire(subtask_wiring w) {
  for (size_t o = 0; o < outputs_.size() && o < w.outputs.size(); ++o) {
    auto& chans = outputs_[o];
    chans.resize(w.outputs[o].size());
    for (size_t c = 0; c < chans.size(); ++c) {
      chans[c].target = w.outputs[o][c].first;
      chans[c].target_channel = w.outputs[o][c].second;
      // Receivers grant their initial credit implicitly: both sides know it.
      chans[c].credits = credits_per_channel_;
    }
  }
  for (size_t i = 0; i < inputs_.size() && i < w.inputs.size(); ++i)
    inputs_[i].sender = w.inputs[i];
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
        for (auto& uid : uids) {
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
    self_->send(ch.target, batch_msg{ch.target_channel, std::move(batch)});
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

bool subtask_state::has_credit(uint32_t output, uint32_t channel) const {
  const auto& ch = outputs_[output][channel];
  return ch.credits > 0 && ch.pending.empty();
}

void subtask_state::send_event(uint32_t output, uint32_t channel, uint8_t kind, int64_t value) {
  auto& ch = outputs_[output][channel];
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
      self_->send(ch.target, batch_msg{ch.target_channel, std::move(f.batch)});
    } else {
      self_->send(ch.target, event_msg{ch.target_channel, f.kind, f.value});
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
    auto& in = inputs_[m.channel];
    ++in.queued;
    peak_queued_ = std::max(peak_queued_, in.queued);
    // Batches that arrive before start() (an upstream started first) or
    // while blocked wait in order; credits bound how many.
    if (phase_ != phase::running || blocked_ || !queue_.empty() || held(m.channel)) {
      queue_.push_back({m.channel, std::move(m.batch), {}});
      schedule_drain();
      return;
    }
    process_batch(m.channel, std::move(m.batch));
  });
}

void subtask_state::process_batch(uint32_t channel, runtime::batch_ptr batch) {
  auto& in = inputs_[channel];
  records_in_ += chain_.feeders[in.feeder]->feed(*batch);
  end_of_batch();
  --in.queued;
  // The batch is consumed: its buffer goes back with the credit.
  self_->send(in.sender, credit_msg{in.sender_output, in.sender_channel, std::move(batch)});
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
}

void subtask_state::on_event(const event_msg& m) {
  guarded([&] {
    if (m.channel >= inputs_.size())
      throw std::logic_error("event for unknown input channel " + std::to_string(m.channel));
    if (phase_ != phase::running || blocked_ || !queue_.empty() || held(m.channel)) {
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
      if (auto wm = valve_->on_watermark(channel, value))
        advance_watermark(*wm);
      break;
    case channel_event::idle: {
      auto wm = valve_->on_idle(channel);
      if (wm)
        advance_watermark(*wm);
      if (valve_->all_idle())
        for (auto* h : heads_)
          h->process_idleness(true);
      break;
    }
    case channel_event::active: {
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
  while (!blocked_ && !queue_.empty() && phase_ == phase::running && budget-- > 0 &&
         steady_now_ns() < deadline) {
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
      process_batch(item.channel, std::move(item.batch));
    else
      process_event(item.channel, item.event, item.value);
  }
  if (!blocked_ && !queue_.empty() && phase_ == phase::running && !resume_scheduled_) {
    resume_scheduled_ = true;
    self_->send(self_, resume_atom::value);
  }
}

void subtask_state::schedule_drain() {
  // Items queued behind a held channel wait for nothing else: make sure the
  // queue is looked at again (drain_queue holds back what is still held).
  if (phase_ == phase::running && !blocked_ && !resume_scheduled_) {
    resume_scheduled_ = true;
    self_->send(self_, resume_atom::value);
  }
}

void subtask_state::on_resume() {
  resume_scheduled_ = false;
  guarded([&] { drain_queue(); });
}

void subtask_state::on_credit(credit_msg& m) {
  guarded([&] {
    if (m.output >= outputs_.size() || m.channel >= outputs_[m.output].size())
      throw std::logic_error("credit for unknown output channel");
    auto& ch = outputs_[m.output][m.channel];
    ++ch.credits;
    if (m.buffer)
      ch.free.push_back(std::move(m.buffer));
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
  });
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

void subtask_state::on_barrier(uint32_t channel, int64_t id) {
  if (id <= last_checkpoint_)
    return; // a barrier of a checkpoint this subtask already took or gave up
  if (aligning_ >= 0 && id > aligning_) {
    // A newer checkpoint overtook the one being aligned (that one was
    // aborted upstream): give it up.
    release_held();
  }
  if (aligning_ < 0) {
    aligning_ = id;
    std::fill(barrier_seen_.begin(), barrier_seen_.end(), 0);
    barriers_missing_ = 0;
    for (size_t c = 0; c < inputs_.size(); ++c)
      if (!inputs_[c].ended)
        ++barriers_missing_;
    align_start_ns_ = steady_now_ns();
  }
  if (!barrier_seen_[channel])
    barrier_arrived(channel);
}

void subtask_state::barrier_arrived(uint32_t channel) {
  barrier_seen_[channel] = 1;
  if (barriers_missing_ > 0)
    --barriers_missing_;
  if (barriers_missing_ > 0)
    return;
  take_checkpoint(aligning_, now_ms(), true);
  release_held();
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

void subtask_state::take_checkpoint(int64_t id, int64_t timestamp_ms, bool forward) {
  auto t0 = steady_now_ns();
  last_checkpoint_ = id;
  checkpoint_ack ack;
  ack.id = id;
  ack.vertex = d_.vertex;
  ack.index = d_.index;
  ack.attempt = d_.attempt;
  ack.alignment_ns = aligning_ >= 0 ? t0 - align_start_ns_ : 0;
  const auto& v = d_.job->vertices()[d_.vertex];
  // Savepoints are full snapshots in the canonical format (self-contained).
  bool incremental = d_.config.checkpoints.incremental &&
                     !(d_.savepoints && d_.savepoints->contains(id));
  std::vector<std::pair<std::string, runtime::operator_snapshot>> snaps;
  for (size_t k = 0; k < chain_.operators.size(); ++k) {
    const auto& node = d_.job->graph().nodes[v.nodes[k]];
    auto base = "n" + std::to_string(node.id) + "-" + file_token(runtime::operator_uid(node)) +
                "-s" + std::to_string(d_.index);
    snaps.emplace_back(base, chain_.operators[k]->snapshot_operator(id, timestamp_ms, incremental));
  }
  if (forward)
    for (auto& o : chain_.outputs)
      o->broadcast_event(channel_event::barrier, id);
  ack.sync_ns = steady_now_ns() - t0;
  // The files are written off the subtask's thread; processing goes on.
  auto dir = std::filesystem::path(d_.checkpoint_dir) / ("chk-" + std::to_string(id));
  auto jm = d_.job_master;
  self_->spawn<caf::detached>(
    [dir, jm, snaps = std::move(snaps), ack = std::move(ack)](caf::event_based_actor* w,
                                                               int) mutable {
      auto t = steady_now_ns();
      try {
        for (auto& [base, snap] : snaps) {
          auto written = runtime::write_operator_snapshot(dir, ack.id, base, snap);
          ack.keyed_files.push_back(std::move(written.keyed_state_file));
          ack.operator_files.push_back(std::move(written.operator_state_file));
          ack.bytes.push_back(written.bytes);
          ack.native_files.push_back(std::move(written.native_files));
        }
        ack.async_ns = steady_now_ns() - t;
        using namespace std::chrono;
        ack.acked_ms =
          duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
        w->send(jm, ack_atom::value, std::move(ack));
      } catch (const std::exception& e) {
        w->send(jm, decline_atom::value, ack.id, ack.vertex, ack.index, ack.attempt,
                std::string("cannot write checkpoint state: ") + e.what());
      }
    },
    0); // an argument: CAF 0.17 dereferences a null argument tuple otherwise
}

void subtask_state::on_checkpoint_trigger(const checkpoint_trigger& t) {
  guarded([&] {
    if (t.id <= last_checkpoint_)
      return; // taken already through its barrier
    if (phase_ == phase::ended) {
      // All input processed (the final checkpoint, or one whose barrier
      // cannot arrive because the inputs ended): nothing to forward.
      take_checkpoint(t.id, t.timestamp_ms, false);
      return;
    }
    if (phase_ != phase::running || chain_.source == nullptr) {
      caf::anon_send(d_.job_master, decline_atom::value, t.id, d_.vertex, d_.index, d_.attempt,
                     std::string("subtask is not running a source"));
      return;
    }
    take_checkpoint(t.id, t.timestamp_ms, true);
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
  };
}

} // namespace sluice::actors
