#pragma once

// Remote functions in the dispatcher: a functions::async_function that calls
// one HTTP endpoint through a remote_function_client, and the glue that binds
// every endpoint a module declares in a functions::function_registry.

#include "sluice/functions/async_function.hpp"
#include "sluice/functions/function_registry.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/remote/remote_function_client.hpp"

#include <caf/error.hpp>

#include <memory>

namespace sluice::remote {

/// The functions an endpoint serves, called over HTTP with the StateFun
/// request-reply protocol. invoke() sends the request as it is (the
/// dispatcher's invocation_request is the client's) and maps the answer:
/// effects -> `done`, missing state -> `missing_values`, any error (after
/// the client's retries) -> `failed` with the error's text, which names the
/// function type, the address and the URL. The completion runs on the
/// client's I/O thread (or inline, for a call that cannot start).
///
/// Thread-safe and stateless apart from its settings: one instance serves
/// every function type of its endpoint, for every dispatcher subtask. Holds
/// the client, so the client lives as long as any binding to it.
class remote_function final : public functions::async_function {
public:
  /// Calls `endpoint` through `client` (not null).
  remote_function(std::shared_ptr<remote_function_client> client, http_endpoint_spec endpoint);

  /// Sends one batch; see the class comment.
  void invoke(functions::invocation_request request, functions::async_completion done) override;

  /// The endpoint it calls.
  [[nodiscard]] const http_endpoint_spec& endpoint() const noexcept { return endpoint_; }

private:
  std::shared_ptr<remote_function_client> client_;
  http_endpoint_spec endpoint_;
};

/// Binds every endpoint `m` declares in `registry` as a remote_function
/// over `client`: an `ns/name` endpoint with function_registry::bind_async,
/// an `ns/*` one with bind_namespace (so an exact endpoint beats a namespace
/// one, as module::endpoint_for). Each binding batches at most the
/// endpoint's maxNumBatchRequests per address. Only declared endpoints are
/// ever called; embedded functions may be bound in the same registry, before
/// or after, under other types or namespaces.
///
/// Fails for a null client, or when the registry refuses a binding (a type
/// or namespace bound already); the error names the endpoint and where it
/// was declared. On failure some endpoints may already be bound: discard the
/// registry.
[[nodiscard]] caf::error bind_endpoints(functions::function_registry& registry, const module& m,
                                        std::shared_ptr<remote_function_client> client);

} // namespace sluice::remote
