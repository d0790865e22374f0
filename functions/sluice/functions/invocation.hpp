#pragma once

// The protocol-independent shape of one batched invocation of a stateful
// function and of its outcome: what the dispatcher hands to an async
// (remote) function and what it gets back (async_function.hpp), and what
// remote/ translates to and from the StateFun request-reply protobufs.
// Nothing here knows about the wire.

#include "sluice/functions/address.hpp"
#include "sluice/functions/typed_value.hpp"
#include "sluice/functions/value_spec.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace sluice::functions {

/// One registered state value of an address as it goes out with a request:
/// the registered name and typename, and the stored bytes if a value exists.
struct state_value {
  std::string name;
  std::string type_name;
  std::optional<std::string> bytes;

  friend bool operator==(const state_value& a, const state_value& b) {
    return a.name == b.name && a.type_name == b.type_name && a.bytes == b.bytes;
  }
};

/// One message delivered to a function: who sent it (absent for ingress
/// messages) and the argument.
struct invocation {
  std::optional<address> caller;
  typed_value argument;

  friend bool operator==(const invocation& a, const invocation& b) {
    return a.caller == b.caller && a.argument == b.argument;
  }
};

/// A change to one state value, with the final value after the batch.
struct state_mutation {
  /// Whether the value was set or deleted.
  enum class kind : uint8_t { modify, remove };

  kind what = kind::modify;
  std::string name;
  /// The new value; empty for `remove`.
  typed_value value;

  friend bool operator==(const state_mutation& a, const state_mutation& b) {
    return a.what == b.what && a.name == b.name && a.value == b.value;
  }
};

/// A message from a function to another function, delivered now.
struct outgoing_message {
  address target;
  typed_value argument;

  friend bool operator==(const outgoing_message& a, const outgoing_message& b) {
    return a.target == b.target && a.argument == b.argument;
  }
};

/// One batch for one address: the address, every state value registered for
/// its function type (name, typename, value if set), and the invocations in
/// arrival order (non-empty).
struct invocation_request {
  address target;
  std::vector<state_value> state;
  std::vector<invocation> invocations;

  friend bool operator==(const invocation_request& a, const invocation_request& b) {
    return a.target == b.target && a.state == b.state && a.invocations == b.invocations;
  }
};

/// A message delivered after a delay (processing time), or the cancellation
/// of one scheduled earlier under a token. Entries are applied in order, so a
/// cancellation may precede a new schedule under the same token. (Not
/// envelope.hpp's delayed_message, the dispatcher's stored form.)
struct delayed_invocation {
  /// True: cancel the pending message with `cancellation_token`; the other
  /// fields are then unused.
  bool is_cancellation = false;
  /// Optional for a schedule; required for a cancellation.
  std::string cancellation_token;
  std::chrono::milliseconds delay{0};
  address target;
  typed_value argument;

  friend bool operator==(const delayed_invocation& a, const delayed_invocation& b) {
    return a.is_cancellation == b.is_cancellation && a.cancellation_token == b.cancellation_token &&
           a.delay == b.delay && a.target == b.target && a.argument == b.argument;
  }
};

/// A record a function sends to an egress (StateFun's egress namespace and
/// type, e.g. `example/greets`).
struct egress_message {
  egress_id egress;
  typed_value argument;

  friend bool operator==(const egress_message& a, const egress_message& b) {
    return a.egress == b.egress && a.argument == b.argument;
  }
};

/// The side effects of a batch, to be applied in this order: messages,
/// delayed messages (in list order), egress records, state mutations.
struct invocation_result {
  std::vector<state_mutation> mutations;
  std::vector<outgoing_message> messages;
  std::vector<delayed_invocation> delayed;
  std::vector<egress_message> egress;

  friend bool operator==(const invocation_result& a, const invocation_result& b) {
    return a.mutations == b.mutations && a.messages == b.messages && a.delayed == b.delayed &&
           a.egress == b.egress;
  }
};

/// The function did not run because it declares state values the request
/// did not carry; register them and send the same batch again.
struct missing_state {
  std::vector<value_spec> specs;

  friend bool operator==(const missing_state& a, const missing_state& b) {
    return a.specs == b.specs;
  }
};

/// What a function answered to a batch.
using invocation_outcome = std::variant<invocation_result, missing_state>;

} // namespace sluice::functions
