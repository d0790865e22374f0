#include "sluice/remote/rest/http_server.hpp"

#include "sluice/remote/errors.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace sluice::remote::rest {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {
class session;
} // namespace

struct http_server::impl {
  std::shared_ptr<const router> routes;
  rest_config config;
  net::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::mutex mtx;
  bool stopped = false;
  std::unordered_map<session*, std::weak_ptr<session>> sessions;
  uint16_t port = 0;

  void accept();
};

namespace {

/// Compares without an early exit, so the time taken does not tell how much
/// of a guessed token was right.
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket socket, http_server::impl& server)
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
    // Content-Length, so the session checks it before reading the body.
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
      // The rest of the body is not read: the connection closes after this.
      respond(error_response(413, "request body larger than " +
                                      std::to_string(server_.config.max_body_bytes) + " bytes"),
              false);
      return;
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof)
      return;
    if (ec) {
      respond(error_response(400, "malformed HTTP request: " + ec.message()), false);
      return;
    }
    auto req = parser_->release();
    bool keep = req.keep_alive();
    const auto& token = server_.config.bearer_token;
    if (!token.empty()) {
      auto field = req[http::field::authorization];
      std::string_view auth{field.data(), field.size()};
      constexpr std::string_view scheme = "Bearer ";
      if (auth.size() <= scheme.size() || auth.substr(0, scheme.size()) != scheme ||
          !same_secret(auth.substr(scheme.size()), token)) {
        auto res = error_response(401, auth.empty() ? "missing bearer token"
                                                    : "wrong bearer token");
        respond(std::move(res), keep, true);
        return;
      }
    }
    rest_request r;
    r.method = std::string(req.method_string());
    std::string_view target{req.target().data(), req.target().size()};
    if (!parse_target(target, r.path, r.query)) {
      respond(error_response(400, "malformed request target: " + std::string(target)), keep);
      return;
    }
    r.body = std::move(req.body());
    respond(server_.routes->handle(std::move(r)), keep);
  }

  void respond(rest_response res, bool keep_alive, bool challenge = false) {
    res_ = {};
    res_.result(res.status);
    res_.version(11);
    res_.set(http::field::content_type, res.content_type);
    if (challenge)
      res_.set(http::field::www_authenticate, "Bearer");
    res_.keep_alive(keep_alive);
    res_.body() = std::move(res.body);
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
  http_server::impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

} // namespace

void http_server::impl::accept() {
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

http_server::http_server(std::unique_ptr<impl> p)
    : impl_(std::move(p)) {}

caf::expected<std::unique_ptr<http_server>> http_server::start(std::shared_ptr<const router> routes,
                                                               rest_config config) {
  if (!config.tls_certificate_file.empty() || !config.tls_private_key_file.empty())
    return make_error(remote_errc::unsupported,
                      "REST server: TLS (rest.ssl.*) is not supported yet; serve plain HTTP on "
                      "loopback or put a TLS proxy in front");
  if (!routes)
    return make_error(remote_errc::server_failed, "REST server: no routes");
  auto p = std::make_unique<impl>();
  p->routes = std::move(routes);
  p->config = config;
  beast::error_code ec;
  auto ip = net::ip::make_address(config.bind_address, ec);
  if (ec)
    return make_error(remote_errc::server_failed,
                      "cannot bind REST server: bad address '" + config.bind_address + "'");
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
                      "cannot bind REST server to " + where + ": " + ec.message());
  p->port = p->acceptor.local_endpoint().port();
  p->accept();
  auto n = std::max<size_t>(1, config.threads);
  for (size_t i = 0; i < n; ++i)
    p->threads.emplace_back([io = &p->io] { io->run(); });
  return std::unique_ptr<http_server>{new http_server(std::move(p))};
}

http_server::~http_server() {
  stop();
}

uint16_t http_server::port() const {
  return impl_->port;
}

void http_server::stop() {
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

} // namespace sluice::remote::rest
