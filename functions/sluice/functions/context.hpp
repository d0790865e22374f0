#pragma once

#include "sluice/functions/message.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::functions {

/// The persisted values of the address being invoked: the values its
/// function type declared (value_spec), read and written by name. Reads see
/// the invocation's own writes; the writes reach the keyed state backend
/// when the handler returns, and not at all when it throws. A name that was
/// not declared, or a type other than the declared one, throws
/// function_error. Valid only during the invocation.
class persisted_values {
public:
  virtual ~persisted_values() = default;

  /// The value `name` holds, or nothing when it is unset or expired.
  [[nodiscard]] virtual std::optional<typed_value> get_value(std::string_view name) = 0;
  /// Sets `name`; the typename must be the declared one.
  virtual void set_value(std::string_view name, typed_value value) = 0;
  /// Clears `name`.
  virtual void remove(std::string_view name) = 0;

  /// The value `name` holds as a T (nothing when unset or expired).
  template <class T> [[nodiscard]] std::optional<T> get(std::string_view name) {
    auto v = get_value(name);
    if (!v)
      return std::nullopt;
    auto decoded = typed_as<T>(*v);
    if (!decoded)
      throw function_error("persisted value '" + std::string(name) + "' holds a '" + v->type_name +
                           "', which does not decode as '" +
                           std::string(value_codec<T>::type_name) + "'");
    return decoded;
  }
  /// Sets `name` to `value` encoded with T's codec.
  template <class T> void set(std::string_view name, const T& value) {
    set_value(name, make_typed(value));
  }
};

/// What a handler can do while it handles one message. Messages, delayed
/// messages and egress messages it sends leave when the handler returns
/// (and not at all when it throws), in the order they were sent. Valid only
/// during the invocation; never block in a handler.
class context {
public:
  virtual ~context() = default;

  /// The address being invoked.
  [[nodiscard]] virtual const address& self() const = 0;
  /// The function that sent the message; nothing for ingress messages.
  [[nodiscard]] virtual const std::optional<address>& caller() const = 0;
  /// The declared persisted values of self().
  virtual persisted_values& storage() = 0;

  /// Sends `value` to the function at `target`.
  virtual void send(address target, typed_value value) = 0;
  template <class T> void send(address target, const T& value) {
    send(std::move(target), make_typed(value));
  }

  /// Sends `value` to `target` after `delay` of processing time. With a
  /// non-empty `cancellation_token` the message can be cancelled until it
  /// is delivered; a token is unique per sending address while its message
  /// is pending (scheduling it twice throws function_error; cancel first to
  /// reschedule).
  virtual void send_after(std::chrono::milliseconds delay, address target, typed_value value,
                          std::string cancellation_token = {}) = 0;
  template <class T>
  void send_after(std::chrono::milliseconds delay, address target, const T& value,
                  std::string cancellation_token = {}) {
    send_after(delay, std::move(target), make_typed(value), std::move(cancellation_token));
  }

  /// As send_after, but on event time: the message is delivered when the
  /// watermark reaches the current message's event time (or, without one,
  /// the current watermark) plus `delay`, and carries that time as its event
  /// time. StateFun has processing time only.
  virtual void send_after_event_time(std::chrono::milliseconds delay, address target,
                                     typed_value value, std::string cancellation_token = {}) = 0;
  template <class T>
  void send_after_event_time(std::chrono::milliseconds delay, address target, const T& value,
                             std::string cancellation_token = {}) {
    send_after_event_time(delay, std::move(target), make_typed(value),
                          std::move(cancellation_token));
  }

  /// Cancels the pending delayed message sent from self() under `token`;
  /// nothing when none is pending (delivered already, or never sent).
  virtual void cancel_delayed(std::string_view token) = 0;

  /// Sends `value` to egress `id`.
  virtual void send_egress(egress_id id, typed_value value) = 0;
  template <class T> void send_egress(egress_id id, const T& value) {
    send_egress(std::move(id), make_typed(value));
  }
};

} // namespace sluice::functions
