#pragma once

// A blocking keep-alive HTTP/1.1 client (Boost.Beast) for tests of HTTP
// servers. Test-only; not part of the library's API.

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace sluice::remote::internal {

/// One reply as the test client got it.
struct test_reply {
  unsigned status = 0;
  std::string content_type;
  std::string body;
  std::string www_authenticate;
  std::string retry_after;
  std::string cache_control;
  bool keep_alive = false;
};

/// Talks to 127.0.0.1:port over one connection, reconnecting when the
/// server closed it. Not thread-safe.
class test_http_client {
public:
  explicit test_http_client(uint16_t port) : port_(port) {}

  /// Sends one request; `bearer` adds an Authorization header. A body is
  /// sent as `content_type` (application/json when that is empty; none when
  /// it is "-").
  test_reply request(const std::string& method, const std::string& target,
                     const std::string& body = {}, const std::string& bearer = {},
                     const std::string& content_type = {},
                     std::chrono::seconds timeout = std::chrono::seconds(10)) {
    namespace http = boost::beast::http;
    for (int attempt = 0;; ++attempt) {
      if (!stream_)
        connect();
      http::request<http::string_body> req{http::string_to_verb(method), target, 11};
      if (req.method() == http::verb::unknown)
        req.method_string(method);
      req.set(http::field::host, "127.0.0.1");
      if (!bearer.empty())
        req.set(http::field::authorization, "Bearer " + bearer);
      if (!content_type.empty() && content_type != "-")
        req.set(http::field::content_type, content_type);
      else if (!body.empty() && content_type.empty())
        req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.keep_alive(true);
      req.prepare_payload();
      boost::beast::error_code ec;
      stream_->expires_after(timeout);
      http::write(*stream_, req, ec);
      http::response<http::string_body> res;
      if (!ec)
        http::read(*stream_, buffer_, res, ec);
      if (ec) {
        stream_.reset();
        buffer_.clear();
        if (attempt == 0)
          continue; // the server closed the idle connection: retry once
        throw boost::beast::system_error(ec);
      }
      test_reply out;
      out.status = res.result_int();
      out.content_type = std::string(res[http::field::content_type]);
      out.www_authenticate = std::string(res[http::field::www_authenticate]);
      out.retry_after = std::string(res[http::field::retry_after]);
      out.cache_control = std::string(res[http::field::cache_control]);
      out.body = std::move(res.body());
      out.keep_alive = res.keep_alive();
      if (!out.keep_alive) {
        stream_.reset();
        buffer_.clear();
      }
      return out;
    }
  }

  /// Sends raw bytes and reads one reply (for malformed requests).
  test_reply raw(const std::string& bytes) {
    namespace http = boost::beast::http;
    stream_.reset();
    connect();
    boost::asio::write(stream_->socket(), boost::asio::buffer(bytes));
    http::response<http::string_body> res;
    http::read(*stream_, buffer_, res);
    test_reply out;
    out.status = res.result_int();
    out.content_type = std::string(res[http::field::content_type]);
    out.body = std::move(res.body());
    stream_.reset();
    buffer_.clear();
    return out;
  }

private:
  void connect() {
    stream_.emplace(io_);
    stream_->connect({boost::asio::ip::make_address("127.0.0.1"), port_});
  }

  uint16_t port_;
  boost::asio::io_context io_;
  std::optional<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
};

} // namespace sluice::remote::internal
