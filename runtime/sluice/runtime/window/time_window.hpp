#pragma once

#include "sluice/state/serializer.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>

/// The windows records are grouped into: time windows [start, end) and the
/// single global window. A window is the namespace of the keyed state that
/// holds its contents, never a key: it needs equality, order and a
/// serializer, not a key hash. Semantics follow Flink's TimeWindow and
/// GlobalWindow.
namespace sluice::runtime {

/// A half-open interval of event or processing time, [start, end), in
/// milliseconds. A plain value: copy it freely.
struct time_window {
  /// First millisecond in the window.
  int64_t start = 0;
  /// First millisecond after the window.
  int64_t end = 0;

  /// Stable name under which keyed state records the namespace type.
  static constexpr const char* sluice_type_name = "time_window";

  /// The last millisecond that belongs to the window (end - 1): the window
  /// fires when the watermark reaches it.
  [[nodiscard]] constexpr int64_t max_timestamp() const noexcept { return end - 1; }

  /// Whether the two windows overlap or touch ([0, 10) and [10, 20) do), as
  /// Flink decides which session windows to merge.
  [[nodiscard]] constexpr bool intersects(const time_window& other) const noexcept {
    return start <= other.end && end >= other.start;
  }

  /// The smallest window that contains both.
  [[nodiscard]] constexpr time_window cover(const time_window& other) const noexcept {
    return {std::min(start, other.start), std::max(end, other.end)};
  }

  /// Whether `other` lies entirely inside this window.
  [[nodiscard]] constexpr bool contains(const time_window& other) const noexcept {
    return start <= other.start && other.end <= end;
  }

  /// Same start and end.
  friend constexpr bool operator==(const time_window& a, const time_window& b) noexcept {
    return a.start == b.start && a.end == b.end;
  }
  /// Different start or end.
  friend constexpr bool operator!=(const time_window& a, const time_window& b) noexcept {
    return !(a == b);
  }
  /// Orders by start, then by end (so windows can key a std::map).
  friend constexpr bool operator<(const time_window& a, const time_window& b) noexcept {
    return a.start != b.start ? a.start < b.start : a.end < b.end;
  }

  SLUICE_SERIALIZABLE(start, end)
};

/// "[start, end)".
[[nodiscard]] inline std::string to_string(const time_window& w) {
  return "[" + std::to_string(w.start) + ", " + std::to_string(w.end) + ")";
}

/// Writes to_string(w), for logs and test output.
inline std::ostream& operator<<(std::ostream& os, const time_window& w) {
  return os << to_string(w);
}

/// The one window of global_windows, which holds every element of a key
/// until a custom trigger fires or purges it.
struct global_window {
  /// The last timestamp in the window: the end of time.
  [[nodiscard]] constexpr int64_t max_timestamp() const noexcept {
    return std::numeric_limits<int64_t>::max();
  }
  /// Every global window is the same window.
  friend constexpr bool operator==(global_window, global_window) noexcept { return true; }
  /// Never: there is only one global window.
  friend constexpr bool operator!=(global_window, global_window) noexcept { return false; }
  /// Never: there is only one global window.
  friend constexpr bool operator<(global_window, global_window) noexcept { return false; }
  /// Never: there is only one global window.
  [[nodiscard]] constexpr bool contains(const global_window&) const noexcept { return false; }
};

/// "global_window".
[[nodiscard]] inline std::string to_string(const global_window&) { return "global_window"; }

/// Writes "global_window", for logs and test output.
inline std::ostream& operator<<(std::ostream& os, const global_window& w) {
  return os << to_string(w);
}

/// The start of the window of length `size` that contains `timestamp`, when
/// windows start at `offset` (mod size); Flink's getWindowStartWithOffset:
/// r = (ts - offset) % size; r < 0 ? ts - (r + size) : ts - r. The residue is
/// computed from ts % size and offset % size, which gives the same result
/// without overflowing on ts - offset. Requires size > 0, |offset| < size and
/// a start that is representable: timestamp >= INT64_MIN + size - 1 (the
/// assigners check this).
[[nodiscard]] constexpr int64_t window_start_with_offset(int64_t timestamp, int64_t offset,
                                                         int64_t size) noexcept {
  int64_t r = (timestamp % size - offset % size) % size;
  if (r < 0)
    r += size;
  return timestamp - r;
}

} // namespace sluice::runtime

namespace sluice::state {

/// global_window is written as nothing: there is only one.
template <>
struct serializer<runtime::global_window> {
  /// Format version.
  static constexpr uint32_t version = 1;
  /// "global_window".
  static std::string type_name() { return "global_window"; }
  /// Writes nothing.
  static void write(byte_writer&, const runtime::global_window&) {}
  /// Reads nothing.
  [[nodiscard]] static runtime::global_window read(byte_reader&) { return {}; }
};

} // namespace sluice::state
