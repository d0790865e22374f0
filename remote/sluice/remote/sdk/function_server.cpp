#include "sluice/remote/sdk/function_server.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/invocation_codec.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace sluice::remote::sdk {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

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

namespace {

class session;

} // namespace

struct function_server::impl {
  std::shared_ptr<const function_registry> registry;
  server_config config;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::mutex mtx;
  bool stopped = false;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;
  std::atomic<uint64_t> served{0};
  uint16_t port = 0;

  void accept();
};

namespace {

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, function_server::impl& server)
      : stream_(std::move(socket))
      , server_(server) {}

  void start() { read(); }

  void close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignore;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignore);
      self->stream_.socket().close(ignore);
    });
  }

  ~session() {
    std::lock_guard<std::mutex> lock{server_.mtx};
    server_.sessions.erase(this);
  }

private:
  void read() {
    parser_.emplace();
    parser_->body_limit(server_.config.max_body_bytes);
    stream_.expires_after(server_.config.idle_timeout);
    // Header first: Beast 1.74 does not apply body_limit to a
    // Content-Length, so the session checks it itself.
    http::async_read_header(
        stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec)
            return self->on_read(ec);
          auto length = self->parser_->content_length();
          if (length && *length > self->server_.config.max_body_bytes)
            return self->on_read(http::error::body_limit);
          http::async_read(self->stream_, self->buffer_, *self->parser_,
                           [self](beast::error_code ec2, size_t) {
                             if (!ec2 && self->parser_->get().body().size() >
                                             self->server_.config.max_body_bytes)
                               ec2 = http::error::body_limit;
                             self->on_read(ec2);
                           });
        });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      respond(http::status::payload_too_large, "text/plain",
              "request body larger than " + std::to_string(server_.config.max_body_bytes) +
                  " bytes",
              false);
      return;
    }
    if (ec)
      return; // closed, timed out or broken: drop the connection
    auto req = parser_->release();
    server_.served.fetch_add(1, std::memory_order_relaxed);
    auto reply = server_.registry->handle(req.body());
    bool keep = req.keep_alive();
    if (reply) {
      respond(http::status::ok, "application/octet-stream", std::move(*reply), keep);
      return;
    }
    auto status = http::status::internal_server_error;
    if (is(reply.error(), remote_errc::invalid_request))
      status = http::status::bad_request;
    else if (is(reply.error(), remote_errc::unknown_function))
      status = http::status::not_found;
    respond(status, "text/plain", describe(reply.error()), keep);
  }

  void respond(http::status status, const char* content_type, std::string body, bool keep_alive) {
    res_ = {};
    res_.result(status);
    res_.version(11);
    res_.set(http::field::content_type, content_type);
    res_.keep_alive(keep_alive);
    res_.body() = std::move(body);
    res_.prepare_payload();
    stream_.expires_after(server_.config.idle_timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec)
                          return;
                        if (!keep_alive) {
                          beast::error_code ignore;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignore);
                          return;
                        }
                        self->read();
                      });
  }

  beast::tcp_stream stream_;
  function_server::impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

} // namespace

void function_server::impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec)
      return; // the acceptor was closed
    beast::error_code ignore;
    socket.set_option(tcp::no_delay{true}, ignore);
    auto s = std::make_shared<session>(std::move(socket), *this);
    {
      std::lock_guard<std::mutex> lock{mtx};
      if (stopped)
        return;
      sessions.emplace(s.get(), s);
    }
    s->start();
    accept();
  });
}

function_server::function_server(std::unique_ptr<impl> p)
    : impl_(std::move(p)) {}

caf::expected<std::unique_ptr<function_server>>
function_server::start(std::shared_ptr<const function_registry> registry, server_config config) {
  auto p = std::make_unique<impl>();
  p->registry = std::move(registry);
  p->config = config;
  beast::error_code ec;
  auto ip = net::ip::make_address(config.bind_address, ec);
  if (ec)
    return make_error(remote_errc::server_failed,
                      "cannot bind function server: bad address '" + config.bind_address + "'");
  tcp::endpoint ep{ip, config.port};
  auto where = config.bind_address + ":" + std::to_string(config.port);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec)
    p->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    p->acceptor.bind(ep, ec);
  if (!ec)
    p->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    return make_error(remote_errc::server_failed,
                      "cannot bind function server to " + where + ": " + ec.message());
  p->port = p->acceptor.local_endpoint().port();
  p->accept();
  auto n = std::max<size_t>(1, config.threads);
  for (size_t i = 0; i < n; ++i)
    p->threads.emplace_back([io = &p->io] { io->run(); });
  return std::unique_ptr<function_server>{new function_server(std::move(p))};
}

function_server::~function_server() {
  stop();
}

uint16_t function_server::port() const {
  return impl_->port;
}

uint64_t function_server::requests_served() const {
  return impl_->served.load(std::memory_order_relaxed);
}

void function_server::stop() {
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard<std::mutex> lock{impl_->mtx};
    if (impl_->stopped)
      return;
    impl_->stopped = true;
    for (auto& kv : impl_->sessions)
      if (auto s = kv.second.lock())
        live.push_back(std::move(s));
  }
  net::post(impl_->acceptor.get_executor(), [p = impl_.get()] {
    beast::error_code ignore;
    p->acceptor.close(ignore);
  });
  for (auto& s : live)
    s->close();
  live.clear();
  // Every handler now completes promptly (closed sockets, closed acceptor),
  // after which run() returns for lack of work.
  for (auto& t : impl_->threads)
    if (t.joinable())
      t.join();
}

} // namespace sluice::remote::sdk
