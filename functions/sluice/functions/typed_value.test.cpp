#include "sluice/functions/typed_value.hpp"
#include "sluice/functions/address.hpp"

#include <doctest/doctest.h>

using namespace sluice::functions;

TEST_SUITE("functions.types") {

TEST_CASE("built-in types encode as the StateFun SDKs encode them") {
  CHECK(make_typed(true).bytes == std::string("\x08\x01", 2));
  CHECK(make_typed(int32_t{1}).bytes == std::string("\x0d\x01\0\0\0", 5));
  CHECK(make_typed(int32_t{-1}).bytes
        == std::string("\x0d\xff\xff\xff\xff", 5));
  CHECK(make_typed(int64_t{5}).bytes
        == std::string("\x09\x05\0\0\0\0\0\0\0", 9));
  CHECK(make_typed(1.5f).bytes == std::string("\x0d\0\0\xc0\x3f", 5));
  CHECK(make_typed(1.5).bytes == std::string("\x09\0\0\0\0\0\0\xf8\x3f", 9));
  CHECK(make_typed(std::string{"Bob"}).bytes == std::string("\x0a\x03" "Bob"));
  CHECK(make_typed(std::string{"Bob"}).type_name == "io.statefun.types/string");
}

TEST_CASE("built-in types decode round trip, zero values included") {
  for (int32_t v : {0, 1, -1, 123456789})
    CHECK(typed_as<int32_t>(make_typed(v)) == v);
  for (int64_t v : {int64_t{0}, int64_t{-5}, int64_t{1} << 40})
    CHECK(typed_as<int64_t>(make_typed(v)) == v);
  CHECK(typed_as<bool>(make_typed(false)) == false);
  CHECK(typed_as<double>(make_typed(0.0)) == 0.0);
  std::string long_text(300, 'x');
  CHECK(typed_as<std::string>(make_typed(long_text)) == long_text);
  CHECK(typed_as<std::string>(make_typed(std::string{})) == "");
}

TEST_CASE("malformed or mistyped values do not decode") {
  CHECK_FALSE(typed_as<int32_t>(make_typed(int64_t{5})));
  typed_value raw{std::string{type_names::string}, "Bob"};
  CHECK_FALSE(typed_as<std::string>(raw));
  typed_value short_int{std::string{type_names::int32}, "\x0d\x01"};
  CHECK_FALSE(typed_as<int32_t>(short_int));
  typed_value bad_len{std::string{type_names::string}, "\x0a\x05" "ab"};
  CHECK_FALSE(typed_as<std::string>(bad_len));
}

TEST_CASE("addresses parse from namespace/name/id") {
  auto a = address::parse("com.example/greeter/alice/x");
  REQUIRE(a);
  CHECK(a->type.ns == "com.example");
  CHECK(a->type.name == "greeter");
  CHECK(a->id == "alice/x");
  CHECK(a->to_string() == "com.example/greeter/alice/x");
  CHECK_FALSE(address::parse("greeter"));
  CHECK_FALSE(address::parse("ns/greeter/"));
  CHECK_FALSE(address::parse("/greeter/id"));
  auto t = function_type::parse("ns/fn");
  REQUIRE(t);
  CHECK(t->to_string() == "ns/fn");
  CHECK_FALSE(function_type::parse("a/b/c"));
}

}
