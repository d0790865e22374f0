#pragma once

#include "sluice/state/keyed_state.hpp"

#include <atomic>
#include <memory>
#include <string>
#include <unistd.h>

/// Backend fixtures the state tests share: one suite runs against both
/// backends (doctest TEST_CASE_TEMPLATE over heap_fixture and
/// rocksdb_fixture). Test code only.
namespace sluice::state::testing {

inline constexpr int32_t max_p = 128;
inline const key_group_range all_groups{0, max_p - 1};

/// A RocksDB instance name unique in this process and machine.
inline std::string instance_name() {
  static std::atomic<int> n{0};
  return "sluice-state-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

struct heap_fixture {
  static constexpr const char* name = "heap";
  template <class K>
  static std::unique_ptr<keyed_state_backend<K>>
  make(std::shared_ptr<manual_state_clock> clock, key_group_range range = all_groups) {
    return std::make_unique<heap_keyed_backend<K>>(range, max_p, std::move(clock));
  }
};

struct rocksdb_fixture {
  static constexpr const char* name = "rocksdb";
  template <class K>
  static std::unique_ptr<keyed_state_backend<K>>
  make(std::shared_ptr<manual_state_clock> clock, key_group_range range = all_groups) {
    rocksdb_config cfg;
    cfg.managed_memory_bytes = size_t{64} << 20;
    return std::make_unique<rocksdb_keyed_backend<K>>(range, max_p, std::move(clock), cfg,
                                                      instance_name());
  }
};

/// A window-like namespace for namespaced state.
struct window_ns {
  int64_t start = 0;
  int64_t end = 0;
  friend bool operator==(const window_ns& a, const window_ns& b) {
    return a.start == b.start && a.end == b.end;
  }
  SLUICE_SERIALIZABLE(start, end)
};

/// The message of the state_error `fn` throws ("<no state_error>" if none).
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const state_error& e) {
    return e.what();
  }
  return "<no state_error>";
}

/// Whether `s` contains `part`.
inline bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

} // namespace sluice::state::testing
