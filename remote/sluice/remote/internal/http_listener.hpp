#pragma once

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace boost::asio::ssl {
class context;
} // namespace boost::asio::ssl

namespace sluice::remote::internal {

/// One request as an http_listener hands it to its handler.
struct http_request {
  std::string method;
  std::string target;
  /// The Authorization header ("" when absent).
  std::string authorization;
  /// The Content-Type header ("" when absent).
  std::string content_type;
  std::string body;
};

/// What a handler answers.
struct http_reply {
  unsigned status = 200;
  std::string content_type = "text/plain";
  std::string body;
  /// Further header fields (name, value).
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Settings of a listener.
struct http_listener_config {
  /// Names the server in errors ("REST server", "function server").
  std::string name = "HTTP server";
  std::string bind_address = "127.0.0.1";
  /// 0 picks a free port (see `port()`).
  uint16_t port = 0;
  /// I/O threads; handlers run on them and must not block.
  size_t threads = 1;
  /// Larger bodies get the 413 reply (checked from Content-Length before
  /// the body is read).
  uint64_t max_body_bytes = 10 * 1024 * 1024;
  /// Idle keep-alive connections are closed after this long.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds{60}};
  /// When set, every connection starts with a TLS handshake with this
  /// server context (internal/tls.hpp), within `idle_timeout`; a failed
  /// handshake (a plain HTTP client, say) closes that connection only.
  /// Null serves plain HTTP.
  std::shared_ptr<boost::asio::ssl::context> tls;
};

/// Answers a request; called on an I/O thread.
using http_handler = std::function<http_reply(http_request&&)>;
/// Sends the reply to a request answered asynchronously: call it once, from
/// any thread. A reply sent after `stop` is dropped. A responder must not
/// outlive its listener (it keeps the request's connection open).
using http_responder = std::function<void(http_reply)>;
/// Answers a request later: called on an I/O thread, must not block, and
/// must eventually call the responder (or drop it, which closes nothing: the
/// connection then waits until `stop`). The connection reads no further
/// request until the reply is sent.
using http_async_handler = std::function<void(http_request&&, http_responder)>;
/// Formats the listener's own error replies: 400 (malformed HTTP) and 413
/// (body too large), with a message saying what was wrong.
using http_error_formatter = std::function<http_reply(unsigned status, const std::string& message)>;

/// The HTTP/1.1 server (Boost.Beast) under the REST API and the SDK's
/// function server: binds, accepts, keeps connections alive, reads each
/// request (header first, so an oversized body is refused before it is
/// read) and writes the handler's reply. Thread-safe; `stop` (or
/// destruction) closes every connection and joins the threads.
class http_listener {
public:
  /// Binds and serves; `server_failed` naming the server if the address
  /// cannot be bound.
  [[nodiscard]] static caf::expected<std::unique_ptr<http_listener>>
  start(http_listener_config config, http_handler handler, http_error_formatter errors);
  /// As `start`, with a handler that answers through a responder, for
  /// requests that wait on something else (the HTTP ingress's replies).
  [[nodiscard]] static caf::expected<std::unique_ptr<http_listener>>
  start_async(http_listener_config config, http_async_handler handler,
              http_error_formatter errors);

  ~http_listener();
  http_listener(const http_listener&) = delete;
  http_listener& operator=(const http_listener&) = delete;

  /// The bound port.
  uint16_t port() const;
  /// Stops serving (idempotent).
  void stop();

  struct impl;

private:
  explicit http_listener(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace sluice::remote::internal
