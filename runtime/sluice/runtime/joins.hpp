#pragma once

#include "sluice/runtime/connected_streams.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

/// Joins of two streams on event time: window join and co-group (both
/// sides' records of a key and window together) and interval join (records
/// of the other side within a time interval of each record).
namespace sluice::runtime {

// ---- window join and co-group ---------------------------------------------------

/// Everything of one key and window from both sides (CoGroupFunction).
template <class A, class B, class R>
class co_group_function : public two_input_function<A, B, R> {
public:
  virtual void co_group(const std::vector<A>& first, const std::vector<B>& second,
                        collector<R>& out) = 0;
};

namespace internal {

/// Splits a window's two_input elements by side and hands them to `fn`.
template <class K, class A, class B, class R, class W, class Fn>
class co_group_window_function final
  : public process_window_function<K, two_input<A, B>, R, W> {
public:
  explicit co_group_window_function(Fn fn) : fn_(std::move(fn)) {}
  void open(const runtime_context& ctx) override { open_if_rich(fn_, ctx); }
  void close() override { close_if_rich(fn_); }
  void process(const K&, const window_context<W>&, const std::vector<two_input<A, B>>& elements,
               collector<R>& out) override {
    first_.clear();
    second_.clear();
    for (const auto& e : elements) {
      if (e.index() == 0)
        first_.push_back(std::get<0>(e));
      else
        second_.push_back(std::get<1>(e));
    }
    fn_(first_, second_, out);
  }

private:
  Fn fn_;
  std::vector<A> first_;
  std::vector<B> second_;
};

/// A co_group_function class called as fn(first, second, out).
template <class Fn>
struct co_group_call : forwarding_rich<Fn> {
  using forwarding_rich<Fn>::forwarding_rich;
  template <class VA, class VB, class Out>
  void operator()(const VA& a, const VB& b, Out& out) {
    this->fn_.co_group(a, b, out);
  }
};

/// An inner join of one window: f(a, b) for every pair.
template <class F, class R>
struct join_pairs {
  F f;
  template <class VA, class VB>
  void operator()(const VA& a, const VB& b, collector<R>& out) {
    for (const auto& x : a)
      for (const auto& y : b)
        out.collect(f(x, y));
  }
};

} // namespace internal

/// Builder of a window join / co-group: where(key of the first input),
/// equal_to(key of the second), window(assigner), then apply.
template <class A, class B, bool Join>
class two_stream_window_builder {
public:
  two_stream_window_builder(data_stream<A> a, data_stream<B> b)
    : a_(std::move(a)), b_(std::move(b)) {}

  template <class WS, class K, class W>
  class windowed;

  template <class SA>
  struct where_t {
    data_stream<A> a;
    data_stream<B> b;
    SA sa;

    template <class SB>
    struct equal_t {
      data_stream<A> a;
      data_stream<B> b;
      SA sa;
      SB sb;

      using K = std::decay_t<std::invoke_result_t<SA&, const A&>>;
      using V = two_input<A, B>;
      using key_sel = internal::either_key<K, A, B, SA, SB>;

      /// Cuts both inputs into the same windows per key.
      template <class Assigner>
      auto window(Assigner assigner) const {
        static_assert(std::is_same_v<K, std::decay_t<std::invoke_result_t<SB&, const B&>>>,
                      "both key selectors must return the same key type");
        using W = typename decltype(assigner.assign_windows(0, 0))::value_type;
        auto joined = internal::join_sides(a, b);
        keyed_stream<K, V, key_sel> keyed(joined, key_sel{sa, sb});
        using WS = windowed_stream<K, V, key_sel, W>;
        return windowed<WS, K, W>(keyed.window(std::move(assigner)));
      }
    };

    /// The key of the second input (the same type as the first's).
    template <class SB>
    equal_t<SB> equal_to(SB sb) const {
      return {a, b, sa, std::move(sb)};
    }
  };

  /// The key of the first input.
  template <class SA>
  where_t<SA> where(SA sa) const {
    return {a_, b_, std::move(sa)};
  }

  /// The windowed pair, ready for apply.
  template <class WS, class K, class W>
  class windowed {
  public:
    explicit windowed(WS ws) : ws_(std::move(ws)) {}

    /// Replaces the default trigger (a trigger over two_input<A, B>).
    template <class T>
    windowed& trigger(T t) {
      ws_.trigger(std::move(t));
      return *this;
    }
    windowed& allowed_lateness(std::chrono::milliseconds l) {
      ws_.allowed_lateness(l);
      return *this;
    }

    /// Join: f(const A&, const B&) -> R for every pair of a key's window.
    /// Co-group: a co_group_function<A, B, R>, or f(vector<A>, vector<B>,
    /// collector<R>&) with R given.
    template <class F>
    auto apply(F f) const {
      if constexpr (Join) {
        using R = std::decay_t<std::invoke_result_t<F&, const A&, const B&>>;
        using Fn = internal::co_group_window_function<K, A, B, R, W, internal::join_pairs<F, R>>;
        return ws_.process(Fn(internal::join_pairs<F, R>{std::move(f)})).name("Window Join");
      } else {
        using R = typename F::output_type;
        using Fn = internal::co_group_window_function<K, A, B, R, W, internal::co_group_call<F>>;
        return ws_.process(Fn(internal::co_group_call<F>(std::move(f)))).name("CoGroup");
      }
    }
    template <class R, class F>
    data_stream<R> apply(F f) const {
      static_assert(!Join, "a window join's result type comes from its function");
      using Fn = internal::co_group_window_function<K, A, B, R, W, F>;
      return ws_.process(Fn(std::move(f))).name("CoGroup");
    }

  private:
    WS ws_;
  };

private:
  data_stream<A> a_;
  data_stream<B> b_;
};

// ---- interval join ---------------------------------------------------------------

/// Called for each pair of an interval join (ProcessJoinFunction).
template <class A, class B, class R>
class process_join_function : public two_input_function<A, B, R> {
public:

  /// The timestamps of the pair; the output carries the larger one.
  class context {
  public:
    context(int64_t left, int64_t right, side_outputs* side)
      : left_(left), right_(right), side_(side) {}
    [[nodiscard]] int64_t left_timestamp() const noexcept { return left_; }
    [[nodiscard]] int64_t right_timestamp() const noexcept { return right_; }
    [[nodiscard]] int64_t timestamp() const noexcept { return std::max(left_, right_); }
    template <class T>
    void output(const output_tag<T>& tag, T value) {
      side_->emit(tag, std::move(value));
    }

  private:
    int64_t left_;
    int64_t right_;
    side_outputs* side_;
  };

  virtual void process_element(const A& left, const B& right, context& ctx, collector<R>& out) = 0;
};

namespace internal {

/// The interval join as a keyed co-process function: each side's records
/// wait in map state (timestamp -> records) until the watermark passes the
/// last time a record of the other side could still match them, as Flink's
/// IntervalJoinOperator does.
template <class K, class A, class B, class R, class Fn>
class interval_join_function final : public keyed_co_process_function<K, A, B, R> {
public:
  using context = typename keyed_co_process_function<K, A, B, R>::context;

  interval_join_function(Fn fn, int64_t lower, int64_t upper, bool lower_inclusive,
                         bool upper_inclusive)
    : fn_(std::move(fn)),
      lower_(lower_inclusive ? lower : lower + 1),
      upper_(upper_inclusive ? upper : upper - 1) {}

  void open(const runtime_context& ctx) override {
    rc_ = ctx;
    left_ = ctx.get_map_state(state::map_state_descriptor<int64_t, std::vector<A>>("_left"));
    right_ = ctx.get_map_state(state::map_state_descriptor<int64_t, std::vector<B>>("_right"));
    fn_.open(ctx);
  }
  void close() override { fn_.close(); }

  void process_element1(const A& a, context& ctx, collector<R>& out) override {
    auto ts = timestamp_of(ctx);
    if (ts < ctx.timer_service().current_watermark())
      return; // late: could have matched records already cleaned up
    add(left_, ts, a);
    // right.ts in [ts + lower, ts + upper]
    for (const auto& [rts, bs] : right_.entries()) {
      if (rts < ts + lower_ || rts > ts + upper_)
        continue;
      for (const auto& b : bs)
        emit(a, ts, b, rts, out);
    }
    ctx.timer_service().register_event_time_timer(upper_ > 0 ? ts + upper_ : ts);
  }
  void process_element2(const B& b, context& ctx, collector<R>& out) override {
    auto ts = timestamp_of(ctx);
    if (ts < ctx.timer_service().current_watermark())
      return;
    add(right_, ts, b);
    // left.ts in [ts - upper, ts - lower]
    for (const auto& [lts, as] : left_.entries()) {
      if (lts < ts - upper_ || lts > ts - lower_)
        continue;
      for (const auto& a : as)
        emit(a, lts, b, ts, out);
    }
    ctx.timer_service().register_event_time_timer(lower_ <= 0 ? ts - lower_ : ts);
  }
  void on_timer(int64_t t, context&, collector<R>&) override {
    // Left records at ts are done once the watermark passed ts + upper;
    // right records at ts once it passed ts - lower.
    left_.remove(upper_ > 0 ? t - upper_ : t);
    right_.remove(lower_ <= 0 ? t + lower_ : t);
  }

private:
  template <class T>
  static void add(state::map_state<int64_t, std::vector<T>>& m, int64_t ts, const T& v) {
    auto list = m.get(ts).value_or(std::vector<T>{});
    list.push_back(v);
    m.put(ts, std::move(list));
  }
  static int64_t timestamp_of(context& ctx) {
    auto ts = ctx.timestamp();
    if (!ts)
      throw std::invalid_argument("interval join: a record has no timestamp; assign timestamps "
                                  "(assign_timestamps_and_watermarks) on both inputs");
    return *ts;
  }
  void emit(const A& a, int64_t lts, const B& b, int64_t rts, collector<R>& out) {
    auto& element = rc_.element();
    auto saved = element.timestamp;
    element.timestamp = std::max(lts, rts);
    typename process_join_function<A, B, R>::context jc(lts, rts, nullptr);
    fn_.process_element(a, b, jc, out);
    element.timestamp = saved;
  }

  Fn fn_;
  int64_t lower_;
  int64_t upper_;
  runtime_context rc_;
  state::map_state<int64_t, std::vector<A>> left_;
  state::map_state<int64_t, std::vector<B>> right_;
};

template <class F, class A, class B, class R>
struct lambda_join final : process_join_function<A, B, R> {
  explicit lambda_join(F f) : f_(std::move(f)) {}
  void process_element(const A& a, const B& b, typename process_join_function<A, B, R>::context&,
                       collector<R>& out) override {
    out.collect(f_(a, b));
  }
  F f_;
};

} // namespace internal

/// Interval join of two keyed streams (Flink's intervalJoin): each record a
/// of the first input joins every record b of the second with the same key
/// and b.timestamp in [a.timestamp + lower, a.timestamp + upper]. Event time
/// only; records behind the watermark are dropped.
template <class K, class A, class SA, class B, class SB>
class interval_join_builder {
public:
  interval_join_builder(keyed_stream<K, A, SA> a, keyed_stream<K, B, SB> b)
    : a_(std::move(a)), b_(std::move(b)) {}

  /// The interval, relative to the first input's timestamp (inclusive).
  interval_join_builder& between(std::chrono::milliseconds lower, std::chrono::milliseconds upper) {
    if (lower > upper)
      throw std::invalid_argument("interval join: lower bound " + std::to_string(lower.count()) +
                                  " ms is above upper bound " + std::to_string(upper.count()) +
                                  " ms");
    lower_ = lower.count();
    upper_ = upper.count();
    set_ = true;
    return *this;
  }
  interval_join_builder& lower_bound_exclusive() {
    lower_inclusive_ = false;
    return *this;
  }
  interval_join_builder& upper_bound_exclusive() {
    upper_inclusive_ = false;
    return *this;
  }

  /// Joins with a process_join_function<A, B, R>.
  template <class Fn, std::enable_if_t<std::is_base_of_v<process_join_function<A, B, typename Fn::output_type>, Fn>, int> = 0>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    using R = typename Fn::output_type;
    if (!set_)
      throw std::invalid_argument("interval join: call between(lower, upper) first");
    internal::interval_join_function<K, A, B, R, Fn> j(std::move(fn), lower_, upper_,
                                                       lower_inclusive_, upper_inclusive_);
    return a_.connect(b_).process(std::move(j)).name("IntervalJoin");
  }
  /// Joins with f(const A&, const B&) -> R.
  template <class F, std::enable_if_t<std::is_invocable_v<F&, const A&, const B&>, int> = 0>
  auto process(F f) const {
    using R = std::decay_t<std::invoke_result_t<F&, const A&, const B&>>;
    return process(internal::lambda_join<F, A, B, R>(std::move(f)));
  }

private:
  keyed_stream<K, A, SA> a_;
  keyed_stream<K, B, SB> b_;
  int64_t lower_ = 0;
  int64_t upper_ = 0;
  bool set_ = false;
  bool lower_inclusive_ = true;
  bool upper_inclusive_ = true;
};

template <class T>
template <class B>
two_stream_window_builder<T, B, true> data_stream<T>::join(const data_stream<B>& other) const {
  return two_stream_window_builder<T, B, true>(*this, other);
}

template <class T>
template <class B>
two_stream_window_builder<T, B, false> data_stream<T>::co_group(const data_stream<B>& other) const {
  return two_stream_window_builder<T, B, false>(*this, other);
}

template <class K, class T, class KeySel>
template <class B, class SB>
interval_join_builder<K, T, KeySel, B, SB>
keyed_stream<K, T, KeySel>::interval_join(const keyed_stream<K, B, SB>& other) const {
  return interval_join_builder<K, T, KeySel, B, SB>(*this, other);
}

} // namespace sluice::runtime
