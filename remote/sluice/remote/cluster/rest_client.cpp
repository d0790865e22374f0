#include "sluice/remote/cluster/rest_client.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/internal/tls.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <nlohmann/json.hpp>

#include <utility>

namespace sluice::remote::cluster {

namespace {

namespace http = boost::beast::http;
namespace net = boost::asio;

/// Writes the request and reads the whole answer on a connected stream.
template <class Stream>
boost::beast::error_code exchange(Stream& stream, const http::request<http::string_body>& req,
                                  rest_reply& out) {
  boost::beast::error_code ec;
  http::write(stream, req, ec);
  if (ec)
    return ec;
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1024ull * 1024 * 1024);
  http::read(stream, buffer, parser, ec);
  if (ec)
    return ec;
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  return ec;
}

} // namespace

caf::expected<rest_reply> rest_client::request(const std::string& method,
                                               const std::string& target,
                                               const std::string& body,
                                               const std::string& content_type,
                                               std::chrono::seconds timeout) {
  auto unreachable = [&](const std::string& why) {
    return make_error(remote_errc::unreachable,
                      "cannot reach the JobManager at " + address() + ": " + why);
  };
  if (tls_ && !tls_context_) {
    auto ctx = internal::make_tls_client_context(trust_cert_file_,
                                                 "security.ssl.rest.trust-cert-file");
    if (!ctx)
      return ctx.error();
    tls_context_ = std::move(*ctx);
  }
  try {
    net::io_context io;
    net::ip::tcp::resolver resolver{io};
    boost::beast::error_code ec;
    auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
    if (ec)
      return unreachable(ec.message());
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host_);
    if (!body.empty())
      req.set(http::field::content_type, content_type);
    req.body() = body;
    req.keep_alive(false);
    req.prepare_payload();
    rest_reply out;
    if (!tls_) {
      boost::beast::tcp_stream stream{io};
      stream.expires_after(timeout);
      stream.connect(endpoints, ec);
      if (ec)
        return unreachable(ec.message());
      if ((ec = exchange(stream, req, out)))
        return unreachable(ec.message() + (ec == http::error::end_of_stream
                                             ? " (if it serves TLS, use -m https://" + host_ +
                                                 ":" + std::to_string(port_) + ")"
                                             : std::string()));
      stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
      return out;
    }
    boost::beast::ssl_stream<boost::beast::tcp_stream> stream{io, *tls_context_};
    auto& tcp = boost::beast::get_lowest_layer(stream);
    tcp.expires_after(timeout);
    tcp.connect(endpoints, ec);
    if (ec)
      return unreachable(ec.message());
    // SNI for servers with several names, and the certificate must name
    // the host asked for (DNS name or IP address in subjectAltName).
    boost::system::error_code not_ip;
    net::ip::make_address(host_, not_ip);
    if (not_ip)
      SSL_set_tlsext_host_name(stream.native_handle(), host_.c_str());
    stream.set_verify_callback(net::ssl::host_name_verification(host_));
    stream.handshake(net::ssl::stream_base::client, ec);
    if (ec) {
      auto verify = SSL_get_verify_result(stream.native_handle());
      if (verify != X509_V_OK)
        return unreachable(std::string("the server's TLS certificate did not verify (") +
                           X509_verify_cert_error_string(verify) + "); trust it with "
                           "security.ssl.rest.trust-cert-file");
      return unreachable("TLS handshake failed: " + ec.message());
    }
    if ((ec = exchange(stream, req, out)))
      return unreachable(ec.message());
    // The answer is complete; a server that closes without close_notify
    // does not make it less so.
    stream.shutdown(ec);
    return out;
  } catch (const std::exception& e) {
    return unreachable(e.what());
  }
}

caf::expected<job_manager_url> parse_job_manager_url(const std::string& text) {
  job_manager_url url;
  auto rest = text;
  if (rest.rfind("https://", 0) == 0) {
    url.tls = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return make_error(remote_errc::invalid_request,
                      "bad JobManager address '" + text + "': only http:// and https://");
  }
  if (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  auto hp = parse_job_manager_address(rest);
  if (!hp)
    return make_error(remote_errc::invalid_request, "bad JobManager address '" + text +
                                                      "' (want [https://]host:port)");
  url.host = std::move(hp->first);
  url.port = hp->second;
  return url;
}

caf::expected<std::pair<std::string, uint16_t>>
parse_job_manager_address(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return make_error(remote_errc::invalid_request,
                      "bad JobManager address '" + text + "' (want host:port): " + why);
  };
  auto colon = text.rfind(':');
  std::string host = colon == std::string::npos ? text : text.substr(0, colon);
  if (host.empty())
    return bad("no host");
  if (colon == std::string::npos)
    return std::make_pair(host, uint16_t{8081});
  auto port_text = text.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos)
    return bad("'" + port_text + "' is not a port");
  auto port = std::stoul(port_text);
  if (port == 0 || port > 65535)
    return bad("'" + port_text + "' is not a port");
  return std::make_pair(host, static_cast<uint16_t>(port));
}

std::string error_message(const std::string& body) {
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_object()) {
    auto e = parsed.find("errors");
    if (e != parsed.end() && e->is_array() && !e->empty() && (*e)[0].is_string())
      return (*e)[0].get<std::string>();
  }
  return body;
}

} // namespace sluice::remote::cluster
