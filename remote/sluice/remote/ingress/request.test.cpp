#include "sluice/remote/ingress/request.hpp"

#include <doctest/doctest.h>

using namespace sluice;
using namespace sluice::remote::ingress;
namespace fn = sluice::functions;

namespace {

constexpr std::string_view string_type = "io.statefun.types/string";

ingress_request accepted(std::string_view method, std::string_view target,
                         std::string_view content_type, std::string body,
                         std::string_view default_type = string_type) {
  auto r = parse_ingress_request(method, target, content_type, std::move(body), default_type);
  if (auto* bad = std::get_if<ingress_rejection>(&r))
    FAIL("refused: " << bad->status << " " << bad->message);
  return std::get<ingress_request>(r);
}

ingress_rejection refused(std::string_view method, std::string_view target,
                          std::string_view content_type, std::string body = "x") {
  auto r = parse_ingress_request(method, target, content_type, std::move(body), string_type);
  REQUIRE(std::holds_alternative<ingress_rejection>(r));
  return std::get<ingress_rejection>(r);
}

} // namespace

TEST_SUITE("remote.ingress.request") {

TEST_CASE("text/plain becomes a properly encoded string value for the address") {
  auto r = accepted("POST", "/functions/example/greeter/bob", "text/plain", "hello");
  CHECK(r.target == fn::address{{"example", "greeter"}, "bob"});
  CHECK(r.value == fn::make_typed(std::string{"hello"}));
  CHECK(r.value.bytes != "hello"); // the StringWrapper encoding, not the raw text
  CHECK_FALSE(r.wants_reply);
  CHECK(accepted("PUT", "/functions/a/b/c", "Text/Plain; charset=UTF-8", "x").value ==
        fn::make_typed(std::string{"x"}));
}

TEST_CASE("application/vnd.<typename> passes the body bytes unchanged") {
  std::string bytes("\x08\x96\x01\x00", 4);
  auto r = accepted("POST", "/functions/example/greeter/bob",
                    "application/vnd.com.example/GreetRequest", bytes);
  CHECK(r.value.type_name == "com.example/GreetRequest");
  CHECK(r.value.bytes == bytes);
}

TEST_CASE("no content type uses the ingress's default value type") {
  CHECK(accepted("POST", "/functions/a/b/c", "", "text").value ==
        fn::make_typed(std::string{"text"}));
  CHECK(accepted("POST", "/functions/a/b/c", "", "raw", "com.example/Raw").value ==
        fn::typed_value{"com.example/Raw", "raw"});
}

TEST_CASE("the id is the percent-decoded rest of the path, slashes included") {
  CHECK(accepted("POST", "/functions/a/b/user%20one", "text/plain", "").target.id == "user one");
  CHECK(accepted("POST", "/functions/a/b/x/y", "text/plain", "").target.id == "x/y");
}

TEST_CASE("?reply=true asks for a reply; other query parameters are refused") {
  CHECK(accepted("POST", "/functions/a/b/c?reply=true", "text/plain", "").wants_reply);
  CHECK_FALSE(accepted("POST", "/functions/a/b/c?reply=false", "text/plain", "").wants_reply);
  auto bad = refused("POST", "/functions/a/b/c?reply=yes", "text/plain");
  CHECK(bad.status == 400);
  CHECK(bad.message.find("reply must be true or false") != std::string::npos);
  CHECK(refused("POST", "/functions/a/b/c?wait=1", "text/plain").status == 400);
}

TEST_CASE("malformed paths, empty ids and unknown content types are refused clearly") {
  auto empty_id = refused("POST", "/functions/a/b/", "text/plain");
  CHECK(empty_id.status == 400);
  CHECK(empty_id.message.find("empty function id") != std::string::npos);
  CHECK(refused("POST", "/functions/a/b", "text/plain").status == 400);
  CHECK(refused("POST", "/functions//b/c", "text/plain").status == 400);
  CHECK(refused("POST", "/functions/a/b/c%zz", "text/plain").status == 400);
  auto elsewhere = refused("POST", "/example/greeter/bob", "text/plain");
  CHECK(elsewhere.status == 404);
  CHECK(elsewhere.message.find("/functions/<namespace>/<type>/<id>") != std::string::npos);
  CHECK(refused("GET", "/functions/a/b/c", "text/plain").status == 405);
  auto json = refused("POST", "/functions/a/b/c", "application/json");
  CHECK(json.status == 415);
  CHECK(json.message.find("application/json") != std::string::npos);
  CHECK(refused("POST", "/functions/a/b/c", "application/vnd.nonamespace").status == 415);
  CHECK(refused("POST", "/functions/a/b/c", "text/plain; charset=latin1").status == 415);
}

TEST_CASE("a string reply is sent as text, other replies as vnd bytes") {
  auto text = encode_reply(fn::make_typed(std::string{"hi"}));
  CHECK(text.content_type == "text/plain; charset=utf-8");
  CHECK(text.body == "hi");
  auto other = encode_reply(fn::typed_value{"com.example/Out", "\x01\x02"});
  CHECK(other.content_type == "application/vnd.com.example/Out");
  CHECK(other.body == "\x01\x02");
  auto number = encode_reply(fn::make_typed(int32_t{7}));
  CHECK(number.content_type == "application/vnd.io.statefun.types/int");
}

}
