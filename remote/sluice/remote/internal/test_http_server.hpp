#pragma once

// A scripted HTTP server for tests of the remote-function client: each
// request gets the reply the script returns (a status, a hang, or a closed
// connection). Test-only; not part of the library's API.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::remote::internal {

/// A port nothing listens on (bound once, then closed): an endpoint that is
/// down.
inline uint16_t closed_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a{io, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  auto port = a.local_endpoint().port();
  a.close();
  return port;
}

/// What the test server does with one request.
struct scripted_reply {
  /// The action.
  enum class kind { reply, hang, close };
  kind what = kind::reply;
  unsigned status = 200;
  std::string content_type = "application/octet-stream";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// A request as the test server saw it.
struct seen_request {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Which connection (0, 1, ...) carried it.
  int connection = 0;
};

/// Serves scripted replies on 127.0.0.1 (a free port) from one thread.
class test_http_server {
public:
  /// Receives each request and its number (0, 1, ...).
  using script = std::function<scripted_reply(const seen_request&, int)>;

  explicit test_http_server(script s)
      : script_(std::move(s)) {
    namespace net = boost::asio;
    using tcp = net::ip::tcp;
    tcp::endpoint ep{net::ip::make_address("127.0.0.1"), 0};
    acceptor_.open(ep.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread{[this] { io_.run(); }};
  }

  ~test_http_server() { stop(); }

  /// The port it listens on.
  uint16_t port() const { return port_; }

  /// Closes everything and joins the thread.
  void stop() {
    boost::asio::post(io_, [this] {
      boost::system::error_code ignore;
      acceptor_.close(ignore);
      for (auto& s : sockets_)
        if (auto p = s.lock())
          p->socket().close(ignore);
    });
    if (thread_.joinable())
      thread_.join();
  }

  /// Requests received so far.
  std::vector<seen_request> requests() const {
    std::lock_guard<std::mutex> lock{mtx_};
    return seen_;
  }

  /// Waits until at least n requests arrived; false on timeout.
  bool wait_for_requests(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock{mtx_};
    return cv_.wait_for(lock, timeout, [&] { return seen_.size() >= n; });
  }

  /// Connections accepted so far.
  int connections() const {
    std::lock_guard<std::mutex> lock{mtx_};
    return connections_;
  }

  /// The most connections that were open at once.
  int max_open_connections() const {
    std::lock_guard<std::mutex> lock{mtx_};
    return max_open_;
  }

private:
  using stream_ptr = std::shared_ptr<boost::beast::tcp_stream>;

  struct conn_state {
    stream_ptr stream;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> req;
    boost::beast::http::response<boost::beast::http::string_body> res;
    int id = 0;
  };

  void accept() {
    acceptor_.async_accept(
        [this](boost::system::error_code ec, boost::asio::ip::tcp::socket socket) {
          if (ec)
            return;
          auto c = std::make_shared<conn_state>();
          c->stream = std::make_shared<boost::beast::tcp_stream>(std::move(socket));
          {
            std::lock_guard<std::mutex> lock{mtx_};
            c->id = connections_++;
            ++open_;
            max_open_ = std::max(max_open_, open_);
          }
          sockets_.push_back(c->stream);
          read(c);
          accept();
        });
  }

  void closed(const std::shared_ptr<conn_state>& c) {
    boost::system::error_code ignore;
    c->stream->socket().close(ignore);
    std::lock_guard<std::mutex> lock{mtx_};
    --open_;
  }

  void read(const std::shared_ptr<conn_state>& c) {
    namespace http = boost::beast::http;
    c->req = {};
    http::async_read(*c->stream, c->buffer, c->req,
                     [this, c](boost::system::error_code ec, size_t) {
                       if (ec)
                         return closed(c);
                       on_request(c);
                     });
  }

  void on_request(const std::shared_ptr<conn_state>& c) {
    namespace http = boost::beast::http;
    seen_request r;
    r.method = std::string{c->req.method_string()};
    r.target = std::string{c->req.target()};
    for (const auto& f : c->req)
      r.headers.emplace_back(std::string{f.name_string()}, std::string{f.value()});
    r.body = c->req.body();
    r.connection = c->id;
    int n = 0;
    {
      std::lock_guard<std::mutex> lock{mtx_};
      n = static_cast<int>(seen_.size());
      seen_.push_back(r);
    }
    cv_.notify_all();
    auto reply = script_(r, n);
    if (reply.what == scripted_reply::kind::close)
      return closed(c);
    if (reply.what == scripted_reply::kind::hang) {
      // Keep the connection open and read on: the client gives up first.
      read(c);
      return;
    }
    c->res = {};
    c->res.result(reply.status);
    c->res.version(11);
    if (!reply.content_type.empty())
      c->res.set(http::field::content_type, reply.content_type);
    for (auto& [k, v] : reply.headers)
      c->res.set(k, v);
    c->res.keep_alive(c->req.keep_alive());
    c->res.body() = reply.body;
    c->res.prepare_payload();
    http::async_write(*c->stream, c->res, [this, c](boost::system::error_code ec, size_t) {
      if (ec || !c->res.keep_alive())
        return closed(c);
      read(c);
    });
  }

  script script_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::weak_ptr<boost::beast::tcp_stream>> sockets_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<seen_request> seen_;
  int connections_ = 0;
  int open_ = 0;
  int max_open_ = 0;
};

} // namespace sluice::remote::internal
