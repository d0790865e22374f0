#pragma once

#include "sluice/remote/sdk/function.hpp"

#include <caf/expected.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::remote::sdk {

/// The functions an SDK process serves, by function type. Bind everything
/// before serving; `handle` is then safe to call from several threads.
class function_registry {
public:
  /// Serves `type` with `fn`, declaring the state values it uses.
  void bind(function_type type, std::vector<value_spec> specs, handler fn);

  /// Handles one ToFunction request body as the official SDKs do: if any
  /// declared value is missing from the request, answers an
  /// IncompleteInvocationContext listing them; otherwise runs the batch's
  /// invocations in order against local state and answers the effects, with
  /// one MODIFY or DELETE per value the batch changed. Errors:
  /// `invalid_request` (bad bytes), `unknown_function`, `function_failed`
  /// (the handler threw; the message says what).
  [[nodiscard]] caf::expected<std::string> handle(std::string_view request) const;

private:
  struct bound {
    std::vector<value_spec> specs;
    handler fn;
  };
  std::map<function_type, bound> functions_;
};

/// Settings of a function server.
struct server_config {
  /// Address to bind.
  std::string bind_address = "127.0.0.1";
  /// Port to bind; 0 picks a free one (see `function_server::port`).
  uint16_t port = 0;
  /// I/O threads; handlers run on them.
  size_t threads = 1;
  /// Largest request body accepted.
  uint64_t max_body_bytes = 32 * 1024 * 1024;
  /// Idle keep-alive connections are closed after this long.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds{60}};
};

/// Serves a function registry over HTTP (Boost.Beast), keep-alive, on its
/// own threads. Any method and path reach the registry (as the official
/// SDKs: the function type comes from the request body). Replies: 200 with
/// `application/octet-stream`, or 400 (unparsable request), 404 (unknown
/// function), 500 (a handler threw), 413 (body too large), each with a
/// text/plain message.
class function_server {
public:
  /// Binds and starts serving; fails with `server_failed` if the address
  /// cannot be bound.
  [[nodiscard]] static caf::expected<std::unique_ptr<function_server>>
  start(std::shared_ptr<const function_registry> registry, server_config config = {});

  /// Stops accepting, closes every connection and joins the threads.
  ~function_server();

  function_server(const function_server&) = delete;
  function_server& operator=(const function_server&) = delete;

  /// The bound port.
  uint16_t port() const;

  /// Stops the server (idempotent).
  void stop();

  /// Requests served so far.
  uint64_t requests_served() const;

  struct impl;

private:
  explicit function_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace sluice::remote::sdk
