#include "sluice/remote/ingress/http_ingress.hpp"

#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/module.hpp"

#include <doctest/doctest.h>

#include <future>
#include <thread>

using namespace sluice;
using namespace sluice::remote;
using namespace sluice::remote::ingress;
using namespace std::chrono_literals;
using sluice::remote::internal::test_http_client;
namespace fn = sluice::functions;

namespace {

std::shared_ptr<http_ingress> start(http_ingress_config cfg = {}) {
  auto in = http_ingress::start(std::move(cfg));
  REQUIRE(in);
  return *in;
}

/// The messages in the journal, oldest first.
std::vector<fn::envelope> journaled(const http_ingress& in) {
  std::vector<fn::envelope> out;
  in.journal()->read(0, 1000, out);
  return out;
}

/// Waits until the journal holds `n` messages and returns the last.
fn::envelope wait_for_message(const http_ingress& in, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (in.journal()->size() < n) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::yield();
  }
  return journaled(in).back();
}

} // namespace

TEST_SUITE("remote.ingress.http") {

TEST_CASE("an accepted message is journaled and answered 202") {
  auto in = start();
  test_http_client c(in->port());
  auto r = c.request("POST", "/functions/example/greeter/bob", "hello", {}, "text/plain");
  CHECK(r.status == 202);
  CHECK(r.body.find("example/greeter/bob") != std::string::npos);
  r = c.request("PUT", "/functions/example/greeter/ann", std::string("\x01\x02", 2), {},
                "application/vnd.com.example/Greet");
  CHECK(r.status == 202);
  auto msgs = journaled(*in);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].target == fn::address{{"example", "greeter"}, "bob"});
  CHECK(msgs[0].payload == fn::make_typed(std::string{"hello"}));
  CHECK_FALSE(msgs[0].caller);
  CHECK(msgs[1].payload == fn::typed_value{"com.example/Greet", std::string("\x01\x02", 2)});
}

TEST_CASE("bad requests get 4xx with a clear message and enqueue nothing") {
  http_ingress_config cfg;
  cfg.max_body_bytes = 100;
  auto in = start(cfg);
  test_http_client c(in->port());
  auto empty_id = c.request("POST", "/functions/a/b/", "x", {}, "text/plain");
  CHECK(empty_id.status == 400);
  CHECK(empty_id.body.find("empty function id") != std::string::npos);
  CHECK(c.request("POST", "/functions/a/b", "x", {}, "text/plain").status == 400);
  CHECK(c.request("POST", "/nowhere", "x", {}, "text/plain").status == 404);
  CHECK(c.request("GET", "/functions/a/b/c").status == 405);
  auto json = c.request("POST", "/functions/a/b/c", "{}", {}, "application/json");
  CHECK(json.status == 415);
  CHECK(json.body.find("unsupported content type 'application/json'") != std::string::npos);
  auto big = c.request("POST", "/functions/a/b/c", std::string(101, 'x'), {}, "text/plain");
  CHECK(big.status == 413);
  CHECK(big.body.find("larger than 100 bytes") != std::string::npos);
  CHECK(in->journal()->size() == 0);
}

TEST_CASE("a full journal answers 503 with Retry-After until it is truncated") {
  http_ingress_config cfg;
  cfg.journal_max_messages = 2;
  cfg.retry_after = 3s;
  auto in = start(cfg);
  test_http_client c(in->port());
  CHECK(c.request("POST", "/functions/a/b/1", "x", {}, "text/plain").status == 202);
  CHECK(c.request("POST", "/functions/a/b/2", "x", {}, "text/plain").status == 202);
  auto full = c.request("POST", "/functions/a/b/3", "x", {}, "text/plain");
  CHECK(full.status == 503);
  CHECK(full.retry_after == "3");
  CHECK(full.body.find("journal full") != std::string::npos);
  // A reply request is refused too, and leaves no waiting request behind.
  CHECK(c.request("POST", "/functions/a/b/3?reply=true", "x", {}, "text/plain").status == 503);
  CHECK(in->replies()->waiting() == 0);
  in->journal()->truncate(1);
  CHECK(c.request("POST", "/functions/a/b/3", "x", {}, "text/plain").status == 202);
}

TEST_CASE("a reply request gets a caller address of its own and the reply as its response") {
  auto in = start();
  auto text = std::async(std::launch::async, [&] {
    test_http_client c(in->port());
    return c.request("POST", "/functions/a/b/c?reply=true", "ping", {}, "text/plain");
  });
  auto m = wait_for_message(*in, 1);
  REQUIRE(m.caller);
  CHECK(m.caller->type == reply_function_type());
  CHECK(in->replies()->waiting() == 1);
  CHECK(in->replies()->complete(m.caller->id, fn::make_typed(std::string{"pong"})));
  auto r = text.get();
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; charset=utf-8");
  CHECK(r.body == "pong");

  auto bytes = std::async(std::launch::async, [&] {
    test_http_client c(in->port());
    return c.request("POST", "/functions/a/b/c?reply=true", "ping", {}, "text/plain");
  });
  m = wait_for_message(*in, 2);
  REQUIRE(m.caller);
  in->replies()->complete(m.caller->id, fn::typed_value{"com.example/Out", "\x07"});
  r = bytes.get();
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/vnd.com.example/Out");
  CHECK(r.body == "\x07");
}

TEST_CASE("a reply request without a reply gets 504 and its late reply is dropped") {
  http_ingress_config cfg;
  cfg.reply_timeout = 50ms;
  auto in = start(cfg);
  test_http_client c(in->port());
  auto r = c.request("POST", "/functions/a/b/c?reply=true", "ping", {}, "text/plain");
  CHECK(r.status == 504);
  CHECK(r.body.find("no reply from a/b/c within 50 ms") != std::string::npos);
  auto m = journaled(*in).back();
  REQUIRE(m.caller);
  CHECK_FALSE(in->replies()->complete(m.caller->id, fn::make_typed(std::string{"late"})));
  // The connection serves the next request.
  CHECK(c.request("POST", "/functions/a/b/c", "x", {}, "text/plain").status == 202);
}

TEST_CASE("too many waiting requests get 503; stopping ends the waiting ones") {
  http_ingress_config cfg;
  cfg.max_waiting_replies = 1;
  auto in = start(cfg);
  auto waiting = std::async(std::launch::async, [&] {
    test_http_client c(in->port());
    return c.request("POST", "/functions/a/b/c?reply=true", "ping", {}, "text/plain");
  });
  wait_for_message(*in, 1);
  test_http_client c(in->port());
  auto r = c.request("POST", "/functions/a/b/d?reply=true", "ping", {}, "text/plain");
  CHECK(r.status == 503);
  CHECK(r.body.find("too many requests waiting") != std::string::npos);
  in->stop();
  // The waiting request's connection closes (or answers 503) instead of hanging.
  try {
    auto w = waiting.get();
    CHECK(w.status == 503);
  } catch (const std::exception&) {
  }
  CHECK(in->replies()->waiting() == 0);
}

TEST_CASE("a module's http-ingress declaration configures the ingress") {
  http_ingress_spec spec;
  spec.id = {"example", "http"};
  spec.port = 8090;
  spec.value_type = "com.example/Raw";
  auto c = config_from(spec);
  CHECK(c.id == "example/http");
  CHECK(c.port == 8090);
  CHECK(c.default_value_type == "com.example/Raw");
}

}
