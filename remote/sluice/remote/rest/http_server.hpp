#pragma once

#include "sluice/remote/rest/router.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace sluice::remote::rest {

/// Settings of the REST server (Flink's rest.* keys where they exist).
struct rest_config {
  /// rest.bind-address: loopback unless asked otherwise.
  std::string bind_address = "127.0.0.1";
  /// rest.port; 0 picks a free port (see `port()`).
  uint16_t port = 0;
  /// I/O threads. Handlers run on them and must not block.
  size_t threads = 1;
  /// rest.server.max-content-length: larger bodies get 413.
  uint64_t max_body_bytes = 10 * 1024 * 1024;
  /// Idle keep-alive connections are closed after this long.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds{60}};
  /// When set, every request needs `Authorization: Bearer <token>` (401
  /// otherwise), except routes added as `route_access::open` (the
  /// dashboard's static files).
  std::string bearer_token;
  /// TLS: with both set, the server speaks HTTPS only (TLS 1.2 or newer).
  /// security.ssl.rest.cert-file: the PEM certificate chain (the server's
  /// certificate first); security.ssl.rest.key-file: its PEM private key
  /// (unencrypted). Both empty = plain HTTP.
  std::string tls_certificate_file;
  std::string tls_private_key_file;
  /// Threads that run long operations (savepoints, stop) off the I/O
  /// threads, and how many such operations may wait for a thread.
  size_t operation_threads = 2;
  size_t max_queued_operations = 64;
  /// state.savepoints.dir: where savepoint and stop requests that name no
  /// target directory put their savepoint (empty = the job's default,
  /// <checkpoint directory>/savepoints).
  std::string default_savepoint_directory;
};

/// An HTTP/1.1 server (Boost.Beast) on its own I/O threads, keep-alive,
/// that answers every request through a router. Before routing it checks the
/// bearer token (401), the body size (413, from Content-Length before the
/// body is read) and the target (400). Thread-safe; `stop` (or destruction)
/// closes every connection and joins the threads.
class http_server {
public:
  /// Binds and serves; fails with `server_failed` if the address cannot be
  /// bound, or `invalid_configuration` naming the security.ssl.rest.* key
  /// when only one TLS file is set, a file cannot be read or parsed, or the
  /// key does not match the certificate.
  [[nodiscard]] static caf::expected<std::unique_ptr<http_server>>
  start(std::shared_ptr<const router> routes, rest_config config);

  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The bound port.
  uint16_t port() const;
  /// Stops serving (idempotent).
  void stop();

  struct impl;

private:
  explicit http_server(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

} // namespace sluice::remote::rest
