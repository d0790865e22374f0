#pragma once

// The C++ SDK for remote functions: what a handler sees. A handler gets a
// context (its address, the caller, its declared state, and ways to send
// messages) and the message; the SDK turns what it did into the StateFun
// reply. See function_registry and function_server for serving handlers.

#include "sluice/functions/address.hpp"
#include "sluice/functions/invocation.hpp"
#include "sluice/functions/typed_value.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::remote::sdk {

using functions::address;
using functions::egress_id;
using functions::expiration;
using functions::expiration_mode;
using functions::function_type;
using functions::typed_value;
using functions::value_spec;

/// A declared state value of C++ type T (a type with a
/// `functions::value_codec`), e.g. `value<int32_t>("seen")`.
template <class T> value_spec value(std::string name, expiration expire = {}) {
  return value_spec{std::move(name), std::string{functions::value_codec<T>::type_name}, expire};
}

/// `expiration` after the last write.
inline expiration expire_after_write(std::chrono::milliseconds after) {
  return {expiration_mode::after_write, after};
}

/// `expiration` after the last invocation.
inline expiration expire_after_invoke(std::chrono::milliseconds after) {
  return {expiration_mode::after_invoke, after};
}

/// Thrown by the SDK when a handler misuses it (undeclared state, wrong
/// type); the server answers HTTP 500 with the message, like the official
/// SDKs.
class usage_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The message a handler is invoked with.
class message {
public:
  /// Wraps a typed value.
  explicit message(const typed_value& value)
      : value_(&value) {}

  /// The message's typename.
  const std::string& type_name() const { return value_->type_name; }
  /// The raw typed value.
  const typed_value& raw() const { return *value_; }

  /// True if the message is of T's typename.
  template <class T> bool is() const {
    return value_->type_name == functions::value_codec<T>::type_name;
  }

  /// The message as T; throws usage_error if the typename differs or the
  /// bytes do not decode.
  template <class T> T as() const {
    auto v = functions::typed_as<T>(*value_);
    if (!v)
      throw usage_error("message of type '" + value_->type_name + "' is not a " +
                        std::string{functions::value_codec<T>::type_name});
    return std::move(*v);
  }

private:
  const typed_value* value_;
};

/// The declared state of the address being invoked. Reads see the writes
/// of earlier invocations in the same batch.
class storage {
public:
  /// One declared value and what the batch did to it.
  struct slot {
    const value_spec* spec = nullptr;
    std::optional<typed_value> value;
    bool mutated = false;
  };

  /// The storage over the given slots (built by the SDK).
  explicit storage(std::vector<slot> slots)
      : slots_(std::move(slots)) {}

  /// The value of `name` as T, or nullopt if unset. Throws usage_error if
  /// `name` is not declared or the stored typename is not T's.
  template <class T> std::optional<T> get(std::string_view name) const {
    auto raw = get_raw(name);
    if (!raw)
      return std::nullopt;
    auto v = functions::typed_as<T>(*raw);
    if (!v)
      throw usage_error("state '" + std::string{name} + "' holds a '" + raw->type_name +
                        "', not a " + std::string{functions::value_codec<T>::type_name});
    return v;
  }

  /// Sets `name` to `v`; throws usage_error if `name` is not declared with
  /// T's typename.
  template <class T> void set(std::string_view name, const T& v) {
    set_raw(name, functions::make_typed(v));
  }

  /// The raw value of `name`, or nullopt if unset. Throws usage_error if the
  /// name is not declared or the stored typename differs from the declared
  /// one (checked on read, as the official SDKs do).
  std::optional<typed_value> get_raw(std::string_view name) const;

  /// Sets `name` to a raw value of the declared typename.
  void set_raw(std::string_view name, typed_value v);

  /// Deletes the value of `name`.
  void remove(std::string_view name);

  /// The slots, for the SDK to collect mutations.
  const std::vector<slot>& slots() const { return slots_; }

private:
  slot& find(std::string_view name);
  const slot& find(std::string_view name) const;

  std::vector<slot> slots_;
};

/// What a handler can see and do during one invocation.
class context {
public:
  /// A context for `self` over `store`, recording effects into `effects`.
  context(const address& self, sdk::storage& store, functions::invocation_result& effects)
      : self_(self)
      , storage_(store)
      , effects_(effects) {}

  /// The address being invoked.
  const address& self() const { return self_; }
  /// The sender, if the message came from a function.
  const std::optional<address>& caller() const { return caller_; }
  /// The declared state of this address.
  sdk::storage& storage() { return storage_; }

  /// Sends `value` to the function at `target`.
  void send(address target, typed_value value);

  /// Sends `value` to `target` after `delay`, optionally under a
  /// cancellation token.
  void send_after(std::chrono::milliseconds delay, address target, typed_value value,
                  std::string cancellation_token = {});

  /// Cancels the delayed message sent under `token` (a no-op if it was
  /// delivered already). Throws usage_error for an empty token.
  void cancel_delayed(std::string token);

  /// Sends `value` to the egress `egress` (`namespace/name`).
  void send_egress(const egress_id& egress, typed_value value);

  /// Sets the caller (used by the SDK between invocations).
  void set_caller(std::optional<address> caller) { caller_ = std::move(caller); }

private:
  const address& self_;
  std::optional<address> caller_;
  sdk::storage& storage_;
  functions::invocation_result& effects_;
};

/// A function body.
using handler = std::function<void(context&, const message&)>;

} // namespace sluice::remote::sdk
