#pragma once

#include <cstdint>

namespace sluice::runtime {

/// Which clock a timer ran on.
enum class time_domain { event_time, processing_time };

/// The clocks and timers of the current key (and window), as user code sees
/// them: process functions through their context, triggers through theirs.
/// Registering the same timer twice keeps one.
class timer_service {
public:
  virtual ~timer_service() = default;
  /// The wall-clock time, in milliseconds.
  [[nodiscard]] virtual int64_t current_processing_time() const = 0;
  /// The operator's current event time (last watermark).
  [[nodiscard]] virtual int64_t current_watermark() const = 0;
  /// Asks for a callback once the watermark reaches `time`.
  virtual void register_event_time_timer(int64_t time) = 0;
  /// Asks for a callback once the wall clock reaches `time`.
  virtual void register_processing_time_timer(int64_t time) = 0;
  virtual void delete_event_time_timer(int64_t time) = 0;
  virtual void delete_processing_time_timer(int64_t time) = 0;
};

} // namespace sluice::runtime
