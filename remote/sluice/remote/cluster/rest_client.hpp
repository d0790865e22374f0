#pragma once

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
} // namespace boost::asio::ssl

/// A blocking HTTP/1.1 client of the JobManager's REST API, for the `sluice`
/// CLI (run, list, cancel, stop, savepoint).
namespace sluice::remote::cluster {

/// One answer of the REST API.
struct rest_reply {
  unsigned status = 0;
  std::string body;
};

/// How the CLI reaches a JobManager: `-m host:port` (plain HTTP) or
/// `-m https://host:port` (TLS).
struct job_manager_url {
  std::string host;
  uint16_t port = 8081;
  bool tls = false;
};

/// Talks to one JobManager, a new connection per request. Not thread-safe.
class rest_client {
public:
  /// A plain HTTP client of `host:port`.
  rest_client(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}
  /// A client of `url`; over TLS it verifies the server's certificate (chain
  /// and host name) against the PEM certificates in `trust_cert_file`
  /// (security.ssl.rest.trust-cert-file), or the system's store when empty.
  rest_client(job_manager_url url, std::string trust_cert_file)
      : host_(std::move(url.host))
      , port_(url.port)
      , tls_(url.tls)
      , trust_cert_file_(std::move(trust_cert_file)) {}

  /// Sends one request and reads the answer (any status). Fails with
  /// `unreachable` ("cannot reach the JobManager at host:port: why") when
  /// it cannot connect, the TLS handshake fails (the reason says when the
  /// certificate did not verify), or the exchange fails or times out; with
  /// `invalid_configuration` when the trust file cannot be read.
  [[nodiscard]] caf::expected<rest_reply>
  request(const std::string& method, const std::string& target, const std::string& body = {},
          const std::string& content_type = "application/json",
          std::chrono::seconds timeout = std::chrono::seconds(60));

  /// "host:port", or "https://host:port" over TLS.
  [[nodiscard]] std::string address() const {
    return (tls_ ? "https://" : "") + host_ + ":" + std::to_string(port_);
  }

private:
  std::string host_;
  uint16_t port_;
  bool tls_ = false;
  std::string trust_cert_file_;
  /// Made on the first TLS request.
  std::shared_ptr<boost::asio::ssl::context> tls_context_;
};

/// Splits `-m host:port` (a bare host means port 8081). Fails with
/// `invalid_request` for an empty host or a bad port.
[[nodiscard]] caf::expected<std::pair<std::string, uint16_t>>
parse_job_manager_address(const std::string& text);

/// Parses `-m`: `host:port`, `host`, `http://host:port` (plain) or
/// `https://host:port` (TLS), a trailing `/` allowed. Fails as
/// `parse_job_manager_address` does, or for another scheme.
[[nodiscard]] caf::expected<job_manager_url> parse_job_manager_url(const std::string& text);

/// The first message of a Flink error body `{"errors": [...]}`, or the body
/// itself when it has another shape.
[[nodiscard]] std::string error_message(const std::string& body);

} // namespace sluice::remote::cluster
