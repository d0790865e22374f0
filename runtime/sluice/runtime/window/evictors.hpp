#pragma once

#include "sluice/state/serializer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

/// Evictors: remove elements from a window's contents before or after the
/// window function runs on a firing (Flink's Evictor, CountEvictor,
/// TimeEvictor and DeltaEvictor). Like triggers, each subtask owns its own
/// evictor (evictor::clone) and calls it from its thread only.
namespace sluice::runtime {

/// An element of a window together with its event timestamp (INT64_MIN when
/// the element has none).
template <class T>
struct timestamped_value {
  /// The element.
  T value{};
  /// Its event timestamp, or INT64_MIN.
  int64_t timestamp = std::numeric_limits<int64_t>::min();

  /// The window operator keeps a window's elements as these in keyed list
  /// state when it has an evictor: serializable where T is.
  SLUICE_SERIALIZABLE(value, timestamp)
};

/// Removes elements of type T from a window of type W when it fires. The
/// elements are in arrival order; an evictor removes in place and keeps the
/// order of what remains.
template <class T, class W>
class evictor {
public:
  virtual ~evictor() = default;
  /// Called on a firing before the window function sees `elements`.
  virtual void evict_before(std::vector<timestamped_value<T>>& elements, const W& window,
                            int64_t current_watermark) = 0;
  /// Called on a firing after the window function saw `elements`; what
  /// remains stays in the window.
  virtual void evict_after(std::vector<timestamped_value<T>>& elements, const W& window,
                           int64_t current_watermark) = 0;
  /// A fresh copy for another subtask.
  [[nodiscard]] virtual std::unique_ptr<evictor> clone() const = 0;
};

namespace internal {
/// An evictor that applies one rule either before or after the window
/// function, as chosen at construction.
template <class T, class W>
class one_phase_evictor : public evictor<T, W> {
public:
  void evict_before(std::vector<timestamped_value<T>>& elements, const W&, int64_t) override {
    if (!do_evict_after_)
      evict(elements);
  }
  void evict_after(std::vector<timestamped_value<T>>& elements, const W&, int64_t) override {
    if (do_evict_after_)
      evict(elements);
  }

protected:
  explicit one_phase_evictor(bool do_evict_after) : do_evict_after_(do_evict_after) {}
  /// The rule.
  virtual void evict(std::vector<timestamped_value<T>>& elements) const = 0;

  bool do_evict_after_;
};
} // namespace internal

/// Keeps the last max_count elements, evicting the oldest.
template <class T, class W>
class count_evictor final : public internal::one_phase_evictor<T, W> {
public:
  /// Evicts before the window function, or after it if `do_evict_after`.
  /// Throws std::invalid_argument if max_count is negative.
  explicit count_evictor(int64_t max_count, bool do_evict_after = false)
    : internal::one_phase_evictor<T, W>(do_evict_after), max_count_(max_count) {
    if (max_count < 0)
      throw std::invalid_argument("count_evictor: max_count must not be negative, got " +
                                  std::to_string(max_count));
  }
  /// A copy with the same settings.
  [[nodiscard]] std::unique_ptr<evictor<T, W>> clone() const override {
    return std::make_unique<count_evictor>(max_count_, this->do_evict_after_);
  }

private:
  void evict(std::vector<timestamped_value<T>>& elements) const override {
    const auto keep = static_cast<uint64_t>(max_count_);
    if (elements.size() <= keep)
      return;
    elements.erase(elements.begin(),
                   elements.begin() + static_cast<std::ptrdiff_t>(elements.size() - keep));
  }

  int64_t max_count_;
};

/// Keeps the elements whose timestamp is within window_size of the latest
/// timestamp among them: evicts every element with timestamp <= max - size.
/// Elements without a timestamp are kept; if none has one, nothing is
/// evicted (Flink decides by the first element alone, which is the same
/// when timestamps are either all present or all absent, as a stream's are).
template <class T, class W>
class time_evictor final : public internal::one_phase_evictor<T, W> {
public:
  /// Evicts before the window function, or after it if `do_evict_after`.
  /// Throws std::invalid_argument if window_size is negative.
  explicit time_evictor(std::chrono::milliseconds window_size, bool do_evict_after = false)
    : internal::one_phase_evictor<T, W>(do_evict_after), window_size_(window_size.count()) {
    if (window_size_ < 0)
      throw std::invalid_argument("time_evictor: window_size must not be negative, got " +
                                  std::to_string(window_size_) + " ms");
  }
  /// A copy with the same settings.
  [[nodiscard]] std::unique_ptr<evictor<T, W>> clone() const override {
    return std::make_unique<time_evictor>(std::chrono::milliseconds(window_size_),
                                          this->do_evict_after_);
  }

private:
  static constexpr int64_t no_timestamp = std::numeric_limits<int64_t>::min();

  void evict(std::vector<timestamped_value<T>>& elements) const override {
    int64_t max_ts = no_timestamp;
    for (auto& e : elements)
      max_ts = std::max(max_ts, e.timestamp);
    if (max_ts == no_timestamp)
      return;
    // max_ts > INT64_MIN, so the cutoff saturates at INT64_MIN (evicting
    // nothing) instead of overflowing.
    const int64_t cutoff = max_ts < no_timestamp + window_size_ ? no_timestamp
                                                                : max_ts - window_size_;
    elements.erase(std::remove_if(elements.begin(), elements.end(),
                                  [cutoff](const timestamped_value<T>& e) {
                                    return e.timestamp != no_timestamp && e.timestamp <= cutoff;
                                  }),
                   elements.end());
  }

  int64_t window_size_;
};

/// Evicts every element whose delta to the last element is at least
/// threshold, by a user delta function (e.g. the distance between prices).
template <class T, class W>
class delta_evictor final : public internal::one_phase_evictor<T, W> {
public:
  /// The distance between two elements.
  using delta_function = std::function<double(const T& a, const T& b)>;

  /// Evicts before the window function, or after it if `do_evict_after`.
  /// Throws std::invalid_argument if `delta` is empty.
  delta_evictor(double threshold, delta_function delta, bool do_evict_after = false)
    : internal::one_phase_evictor<T, W>(do_evict_after), threshold_(threshold),
      delta_(std::move(delta)) {
    if (!delta_)
      throw std::invalid_argument("delta_evictor: the delta function is empty");
  }
  /// A copy with the same settings.
  [[nodiscard]] std::unique_ptr<evictor<T, W>> clone() const override {
    return std::make_unique<delta_evictor>(threshold_, delta_, this->do_evict_after_);
  }

private:
  void evict(std::vector<timestamped_value<T>>& elements) const override {
    if (elements.empty())
      return;
    // A copy: the last element itself may be evicted (threshold <= 0).
    const T last = elements.back().value;
    elements.erase(std::remove_if(elements.begin(), elements.end(),
                                  [&](const timestamped_value<T>& e) {
                                    return delta_(e.value, last) >= threshold_;
                                  }),
                   elements.end());
  }

  double threshold_;
  delta_function delta_;
};

} // namespace sluice::runtime
