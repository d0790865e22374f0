#include "sluice/state/queryable_state.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

using namespace sluice::state;

namespace {
struct point {
  int32_t x = 0;
  int32_t y = 0;
  SLUICE_SERIALIZABLE(x, y)
};
struct opaque {
  int v = 0;
};
} // namespace

TEST_SUITE("state.queryable") {

TEST_CASE("scalars print as JSON numbers, bools and escaped strings") {
  CHECK(to_json(int64_t{-42}) == "-42");
  CHECK(to_json(uint8_t{200}) == "200");
  CHECK(to_json(true) == "true");
  CHECK(to_json(2.5) == "2.5");
  CHECK(to_json(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(to_json(std::string("a\"b\\c\n\x01")) == "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST_CASE("containers print as arrays, objects and pairs") {
  CHECK(to_json(std::vector<int>{1, 2, 3}) == "[1,2,3]");
  CHECK(to_json(std::vector<std::string>{}) == "[]");
  CHECK(to_json(std::map<std::string, int>{{"a", 1}, {"b", 2}}) == "{\"a\":1,\"b\":2}");
  CHECK(to_json(std::map<int, bool>{{3, true}}) == "{\"3\":true}");
  CHECK(to_json(std::unordered_map<std::string, double>{{"k", 0.5}}) == "{\"k\":0.5}");
  CHECK(to_json(std::map<std::pair<int, int>, int>{{{1, 2}, 3}}) == "[[[1,2],3]]");
  CHECK(to_json(std::pair<std::string, int64_t>{"x", 7}) == "[\"x\",7]");
  CHECK(to_json(std::optional<int>{}) == "null");
  CHECK(to_json(std::optional<std::vector<int>>{{4}}) == "[4]");
}

TEST_CASE("other types print as their serializer's bytes in base64 and their type name") {
  point p{1, 2};
  auto bytes = serialize(p);
  auto json = to_json(p);
  CHECK(json.find("\"serialized\":\"" + internal::base64(bytes) + "\"") != std::string::npos);
  CHECK(json.find("\"type\":\"" + serializer<point>::type_name() + "\"") != std::string::npos);
  CHECK(to_json(opaque{}).rfind("{\"serialized\":null,\"type\":", 0) == 0);
}

TEST_CASE("base64 pads to groups of four") {
  CHECK(internal::base64("") == "");
  CHECK(internal::base64("f") == "Zg==");
  CHECK(internal::base64("fo") == "Zm8=");
  CHECK(internal::base64("foo") == "Zm9v");
  CHECK(internal::base64(std::string("\xff\x00", 2)) == "/wA=");
}

TEST_CASE("keys parse from URL text only when the whole text is a key") {
  CHECK(parse_key<int64_t>("123") == 123);
  CHECK(parse_key<int64_t>("-5") == -5);
  CHECK(parse_key<int32_t>("+5") == 5);
  CHECK_FALSE(parse_key<int64_t>("12a"));
  CHECK_FALSE(parse_key<int64_t>(""));
  CHECK_FALSE(parse_key<uint8_t>("300"));
  CHECK_FALSE(parse_key<uint32_t>("-1"));
  CHECK(parse_key<double>("2.5") == 2.5);
  CHECK_FALSE(parse_key<double>("2.5x"));
  CHECK_FALSE(parse_key<double>(" 2"));
  CHECK(parse_key<bool>("true") == true);
  CHECK(parse_key<bool>("0") == false);
  CHECK_FALSE(parse_key<bool>("yes"));
  CHECK(parse_key<std::string>("a b/c") == std::string("a b/c"));
  CHECK(parse_key<std::string>("") == std::string());
  static_assert(is_url_key_v<int>);
  static_assert(!is_url_key_v<std::pair<int, int>>);
}

} // TEST_SUITE
