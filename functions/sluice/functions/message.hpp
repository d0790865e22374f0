#pragma once

#include "sluice/functions/address.hpp"
#include "sluice/functions/typed_value.hpp"
#include "sluice/functions/value_spec.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

/// The vocabulary of embedded functions: egress ids, messages, persisted
/// value specs, and the error a handler's misuse raises.
namespace sluice::functions {

/// Raised inside a handler for a misuse the handler can only find at run
/// time (an undeclared state name, a payload of another type, a delayed
/// message token already pending). The dispatcher catches it, drops the
/// invocation's effects and sends a dead letter naming the function and
/// address; it never reaches the job.
class function_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A message as a function receives it: who it is for, who sent it (empty
/// for ingress messages), and a typed payload.
struct message {
  address target;
  std::optional<address> caller;
  typed_value payload;
  /// The message's event time (ms), when its ingress or sender had one.
  std::optional<int64_t> event_time;

  /// Whether the payload is a T (its typename is T's codec's).
  template <class T> [[nodiscard]] bool is() const {
    return payload.type_name == value_codec<T>::type_name;
  }
  /// The payload as a T, or nothing when it is another type or malformed.
  template <class T> [[nodiscard]] std::optional<T> try_as() const { return typed_as<T>(payload); }
  /// The payload as a T; throws function_error naming both typenames when
  /// it is another type or malformed (the dispatcher turns that into a dead
  /// letter).
  template <class T> [[nodiscard]] T as() const {
    if (!is<T>())
      throw function_error("message to " + target.to_string() + " has type '" + payload.type_name +
                           "', not '" + std::string(value_codec<T>::type_name) + "'");
    auto v = typed_as<T>(payload);
    if (!v)
      throw function_error("message to " + target.to_string() + " has a malformed '" +
                           payload.type_name + "' payload");
    return std::move(*v);
  }
};

} // namespace sluice::functions
