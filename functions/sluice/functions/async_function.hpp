#pragma once

#include "sluice/functions/invocation.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

/// Functions that answer asynchronously (remote functions over HTTP): the
/// dispatcher sends them an invocation_request and gets back an async_result
/// built from invocation.hpp's vocabulary. remote/ implements async_function
/// over its HTTP client.
namespace sluice::functions {

/// One message waiting in (or sent with) an address's batch, as the
/// dispatcher stores it: an invocation plus the message's event time, which
/// the function never sees but the effects of its batch carry on.
struct async_invocation {
  std::optional<address> caller;
  typed_value argument;
  std::optional<int64_t> event_time;

  friend bool operator==(const async_invocation& a, const async_invocation& b) {
    return a.caller == b.caller && a.argument == b.argument && a.event_time == b.event_time;
  }
};

/// What an async invocation came back with. Exactly one of: effects (the
/// function ran), missing values (it did not run: register these and send
/// the same batch again), or a failure after the function's own retries.
struct async_result {
  /// Which of the three outcomes this is.
  enum class status : uint8_t { done, missing_values, failed };
  status outcome = status::done;

  /// status::done: the side effects of the batch, applied in
  /// invocation_result's order.
  invocation_result effects;

  /// status::missing_values: the specs the function declares and the
  /// request lacked.
  std::vector<value_spec> missing;

  /// status::failed: why (transport error, bad reply, status code, ...).
  std::string failure;

  /// The function ran with these effects.
  [[nodiscard]] static async_result done(invocation_result effects) {
    async_result r;
    r.effects = std::move(effects);
    return r;
  }
  /// The function did not run: it needs these values registered.
  [[nodiscard]] static async_result missing_values(std::vector<value_spec> specs) {
    async_result r;
    r.outcome = status::missing_values;
    r.missing = std::move(specs);
    return r;
  }
  /// The invocation failed for good, for `reason`.
  [[nodiscard]] static async_result failed(std::string reason) {
    async_result r;
    r.outcome = status::failed;
    r.failure = std::move(reason);
    return r;
  }
  /// A function's answer as a result: done or missing values.
  [[nodiscard]] static async_result from(invocation_outcome outcome) {
    if (auto* m = std::get_if<missing_state>(&outcome))
      return missing_values(std::move(m->specs));
    return done(std::get<invocation_result>(std::move(outcome)));
  }
};

/// Called once with the result of an invocation, on any thread.
using async_completion = std::function<void(async_result)>;

/// A function invoked asynchronously (a remote function). invoke() must not
/// block: it starts the call and returns; `done` is called later, on any
/// thread (or inline, for a call that cannot start), exactly once. The
/// dispatcher keeps at most one invocation in flight per address. Shared by
/// every dispatcher subtask: thread-safe.
class async_function {
public:
  virtual ~async_function() = default;
  /// Starts one batch for `request.target`; see the class comment.
  virtual void invoke(invocation_request request, async_completion done) = 0;
};

} // namespace sluice::functions
