#pragma once

#include "sluice/runtime/operators.hpp"
#include "sluice/runtime/time/timer_service.hpp"
#include "sluice/runtime/time/watermarks.hpp"

#include <optional>
#include <set>
#include <tuple>
#include <type_traits>

/// Event time in operators: the timestamp/watermark assigner, keyed timers,
/// and keyed process functions (Flink's KeyedProcessFunction).
namespace sluice::runtime {

/// Timers per (key, namespace), ordered by time; one per distinct
/// (time, key, namespace). Owned by one keyed operator subtask.
template <class K, class N = state::void_namespace>
class keyed_timers {
public:
  struct timer {
    int64_t time;
    K key;
    N ns;
    friend bool operator<(const timer& a, const timer& b) {
      return std::tie(a.time, a.key, a.ns) < std::tie(b.time, b.key, b.ns);
    }
  };

  keyed_timers() = default;
  // last_event_ points into event_: a copy or move would carry it into the
  // wrong set.
  keyed_timers(const keyed_timers&) = delete;
  keyed_timers& operator=(const keyed_timers&) = delete;

  void add_event(int64_t t, const K& k, const N& ns) {
    // A record usually registers the same timer twice in a row (a window's
    // trigger timer and its cleanup timer coincide without lateness): the
    // repeat needs no set lookup.
    if (last_event_ != event_.end() && last_event_->time == t && !(last_event_->key < k) &&
        !(k < last_event_->key) && !(last_event_->ns < ns) && !(ns < last_event_->ns))
      return;
    last_event_ = event_.insert({t, k, ns}).first;
  }
  void remove_event(int64_t t, const K& k, const N& ns) {
    last_event_ = event_.end();
    event_.erase({t, k, ns});
  }
  /// Adds a processing-time timer; true when it is new.
  bool add_processing(int64_t t, const K& k, const N& ns) {
    return processing_.insert({t, k, ns}).second;
  }
  void remove_processing(int64_t t, const K& k, const N& ns) { processing_.erase({t, k, ns}); }

  /// Fires, in time order, every event-time timer at or before `wm`.
  template <class F>
  void advance_watermark(int64_t wm, F&& fire) {
    while (!event_.empty() && event_.begin()->time <= wm) {
      last_event_ = event_.end();
      auto t = *event_.begin();
      event_.erase(event_.begin());
      fire(t);
    }
  }
  /// Fires every processing-time timer at or before `now`.
  template <class F>
  void advance_processing_time(int64_t now, F&& fire) {
    while (!processing_.empty() && processing_.begin()->time <= now) {
      auto t = *processing_.begin();
      processing_.erase(processing_.begin());
      fire(t);
    }
  }
  [[nodiscard]] size_t event_timers() const noexcept { return event_.size(); }
  [[nodiscard]] size_t processing_timers() const noexcept { return processing_.size(); }

private:
  std::set<timer> event_;
  std::set<timer> processing_;
  /// The timer add_event placed last (end() when unknown).
  typename std::set<timer>::iterator last_event_ = event_.end();
};

/// A keyed process function: per-record logic with keyed state and timers.
/// Derive, override process_element (and on_timer), and pass an instance to
/// keyed_stream::process; each subtask gets its own copy.
template <class K, class In, class Out>
class keyed_process_function : public rich_function {
public:
  using key_type = K;
  using input_type = In;
  using output_type = Out;

  /// What a call knows: the record's timestamp, the key, timers.
  class context {
  public:
    virtual ~context() = default;
    /// The record's (or firing timer's) timestamp; nothing for records
    /// without one.
    [[nodiscard]] virtual std::optional<int64_t> timestamp() const = 0;
    [[nodiscard]] virtual const K& current_key() const = 0;
    virtual runtime::timer_service& timer_service() = 0;
    /// In on_timer: which clock fired.
    [[nodiscard]] virtual runtime::time_domain time_domain() const = 0;
    /// Emits `value` to side output `tag` (with the current timestamp).
    template <class T>
    void output(const output_tag<T>& tag, T value) {
      side().emit(tag, std::move(value));
    }

  protected:
    virtual side_outputs& side() = 0;
  };

  virtual void process_element(const In& value, context& ctx, collector<Out>& out) = 0;
  virtual void on_timer(int64_t /*timestamp*/, context& /*ctx*/, collector<Out>& /*out*/) {}
};

namespace internal {
/// A function whose records may carry no key (the broadcast side of a keyed
/// broadcast operator) says so with a static is_keyless(const In&).
template <class F, class In, class = void>
struct has_keyless : std::false_type {};
template <class F, class In>
struct has_keyless<F, In, std::void_t<decltype(F::is_keyless(std::declval<const In&>()))>>
  : std::true_type {};

template <class F, class = void>
struct is_keyed_process_function : std::false_type {};
template <class F>
struct is_keyed_process_function<
  F, std::enable_if_t<std::is_base_of_v<
       keyed_process_function<typename F::key_type, typename F::input_type,
                              typename F::output_type>,
       F>>> : std::true_type {};
} // namespace internal

/// Runs a keyed_process_function: sets the key, keeps its timers, fires
/// them on watermarks and on processing time.
template <class K, class In, class Out, class KeySel, class Fn>
class keyed_process_function_operator final
  : public keyed_operator<K, In, Out>,
    private keyed_process_function<K, In, Out>::context,
    private timer_service,
    private processing_time_callback {
public:
  keyed_process_function_operator(std::string name, KeySel sel, Fn fn)
    : keyed_operator<K, In, Out>(std::move(name)), sel_(std::move(sel)), fn_(std::move(fn)) {}

  void open(const runtime_context& ctx) override {
    const auto& kctx = this->open_keyed_state(ctx);
    element_ = &ctx.element();
    time_ = ctx.time_service();
    this->call_user([&] { fn_.open(kctx); });
  }
  void close() override {
    fn_.close();
    this->close_keyed_state();
  }
  void collect(In&& value) override {
    domain_ = runtime::time_domain::event_time;
    if constexpr (internal::has_keyless<Fn, In>::value) {
      if (Fn::is_keyless(value)) {
        this->call_user([&] { fn_.process_element(value, *this, *this->out_); });
        return;
      }
    }
    key_ = sel_(static_cast<const In&>(value));
    this->backend_->set_current_key(key_);
    this->call_user([&] { fn_.process_element(value, *this, *this->out_); });
  }

  /// Timers registered (for tests and metrics).
  [[nodiscard]] const keyed_timers<K>& timers() const noexcept { return timers_; }

protected:
  void on_watermark(int64_t wm) override {
    timers_.advance_watermark(wm, [&](const typename keyed_timers<K>::timer& t) {
      fire(t, runtime::time_domain::event_time, t.time);
    });
  }

private:
  void on_processing_time(int64_t now) override {
    timers_.advance_processing_time(now, [&](const typename keyed_timers<K>::timer& t) {
      fire(t, runtime::time_domain::processing_time, INT64_MIN);
    });
  }

  void fire(const typename keyed_timers<K>::timer& t, runtime::time_domain d, int64_t out_ts) {
    key_ = t.key;
    this->backend_->set_current_key(key_);
    domain_ = d;
    auto saved = element_->timestamp;
    element_->timestamp = out_ts;
    this->call_user([&] { fn_.on_timer(t.time, *this, *this->out_); });
    element_->timestamp = saved;
  }

  // context
  std::optional<int64_t> timestamp() const override {
    if (element_->timestamp == INT64_MIN)
      return std::nullopt;
    return element_->timestamp;
  }
  const K& current_key() const override { return key_; }
  runtime::timer_service& timer_service() override { return *this; }
  runtime::time_domain time_domain() const override { return domain_; }
  side_outputs& side() override { return this->side_; }

  // timer_service
  int64_t current_processing_time() const override {
    return time_ != nullptr ? time_->now_ms() : 0;
  }
  int64_t current_watermark() const override { return element_->watermark; }
  void register_event_time_timer(int64_t t) override { timers_.add_event(t, key_, {}); }
  void delete_event_time_timer(int64_t t) override { timers_.remove_event(t, key_, {}); }
  void register_processing_time_timer(int64_t t) override {
    if (time_ == nullptr)
      throw std::logic_error("processing-time timers need a running subtask");
    if (timers_.add_processing(t, key_, {}))
      time_->register_timer(t, this);
  }
  void delete_processing_time_timer(int64_t t) override { timers_.remove_processing(t, key_, {}); }

  KeySel sel_;
  Fn fn_;
  K key_{};
  runtime::time_domain domain_ = runtime::time_domain::event_time;
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  keyed_timers<K> timers_;
};

/// Assigns timestamps and generates watermarks (Flink's
/// assignTimestampsAndWatermarks): watermarks from upstream are dropped,
/// except the final maximum one.
template <class T>
class timestamps_and_watermarks_operator final : public one_input_operator<T, T>,
                                                 private watermark_output,
                                                 private processing_time_callback {
public:
  timestamps_and_watermarks_operator(std::string name, watermark_strategy<T> strategy,
                                     std::chrono::milliseconds interval)
    : one_input_operator<T, T>(std::move(name)), strategy_(std::move(strategy)),
      interval_(interval.count()) {}

  void open(const runtime_context& ctx) override {
    element_ = &ctx.element();
    time_ = ctx.time_service();
    auto* time = time_;
    generator_ = this->call_user([&] {
      return strategy_.create_generator([time] {
        if (time != nullptr)
          return time->now_ms();
        using namespace std::chrono;
        return static_cast<int64_t>(
          duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
      });
    });
    if (time_ != nullptr && interval_ > 0)
      time_->register_timer(time_->now_ms() + interval_, this);
  }

  void collect(T&& value) override {
    auto previous = element_->timestamp;
    auto ts = this->call_user(
      [&] { return strategy_.assign_timestamp(static_cast<const T&>(value), previous); });
    element_->timestamp = ts;
    // As in Flink, the record goes out before any watermark its event
    // produces: hold such a watermark until the record is forwarded.
    deferring_ = true;
    this->call_user([&] { generator_->on_event(value, ts, *this); });
    deferring_ = false;
    this->out_->collect(std::move(value));
    element_->timestamp = previous;
    if (deferred_ > current_)
      emit_watermark(deferred_);
  }

  void process_watermark(int64_t wm) override {
    if (wm == max_watermark && current_ != max_watermark)
      emit_watermark(max_watermark);
  }
  void process_idleness(bool) override {} // this operator decides idleness itself

private:
  // watermark_output
  void emit_watermark(int64_t wm) override {
    if (deferring_) {
      deferred_ = std::max(deferred_, wm);
      return;
    }
    if (wm <= current_)
      return;
    current_ = wm;
    if (idle_) {
      idle_ = false;
      this->out_->process_idleness(false);
    }
    this->out_->process_watermark(wm);
  }
  void mark_idle() override {
    if (!idle_) {
      idle_ = true;
      this->out_->process_idleness(true);
    }
  }
  void mark_active() override {
    if (idle_) {
      idle_ = false;
      this->out_->process_idleness(false);
    }
  }

  void on_processing_time(int64_t now) override {
    this->call_user([&] { generator_->on_periodic_emit(*this); });
    if (current_ != max_watermark)
      time_->register_timer(now + interval_, this);
  }

  watermark_strategy<T> strategy_;
  int64_t interval_;
  std::unique_ptr<watermark_generator<T>> generator_;
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  int64_t current_ = min_watermark;
  int64_t deferred_ = min_watermark;
  bool deferring_ = false;
  bool idle_ = false;
};

} // namespace sluice::runtime
