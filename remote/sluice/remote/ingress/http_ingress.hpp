#pragma once

#include "sluice/remote/ingress/journal.hpp"
#include "sluice/remote/ingress/replies.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace sluice::remote::internal {
class http_listener;
} // namespace sluice::remote::internal

namespace sluice::remote {
struct http_ingress_spec;
} // namespace sluice::remote

namespace sluice::remote::ingress {

/// Settings of an HTTP ingress.
struct http_ingress_config {
  /// Names the ingress (module id `namespace/name`) in errors and task names.
  std::string id = "sluice/http";
  std::string bind_address = "127.0.0.1";
  /// 0 picks a free port (see `port()`).
  uint16_t port = 0;
  /// HTTP I/O threads.
  size_t threads = 1;
  /// The type of a body sent without Content-Type.
  std::string default_value_type = "io.statefun.types/string";
  /// Larger bodies get 413, before they are read.
  uint64_t max_body_bytes = 4 * 1024 * 1024;
  /// Accepted messages no completed checkpoint covers yet, at most (then
  /// 503); with checkpointing this must hold what arrives in a checkpoint
  /// interval.
  size_t journal_max_messages = 100000;
  /// ...and their bytes, at most.
  uint64_t journal_max_bytes = 64 * 1024 * 1024;
  /// How long a `?reply=true` request waits (then 504).
  std::chrono::milliseconds reply_timeout{std::chrono::seconds{30}};
  /// Requests waiting for a reply, at most (then 503).
  size_t max_waiting_replies = 10000;
  /// The Retry-After of a 503.
  std::chrono::seconds retry_after{1};
  /// How often the ingress source looks at an empty journal (the latency it
  /// adds, at most).
  std::chrono::microseconds source_poll_interval{200};
};

/// The settings a module's `sluice.io/v1/http-ingress` declares (the rest
/// keep their defaults).
[[nodiscard]] http_ingress_config config_from(const http_ingress_spec& spec);

/// The HTTP ingress of one process: serves `POST
/// /functions/<namespace>/<type>/<id>` (parse_ingress_request), appends each
/// accepted message to its journal (202 Accepted) and, for `?reply=true`,
/// keeps the request open until the reply registry ends it: 200 with the
/// reply (encode_reply), 500 when its message became a dead letter, 504
/// after `reply_timeout`, 503 when stopped. A
/// full journal or reply registry answers 503 with Retry-After; bad
/// requests 4xx; nothing is enqueued for a refused request. The job reads
/// the journal through an http_ingress_source and completes replies
/// through a reply_sink (see functions_job.hpp). One job per ingress.
/// Thread-safe; `stop` (or destruction) closes the server and ends waiting
/// requests. The journal and the registry are shared with the job and
/// outlive the ingress if the job does.
class http_ingress {
public:
  /// Binds and serves; `server_failed` naming the ingress if the address
  /// cannot be bound.
  [[nodiscard]] static caf::expected<std::shared_ptr<http_ingress>>
  start(http_ingress_config config);

  ~http_ingress();
  http_ingress(const http_ingress&) = delete;
  http_ingress& operator=(const http_ingress&) = delete;

  /// The bound port.
  [[nodiscard]] uint16_t port() const;
  /// Stops serving and ends waiting requests (idempotent).
  void stop();

  [[nodiscard]] const http_ingress_config& config() const noexcept { return config_; }
  /// The accepted messages (read by the ingress source).
  [[nodiscard]] const std::shared_ptr<ingress_journal>& journal() const noexcept {
    return journal_;
  }
  /// The requests waiting for replies (completed by the reply sink).
  [[nodiscard]] const std::shared_ptr<reply_registry>& replies() const noexcept {
    return replies_;
  }

private:
  explicit http_ingress(http_ingress_config config);

  http_ingress_config config_;
  std::shared_ptr<ingress_journal> journal_;
  std::shared_ptr<reply_registry> replies_;
  std::unique_ptr<internal::http_listener> listener_;
};

} // namespace sluice::remote::ingress
