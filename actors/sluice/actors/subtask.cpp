#include "sluice/actors/subtask.hpp"

#include <algorithm>
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
    const auto& v = d_.job->vertices()[d_.vertex];
    runtime::runtime_context ctx(v.name, d_.index, v.parallelism, v.max_parallelism);
    ctx.set_state_config(&d_.config.state);
    ctx.set_element_context(&element_);
    ctx.set_time_service(this);
    // Unique per process, actor and subtask: names working files (RocksDB).
    ctx.set_instance_id(std::to_string(::getpid()) + "-" + std::to_string(self_->id()) + "-v" +
                        std::to_string(d_.vertex) + "-" + std::to_string(d_.index));
    opened_ = true;
    for (auto& op : chain_.operators)
      op->open_operator(ctx);
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
  });
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
    if (phase_ != phase::running || blocked_ || !queue_.empty()) {
      queue_.push_back({m.channel, std::move(m.batch), {}});
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
    if (phase_ != phase::running || blocked_ || !queue_.empty()) {
      queue_.push_back({m.channel, nullptr, m.event(), m.value});
      return;
    }
    process_event(m.channel, m.event(), m.value);
  });
}

void subtask_state::process_event(uint32_t channel, channel_event kind, int64_t value) {
  switch (kind) {
    case channel_event::end_of_partition: {
      auto& in = inputs_[channel];
      if (!in.ended) {
        in.ended = true;
        // An ended channel no longer holds event time back; when all have
        // ended this is the maximum watermark, so every window fires.
        if (auto wm = valve_->on_end(channel))
          advance_watermark(*wm);
        if (--inputs_open_ == 0)
          end_input();
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

void subtask_state::end_input() {
  // A bounded source ends event time: the maximum watermark fires every
  // window and timer before the operators finish.
  if (chain_.source != nullptr) {
    element_.watermark = runtime::max_watermark;
    chain_.source->process_end_watermark();
  }
  // Finish operators head first, so what one emits reaches the next before
  // that one finishes; then push out every partial batch.
  for (auto& op : chain_.operators)
    op->finish();
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
      self_->send(ch.target, event_msg{ch.target_channel, static_cast<uint8_t>(channel_event::end_of_partition)});
  publish_counters();
  close_operators();
  phase_ = phase::done;
  report(execution_state::finished);
  self_->quit();
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
                 subtask_report{d_.vertex, d_.index, static_cast<int32_t>(s), error});
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
    [self](batch_msg& m) { self->state.on_batch(m); },
    [self](credit_msg& m) { self->state.on_credit(m); },
    [self](const event_msg& m) { self->state.on_event(m); },
    [self](step_atom) { self->state.on_step(); },
    [self](resume_atom) { self->state.on_resume(); },
    [self](flush_atom) { self->state.on_flush_timer(); },
    [self](ptimer_atom) { self->state.on_processing_timer(); },
    [self](cancel_atom) { self->state.on_cancel(); },
  };
}

} // namespace sluice::actors
