#include "sluice/remote/remote_function.hpp"

#include "sluice/remote/errors.hpp"

#include <utility>

namespace sluice::remote {

remote_function::remote_function(std::shared_ptr<remote_function_client> client,
                                 http_endpoint_spec endpoint)
    : client_(std::move(client))
    , endpoint_(std::move(endpoint)) {}

void remote_function::invoke(functions::invocation_request request,
                             functions::async_completion done) {
  client_->invoke(endpoint_, std::move(request),
                  [done = std::move(done)](caf::expected<functions::invocation_outcome> r) {
                    if (r)
                      done(functions::async_result::from(std::move(*r)));
                    else
                      done(functions::async_result::failed(describe(r.error())));
                  });
}

caf::error bind_endpoints(functions::function_registry& registry, const module& m,
                          std::shared_ptr<remote_function_client> client) {
  if (!client)
    return make_error(remote_errc::invalid_module,
                      "cannot bind remote function endpoints without a client");
  for (const auto& ep : m.endpoints) {
    auto fn = std::make_shared<remote_function>(client, ep);
    const auto batch = ep.max_num_batch_requests;
    caf::error err;
    if (ep.functions.name) {
      err = registry.bind_async(functions::function_type{ep.functions.ns, *ep.functions.name},
                                std::move(fn), {}, batch);
    } else {
      err = registry.bind_namespace(
          ep.functions.ns, [fn = std::move(fn), batch](const functions::function_type& type) {
            functions::function_binding b;
            b.type = type;
            b.async = fn;
            b.max_batch_requests = batch;
            return std::optional<functions::function_binding>{std::move(b)};
          });
    }
    if (err)
      return make_error(remote_errc::invalid_module,
                        "cannot bind the endpoint for " + ep.functions.to_string() +
                            (ep.declared_at.empty() ? std::string{} : " (" + ep.declared_at + ")") +
                            ": " + functions::error_text(err));
  }
  return {};
}

} // namespace sluice::remote
