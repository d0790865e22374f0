#include "sluice/remote/internal/http_listener.hpp"

#include "sluice/remote/errors.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace sluice::remote::internal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

/// What `stop` needs of a connection, whatever its stream.
class session_base {
public:
  virtual ~session_base() = default;
  /// Closes the socket on the connection's strand.
  virtual void close() = 0;
};

/// Where a responder leaves a reply given before the handler returned.
struct reply_slot {
  std::mutex mtx;
  bool in_handler = true;
  bool done = false;
  std::optional<http_reply> reply;
};
} // namespace

struct http_listener::impl {
  http_listener_config config;
  http_async_handler handler;
  http_error_formatter errors;
  net::io_context io;
  /// Keeps the threads running until stop(): a connection waiting for an
  /// async reply has no operation pending, so without it run() could
  /// return before that connection is closed.
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::mutex mtx;
  bool stopped = false;
  std::unordered_map<session_base*, std::weak_ptr<session_base>> sessions;
  uint16_t port = 0;

  void accept();
  /// Registers and starts one connection; false once stopped.
  template <class Session>
  bool open_session(tcp::socket socket);
};

namespace {

using tls_stream = beast::ssl_stream<beast::tcp_stream>;

/// One connection. `Stream` is `beast::tcp_stream` (plain HTTP: the same
/// code as before TLS existed, no indirection per request) or `tls_stream`.
template <class Stream>
class session final : public session_base, public std::enable_shared_from_this<session<Stream>> {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  session(tcp::socket socket, http_listener::impl& server)
      : stream_(make_stream(std::move(socket), server))
      , server_(server) {}

  void start() {
    if constexpr (is_tls) {
      // The handshake has the idle timeout: a client that connects and says
      // nothing, or speaks plain HTTP, loses only its own connection.
      lowest().expires_after(server_.config.idle_timeout);
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec)
                                  return self->drop();
                                self->read();
                              });
    } else {
      read();
    }
  }

  void close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->drop(); });
  }

  ~session() override {
    std::lock_guard<std::mutex> lock{server_.mtx};
    server_.sessions.erase(this);
  }

private:
  static Stream make_stream(tcp::socket socket, http_listener::impl& server) {
    if constexpr (is_tls)
      return Stream{std::move(socket), *server.config.tls};
    else
      return Stream{std::move(socket)};
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void drop() {
    beast::error_code ignore;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ignore);
    lowest().socket().close(ignore);
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(server_.config.max_body_bytes);
    lowest().expires_after(server_.config.idle_timeout);
    // Header first: Beast 1.74 does not apply body_limit to a
    // Content-Length, so the session checks it before reading the body.
    auto self = this->shared_from_this();
    http::async_read_header(
        stream_, buffer_, *parser_, [self = std::move(self)](beast::error_code ec, size_t) {
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
      respond(server_.errors(413, "request body larger than " +
                                      std::to_string(server_.config.max_body_bytes) + " bytes"),
              false);
      return;
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof)
      return; // closed, idle or stopped: drop the connection
    if constexpr (is_tls) {
      // A TLS record error (or a peer gone without close_notify) leaves no
      // channel to answer on.
      if (ec.category() == net::error::get_ssl_category() ||
          ec == net::ssl::error::stream_truncated)
        return drop();
    }
    if (ec) {
      respond(server_.errors(400, "malformed HTTP request: " + ec.message()), false);
      return;
    }
    auto req = parser_->release();
    bool keep = req.keep_alive();
    http_request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.authorization = std::string(req[http::field::authorization]);
    r.content_type = std::string(req[http::field::content_type]);
    r.body = std::move(req.body());
    // A reply given while the handler runs is written directly; one given
    // later (from any thread) is posted to this connection's strand.
    auto slot = std::make_shared<reply_slot>();
    auto self = this->shared_from_this();
    http_responder responder = [self, slot, keep](http_reply reply) {
      std::lock_guard<std::mutex> lock{slot->mtx};
      if (slot->done)
        return;
      slot->done = true;
      if (slot->in_handler)
        slot->reply = std::move(reply);
      else
        self->post_reply(std::move(reply), keep);
    };
    try {
      server_.handler(std::move(r), responder);
    } catch (const std::exception& e) {
      responder(server_.errors(500, std::string("request failed: ") + e.what()));
    }
    std::optional<http_reply> now;
    {
      std::lock_guard<std::mutex> lock{slot->mtx};
      slot->in_handler = false;
      now = std::move(slot->reply);
    }
    if (now)
      respond(std::move(*now), keep);
  }

  /// A reply of an async handler: written on the strand, unless the
  /// listener stopped (its threads may be gone).
  void post_reply(http_reply reply, bool keep_alive) {
    std::lock_guard<std::mutex> lock{server_.mtx};
    if (server_.stopped)
      return;
    net::post(stream_.get_executor(),
              [self = this->shared_from_this(), reply = std::move(reply), keep_alive]() mutable {
                self->respond(std::move(reply), keep_alive);
              });
  }

  void respond(http_reply reply, bool keep_alive) {
    res_ = {};
    res_.result(reply.status);
    res_.version(11);
    res_.set(http::field::content_type, reply.content_type);
    for (auto& [name, value] : reply.headers)
      res_.set(name, value);
    res_.keep_alive(keep_alive);
    res_.body() = std::move(reply.body);
    res_.prepare_payload();
    lowest().expires_after(server_.config.idle_timeout);
    http::async_write(stream_, res_,
                      [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec)
                          return;
                        if (!keep_alive)
                          return self->end();
                        self->read();
                      });
  }

  /// After a reply that closes the connection: TLS says close_notify first
  /// (within the idle timeout), so the client sees a clean end.
  void end() {
    if constexpr (is_tls) {
      lowest().expires_after(server_.config.idle_timeout);
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->drop(); });
    } else {
      beast::error_code ignore;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignore);
    }
  }

  Stream stream_;
  http_listener::impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

} // namespace

template <class Session>
bool http_listener::impl::open_session(tcp::socket socket) {
  auto s = std::make_shared<Session>(std::move(socket), *this);
  {
    std::lock_guard<std::mutex> lock{mtx};
    if (stopped)
      return false;
    sessions.emplace(s.get(), s);
  }
  s->start();
  return true;
}

void http_listener::impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec)
      return; // the acceptor was closed
    beast::error_code ignore;
    socket.set_option(tcp::no_delay{true}, ignore);
    bool open = config.tls ? open_session<session<tls_stream>>(std::move(socket))
                           : open_session<session<beast::tcp_stream>>(std::move(socket));
    if (open)
      accept();
  });
}

http_listener::http_listener(std::unique_ptr<impl> p)
    : impl_(std::move(p)) {}

caf::expected<std::unique_ptr<http_listener>>
http_listener::start(http_listener_config config, http_handler handler,
                     http_error_formatter errors) {
  return start_async(
      std::move(config),
      [handler = std::move(handler)](http_request&& req, http_responder respond) {
        respond(handler(std::move(req)));
      },
      std::move(errors));
}

caf::expected<std::unique_ptr<http_listener>>
http_listener::start_async(http_listener_config config, http_async_handler handler,
                           http_error_formatter errors) {
  auto p = std::make_unique<impl>();
  p->config = config;
  p->handler = std::move(handler);
  p->errors = std::move(errors);
  beast::error_code ec;
  auto ip = net::ip::make_address(config.bind_address, ec);
  if (ec)
    return make_error(remote_errc::server_failed, "cannot bind " + config.name +
                                                      ": bad address '" + config.bind_address +
                                                      "'");
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
                      "cannot bind " + config.name + " to " + where + ": " + ec.message());
  p->port = p->acceptor.local_endpoint().port();
  p->accept();
  p->work.emplace(p->io.get_executor());
  auto n = std::max<size_t>(1, config.threads);
  for (size_t i = 0; i < n; ++i)
    p->threads.emplace_back([io = &p->io] { io->run(); });
  return std::unique_ptr<http_listener>{new http_listener(std::move(p))};
}

http_listener::~http_listener() {
  stop();
}

uint16_t http_listener::port() const {
  return impl_->port;
}

void http_listener::stop() {
  std::vector<std::shared_ptr<session_base>> live;
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
  impl_->work.reset();
  // Every handler now completes promptly (closed sockets, closed acceptor),
  // after which run() returns for lack of work.
  for (auto& t : impl_->threads)
    if (t.joinable())
      t.join();
}

} // namespace sluice::remote::internal
