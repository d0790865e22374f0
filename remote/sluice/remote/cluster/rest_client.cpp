#include "sluice/remote/cluster/rest_client.hpp"

#include "sluice/remote/errors.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include <utility>

namespace sluice::remote::cluster {

caf::expected<rest_reply> rest_client::request(const std::string& method,
                                               const std::string& target,
                                               const std::string& body,
                                               const std::string& content_type,
                                               std::chrono::seconds timeout) {
  namespace http = boost::beast::http;
  namespace net = boost::asio;
  auto unreachable = [&](const std::string& why) {
    return make_error(remote_errc::unreachable,
                      "cannot reach the JobManager at " + address() + ": " + why);
  };
  try {
    net::io_context io;
    net::ip::tcp::resolver resolver{io};
    boost::beast::error_code ec;
    auto endpoints = resolver.resolve(host_, std::to_string(port_), ec);
    if (ec)
      return unreachable(ec.message());
    boost::beast::tcp_stream stream{io};
    stream.expires_after(timeout);
    stream.connect(endpoints, ec);
    if (ec)
      return unreachable(ec.message());
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host_);
    if (!body.empty())
      req.set(http::field::content_type, content_type);
    req.body() = body;
    req.keep_alive(false);
    req.prepare_payload();
    http::write(stream, req, ec);
    if (ec)
      return unreachable(ec.message());
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(1024ull * 1024 * 1024);
    http::read(stream, buffer, parser, ec);
    if (ec)
      return unreachable(ec.message());
    rest_reply out;
    out.status = parser.get().result_int();
    out.body = std::move(parser.get().body());
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return unreachable(e.what());
  }
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
