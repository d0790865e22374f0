#include "sluice/remote/rest/router.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace sluice::remote::rest;

TEST_SUITE("remote.rest.router") {

TEST_CASE("a route with path parameters matches and fills them") {
  router r;
  r.add("GET", "/jobs/overview", [](const rest_request&) { return json_response(200, "overview"); });
  r.add("GET", "/jobs/:jobid/vertices/:vertexid", [](const rest_request& req) {
    return json_response(200, req.params.at("jobid") + "|" + req.params.at("vertexid"));
  });
  r.add("GET", "/jobs/:jobid", [](const rest_request& req) {
    return json_response(200, "job " + req.params.at("jobid"));
  });
  rest_request req;
  req.method = "GET";
  req.path = "/jobs/abc/vertices/v1";
  CHECK(r.handle(req).body == "abc|v1");
  req.path = "/jobs/overview";
  CHECK(r.handle(req).body == "overview");
  req.path = "/jobs/xyz/";
  CHECK(r.handle(req).body == "job xyz");
}

TEST_CASE("an unknown path is 404 and a known path with another method is 405") {
  router r;
  r.add("GET", "/jobs", [](const rest_request&) { return json_response(200, "{}"); });
  r.add("PATCH", "/jobs/:id", [](const rest_request&) { return json_response(202, ""); });
  rest_request req;
  req.method = "GET";
  req.path = "/nope";
  auto res = r.handle(req);
  CHECK(res.status == 404);
  auto j = nlohmann::json::parse(res.body);
  REQUIRE(j["errors"].is_array());
  CHECK(j["errors"][0].get<std::string>().find("/nope") != std::string::npos);
  req.method = "POST";
  req.path = "/jobs";
  CHECK(r.handle(req).status == 405);
  req.method = "DELETE";
  req.path = "/jobs/1";
  res = r.handle(req);
  CHECK(res.status == 405);
  CHECK(res.body.find("PATCH") != std::string::npos);
}

TEST_CASE("a handler that throws answers 500 with the message") {
  router r;
  r.add("GET", "/boom", [](const rest_request&) -> rest_response {
    throw std::runtime_error("kaputt");
  });
  rest_request req;
  req.method = "GET";
  req.path = "/boom";
  auto res = r.handle(req);
  CHECK(res.status == 500);
  CHECK(res.body.find("kaputt") != std::string::npos);
}

TEST_CASE("request targets are split into a decoded path and query") {
  std::string path;
  std::map<std::string, std::string> query;
  REQUIRE(parse_target("/jobs/a%20b?mode=cancel&x=1+2&flag", path, query));
  CHECK(path == "/jobs/a b");
  CHECK(query.at("mode") == "cancel");
  CHECK(query.at("x") == "1 2");
  CHECK(query.at("flag").empty());
  CHECK_FALSE(parse_target("jobs", path, query));
  CHECK_FALSE(parse_target("/jobs%2", path, query));
  CHECK_FALSE(parse_target("/jobs%zz", path, query));
  CHECK(split_path("//a//b/") == std::vector<std::string>{"a", "b"});
}

TEST_CASE("an escaped slash stays inside its path parameter (a queryable-state key)") {
  router r;
  r.add("GET", "/jobs/:jobid/state/:uid/:key", [](const rest_request& req) {
    return json_response(200, req.params.at("uid") + "|" + req.params.at("key"));
  });
  rest_request req;
  req.method = "GET";
  REQUIRE(parse_target("/jobs/j1/state/counts/http%3A%2F%2Fa.b%2Fc%20d?x=1", req.path, req.query,
                       &req.segments));
  CHECK(req.path == "/jobs/j1/state/counts/http://a.b/c d");
  CHECK(req.segments ==
        std::vector<std::string>{"jobs", "j1", "state", "counts", "http://a.b/c d"});
  CHECK(r.handle(req).body == "counts|http://a.b/c d");
  // Unescaped, the slashes split the path: no route has that many segments.
  REQUIRE(parse_target("/jobs/j1/state/counts/a/b", req.path, req.query, &req.segments));
  CHECK(r.handle(req).status == 404);
  std::vector<std::string> segments;
  CHECK_FALSE(parse_target("/jobs/a%2", req.path, req.query, &segments));
}

} // TEST_SUITE
