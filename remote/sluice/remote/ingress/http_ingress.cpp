#include "sluice/remote/ingress/http_ingress.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/ingress/request.hpp"
#include "sluice/remote/internal/http_listener.hpp"
#include "sluice/remote/module.hpp"

namespace sluice::remote::ingress {

namespace {

internal::http_reply text_reply(unsigned status, std::string message) {
  internal::http_reply r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(message) + "\n";
  return r;
}

internal::http_reply unavailable(std::string message, std::chrono::seconds retry_after) {
  auto r = text_reply(503, std::move(message));
  r.headers.emplace_back("Retry-After", std::to_string(retry_after.count()));
  return r;
}

} // namespace

http_ingress_config config_from(const http_ingress_spec& spec) {
  http_ingress_config c;
  c.id = spec.id.to_string();
  c.bind_address = spec.bind_address;
  c.port = spec.port;
  c.default_value_type = spec.value_type;
  return c;
}

http_ingress::http_ingress(http_ingress_config config)
    : config_(std::move(config))
    , journal_(std::make_shared<ingress_journal>(config_.journal_max_messages,
                                                 config_.journal_max_bytes))
    , replies_(std::make_shared<reply_registry>(config_.max_waiting_replies)) {}

caf::expected<std::shared_ptr<http_ingress>> http_ingress::start(http_ingress_config config) {
  std::shared_ptr<http_ingress> self{new http_ingress(std::move(config))};
  internal::http_listener_config lc;
  lc.name = "HTTP ingress " + self->config_.id;
  lc.bind_address = self->config_.bind_address;
  lc.port = self->config_.port;
  lc.threads = self->config_.threads;
  lc.max_body_bytes = self->config_.max_body_bytes;
  // The handler holds the parts it needs, not the ingress: the listener
  // belongs to the ingress.
  auto handle = [journal = self->journal_, replies = self->replies_,
                 cfg = self->config_](internal::http_request&& req,
                                      internal::http_responder respond) {
    auto parsed = parse_ingress_request(req.method, req.target, req.content_type,
                                        std::move(req.body), cfg.default_value_type);
    if (auto* bad = std::get_if<ingress_rejection>(&parsed)) {
      auto r = text_reply(bad->status, bad->message);
      if (bad->status == 405)
        r.headers.emplace_back("Allow", "POST, PUT");
      return respond(std::move(r));
    }
    auto& msg = std::get<ingress_request>(parsed);
    const auto target = msg.target.to_string();
    if (!msg.wants_reply) {
      auto seq = journal->append(functions::envelope::to_function(msg.target, std::move(msg.value)));
      if (!seq)
        return respond(unavailable("ingress journal full: retry later", cfg.retry_after));
      return respond(text_reply(202, "accepted message " + std::to_string(*seq) + " for " + target));
    }
    auto timeout = cfg.reply_timeout;
    auto id = replies->add(timeout, [respond, target, timeout](reply_outcome out) {
      switch (out.what) {
        case reply_outcome::kind::answered: {
          auto enc = encode_reply(out.value);
          internal::http_reply r;
          r.status = 200;
          r.content_type = std::move(enc.content_type);
          r.body = std::move(enc.body);
          return respond(std::move(r));
        }
        case reply_outcome::kind::failed:
          return respond(text_reply(500, out.reason));
        case reply_outcome::kind::timed_out:
          return respond(text_reply(504, "no reply from " + target + " within " +
                                             std::to_string(timeout.count()) + " ms"));
        case reply_outcome::kind::shut_down:
          return respond(text_reply(503, "the ingress stopped before " + target + " replied"));
      }
    });
    if (!id)
      return respond(unavailable("too many requests waiting for replies: retry later",
                                 cfg.retry_after));
    auto seq = journal->append(functions::envelope::to_function(
        msg.target, std::move(msg.value), functions::address{reply_function_type(), *id}));
    if (!seq) {
      replies->cancel(*id);
      return respond(unavailable("ingress journal full: retry later", cfg.retry_after));
    }
  };
  auto errors = [](unsigned status, const std::string& message) {
    return text_reply(status, message);
  };
  auto listener = internal::http_listener::start_async(std::move(lc), std::move(handle),
                                                       std::move(errors));
  if (!listener)
    return listener.error();
  self->listener_ = std::move(*listener);
  return self;
}

http_ingress::~http_ingress() {
  stop();
}

uint16_t http_ingress::port() const {
  return listener_->port();
}

void http_ingress::stop() {
  if (listener_)
    listener_->stop();
  // After the listener: no handler can add a request any more. The
  // completions (and the connections they hold) go before the listener.
  replies_->shut_down();
}

} // namespace sluice::remote::ingress
