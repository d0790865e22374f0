#pragma once

// The StateFun request-reply protocol (ToFunction / FromFunction) in both
// directions: the runtime side encodes requests and decodes replies, the SDK
// side decodes requests and encodes replies. Everything read from the wire is
// validated; a violation is a caf::error naming the function and address.

#include "sluice/functions/address.hpp"
#include "sluice/functions/invocation.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/kafka_record.hpp"

#include <caf/expected.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace sluice::remote {

/// One batch for one address (functions/invocation.hpp): what the runtime
/// encodes and sends.
using functions::invocation_request;

/// The state a request carried, as an SDK sees it: each name sent, with its
/// value if one was attached (StateFun's PersistedValue).
struct received_state {
  std::string name;
  /// Absent: the name was sent without a value (registered but unset).
  std::optional<functions::typed_value> value;
};

/// A request as an SDK decodes it.
struct decoded_request {
  functions::address target;
  std::vector<received_state> state;
  std::vector<functions::invocation> invocations;
};

/// Serializes `req` as a ToFunction. Fails if the target address is invalid
/// or the batch is empty.
[[nodiscard]] caf::expected<std::string> encode_request(const invocation_request& req);

/// Parses the FromFunction a function answered to `req` and validates it
/// against the request: addresses and typenames must be well formed, delays
/// non-negative, mutations only of registered state with its registered
/// typename. An empty body, or one with neither result set, means "no side
/// effects" (as in StateFun).
[[nodiscard]] caf::expected<functions::invocation_outcome>
decode_response(std::string_view bytes, const invocation_request& req);

/// How every decode_response error text starts: it names the function and
/// the address, so a caller that names them itself can cut it off.
std::string reply_error_prefix(const functions::address& target);

/// Parses a ToFunction (the SDK side). Fails on unparsable bytes, a request
/// without an invocation batch or target, or bad addresses.
[[nodiscard]] caf::expected<decoded_request> decode_request(std::string_view bytes);

/// Serializes an outcome as a FromFunction (the SDK side).
[[nodiscard]] std::string encode_response(const functions::invocation_outcome& outcome);

/// True if `name` is a StateFun typename: `namespace/name` with both parts
/// non-empty (the namespace may contain slashes: the last one separates).
bool is_valid_type_name(std::string_view name);

/// True if `addr` can be sent on the wire: non-empty namespace, name and id,
/// no slash in the namespace or name.
bool is_valid_address(const functions::address& addr);

} // namespace sluice::remote
