#pragma once

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <string>

/// A blocking HTTP/1.1 client of the JobManager's REST API, for the `sluice`
/// CLI (run, list, cancel, stop, savepoint).
namespace sluice::remote::cluster {

/// One answer of the REST API.
struct rest_reply {
  unsigned status = 0;
  std::string body;
};

/// Talks to one JobManager, a new connection per request. Not thread-safe.
class rest_client {
public:
  /// A client of `host:port`.
  rest_client(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}

  /// Sends one request and reads the answer (any status). Fails with
  /// `unreachable` ("cannot reach the JobManager at host:port: why") when
  /// it cannot connect, or the exchange fails or times out.
  [[nodiscard]] caf::expected<rest_reply>
  request(const std::string& method, const std::string& target, const std::string& body = {},
          const std::string& content_type = "application/json",
          std::chrono::seconds timeout = std::chrono::seconds(60));

  /// "host:port".
  [[nodiscard]] std::string address() const { return host_ + ":" + std::to_string(port_); }

private:
  std::string host_;
  uint16_t port_;
};

/// Splits `-m host:port` (a bare host means port 8081). Fails with
/// `invalid_request` for an empty host or a bad port.
[[nodiscard]] caf::expected<std::pair<std::string, uint16_t>>
parse_job_manager_address(const std::string& text);

/// The first message of a Flink error body `{"errors": [...]}`, or the body
/// itself when it has another shape.
[[nodiscard]] std::string error_message(const std::string& body);

} // namespace sluice::remote::cluster
