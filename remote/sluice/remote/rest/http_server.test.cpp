#include "sluice/remote/rest/http_server.hpp"

#include "sluice/remote/cluster/rest_client.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/internal/tls.hpp"
#include "sluice/remote/rest/dashboard.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sys/socket.h>
#include <sys/time.h>

using namespace sluice::remote::rest;
using sluice::remote::describe;
using sluice::remote::is;
using sluice::remote::remote_errc;
using sluice::remote::cluster::rest_client;
using sluice::remote::internal::test_http_client;
namespace fs = std::filesystem;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

/// A temp directory with a self-signed certificate for 127.0.0.1/localhost
/// (cert.pem, key.pem) and an unrelated key (other-key.pem), made with the
/// openssl command; removed at the end.
struct test_certificates {
  fs::path dir;
  test_certificates() {
    auto pattern = (fs::temp_directory_path() / "sluice-tls-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
               "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 1 -keyout " +
               (dir / "key.pem").string() + " -out " + (dir / "cert.pem").string() +
               " 2>/dev/null && openssl genrsa -out " + (dir / "other-key.pem").string() +
               " 2048 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~test_certificates() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string cert() const { return (dir / "cert.pem").string(); }
  std::string key() const { return (dir / "key.pem").string(); }
  std::string other_key() const { return (dir / "other-key.pem").string(); }
};

/// GET /overview and the dashboard behind TLS (and `token` if set).
caf::expected<std::unique_ptr<http_server>> serve_tls(const test_certificates& certs,
                                                      const std::string& token = {},
                                                      std::chrono::milliseconds idle = {}) {
  auto routes = std::make_shared<router>();
  routes->add("GET", "/overview",
              [](const rest_request&) { return json_response(200, R"({"taskmanagers":0})"); });
  add_dashboard_routes(*routes);
  rest_config cfg;
  cfg.bearer_token = token;
  cfg.tls_certificate_file = certs.cert();
  cfg.tls_private_key_file = certs.key();
  if (idle.count() > 0)
    cfg.idle_timeout = idle;
  return http_server::start(routes, cfg);
}

struct tls_reply {
  unsigned status = 0;
  std::string body;
};

/// One GET over a new TLS connection that trusts `trust_file`.
tls_reply tls_get(uint16_t port, const std::string& target, const std::string& trust_file,
                  const std::string& bearer = {}) {
  auto ctx = sluice::remote::internal::make_tls_client_context(trust_file, "trust file");
  REQUIRE(ctx);
  net::io_context io;
  beast::ssl_stream<beast::tcp_stream> stream{io, **ctx};
  auto& tcp = beast::get_lowest_layer(stream);
  tcp.expires_after(std::chrono::seconds(10));
  tcp.connect(net::ip::tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
  stream.set_verify_callback(net::ssl::host_name_verification("127.0.0.1"));
  stream.handshake(net::ssl::stream_base::client);
  http::request<http::string_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!bearer.empty())
    req.set(http::field::authorization, "Bearer " + bearer);
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return {res.result_int(), res.body()};
}

} // namespace

TEST_SUITE("remote.rest.tls") {

TEST_CASE("a TLS request gets the JSON of /overview and the dashboard") {
  test_certificates certs;
  auto server = serve_tls(certs);
  REQUIRE_MESSAGE(server, describe(server.error()));
  auto overview = tls_get((*server)->port(), "/overview", certs.cert());
  CHECK(overview.status == 200);
  CHECK(nlohmann::json::parse(overview.body)["taskmanagers"] == 0);
  auto page = tls_get((*server)->port(), "/", certs.cert());
  CHECK(page.status == 200);
  CHECK(page.body.find("<html") != std::string::npos);
}

TEST_CASE("plain HTTP to a TLS port fails and leaves the server serving TLS") {
  test_certificates certs;
  auto server = serve_tls(certs);
  REQUIRE_MESSAGE(server, describe(server.error()));
  test_http_client plain{(*server)->port()};
  CHECK_THROWS(plain.request("GET", "/overview"));
  auto after = tls_get((*server)->port(), "/overview", certs.cert());
  CHECK(after.status == 200);
}

TEST_CASE("a connection that never starts its handshake is closed after the idle timeout") {
  test_certificates certs;
  auto server = serve_tls(certs, {}, std::chrono::milliseconds(200));
  REQUIRE_MESSAGE(server, describe(server.error()));
  net::io_context io;
  net::ip::tcp::socket socket{io};
  socket.connect({net::ip::make_address("127.0.0.1"), (*server)->port()});
  // A blocking recv limited to 5 s: 0 (or a reset) is the server closing,
  // EAGAIN is this test giving up.
  timeval limit{5, 0};
  REQUIRE(setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) == 0);
  char byte;
  auto n = ::recv(socket.native_handle(), &byte, 1, 0);
  CHECK((n == 0 || (n < 0 && errno == ECONNRESET)));
  CHECK(tls_get((*server)->port(), "/overview", certs.cert()).status == 200);
}

TEST_CASE("the bearer token is still enforced over TLS") {
  test_certificates certs;
  auto server = serve_tls(certs, "s3cret");
  REQUIRE_MESSAGE(server, describe(server.error()));
  CHECK(tls_get((*server)->port(), "/overview", certs.cert()).status == 401);
  CHECK(tls_get((*server)->port(), "/overview", certs.cert(), "wrong").status == 401);
  CHECK(tls_get((*server)->port(), "/overview", certs.cert(), "s3cret").status == 200);
}

TEST_CASE("the CLI's client verifies the server against the trust file") {
  test_certificates certs;
  auto server = serve_tls(certs);
  REQUIRE_MESSAGE(server, describe(server.error()));
  auto url = sluice::remote::cluster::parse_job_manager_url("https://127.0.0.1:" +
                                                            std::to_string((*server)->port()));
  REQUIRE(url);
  CHECK(url->tls);
  rest_client trusted{*url, certs.cert()};
  auto ok = trusted.request("GET", "/overview");
  REQUIRE_MESSAGE(ok, describe(ok.error()));
  CHECK(ok->status == 200);
  // Self-signed: the system's store does not vouch for it.
  rest_client untrusted{*url, ""};
  auto refused = untrusted.request("GET", "/overview");
  REQUIRE_FALSE(refused);
  CHECK(is(refused.error(), remote_errc::unreachable));
  CHECK(describe(refused.error()).find("did not verify") != std::string::npos);
  // The same certificate does not name another host.
  auto other = sluice::remote::cluster::parse_job_manager_url("https://127.0.0.2:" +
                                                              std::to_string((*server)->port()));
  REQUIRE(other);
  rest_client wrong_host{*other, certs.cert()};
  CHECK_FALSE(wrong_host.request("GET", "/overview"));
}

TEST_CASE("-m takes host:port, http:// and https:// and nothing else") {
  using sluice::remote::cluster::parse_job_manager_url;
  auto plain = parse_job_manager_url("localhost:9000");
  REQUIRE(plain);
  CHECK_FALSE(plain->tls);
  CHECK(plain->port == 9000);
  auto http_url = parse_job_manager_url("http://h:1/");
  REQUIRE(http_url);
  CHECK_FALSE(http_url->tls);
  CHECK(http_url->host == "h");
  auto tls = parse_job_manager_url("https://h");
  REQUIRE(tls);
  CHECK(tls->tls);
  CHECK(tls->port == 8081);
  CHECK_FALSE(parse_job_manager_url("ftp://h:1"));
  CHECK_FALSE(parse_job_manager_url("https://:1"));
}

TEST_CASE("bad TLS files fail start naming the key") {
  test_certificates certs;
  auto routes = std::make_shared<router>();
  auto start = [&](std::string cert, std::string key) {
    rest_config cfg;
    cfg.tls_certificate_file = std::move(cert);
    cfg.tls_private_key_file = std::move(key);
    auto server = http_server::start(routes, cfg);
    REQUIRE_FALSE(server);
    CHECK(is(server.error(), remote_errc::invalid_configuration));
    return describe(server.error());
  };
  auto missing = (certs.dir / "missing.pem").string();
  CHECK(start(certs.cert(), "").find("security.ssl.rest.key-file is not set") !=
        std::string::npos);
  auto no_cert = start(missing, certs.key());
  CHECK(no_cert.find("security.ssl.rest.cert-file") != std::string::npos);
  CHECK(no_cert.find("cannot read") != std::string::npos);
  CHECK(start(certs.cert(), missing).find("security.ssl.rest.key-file: cannot read") !=
        std::string::npos);
  // A key file given as the certificate: no certificate in it.
  CHECK(start(certs.key(), certs.key()).find("security.ssl.rest.cert-file") != std::string::npos);
// A certificate given as the key: no key in it.
CHECK(start(certs.cert(), certs.cert()).find("security.ssl.rest.key-file: '") !=
      std::string::npos);
  auto mismatch = start(certs.cert(), certs.other_key());
  CHECK(mismatch.find("security.ssl.rest.key-file") != std::string::npos);
  CHECK(mismatch.find("does not match") != std::string::npos);
}

} // TEST_SUITE
