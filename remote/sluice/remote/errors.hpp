#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <cstdint>
#include <string>

namespace sluice::remote {

/// Error codes of remote/ (category atom `remote`). Every error also carries
/// a sentence saying what failed and where; read it with `describe`.
enum class remote_errc : uint8_t {
  /// A function answered with bytes that are not a valid FromFunction, or
  /// with one that breaks the protocol (bad address, unregistered state...).
  malformed_response = 1,
  /// The request to encode was invalid (empty batch, bad address...).
  invalid_request,
  /// The function answered with a status that is not retried (e.g. 404).
  http_status,
  /// The retry budget (attempts or call time) ran out.
  retries_exhausted,
  /// A URL scheme or transport sluice does not implement (https, unix).
  unsupported,
  /// A module file could not be read or is invalid.
  invalid_module,
  /// The client or server was shut down before the call completed.
  shut_down,
  /// Too many calls are queued for an endpoint.
  overloaded,
  /// A server could not be started (bind failed...).
  server_failed,
  /// An SDK got a request for a function type it does not serve.
  unknown_function,
  /// A function handler threw.
  function_failed,
  /// An application's settings do not work together (no functions, two
  /// ingresses, a bad option), or its job could not start.
  invalid_configuration,
  /// A server (e.g. the JobManager's REST API) could not be reached.
  unreachable,
};

/// The category atom of remote/ errors.
inline constexpr caf::atom_value remote_error_category = caf::atom("remote");

/// An error of remote/ with a description.
inline caf::error make_error(remote_errc code, std::string what) {
  return caf::error{static_cast<uint8_t>(code), remote_error_category,
                    caf::make_message(std::move(what))};
}

/// True if `err` is the remote/ error `code`.
inline bool is(const caf::error& err, remote_errc code) {
  return err.category() == remote_error_category && err.code() == static_cast<uint8_t>(code);
}

/// The description an error carries (its first string in the context), or
/// CAF's rendering of it when it has none.
std::string describe(const caf::error& err);

} // namespace sluice::remote
