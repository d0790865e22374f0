#pragma once

#include "sluice/functions/message.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

/// Functions that answer asynchronously (remote functions over HTTP): what
/// the dispatcher sends them and what they answer, in the terms of the
/// StateFun request-reply protocol but without protobuf. remote/ maps these
/// to and from ToFunction / FromFunction.
namespace sluice::functions {

/// One message of a batch (ToFunction.Invocation).
struct async_invocation {
  std::optional<address> caller;
  typed_value argument;
  std::optional<int64_t> event_time;

  friend bool operator==(const async_invocation& a, const async_invocation& b) {
    return a.caller == b.caller && a.argument == b.argument && a.event_time == b.event_time;
  }
};

/// A registered persisted value and what it holds (ToFunction.PersistedValue;
/// no value = registered but unset).
struct state_value {
  std::string name;
  std::optional<typed_value> value;
};

/// One request: every registered value of the target, and a non-empty batch
/// of messages in arrival order (InvocationBatchRequest).
struct async_request {
  address target;
  std::vector<state_value> state;
  std::vector<async_invocation> invocations;
};

/// A change to a persisted value (PersistedValueMutation).
struct state_mutation {
  enum class kind : uint8_t { remove, modify };
  kind mutation = kind::modify;
  std::string name;
  typed_value value; ///< for modify
};

/// A message to a function (FromFunction.Invocation).
struct outgoing_message {
  address target;
  typed_value argument;
};

/// A delayed message or the cancellation of one (DelayedInvocation).
struct delayed_invocation {
  bool cancel = false; ///< only `token` counts
  std::string token;
  std::chrono::milliseconds delay{0};
  address target;
  typed_value argument;
};

/// A message to an egress (EgressMessage).
struct egress_message {
  egress_id egress;
  typed_value argument;
};

/// What an async invocation came back with. Exactly one of: effects (the
/// function ran), missing values (it did not run: register these and send
/// the same batch again), or a failure after the client's own retries.
struct async_result {
  enum class status : uint8_t { done, missing_values, failed };
  status outcome = status::done;

  // status::done, applied in this order (as StateFun does): outgoing,
  // delayed (in list order), egress, state mutations.
  std::vector<outgoing_message> outgoing;
  std::vector<delayed_invocation> delayed;
  std::vector<egress_message> egress;
  std::vector<state_mutation> mutations;

  /// status::missing_values: the specs the function declares and the
  /// request lacked.
  std::vector<value_spec> missing;

  /// status::failed: why (transport error, bad reply, status code, ...).
  std::string failure;

  [[nodiscard]] static async_result failed(std::string reason) {
    async_result r;
    r.outcome = status::failed;
    r.failure = std::move(reason);
    return r;
  }
  [[nodiscard]] static async_result missing_values(std::vector<value_spec> specs) {
    async_result r;
    r.outcome = status::missing_values;
    r.missing = std::move(specs);
    return r;
  }
};

/// Called once with the result of an invocation, on any thread.
using async_completion = std::function<void(async_result)>;

/// A function invoked asynchronously (a remote function). invoke() must not
/// block: it starts the call and returns; `done` is called later, on any
/// thread, exactly once. The dispatcher keeps at most one invocation in
/// flight per address. Shared by every dispatcher subtask: thread-safe.
class async_function {
public:
  virtual ~async_function() = default;
  virtual void invoke(async_request request, async_completion done) = 0;
};

} // namespace sluice::functions
