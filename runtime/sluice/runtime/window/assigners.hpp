#pragma once

#include "sluice/runtime/window/time_window.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

/// Window assigners: which windows an element belongs to (Flink's
/// WindowAssigner and its tumbling, sliding, session and global
/// implementations). Assigners are immutable after construction, so one
/// instance may be shared by every subtask of a window operator.
namespace sluice::runtime {

/// Decides the windows of each element. Count windows are not an assigner:
/// they are global windows with a count trigger (and evictor).
template <class W>
class window_assigner {
public:
  /// Receives one group of windows that merge into `result`.
  using merge_callback = std::function<void(std::vector<W> merged_from, W result)>;

  virtual ~window_assigner() = default;

  /// The windows an element with `timestamp` (event time) belongs to when it
  /// arrives at `current_processing_time`. Event-time assigners throw
  /// std::invalid_argument for an element without a timestamp (INT64_MIN).
  [[nodiscard]] virtual std::vector<W> assign_windows(int64_t timestamp,
                                                      int64_t current_processing_time) const = 0;

  /// assign_windows without allocating, for the window operator's per-element
  /// path: writes the windows to out[0..capacity) and returns how many there
  /// are. A result above `capacity` means they did not fit, and the caller
  /// calls assign_windows instead. Assigners that can should override it;
  /// this default goes through assign_windows.
  [[nodiscard]] virtual size_t assign_windows_to(int64_t timestamp,
                                                 int64_t current_processing_time, W* out,
                                                 size_t capacity) const {
    auto all = assign_windows(timestamp, current_processing_time);
    if (all.size() <= capacity)
      std::copy(all.begin(), all.end(), out);
    return all.size();
  }

  /// Whether assign_windows reads its current_processing_time argument;
  /// when false the operator does not read the clock for every element.
  /// True unless an assigner says otherwise.
  [[nodiscard]] virtual bool needs_processing_time() const { return true; }

  /// Whether windows are closed by watermarks (true) or by the wall clock.
  [[nodiscard]] virtual bool is_event_time() const = 0;

  /// Whether windows may merge (sessions); then merge_windows is defined.
  [[nodiscard]] virtual bool is_merging() const { return false; }

  /// Calls `callback` once per group of two or more distinct windows among
  /// `windows` that merge into one. Only merging assigners implement it;
  /// the others throw std::logic_error (calling it is a programmer error).
  virtual void merge_windows(std::vector<W> windows, const merge_callback& callback) const {
    (void)windows;
    (void)callback;
    throw std::logic_error("merge_windows called on a window assigner that does not merge");
  }
};

/// Flink's TimeWindow.mergeWindows: sorts `windows` by start (then end),
/// sweeps them merging each window into the current group while it
/// intersects the group's cover (touching counts), and calls `callback` with
/// the group's distinct windows (in that order) and their cover for every
/// group of more than one distinct window.
inline void merge_time_windows(std::vector<time_window> windows,
                               const window_assigner<time_window>::merge_callback& callback) {
  std::sort(windows.begin(), windows.end());
  size_t i = 0;
  while (i < windows.size()) {
    time_window cover = windows[i];
    std::vector<time_window> group{windows[i]};
    size_t j = i + 1;
    for (; j < windows.size() && cover.intersects(windows[j]); ++j) {
      cover = cover.cover(windows[j]);
      // Flink collects a group in a set: the same window twice is one window.
      if (windows[j] != group.back())
        group.push_back(windows[j]);
    }
    if (group.size() > 1)
      callback(std::move(group), cover);
    i = j;
  }
}

namespace internal {

/// "<ms> ms", for error messages.
[[nodiscard]] inline std::string ms_text(int64_t ms) { return std::to_string(ms) + " ms"; }

/// Throws std::invalid_argument naming `what` and `value` unless value > 0.
inline void require_positive(const char* assigner, const char* what, int64_t value) {
  if (value <= 0)
    throw std::invalid_argument(std::string(assigner) + ": " + what + " must be positive, got " +
                                ms_text(value));
}

/// Throws std::invalid_argument unless |offset| < bound (Flink's check), written
/// so that an offset of INT64_MIN cannot overflow.
inline void require_offset_below(const char* assigner, int64_t offset, const char* bound_name,
                                 int64_t bound) {
  if (offset <= -bound || offset >= bound)
    throw std::invalid_argument(std::string(assigner) + ": offset " + ms_text(offset) +
                                " must be smaller in magnitude than the " + bound_name + " " +
                                ms_text(bound));
}

/// Throws std::invalid_argument if an event-time assigner got a record
/// without a timestamp.
[[noreturn]] inline void throw_no_timestamp(const char* assigner) {
  throw std::invalid_argument(std::string(assigner) +
                              ": record has no timestamp; did you forget "
                              "assign_timestamps_and_watermarks?");
}
inline void require_timestamp(const char* assigner, int64_t timestamp) {
  // INT64_MIN is no_timestamp (see time/watermarks.hpp).
  if (timestamp == std::numeric_limits<int64_t>::min())
    throw_no_timestamp(assigner);
}

[[noreturn]] inline void throw_unrepresentable(const char* assigner, int64_t time, int64_t span) {
  throw std::out_of_range(std::string(assigner) + ": time " + std::to_string(time) +
                          " is too close to the int64 limits for windows spanning " +
                          ms_text(span));
}
/// Throws std::out_of_range if `time` lies within `span` of the int64 limits.
/// Every window an assigner builds lies within `span` of the time it is built
/// for, so this keeps start and end arithmetic free of overflow.
inline void require_representable(const char* assigner, int64_t time, int64_t span) {
  constexpr auto lo = std::numeric_limits<int64_t>::min();
  constexpr auto hi = std::numeric_limits<int64_t>::max();
  if (time < lo + span || time > hi - span)
    throw_unrepresentable(assigner, time, span);
}

/// Tumbling windows of either time domain.
class tumbling_windows : public window_assigner<time_window> {
public:
  /// The length of each window.
  [[nodiscard]] std::chrono::milliseconds size() const noexcept {
    return std::chrono::milliseconds(size_);
  }
  /// Where windows start, modulo size.
  [[nodiscard]] std::chrono::milliseconds offset() const noexcept {
    return std::chrono::milliseconds(offset_);
  }

protected:
  tumbling_windows(const char* name, std::chrono::milliseconds size,
                   std::chrono::milliseconds offset)
    : name_(name), size_(size.count()), offset_(offset.count()) {
    require_positive(name_, "size", size_);
    require_offset_below(name_, offset_, "size", size_);
  }

  [[nodiscard]] std::vector<time_window> assign_at(int64_t time) const {
    return {window_at(time)};
  }
  [[nodiscard]] time_window window_at(int64_t time) const {
    require_representable(name_, time, size_);
    // One division where window_start_with_offset needs three: with |time|
    // at least size from the int64 limits and |offset| < size, time - offset
    // cannot overflow.
    int64_t r = (time - offset_) % size_;
    if (r < 0)
      r += size_;
    const int64_t start = time - r;
    return time_window{start, start + size_};
  }
  size_t assign_at(int64_t time, time_window* out, size_t capacity) const {
    auto w = window_at(time);
    if (capacity > 0)
      out[0] = w;
    return 1;
  }

  const char* name_;
  int64_t size_;
  int64_t offset_;
};

/// Sliding windows of either time domain.
class sliding_windows : public window_assigner<time_window> {
public:
  /// The length of each window.
  [[nodiscard]] std::chrono::milliseconds size() const noexcept {
    return std::chrono::milliseconds(size_);
  }
  /// The distance between the starts of consecutive windows.
  [[nodiscard]] std::chrono::milliseconds slide() const noexcept {
    return std::chrono::milliseconds(slide_);
  }
  /// Where windows start, modulo slide.
  [[nodiscard]] std::chrono::milliseconds offset() const noexcept {
    return std::chrono::milliseconds(offset_);
  }

protected:
  sliding_windows(const char* name, std::chrono::milliseconds size, std::chrono::milliseconds slide,
                  std::chrono::milliseconds offset)
    : name_(name), size_(size.count()), slide_(slide.count()), offset_(offset.count()) {
    require_positive(name_, "size", size_);
    require_positive(name_, "slide", slide_);
    require_offset_below(name_, offset_, "slide", slide_);
  }

  // Flink's loop: from the latest window start at or before `time`, step back
  // by slide while the window still contains `time`. A slide larger than the
  // size leaves gaps, where an element belongs to no window.
  [[nodiscard]] std::vector<time_window> assign_at(int64_t time) const {
    std::vector<time_window> out;
    out.reserve(static_cast<size_t>(size_ / slide_ + 1));
    for_each_window(time, [&](const time_window& w) { out.push_back(w); });
    return out;
  }
  size_t assign_at(int64_t time, time_window* out, size_t capacity) const {
    size_t n = 0;
    for_each_window(time, [&](const time_window& w) {
      if (n < capacity)
        out[n] = w;
      ++n;
    });
    return n;
  }
  template <class F>
  void for_each_window(int64_t time, F&& f) const {
    require_representable(name_, time, std::max(size_, slide_));
    const int64_t lowest_excluded = time - size_;
    for (int64_t start = window_start_with_offset(time, offset_, slide_); start > lowest_excluded;
         start -= slide_) {
      f(time_window{start, start + size_});
      if (start - lowest_excluded <= slide_)
        break; // the next start would be excluded; stop before it could underflow
    }
  }

  const char* name_;
  int64_t size_;
  int64_t slide_;
  int64_t offset_;
};

/// Session windows of either time domain: [time, time + gap), merging.
class session_windows : public window_assigner<time_window> {
public:
  /// The inactivity that closes a session.
  [[nodiscard]] std::chrono::milliseconds gap() const noexcept {
    return std::chrono::milliseconds(gap_);
  }
  /// Always: sessions merge when they touch or overlap.
  [[nodiscard]] bool is_merging() const override { return true; }
  /// Merges as merge_time_windows does.
  void merge_windows(std::vector<time_window> windows,
                     const merge_callback& callback) const override {
    merge_time_windows(std::move(windows), callback);
  }

protected:
  session_windows(const char* name, std::chrono::milliseconds gap)
    : name_(name), gap_(gap.count()) {
    require_positive(name_, "gap", gap_);
  }

  [[nodiscard]] std::vector<time_window> assign_at(int64_t time) const {
    require_representable(name_, time, gap_);
    return {time_window{time, time + gap_}};
  }
  size_t assign_at(int64_t time, time_window* out, size_t capacity) const {
    require_representable(name_, time, gap_);
    if (capacity > 0)
      out[0] = time_window{time, time + gap_};
    return 1;
  }

  const char* name_;
  int64_t gap_;
};

/// The clock half of a time-window assigner over a window shape (tumbling,
/// sliding, session): event time places an element by its timestamp, which
/// it must have; processing time by the wall clock when it arrives.
template <class Shape, bool EventTime>
class clocked : public Shape {
public:
  /// The windows holding the element's time.
  [[nodiscard]] std::vector<time_window> assign_windows(int64_t timestamp,
                                                        int64_t now) const override {
    return this->assign_at(time_of(timestamp, now));
  }
  /// As assign_windows, without allocating.
  [[nodiscard]] size_t assign_windows_to(int64_t timestamp, int64_t now, time_window* out,
                                         size_t capacity) const override {
    return this->assign_at(time_of(timestamp, now), out, capacity);
  }
  /// Only processing-time windows read the clock.
  [[nodiscard]] bool needs_processing_time() const override { return !EventTime; }
  [[nodiscard]] bool is_event_time() const override { return EventTime; }

protected:
  using Shape::Shape;

private:
  int64_t time_of(int64_t timestamp, int64_t now) const {
    if constexpr (EventTime) {
      require_timestamp(this->name_, timestamp);
      return timestamp;
    } else {
      return now;
    }
  }
};

} // namespace internal

/// Consecutive, non-overlapping event-time windows [start, start + size),
/// with start = offset (mod size).
class tumbling_event_time_windows final : public internal::clocked<internal::tumbling_windows, true> {
public:
  /// Throws std::invalid_argument unless size > 0 and |offset| < size.
  explicit tumbling_event_time_windows(std::chrono::milliseconds size,
                                       std::chrono::milliseconds offset = {})
    : clocked("tumbling_event_time_windows", size, offset) {}

  /// The window of an element with event time `timestamp` (what
  /// assign_windows gives, without a virtual call or a vector).
  [[nodiscard]] time_window window_of(int64_t timestamp) const {
    internal::require_timestamp(name_, timestamp);
    return window_at(timestamp);
  }
};

/// Consecutive, non-overlapping processing-time windows: the element goes to
/// the window holding the wall-clock time at which it arrives.
class tumbling_processing_time_windows final
  : public internal::clocked<internal::tumbling_windows, false> {
public:
  /// Throws std::invalid_argument unless size > 0 and |offset| < size.
  explicit tumbling_processing_time_windows(std::chrono::milliseconds size,
                                            std::chrono::milliseconds offset = {})
    : clocked("tumbling_processing_time_windows", size, offset) {}
};

/// Event-time windows of length size starting every slide (at offset mod
/// slide); an element belongs to about size / slide of them, latest start
/// first.
class sliding_event_time_windows final : public internal::clocked<internal::sliding_windows, true> {
public:
  /// Throws std::invalid_argument unless size > 0, slide > 0 and |offset| < slide.
  sliding_event_time_windows(std::chrono::milliseconds size, std::chrono::milliseconds slide,
                             std::chrono::milliseconds offset = {})
    : clocked("sliding_event_time_windows", size, slide, offset) {}
};

/// Processing-time windows of length size starting every slide.
class sliding_processing_time_windows final
  : public internal::clocked<internal::sliding_windows, false> {
public:
  /// Throws std::invalid_argument unless size > 0, slide > 0 and |offset| < slide.
  sliding_processing_time_windows(std::chrono::milliseconds size, std::chrono::milliseconds slide,
                                  std::chrono::milliseconds offset = {})
    : clocked("sliding_processing_time_windows", size, slide, offset) {}
};

/// Event-time sessions: each element opens [timestamp, timestamp + gap);
/// windows that touch or overlap merge.
class event_time_session_windows final : public internal::clocked<internal::session_windows, true> {
public:
  /// Throws std::invalid_argument unless gap > 0.
  explicit event_time_session_windows(std::chrono::milliseconds gap)
    : clocked("event_time_session_windows", gap) {}
};

/// Processing-time sessions: each element opens [now, now + gap).
class processing_time_session_windows final
  : public internal::clocked<internal::session_windows, false> {
public:
  /// Throws std::invalid_argument unless gap > 0.
  explicit processing_time_session_windows(std::chrono::milliseconds gap)
    : clocked("processing_time_session_windows", gap) {}
};

/// Puts every element in the single global_window. Its default trigger is
/// never_trigger: pair it with a custom or count trigger.
class global_windows final : public window_assigner<global_window> {
public:
  /// The global window.
  [[nodiscard]] std::vector<global_window> assign_windows(int64_t, int64_t) const override {
    return {global_window{}};
  }
  /// The global window, without allocating.
  [[nodiscard]] size_t assign_windows_to(int64_t, int64_t, global_window* out,
                                         size_t capacity) const override {
    if (capacity > 0)
      out[0] = global_window{};
    return 1;
  }
  /// False.
  [[nodiscard]] bool needs_processing_time() const override { return false; }
  /// False, as in Flink.
  [[nodiscard]] bool is_event_time() const override { return false; }
};

} // namespace sluice::runtime
