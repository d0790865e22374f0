#pragma once

#include "sluice/runtime/time/timer_service.hpp"
#include "sluice/runtime/window/time_window.hpp"
#include "sluice/state/keyed_state.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

/// Triggers: when a window's contents are emitted (fired) and when they are
/// dropped (purged). Semantics follow Flink's Trigger, EventTimeTrigger,
/// ProcessingTimeTrigger, CountTrigger, PurgingTrigger and GlobalWindows'
/// NeverTrigger.
///
/// Threading and lifetime: each subtask of a window operator owns its own
/// trigger (trigger::clone), and calls it from the subtask's thread only.
namespace sluice::runtime {

/// What the window operator does with a window after asking its trigger.
enum class trigger_result {
  continue_,     ///< nothing
  fire,          ///< emit the window's contents, keep them
  purge,         ///< drop the window's contents without emitting
  fire_and_purge ///< emit the contents, then drop them
};

/// Whether the window's contents are emitted (fire or fire_and_purge).
[[nodiscard]] constexpr bool is_fire(trigger_result r) noexcept {
  return r == trigger_result::fire || r == trigger_result::fire_and_purge;
}

/// Whether the window's contents are dropped (purge or fire_and_purge).
[[nodiscard]] constexpr bool is_purge(trigger_result r) noexcept {
  return r == trigger_result::purge || r == trigger_result::fire_and_purge;
}

/// "continue", "fire", "purge" or "fire_and_purge".
[[nodiscard]] constexpr const char* to_string(trigger_result r) noexcept {
  switch (r) {
    case trigger_result::continue_:
      return "continue";
    case trigger_result::fire:
      return "fire";
    case trigger_result::purge:
      return "purge";
    case trigger_result::fire_and_purge:
      return "fire_and_purge";
  }
  return "?";
}

/// Writes to_string(r), for logs and test output.
inline std::ostream& operator<<(std::ostream& os, trigger_result r) { return os << to_string(r); }

/// What a trigger may see and do, implemented by the window operator for the
/// current key and window. Timers are per (key, window, time): registering
/// the same one twice keeps one.
template <class W>
class trigger_context : public timer_service {
public:
  /// The keyed state backend, with the current key already set; triggers
  /// keep per-window state there, in the window's namespace.
  [[nodiscard]] virtual state::keyed_state_backend_base& state_backend() = 0;
  /// The window the current call is about.
  [[nodiscard]] virtual const W& window() const = 0;
};

/// Decides when a window fires and purges, for elements of type T in windows
/// of type W. Users write custom triggers by deriving from it. Any state a
/// trigger keeps must live in ctx.state_backend() (so it is per key and
/// checkpointed), never in the trigger object.
template <class T, class W>
class trigger {
public:
  virtual ~trigger() = default;
  /// Called for each element added to `window`.
  virtual trigger_result on_element(const T& element, int64_t timestamp, const W& window,
                                    trigger_context<W>& ctx) = 0;
  /// Called when an event-time timer set for `window` fires at `time`.
  virtual trigger_result on_event_time(int64_t time, const W& window,
                                       trigger_context<W>& ctx) = 0;
  /// Called when a processing-time timer set for `window` fires at `time`.
  virtual trigger_result on_processing_time(int64_t time, const W& window,
                                            trigger_context<W>& ctx) = 0;
  /// Whether the trigger supports merging windows (session windows need it).
  [[nodiscard]] virtual bool can_merge() const { return false; }
  /// Called when windows merged into `window`, before the merged windows are
  /// cleared; re-registers timers and merges trigger state.
  virtual void on_merge(const W& window, trigger_context<W>& ctx) {
    (void)window;
    (void)ctx;
  }
  /// Called when `window` is removed: delete its timers and state.
  virtual void clear(const W& window, trigger_context<W>& ctx) = 0;
  /// A fresh copy for another subtask.
  [[nodiscard]] virtual std::unique_ptr<trigger> clone() const = 0;
};

/// Fires once the watermark passes the end of the window; an element that
/// arrives after that (late, but within the allowed lateness) fires the
/// window again at once. The default trigger of event-time assigners.
template <class T, class W>
class event_time_trigger final : public trigger<T, W> {
public:
  /// Fires at once if the watermark already passed the window; otherwise sets
  /// a timer at its max timestamp.
  trigger_result on_element(const T&, int64_t, const W& window,
                            trigger_context<W>& ctx) override {
    return on_element_at(window, ctx.current_watermark(),
                         [&](int64_t t) { ctx.register_event_time_timer(t); });
  }
  /// on_element with the watermark and the timer registration given
  /// directly, for the window operator's per-element path (no virtual calls).
  template <class Register>
  static trigger_result on_element_at(const W& window, int64_t current_watermark,
                                      Register&& register_event_time_timer) {
    if (window.max_timestamp() <= current_watermark)
      return trigger_result::fire;
    register_event_time_timer(window.max_timestamp());
    return trigger_result::continue_;
  }
  /// Fires for the timer at the window's max timestamp.
  trigger_result on_event_time(int64_t time, const W& window, trigger_context<W>&) override {
    return time == window.max_timestamp() ? trigger_result::fire : trigger_result::continue_;
  }
  /// Ignores processing time.
  trigger_result on_processing_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// True.
  [[nodiscard]] bool can_merge() const override { return true; }
  /// Sets the timer of the merged window unless the watermark passed it
  /// already (then the next element or the cleanup fires it).
  void on_merge(const W& window, trigger_context<W>& ctx) override {
    if (window.max_timestamp() > ctx.current_watermark())
      ctx.register_event_time_timer(window.max_timestamp());
  }
  /// Deletes the window's timer.
  void clear(const W& window, trigger_context<W>& ctx) override {
    ctx.delete_event_time_timer(window.max_timestamp());
  }
  /// A copy (the trigger has no members).
  [[nodiscard]] std::unique_ptr<trigger<T, W>> clone() const override {
    return std::make_unique<event_time_trigger>();
  }
};

/// Fires when the wall clock reaches the end of the window. The default
/// trigger of processing-time assigners.
template <class T, class W>
class processing_time_trigger final : public trigger<T, W> {
public:
  /// Sets a processing-time timer at the window's max timestamp.
  trigger_result on_element(const T&, int64_t, const W& window,
                            trigger_context<W>& ctx) override {
    ctx.register_processing_time_timer(window.max_timestamp());
    return trigger_result::continue_;
  }
  /// Ignores event time.
  trigger_result on_event_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// Fires: the only processing-time timer it sets is the window's end (as
  /// Flink, it does not compare `time`).
  trigger_result on_processing_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::fire;
  }
  /// True.
  [[nodiscard]] bool can_merge() const override { return true; }
  /// Sets the timer of the merged window unless the clock passed it already.
  void on_merge(const W& window, trigger_context<W>& ctx) override {
    if (window.max_timestamp() > ctx.current_processing_time())
      ctx.register_processing_time_timer(window.max_timestamp());
  }
  /// Deletes the window's timer.
  void clear(const W& window, trigger_context<W>& ctx) override {
    ctx.delete_processing_time_timer(window.max_timestamp());
  }
  /// A copy (the trigger has no members).
  [[nodiscard]] std::unique_ptr<trigger<T, W>> clone() const override {
    return std::make_unique<processing_time_trigger>();
  }
};

/// Fires each time a window has collected max_count elements since it last
/// fired, counting in keyed state ("count-trigger", namespace = window).
///
/// Merging: on_merge receives only the merged window, so to find the counts
/// to fold into it the trigger also records, per key, the windows that hold a
/// count ("count-trigger-windows"; not for global_window, which never
/// merges). on_merge folds the counts of every recorded window strictly
/// inside the merged one into it, so it must run before the merged windows
/// are cleared, as in Flink's WindowOperator. W needs max_timestamp(),
/// contains() and, for RocksDB, a serializer (time_window has all three).
/// As in Flink, a merge that brings the count to max_count or more fires on
/// the next element, not at the merge.
///
/// The first call binds the instance to ctx.state_backend(): that backend
/// must outlive the instance and be the one every later call uses.
template <class T, class W>
class count_trigger final : public trigger<T, W> {
public:
  /// Throws std::invalid_argument unless max_count > 0.
  explicit count_trigger(int64_t max_count) : max_count_(max_count) {
    if (max_count <= 0)
      throw std::invalid_argument("count_trigger: max_count must be positive, got " +
                                  std::to_string(max_count));
  }
  /// The number of elements that fires a window.
  [[nodiscard]] int64_t max_count() const noexcept { return max_count_; }

  /// Counts the element; fires and resets the count when it reaches max_count.
  trigger_result on_element(const T&, int64_t, const W& window,
                            trigger_context<W>& ctx) override {
    auto& h = handles(ctx);
    h.count.set_namespace(window);
    h.count.add(1);
    const int64_t n = h.count.get().value_or(0);
    if (n >= max_count_) {
      h.count.clear();
      return trigger_result::fire;
    }
    if (n == 1)
      track(h, window);
    return trigger_result::continue_;
  }
  /// Ignores event time.
  trigger_result on_event_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// Ignores processing time.
  trigger_result on_processing_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// True.
  [[nodiscard]] bool can_merge() const override { return true; }
  /// Sums the counts of the windows merged into `window` into its count.
  void on_merge(const W& window, trigger_context<W>& ctx) override {
    if constexpr (tracks_windows) {
      auto& h = handles(ctx);
      auto tracked = h.windows.value_or({});
      std::vector<W> sources;
      std::vector<W> kept;
      for (auto& w : tracked)
        (w != window && window.contains(w) ? sources : kept).push_back(w);
      h.count.set_namespace(window);
      if (!sources.empty())
        h.count.merge_namespaces(sources);
      if (h.count.get().has_value() && std::find(kept.begin(), kept.end(), window) == kept.end())
        kept.push_back(window);
      store_tracked(h, std::move(kept));
    } else {
      (void)window;
      (void)ctx;
    }
  }
  /// Drops the window's count.
  void clear(const W& window, trigger_context<W>& ctx) override {
    auto& h = handles(ctx);
    h.count.set_namespace(window);
    h.count.clear();
    if constexpr (tracks_windows) {
      auto tracked = h.windows.value_or({});
      auto it = std::find(tracked.begin(), tracked.end(), window);
      if (it != tracked.end()) {
        tracked.erase(it);
        store_tracked(h, std::move(tracked));
      }
    }
  }
  /// A copy with the same max_count, not yet bound to a backend.
  [[nodiscard]] std::unique_ptr<trigger<T, W>> clone() const override {
    return std::make_unique<count_trigger>(max_count_);
  }

private:
  static constexpr bool tracks_windows = !std::is_same_v<W, global_window>;
  struct no_tracking {};
  using tracked_state =
    std::conditional_t<tracks_windows, state::value_state<std::vector<W>>, no_tracking>;

  struct state_handles {
    state::keyed_state_backend_base* backend = nullptr;
    state::reducing_state<int64_t, W> count;
    tracked_state windows;
  };

  state_handles& handles(trigger_context<W>& ctx) {
    auto& b = ctx.state_backend();
    if (h_.backend == &b)
      return h_;
    if (h_.backend != nullptr)
      throw std::logic_error("count_trigger: called with a different state backend than before; "
                             "clone() the trigger for each subtask");
    h_.count = state::reducing_state<int64_t, W>(
      b, state::reducing_state_descriptor<int64_t>(
           "count-trigger", [](const int64_t& a, const int64_t& c) { return a + c; }));
    if constexpr (tracks_windows)
      h_.windows = tracked_state(b, state::value_state_descriptor<std::vector<W>>(
                                      "count-trigger-windows"));
    h_.backend = &b;
    return h_;
  }

  void track(state_handles& h, const W& window) {
    if constexpr (tracks_windows) {
      auto tracked = h.windows.value_or({});
      if (std::find(tracked.begin(), tracked.end(), window) == tracked.end()) {
        tracked.push_back(window);
        h.windows.update(std::move(tracked));
      }
    } else {
      (void)h;
      (void)window;
    }
  }

  static void store_tracked(state_handles& h, std::vector<W> tracked) {
    if (tracked.empty())
      h.windows.clear();
    else
      h.windows.update(std::move(tracked));
  }

  int64_t max_count_;
  state_handles h_;
};

/// Wraps another trigger and turns each of its fires into fire_and_purge, so
/// every firing emits only what arrived since the previous one.
template <class T, class W>
class purging_trigger final : public trigger<T, W> {
public:
  /// Takes ownership of `inner`; throws std::invalid_argument if it is null.
  explicit purging_trigger(std::unique_ptr<trigger<T, W>> inner) : inner_(std::move(inner)) {
    if (!inner_)
      throw std::invalid_argument("purging_trigger: the wrapped trigger is null");
  }
  /// The inner trigger's answer, fire turned into fire_and_purge.
  trigger_result on_element(const T& element, int64_t timestamp, const W& window,
                            trigger_context<W>& ctx) override {
    return purging(inner_->on_element(element, timestamp, window, ctx));
  }
  /// The inner trigger's answer, fire turned into fire_and_purge.
  trigger_result on_event_time(int64_t time, const W& window, trigger_context<W>& ctx) override {
    return purging(inner_->on_event_time(time, window, ctx));
  }
  /// The inner trigger's answer, fire turned into fire_and_purge.
  trigger_result on_processing_time(int64_t time, const W& window,
                                    trigger_context<W>& ctx) override {
    return purging(inner_->on_processing_time(time, window, ctx));
  }
  /// Whether the inner trigger can merge.
  [[nodiscard]] bool can_merge() const override { return inner_->can_merge(); }
  /// Passes the merge to the inner trigger.
  void on_merge(const W& window, trigger_context<W>& ctx) override {
    inner_->on_merge(window, ctx);
  }
  /// Passes the clear to the inner trigger.
  void clear(const W& window, trigger_context<W>& ctx) override { inner_->clear(window, ctx); }
  /// A copy wrapping a clone of the inner trigger.
  [[nodiscard]] std::unique_ptr<trigger<T, W>> clone() const override {
    return std::make_unique<purging_trigger>(inner_->clone());
  }

private:
  static trigger_result purging(trigger_result r) noexcept {
    return is_fire(r) ? trigger_result::fire_and_purge : r;
  }

  std::unique_ptr<trigger<T, W>> inner_;
};

/// Never fires: the default trigger of global_windows, which users replace
/// with a count or custom trigger.
template <class T, class W = global_window>
class never_trigger final : public trigger<T, W> {
public:
  /// Continue.
  trigger_result on_element(const T&, int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// Continue.
  trigger_result on_event_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// Continue.
  trigger_result on_processing_time(int64_t, const W&, trigger_context<W>&) override {
    return trigger_result::continue_;
  }
  /// Nothing to clear.
  void clear(const W&, trigger_context<W>&) override {}
  /// A copy (the trigger has no members).
  [[nodiscard]] std::unique_ptr<trigger<T, W>> clone() const override {
    return std::make_unique<never_trigger>();
  }
};

} // namespace sluice::runtime
