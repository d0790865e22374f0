#pragma once

#include "sluice/runtime/window/assigners.hpp"
#include "sluice/runtime/window/time_window.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

/// The in-flight windows of one key under a merging assigner (Flink's
/// MergingWindowSet).
namespace sluice::runtime {

/// Tracks the windows of one key that are open under a merging assigner
/// (sessions), and for each the state window: the namespace its contents
/// are stored in. When windows merge, their contents are not moved into a
/// namespace named after the merged window; instead the merged window keeps
/// using the state window of one of them, and only the others' state is
/// merged into it. The caller persists mapping() (in keyed state) and
/// rebuilds the set from it; the set itself is a plain value, used by one
/// thread at a time.
template <class W>
class merging_window_set {
public:
  /// Called when windows merge: the merged window, the in-flight windows it
  /// swallowed (never the new window), the state window the merged window
  /// now uses, and the other state windows whose state must be merged into
  /// it (then dropped).
  using merge_function =
    std::function<void(const W& merge_result, const std::vector<W>& merged_windows,
                       const W& state_window_result, const std::vector<W>& merged_state_windows)>;

  /// An empty set.
  merging_window_set() = default;
  /// A set restored from a mapping saved from mapping().
  explicit merging_window_set(std::map<W, W> mapping) : mapping_(std::move(mapping)) {}

  /// Each in-flight window and its state window, to persist.
  [[nodiscard]] const std::map<W, W>& mapping() const noexcept { return mapping_; }

  /// The state window of in-flight window `w`, or nothing if `w` is not in
  /// flight.
  [[nodiscard]] std::optional<W> state_window(const W& w) const {
    auto it = mapping_.find(w);
    if (it == mapping_.end())
      return std::nullopt;
    return it->second;
  }

  /// Removes `w` once it has been purged for good (its cleanup time came).
  /// Throws std::logic_error if `w` is not in flight.
  void retire_window(const W& w) {
    if (mapping_.erase(w) == 0)
      throw std::logic_error("merging_window_set: window " + to_string(w) +
                             " is not in the in-flight window set");
  }

  /// Adds `new_window` for an element, merging it with the in-flight windows
  /// as `assigner` decides, and returns the window the element belongs to:
  /// `new_window` itself, or the merged window that swallowed it. For every
  /// merge that changes a window, `merge_callback` runs after the mapping
  /// was updated; it is not called when `new_window` merely falls inside an
  /// existing window. If the callback throws, the mapping already shows the
  /// merge.
  ///
  /// As Flink's addWindow, except that a new window equal to an in-flight
  /// one keeps that window's state window (Flink would remap it to itself).
  W add_window(W new_window, const window_assigner<W>& assigner,
               const merge_function& merge_callback) {
    std::vector<W> windows;
    windows.reserve(mapping_.size() + 1);
    for (auto& entry : mapping_)
      windows.push_back(entry.first);
    windows.push_back(new_window);

    std::vector<std::pair<W, std::vector<W>>> merges;
    assigner.merge_windows(std::move(windows), [&merges](std::vector<W> merged_from, W result) {
      merges.emplace_back(std::move(result), std::move(merged_from));
    });

    W result_window = new_window;
    bool merged_new_window = false;
    for (auto& [merge_result, merged_windows] : merges) {
      // The new window has no state yet: it takes part in the merge but is
      // not one of the windows merged away.
      auto self = std::find(merged_windows.begin(), merged_windows.end(), new_window);
      if (self != merged_windows.end()) {
        merged_windows.erase(self);
        merged_new_window = true;
        result_window = merge_result;
      }
      if (merged_windows.empty())
        continue; // cannot happen with distinct groups of two or more; defensive

      // The first merged window lends its state window to the result, so
      // its state stays where it is and only the others' state moves.
      auto first = mapping_.find(merged_windows.front());
      if (first == mapping_.end())
        throw std::logic_error("merging_window_set: assigner merged window " +
                               to_string(merged_windows.front()) + ", which is not in flight");
      const W result_state_window = first->second;

      std::vector<W> merged_state_windows;
      for (auto& w : merged_windows) {
        auto it = mapping_.find(w);
        if (it != mapping_.end()) {
          merged_state_windows.push_back(it->second);
          mapping_.erase(it);
        }
      }
      mapping_.insert_or_assign(merge_result, result_state_window);
      auto target = std::find(merged_state_windows.begin(), merged_state_windows.end(),
                              result_state_window);
      if (target != merged_state_windows.end())
        merged_state_windows.erase(target);

      // One in-flight window "merged" into itself: the new window fell inside
      // it and nothing changed.
      if (!(merged_windows.size() == 1 && merged_windows.front() == merge_result))
        merge_callback(merge_result, merged_windows, result_state_window, merged_state_windows);
    }

    // A window of its own: the new window is its own state window. emplace
    // keeps the mapping of an in-flight window equal to new_window.
    if (merges.empty() || (result_window == new_window && !merged_new_window))
      mapping_.emplace(result_window, result_window);
    return result_window;
  }

private:
  std::map<W, W> mapping_;
};

} // namespace sluice::runtime
