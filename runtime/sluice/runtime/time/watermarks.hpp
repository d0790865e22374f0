#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

/// Event time: how sources derive watermarks from their records
/// (watermark_generator, watermark_strategy) and how a subtask combines the
/// watermarks of its input channels (watermark_valve). Semantics follow
/// Flink's eventtime package and StatusWatermarkValve.
namespace sluice::runtime {

/// The lowest watermark: nothing is known about event time yet.
constexpr int64_t min_watermark = INT64_MIN;
/// The highest watermark: the input has ended, every timer may fire.
constexpr int64_t max_watermark = INT64_MAX;
/// The timestamp carried by a record that has none.
constexpr int64_t no_timestamp = INT64_MIN;

/// Where a watermark_generator sends its watermarks and idleness changes.
/// The output, not the generator, drops watermarks that do not advance
/// (as Flink's WatermarkToDataOutput does).
class watermark_output {
public:
  virtual ~watermark_output() = default;
  /// Announces that no record with a timestamp <= wm should follow.
  virtual void emit_watermark(int64_t wm) = 0;
  /// Announces that this input produces nothing for now and must not hold
  /// back downstream watermarks.
  virtual void mark_idle() = 0;
  /// Announces that this input produces records again.
  virtual void mark_active() = 0;
};

/// Derives watermarks from the records of one source or assigner subtask.
/// One instance per subtask; not thread-safe.
template <class T> class watermark_generator {
public:
  virtual ~watermark_generator() = default;
  /// Called for every record with its (already assigned) timestamp.
  virtual void on_event(const T& value, int64_t timestamp, watermark_output& out) = 0;
  /// Called every auto-watermark interval (Flink's default: 200 ms).
  virtual void on_periodic_emit(watermark_output& out) = 0;
  /// Whether on_event may emit a watermark. A generator that only reads the
  /// timestamps and emits periodically says false, and then gets whole
  /// blocks of events through on_events (one call instead of one per record).
  [[nodiscard]] virtual bool emits_on_event() const noexcept { return true; }
  /// The events of values[0, n) with their timestamps, in order; called
  /// instead of on_event only when emits_on_event() is false.
  virtual void on_events(const T* values, const int64_t* timestamps, size_t n,
                         watermark_output& out) {
    for (size_t i = 0; i < n; ++i)
      on_event(values[i], timestamps[i], out);
  }
};

/// Watermarks that trail the highest timestamp seen by a fixed delay
/// (Flink's BoundedOutOfOrdernessWatermarks): emits max_ts - delay - 1.
template <class T> class bounded_out_of_orderness_watermarks : public watermark_generator<T> {
public:
  /// Throws std::invalid_argument if max_out_of_orderness is negative.
  explicit bounded_out_of_orderness_watermarks(std::chrono::milliseconds max_out_of_orderness)
      : delay_(checked_delay(max_out_of_orderness))
      , max_ts_(min_watermark + delay_ + 1) {}

  void on_event(const T&, int64_t timestamp, watermark_output&) override {
    max_ts_ = std::max(max_ts_, timestamp);
  }
  bool emits_on_event() const noexcept override { return false; }
  void on_events(const T*, const int64_t* timestamps, size_t n, watermark_output&) override {
    int64_t m = max_ts_;
    for (size_t i = 0; i < n; ++i)
      m = std::max(m, timestamps[i]);
    max_ts_ = m;
  }

  // max_ts_ never drops below its start value, so this never underflows.
  void on_periodic_emit(watermark_output& out) override {
    out.emit_watermark(max_ts_ - delay_ - 1);
  }

  /// The delay in milliseconds; throws std::invalid_argument if negative.
  static int64_t checked_delay(std::chrono::milliseconds d) {
    if (d.count() < 0)
      throw std::invalid_argument("bounded_out_of_orderness_watermarks: max_out_of_orderness must "
                                  "not be negative, got " +
                                  std::to_string(d.count()) + " ms");
    return d.count();
  }

private:
  int64_t delay_;
  int64_t max_ts_;
};

/// Watermarks for timestamps that only ascend (Flink's
/// AscendingTimestampsWatermarks): bounded out-of-orderness with delay 0.
template <class T>
class ascending_timestamps_watermarks : public bounded_out_of_orderness_watermarks<T> {
public:
  /// Emits the highest timestamp seen minus one.
  ascending_timestamps_watermarks()
      : bounded_out_of_orderness_watermarks<T>(std::chrono::milliseconds{0}) {}
};

/// Watermarks carried by special records: a function looks at each record
/// and may return a watermark, which is emitted at once.
template <class T> class punctuated_watermarks : public watermark_generator<T> {
public:
  /// The function that extracts a watermark from a record, if it carries one.
  using extractor = std::function<std::optional<int64_t>(const T&, int64_t timestamp)>;

  /// Throws std::invalid_argument if f is empty.
  explicit punctuated_watermarks(extractor f)
      : extract_(std::move(f)) {
    if (!extract_)
      throw std::invalid_argument("punctuated_watermarks: the extractor is empty");
  }

  void on_event(const T& value, int64_t timestamp, watermark_output& out) override {
    if (auto wm = extract_(value, timestamp))
      out.emit_watermark(*wm);
  }

  void on_periodic_emit(watermark_output&) override {}

private:
  extractor extract_;
};

/// A generator that never emits: event time does not advance
/// (until the end of input sends max_watermark).
template <class T> class no_watermarks : public watermark_generator<T> {
public:
  void on_event(const T&, int64_t, watermark_output&) override {}
  void on_periodic_emit(watermark_output&) override {}
  bool emits_on_event() const noexcept override { return false; }
  void on_events(const T*, const int64_t*, size_t, watermark_output&) override {}
};

/// Wraps a generator and marks the input idle after idle_timeout without
/// events (Flink's WatermarksWithIdleness). Idleness is checked on periodic
/// emit against the injected clock: idle once now - last_event >= timeout,
/// where the clock starts at construction. mark_idle() is called once per
/// idle period; the next event calls mark_active() before the inner
/// generator sees it. While idle the inner periodic emit is not called.
template <class T> class watermarks_with_idleness : public watermark_generator<T> {
public:
  /// Throws std::invalid_argument for a missing inner generator or clock, or
  /// an idle_timeout <= 0.
  watermarks_with_idleness(std::unique_ptr<watermark_generator<T>> inner,
                           std::chrono::milliseconds idle_timeout,
                           std::function<int64_t()> clock_ms)
      : inner_(std::move(inner))
      , timeout_(idle_timeout.count())
      , clock_(std::move(clock_ms)) {
    if (!inner_)
      throw std::invalid_argument("with_idleness: the inner generator is null");
    if (timeout_ <= 0)
      throw std::invalid_argument("with_idleness: idle_timeout must be positive, got " +
                                  std::to_string(timeout_) + " ms");
    if (!clock_)
      throw std::invalid_argument("with_idleness: the clock is empty");
    last_activity_ = clock_();
  }

  void on_event(const T& value, int64_t timestamp, watermark_output& out) override {
    last_activity_ = clock_();
    if (idle_) {
      idle_ = false;
      out.mark_active();
    }
    inner_->on_event(value, timestamp, out);
  }
  /// Marking the input active is not a watermark: blocks go through when
  /// the inner generator takes them.
  bool emits_on_event() const noexcept override { return inner_->emits_on_event(); }
  void on_events(const T* values, const int64_t* timestamps, size_t n,
                 watermark_output& out) override {
    if (n == 0)
      return;
    last_activity_ = clock_();
    if (idle_) {
      idle_ = false;
      out.mark_active();
    }
    inner_->on_events(values, timestamps, n, out);
  }

  void on_periodic_emit(watermark_output& out) override {
    if (!idle_ && clock_() - last_activity_ >= timeout_) {
      idle_ = true;
      out.mark_idle();
    }
    if (!idle_)
      inner_->on_periodic_emit(out);
  }

  /// True while the input counts as idle.
  bool idle() const noexcept { return idle_; }

private:
  std::unique_ptr<watermark_generator<T>> inner_;
  int64_t timeout_;
  std::function<int64_t()> clock_;
  int64_t last_activity_ = 0;
  bool idle_ = false;
};

/// Wraps inner so that it marks its input idle after idle_timeout without
/// events on clock_ms; see watermarks_with_idleness.
template <class T>
std::unique_ptr<watermark_generator<T>> with_idleness(std::unique_ptr<watermark_generator<T>> inner,
                                                      std::chrono::milliseconds idle_timeout,
                                                      std::function<int64_t()> clock_ms) {
  return std::make_unique<watermarks_with_idleness<T>>(std::move(inner), idle_timeout,
                                                       std::move(clock_ms));
}

/// How a source or assigner gets event time from its records: a timestamp
/// assigner, a generator factory (one generator per subtask) and an optional
/// idle timeout. A value type; copies share the (stateless) functions.
template <class T> struct watermark_strategy {
  /// Stamps a block: out[i] = the timestamp of values[i], which carries
  /// previous[i] (or `same` when previous is null); the user's function is
  /// inlined in the loop, so a block costs one indirect call.
  using timestamp_assigner_fn = std::function<void(const T* values, const int64_t* previous,
                                                   int64_t same, int64_t* out, size_t n)>;
  /// Builds a fresh generator for one subtask.
  using generator_factory_fn = std::function<std::unique_ptr<watermark_generator<T>>()>;

  /// Empty: records keep the timestamp they already carry. Set by
  /// with_timestamp_assigner.
  timestamp_assigner_fn timestamp_assigner;
  /// Required to create a generator.
  generator_factory_fn generator_factory;
  /// Idle timeout of each input; 0 turns idleness detection off.
  std::chrono::milliseconds idle_timeout{0};

  /// Watermarks trailing the highest timestamp by max_out_of_orderness.
  /// Throws std::invalid_argument for a negative delay.
  static watermark_strategy
  for_bounded_out_of_orderness(std::chrono::milliseconds max_out_of_orderness) {
    // Fail when the job is defined, not later in every subtask.
    bounded_out_of_orderness_watermarks<T>::checked_delay(max_out_of_orderness);
    return for_generator([max_out_of_orderness] {
      return std::make_unique<bounded_out_of_orderness_watermarks<T>>(max_out_of_orderness);
    });
  }

  /// Watermarks for timestamps that only ascend.
  static watermark_strategy for_monotonous_timestamps() {
    return for_generator([] { return std::make_unique<ascending_timestamps_watermarks<T>>(); });
  }

  /// Watermarks from a user generator factory. Throws std::invalid_argument if
  /// it is empty.
  static watermark_strategy for_generator(generator_factory_fn factory) {
    if (!factory)
      throw std::invalid_argument("watermark_strategy: the generator factory is empty");
    watermark_strategy s;
    s.generator_factory = std::move(factory);
    return s;
  }

  /// No watermarks at all.
  static watermark_strategy no_watermarks() {
    return for_generator([] { return std::make_unique<sluice::runtime::no_watermarks<T>>(); });
  }

  /// A copy that assigns timestamps with f, called as f(value, previous_ts)
  /// or, if it takes only the record, f(value).
  template <class F> watermark_strategy with_timestamp_assigner(F f) const {
    static_assert(std::is_invocable_r_v<int64_t, F&, const T&, int64_t> ||
                    std::is_invocable_r_v<int64_t, F&, const T&>,
                  "a timestamp assigner is f(const T&, int64_t) or f(const T&) returning int64_t");
    watermark_strategy s = *this;
    s.timestamp_assigner = [f = std::move(f)](const T* values, const int64_t* previous,
                                              int64_t same, int64_t* out, size_t n) mutable {
      for (size_t i = 0; i < n; ++i) {
        const int64_t prev = previous != nullptr ? previous[i] : same;
        if constexpr (std::is_invocable_r_v<int64_t, F&, const T&, int64_t>) {
          out[i] = f(values[i], prev);
        } else {
          (void)prev;
          out[i] = f(values[i]);
        }
      }
    };
    return s;
  }

  /// A copy whose inputs go idle after timeout without events. Throws
  /// std::invalid_argument if timeout <= 0.
  watermark_strategy with_idleness(std::chrono::milliseconds timeout) const {
    if (timeout.count() <= 0)
      throw std::invalid_argument("watermark_strategy: idle timeout must be positive, got " +
                                  std::to_string(timeout.count()) + " ms");
    watermark_strategy s = *this;
    s.idle_timeout = timeout;
    return s;
  }

  /// The timestamp of a record that carries previous_ts.
  int64_t assign_timestamp(const T& value, int64_t previous_ts) const {
    if (!timestamp_assigner)
      return previous_ts;
    int64_t ts = previous_ts;
    timestamp_assigner(&value, nullptr, previous_ts, &ts, 1);
    return ts;
  }
  /// out[i] = the timestamp of values[i], which carries previous[i] (or
  /// `same` when previous is null), for i in [0, n).
  void assign_timestamps(const T* values, const int64_t* previous, int64_t same, int64_t* out,
                         size_t n) const {
    if (timestamp_assigner)
      timestamp_assigner(values, previous, same, out, n);
    else
      for (size_t i = 0; i < n; ++i)
        out[i] = previous != nullptr ? previous[i] : same;
  }

  /// Builds the generator of one subtask, wrapped with idleness detection on
  /// clock_ms (milliseconds) when idle_timeout is set; clock_ms is unused
  /// otherwise. Throws std::invalid_argument without a generator factory.
  std::unique_ptr<watermark_generator<T>>
  create_generator(std::function<int64_t()> clock_ms) const {
    if (!generator_factory)
      throw std::invalid_argument("watermark_strategy: no generator factory set");
    auto gen = generator_factory();
    if (!gen)
      throw std::invalid_argument("watermark_strategy: the generator factory returned null");
    if (idle_timeout.count() == 0)
      return gen;
    return sluice::runtime::with_idleness<T>(std::move(gen), idle_timeout, std::move(clock_ms));
  }
};

/// Combines the watermarks of a subtask's input channels into the subtask's
/// event time (Flink's StatusWatermarkValve). Not thread-safe: owned by the
/// subtask's input loop.
///
/// Rules:
/// - The combined watermark is the minimum over the active, aligned channels
///   and the ended ones; it is returned only when it rises above current().
/// - A channel's watermark never goes back: a lower one is ignored, and so
///   is any watermark arriving while the channel is idle.
/// - An idle channel does not hold the watermark back. A channel that turns
///   active again with a watermark below current() is unaligned: it neither
///   pulls the watermark back nor holds it back until its own watermark
///   reaches current().
/// - While no channel is active (all idle, or idle and ended), nothing
///   advances and all_idle() is true; the caller then forwards idleness.
///   Unlike Flink, which on that transition flushes the maximum watermark
///   over all channels, the valve keeps the watermark where it is, so
///   records from a channel that comes back are not all late.
/// - An ended channel counts as watermark max_watermark for good; when
///   every channel has ended the valve returns max_watermark.
/// - on_active returns a new combined watermark if the returning channel
///   lets it advance (Flink waits for the next watermark instead).
class watermark_valve {
public:
  /// A valve over `channels` input channels, all active at min_watermark.
  explicit watermark_valve(size_t channels)
      : channels_(channels) {}

  /// Feeds channel's watermark; returns the new combined watermark if it advanced.
  std::optional<int64_t> on_watermark(size_t channel, int64_t wm) {
    channel_state& c = at(channel);
    if (c.status != channel_status::active || wm <= c.watermark)
      return std::nullopt;
    c.watermark = wm;
    if (wm >= current_)
      c.aligned = true;
    return advance();
  }

  /// Marks channel idle; returns the new combined watermark if the remaining
  /// channels let it advance.
  std::optional<int64_t> on_idle(size_t channel) {
    channel_state& c = at(channel);
    if (c.status != channel_status::active)
      return std::nullopt;
    c.status = channel_status::idle;
    return advance();
  }

  /// Marks channel active again; returns the new combined watermark if the
  /// channel, aligned, lets it advance.
  std::optional<int64_t> on_active(size_t channel) {
    channel_state& c = at(channel);
    if (c.status != channel_status::idle)
      return std::nullopt;
    c.status = channel_status::active;
    c.aligned = c.watermark >= current_;
    return advance();
  }

  /// Marks channel ended (end of partition); it stops holding the watermark back.
  std::optional<int64_t> on_end(size_t channel) {
    channel_state& c = at(channel);
    if (c.status == channel_status::ended)
      return std::nullopt;
    c.status = channel_status::ended;
    c.watermark = max_watermark;
    return advance();
  }

  /// True when no channel is active and at least one is idle: the subtask
  /// should report itself idle downstream.
  bool all_idle() const noexcept {
    bool any_idle = false;
    for (const auto& c : channels_) {
      if (c.status == channel_status::active)
        return false;
      any_idle = any_idle || c.status == channel_status::idle;
    }
    return any_idle;
  }

  /// The last combined watermark returned (min_watermark initially).
  int64_t current() const noexcept { return current_; }

  /// The number of input channels.
  size_t channels() const noexcept { return channels_.size(); }

private:
  enum class channel_status { active, idle, ended };

  struct channel_state {
    int64_t watermark = min_watermark;
    channel_status status = channel_status::active;
    bool aligned = true; // meaningful while active; recomputed by on_active
  };

  channel_state& at(size_t channel) {
    if (channel >= channels_.size())
      throw std::out_of_range("watermark_valve: channel " + std::to_string(channel) + " of " +
                              std::to_string(channels_.size()));
    return channels_[channel];
  }

  std::optional<int64_t> advance() {
    if (all_idle())
      return std::nullopt;
    bool any = false;
    int64_t low = max_watermark;
    for (const auto& c : channels_) {
      if (c.status == channel_status::ended || (c.status == channel_status::active && c.aligned)) {
        any = true;
        low = std::min(low, c.watermark);
      }
    }
    if (!any || low <= current_)
      return std::nullopt;
    current_ = low;
    return low;
  }

  std::vector<channel_state> channels_;
  int64_t current_ = min_watermark;
};

} // namespace sluice::runtime
