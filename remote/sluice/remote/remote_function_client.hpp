#pragma once

#include "sluice/functions/invocation.hpp"
#include "sluice/remote/invocation_codec.hpp"
#include "sluice/remote/module.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <memory>

namespace sluice::remote {

/// Counters of a client, for tests and metrics.
struct client_stats {
  /// HTTP requests sent, retries included.
  uint64_t attempts = 0;
  /// Attempts that were retries.
  uint64_t retries = 0;
  /// TCP connections opened.
  uint64_t connections_opened = 0;
  /// Calls completed, successfully or not.
  uint64_t calls_completed = 0;
};

/// Client-wide settings.
struct client_config {
  /// Calls waiting for a connection per endpoint before new calls fail with
  /// `overloaded` (the dispatcher's own in-flight limit should stay below).
  size_t max_waiting_calls = 65536;
};

/// Calls remote functions over HTTP with the StateFun request-reply protocol.
///
/// Owns one I/O thread (Boost.Asio) that does all network work, so `invoke`
/// never blocks its caller (typically a CAF actor): it queues the call and
/// returns. The completion runs later **on the client's I/O thread**; it
/// should only hand the result on (e.g. `caf::anon_send` to the actor) and
/// must not destroy the client.
///
/// Per endpoint (host:port) the client keeps a pool of keep-alive
/// connections, at most `transport.pool_size` open; calls beyond that wait
/// for a free connection. A call is retried with exponential backoff and
/// jitter on I/O errors and HTTP 408, 409, 420, 429, 499 and 5xx (as
/// StateFun's OkHttp client), until `transport.max_attempts` or the
/// `transport.call` time runs out; any other non-2xx status, a reply
/// without `Content-Type: application/octet-stream`, a body over
/// `transport.payload_max_bytes` or a reply that breaks the protocol fails
/// at once. Every error names the function, the address and the URL.
///
/// Thread safety: `invoke`, `stats` and `shutdown` may be called from any
/// thread. Destruction shuts down: calls in flight complete with
/// `remote_errc::shut_down`, and it does not wait for remote servers.
class remote_function_client {
public:
  /// Receives the outcome of one call.
  using completion = std::function<void(caf::expected<functions::invocation_outcome>)>;

  /// Starts the I/O thread.
  explicit remote_function_client(client_config config = {});
  /// Shuts down (see `shutdown`).
  ~remote_function_client();

  remote_function_client(const remote_function_client&) = delete;
  remote_function_client& operator=(const remote_function_client&) = delete;

  /// Sends `req` to the endpoint and calls `done` exactly once with the
  /// decoded, validated reply or an error. The request path is the
  /// endpoint's URL path with `{function.name}` replaced by the target's
  /// function name. Only `http` URLs are supported; others fail with
  /// `remote_errc::unsupported`. A call that cannot start at all (bad
  /// scheme, invalid request, client shut down) completes inline, on the
  /// calling thread; every other completion runs on the I/O thread.
  void invoke(const http_endpoint_spec& endpoint, invocation_request req, completion done);

  /// Fails every pending call with `remote_errc::shut_down`, closes all
  /// connections and joins the I/O thread. Idempotent; later `invoke`s fail
  /// at once. Must not be called from a completion.
  void shutdown();

  /// A snapshot of the counters.
  client_stats stats() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// True if an HTTP status is retried (StateFun's OkHttp client: 408, 409,
/// 420, 429, 499 and every status >= 500).
bool is_retryable_status(unsigned status);

} // namespace sluice::remote
