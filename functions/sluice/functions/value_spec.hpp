#pragma once

#include "sluice/functions/typed_value.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

namespace sluice::functions {

/// When a persisted value expires (StateFun's ExpirationSpec.ExpireMode).
enum class expiration_mode : uint8_t {
  none,         ///< never
  after_write,  ///< `ttl` after the last write
  after_invoke, ///< `ttl` after the last invocation of the address (read or write)
};

/// A persisted value's expiration: a mode and a time to live.
struct expiration {
  expiration_mode mode = expiration_mode::none;
  std::chrono::milliseconds ttl{0};

  [[nodiscard]] static expiration never() { return {}; }
  [[nodiscard]] static expiration after_write(std::chrono::milliseconds ttl) {
    return {expiration_mode::after_write, ttl};
  }
  [[nodiscard]] static expiration after_invoke(std::chrono::milliseconds ttl) {
    return {expiration_mode::after_invoke, ttl};
  }
  /// Whether values expire at all.
  [[nodiscard]] bool enabled() const noexcept {
    return mode != expiration_mode::none && ttl.count() > 0;
  }
  friend bool operator==(const expiration& a, const expiration& b) {
    return a.mode == b.mode && a.ttl == b.ttl;
  }
  friend bool operator!=(const expiration& a, const expiration& b) { return !(a == b); }
};

/// A persisted value a function declares (StateFun's ValueSpec /
/// PersistedValueSpec): its name, its typename and its expiration.
/// Registered once per function type; type and expiration cannot change.
struct value_spec {
  std::string name;
  std::string type_name;
  functions::expiration expiration;

  /// A value of C++ type T (its codec names the typename).
  template <class T>
  [[nodiscard]] static value_spec of(std::string name, functions::expiration e = {}) {
    return value_spec{std::move(name), std::string(value_codec<T>::type_name), e};
  }
  friend bool operator==(const value_spec& a, const value_spec& b) {
    return a.name == b.name && a.type_name == b.type_name && a.expiration == b.expiration;
  }
  friend bool operator!=(const value_spec& a, const value_spec& b) { return !(a == b); }
};

} // namespace sluice::functions
