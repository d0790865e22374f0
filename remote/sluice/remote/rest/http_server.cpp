#include "sluice/remote/rest/http_server.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/internal/http_listener.hpp"
#include "sluice/remote/internal/tls.hpp"

#include <string_view>

namespace sluice::remote::rest {

namespace {

/// Compares without an early exit, so the time taken does not tell how much
/// of a guessed token was right.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

internal::http_reply to_reply(rest_response res) {
  return {res.status, std::move(res.content_type), std::move(res.body), std::move(res.headers)};
}

} // namespace

struct http_server::impl {
  std::unique_ptr<internal::http_listener> listener;
};

http_server::http_server(std::unique_ptr<impl> p)
    : impl_(std::move(p)) {}

caf::expected<std::unique_ptr<http_server>> http_server::start(std::shared_ptr<const router> routes,
                                                               rest_config config) {
  if (!routes)
    return make_error(remote_errc::server_failed, "REST server: no routes");
  internal::http_listener_config lc;
  if (!config.tls_certificate_file.empty() || !config.tls_private_key_file.empty()) {
    internal::tls_server_files files;
    files.certificate_file = config.tls_certificate_file;
    files.private_key_file = config.tls_private_key_file;
    files.certificate_setting = "security.ssl.rest.cert-file";
    files.private_key_setting = "security.ssl.rest.key-file";
    auto tls = internal::make_tls_server_context(files);
    if (!tls)
      return tls.error();
    lc.tls = std::move(*tls);
  }
  lc.name = "REST server";
  lc.bind_address = config.bind_address;
  lc.port = config.port;
  lc.threads = config.threads;
  lc.max_body_bytes = config.max_body_bytes;
  lc.idle_timeout = config.idle_timeout;
  auto handle = [routes, token = config.bearer_token](internal::http_request&& req) {
    rest_request r;
    bool target_ok = parse_target(req.target, r.path, r.query, &r.segments);
    // The dashboard's static files are open (the page then sends the token
    // with its API calls); everything else needs the token when one is set.
    if (!token.empty() && !(target_ok && !routes->needs_token(req.method, r.path))) {
      std::string_view auth = req.authorization;
      constexpr std::string_view scheme = "Bearer ";
      if (auth.size() <= scheme.size() || auth.substr(0, scheme.size()) != scheme ||
          !same_secret(auth.substr(scheme.size()), token)) {
        auto reply = to_reply(
          error_response(401, auth.empty() ? "missing bearer token" : "wrong bearer token"));
        reply.headers.emplace_back("WWW-Authenticate", "Bearer");
        return reply;
      }
    }
    r.method = std::move(req.method);
    if (!target_ok)
      return to_reply(error_response(400, "malformed request target: " + req.target));
    r.content_type = std::move(req.content_type);
    r.body = std::move(req.body);
    return to_reply(routes->handle(std::move(r)));
  };
  auto errors = [](unsigned status, const std::string& message) {
    return to_reply(error_response(status, message));
  };
  auto listener = internal::http_listener::start(std::move(lc), std::move(handle),
                                                 std::move(errors));
  if (!listener)
    return listener.error();
  auto p = std::make_unique<impl>();
  p->listener = std::move(*listener);
  return std::unique_ptr<http_server>{new http_server(std::move(p))};
}

http_server::~http_server() {
  stop();
}

uint16_t http_server::port() const {
  return impl_->listener->port();
}

void http_server::stop() {
  impl_->listener->stop();
}

} // namespace sluice::remote::rest
