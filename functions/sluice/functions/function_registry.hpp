#pragma once

#include "sluice/functions/async_function.hpp"
#include "sluice/functions/context.hpp"

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace sluice::functions {

/// An embedded function: handles one message at a time for one address.
/// It must not block; what it sends leaves when it returns.
using handler = std::function<void(context&, const message&)>;

/// What runs the messages of one function type: an embedded handler or an
/// async (remote) function, and the persisted values it declares. Async
/// functions may declare none up front and register them through the
/// missing-values handshake.
struct function_binding {
  function_type type;
  functions::handler handler;            ///< set for embedded functions
  std::shared_ptr<async_function> async; ///< set for async functions
  std::vector<value_spec> values;
  /// Async functions: most messages per batch and waiting per address
  /// (StateFun's maxNumBatchRequests of the endpoint); 0 = the
  /// dispatcher's dispatcher_options::max_batch_requests, which also caps it.
  uint32_t max_batch_requests = 0;

  [[nodiscard]] bool is_async() const noexcept { return async != nullptr; }
};

/// Gives the binding of a type in a namespace bound as a whole (StateFun's
/// namespace-wide function providers), or nothing when the provider does
/// not serve the type.
using namespace_provider = std::function<std::optional<function_binding>(const function_type&)>;

/// Which function runs each function type: exact bindings first, then the
/// provider of the type's namespace. Built before the job runs and shared,
/// read-only, by every dispatcher subtask.
class function_registry {
public:
  /// Binds an embedded handler to `type` with its persisted values.
  /// Fails for an empty type, a type bound twice, a missing handler, or bad
  /// value specs (empty or duplicate name, empty typename, negative TTL).
  [[nodiscard]] caf::error bind(function_type type, handler fn,
                                std::vector<value_spec> values = {});
  /// Binds an async (remote) function to `type`, batching at most
  /// `max_batch_requests` messages per address (0 = the dispatcher's
  /// limit); same checks as bind().
  [[nodiscard]] caf::error bind_async(function_type type, std::shared_ptr<async_function> fn,
                                      std::vector<value_spec> values = {},
                                      uint32_t max_batch_requests = 0);
  /// Binds every type of namespace `ns` without an exact binding to
  /// `provider`. Fails for an empty namespace or one bound twice. The
  /// provider is called from every dispatcher subtask's thread, once per
  /// type and subtask: it must be thread-safe and must not block.
  [[nodiscard]] caf::error bind_namespace(std::string ns, namespace_provider provider);

  /// The binding of `type`: exact, else from its namespace's provider (whose
  /// answer is checked like bind()'s arguments); an error naming the type
  /// when it is unbound. Providers are asked on every call: callers cache.
  [[nodiscard]] caf::expected<function_binding> resolve(const function_type& type) const;

  /// Checks value specs: names non-empty and unique, typenames non-empty,
  /// TTL not negative. `type` names the function in the error.
  [[nodiscard]] static caf::error check_values(const function_type& type,
                                               const std::vector<value_spec>& values);

private:
  [[nodiscard]] caf::error add(function_binding b);

  std::map<function_type, function_binding> exact_;
  std::map<std::string, namespace_provider> namespaces_;
};

/// The text of an error made by this folder (its context string), for dead
/// letters and logs.
[[nodiscard]] std::string error_text(const caf::error& err);

} // namespace sluice::functions
