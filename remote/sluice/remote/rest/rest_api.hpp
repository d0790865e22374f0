#pragma once

#include "sluice/actors/cluster_view.hpp"
#include "sluice/remote/rest/http_server.hpp"
#include "sluice/remote/rest/router.hpp"

#include <caf/expected.hpp>

#include <functional>
#include <memory>
#include <string>

/// Flink's REST API over a cluster view: the same paths and JSON shapes
/// (GET /overview, /config, /jobs, /jobs/overview, /jobs/:jobid,
/// .../exceptions, .../checkpoints(/config), savepoints and their status,
/// stop, PATCH cancel, /taskmanagers, vertex backpressure and watermarks,
/// Prometheus /metrics), errors as `{"errors": [...]}`.
namespace sluice::remote::rest {

/// The routes of the REST API and the state of its asynchronous operations
/// (savepoints, stop with savepoint), which run on worker threads so the
/// I/O threads never wait for them. Thread-safe.
class rest_api {
public:
  /// `extra_routes` (if set) adds routes beyond Flink's job endpoints (the
  /// JobManager's /jars) before any request is served;
  /// `default_savepoint_directory` is state.savepoints.dir (see rest_config).
  rest_api(std::shared_ptr<const actors::cluster_view> view, size_t operation_threads,
           size_t max_queued_operations,
           const std::function<void(router&)>& extra_routes = {},
           std::string default_savepoint_directory = {});
  /// Waits for running operations; queued ones fail ("server stopped").
  ~rest_api();
  rest_api(const rest_api&) = delete;
  rest_api& operator=(const rest_api&) = delete;

  /// The router serving every endpoint.
  [[nodiscard]] std::shared_ptr<const router> routes() const;
  /// Stops the operation workers (idempotent).
  void stop();

  struct state;

private:
  std::shared_ptr<state> state_;
};

/// The REST API served over HTTP: an `http_server` with `rest_api` routes.
class rest_server {
public:
  /// Starts serving `view`; errors as `http_server::start`.
  [[nodiscard]] static caf::expected<std::unique_ptr<rest_server>>
  start(std::shared_ptr<const actors::cluster_view> view, rest_config config = {},
        const std::function<void(router&)>& extra_routes = {});
  /// Starts serving the jobs submitted in this process
  /// (`actors::local_job_registry::global()`), for programs that run on the
  /// local mini-cluster.
  [[nodiscard]] static caf::expected<std::unique_ptr<rest_server>>
  start_local(rest_config config = {}, const std::function<void(router&)>& extra_routes = {});

  ~rest_server();
  rest_server(const rest_server&) = delete;
  rest_server& operator=(const rest_server&) = delete;

  /// The bound port.
  uint16_t port() const;
  /// Closes every connection, then waits for running operations.
  void stop();

private:
  rest_server(std::unique_ptr<rest_api> api, std::unique_ptr<http_server> http);
  std::unique_ptr<rest_api> api_;
  std::unique_ptr<http_server> http_;
};

} // namespace sluice::remote::rest
