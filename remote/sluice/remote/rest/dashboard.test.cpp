#include "sluice/remote/rest/dashboard.hpp"

#include "sluice/remote/internal/embedded_file.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/rest/http_server.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace sluice::remote::rest;
using sluice::remote::internal::test_http_client;

namespace {

/// The dashboard routes and one API route, behind `token` if it is set.
std::unique_ptr<http_server> serve(const std::string& token = {}) {
  auto routes = std::make_shared<router>();
  routes->add("GET", "/overview", [](const rest_request&) { return json_response(200, "{}"); });
  add_dashboard_routes(*routes);
  rest_config cfg;
  cfg.bearer_token = token;
  auto server = http_server::start(routes, cfg);
  REQUIRE(server);
  return std::move(*server);
}

bool is_error_shape(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  return j.is_object() && j["errors"].is_array() && !j["errors"].empty();
}

} // namespace

TEST_SUITE("remote.rest.dashboard") {

TEST_CASE("the page and its assets are embedded and served with their content types") {
  auto server = serve();
  test_http_client c{server->port()};
  auto page = c.request("GET", "/");
  CHECK(page.status == 200);
  CHECK(page.content_type == "text/html; charset=utf-8");
  CHECK(page.cache_control == "no-cache");
  CHECK(page.body.find("<title>sluice dashboard</title>") != std::string::npos);
  // The page names its assets with the current version, so they may be cached.
  const std::string version(sluice::remote::internal::dashboard_files_version);
  CHECK(page.body.find("/web/app.js?v=" + version) != std::string::npos);
  CHECK(page.body.find("@VERSION@") == std::string::npos);
  CHECK(c.request("GET", "/web/index.html").body == page.body);

  auto js = c.request("GET", "/web/app.js?v=" + version);
  CHECK(js.status == 200);
  CHECK(js.content_type == "text/javascript; charset=utf-8");
  CHECK(js.cache_control.find("immutable") != std::string::npos);
  CHECK(js.body.find("function route()") != std::string::npos);
  // Without the current version an asset must be revalidated.
  CHECK(c.request("GET", "/web/app.js").cache_control == "no-cache");
  auto css = c.request("GET", "/web/style.css");
  CHECK(css.status == 200);
  CHECK(css.content_type == "text/css; charset=utf-8");
  CHECK(dashboard_content_type("x.svg") == "image/svg+xml");
  CHECK(dashboard_content_type("x.bin") == "application/octet-stream");
}

TEST_CASE("an unknown dashboard file is a 404 in the REST error shape") {
  auto server = serve();
  test_http_client c{server->port()};
  auto r = c.request("GET", "/web/nope.js");
  CHECK(r.status == 404);
  CHECK(r.content_type == "application/json");
  CHECK(is_error_shape(r.body));
  CHECK(c.request("POST", "/web/app.js").status == 405);
}

TEST_CASE("no path outside the embedded files is reachable") {
  auto server = serve();
  test_http_client c{server->port()};
  for (const char* target : {"/web/../x", "/web/..", "/web/%2e%2e", "/web/..%2fCMakeLists.txt",
                             "/web/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/web/./app.js",
                             "/web//etc/passwd", "/web/sub/app.js"}) {
    auto r = c.raw(std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_MESSAGE(r.status == 404, target);
    CHECK_MESSAGE(is_error_shape(r.body), target);
  }
  CHECK(dashboard_file("../rest_api.cpp").status == 404);
  CHECK(dashboard_file("").status == 404);
}

TEST_CASE("with a token set, the static files are open and the API still needs the token") {
  auto server = serve("s3cret");
  test_http_client c{server->port()};
  CHECK(c.request("GET", "/").status == 200);
  CHECK(c.request("GET", "/web/app.js").status == 200);
  CHECK(c.request("GET", "/web/nope.js").status == 404);
  CHECK(c.request("GET", "/overview").status == 401);
  CHECK(c.request("GET", "/overview", {}, "s3cret").status == 200);
  // Only GET is open: another method on a dashboard path needs the token.
  CHECK(c.request("POST", "/web/app.js").status == 401);
}

TEST_CASE("the router tells which requests need the token") {
  router r;
  r.add("GET", "/jobs", [](const rest_request&) { return json_response(200, "[]"); });
  add_dashboard_routes(r);
  CHECK(r.needs_token("GET", "/jobs"));
  CHECK(r.needs_token("GET", "/unknown"));
  CHECK_FALSE(r.needs_token("GET", "/"));
  CHECK_FALSE(r.needs_token("GET", "/web/app.js"));
  CHECK(r.needs_token("DELETE", "/web/app.js"));
}
}
