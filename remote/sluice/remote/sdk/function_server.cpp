#include "sluice/remote/sdk/function_server.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/invocation_codec.hpp"

#include "sluice/remote/internal/http_listener.hpp"

#include <atomic>

namespace sluice::remote::sdk {

// -- registry -------------------------------------------------------------------

void function_registry::bind(function_type type, std::vector<value_spec> specs, handler fn) {
  functions_[std::move(type)] = bound{std::move(specs), std::move(fn)};
}

caf::expected<std::string> function_registry::handle(std::string_view request) const {
  auto req = decode_request(request);
  if (!req)
    return req.error();
  auto i = functions_.find(req->target.type);
  if (i == functions_.end())
    return make_error(remote_errc::unknown_function,
                      "unknown function type " + req->target.type.to_string());
  const auto& fn = i->second;
  // A value is missing only if its name is absent; a name sent without a
  // value is present and unset.
  std::vector<storage::slot> slots;
  slots.reserve(fn.specs.size());
  functions::missing_state missing;
  for (const auto& spec : fn.specs) {
    const received_state* got = nullptr;
    for (const auto& s : req->state)
      if (s.name == spec.name) {
        got = &s;
        break;
      }
    if (!got) {
      missing.specs.push_back(spec);
      continue;
    }
    slots.push_back({&spec, got->value, false});
  }
  if (!missing.specs.empty())
    return encode_response(functions::invocation_outcome{std::move(missing)});
  storage store{std::move(slots)};
  functions::invocation_result effects;
  context ctx{req->target, store, effects};
  try {
    for (const auto& inv : req->invocations) {
      ctx.set_caller(inv.caller);
      fn.fn(ctx, message{inv.argument});
    }
  } catch (const std::exception& e) {
    return make_error(remote_errc::function_failed, "function " + req->target.type.to_string() +
                                                        " failed for address " +
                                                        req->target.to_string() + ": " + e.what());
  } catch (...) {
    return make_error(remote_errc::function_failed,
                      "function " + req->target.type.to_string() + " failed for address " +
                          req->target.to_string() + " with an unknown exception");
  }
  for (const auto& s : store.slots()) {
    if (!s.mutated)
      continue;
    if (s.value)
      effects.mutations.push_back(
          {functions::state_mutation::kind::modify, s.spec->name, *s.value});
    else
      effects.mutations.push_back({functions::state_mutation::kind::remove, s.spec->name, {}});
  }
  return encode_response(functions::invocation_outcome{std::move(effects)});
}

// -- server ---------------------------------------------------------------------

struct function_server::impl {
  std::unique_ptr<internal::http_listener> listener;
  std::atomic<uint64_t> served{0};
};

function_server::function_server(std::unique_ptr<impl> p)
    : impl_(std::move(p)) {}

caf::expected<std::unique_ptr<function_server>>
function_server::start(std::shared_ptr<const function_registry> registry, server_config config) {
  auto p = std::make_unique<impl>();
  internal::http_listener_config lc;
  lc.name = "function server";
  lc.bind_address = config.bind_address;
  lc.port = config.port;
  lc.threads = config.threads;
  lc.max_body_bytes = config.max_body_bytes;
  lc.idle_timeout = config.idle_timeout;
  // As the official SDKs: any method and path; the body names the function.
  auto handle = [registry, served = &p->served](internal::http_request&& req) {
    served->fetch_add(1, std::memory_order_relaxed);
    auto reply = registry->handle(req.body);
    if (reply)
      return internal::http_reply{200, "application/octet-stream", std::move(*reply), {}};
    unsigned status = 500;
    if (is(reply.error(), remote_errc::invalid_request))
      status = 400;
    else if (is(reply.error(), remote_errc::unknown_function))
      status = 404;
    return internal::http_reply{status, "text/plain", describe(reply.error()), {}};
  };
  auto errors = [](unsigned status, const std::string& message) {
    return internal::http_reply{status, "text/plain", message, {}};
  };
  auto listener = internal::http_listener::start(std::move(lc), std::move(handle),
                                                 std::move(errors));
  if (!listener)
    return listener.error();
  p->listener = std::move(*listener);
  return std::unique_ptr<function_server>{new function_server(std::move(p))};
}

function_server::~function_server() {
  stop();
}

uint16_t function_server::port() const {
  return impl_->listener->port();
}

uint64_t function_server::requests_served() const {
  return impl_->served.load(std::memory_order_relaxed);
}

void function_server::stop() {
  impl_->listener->stop();
}

} // namespace sluice::remote::sdk
