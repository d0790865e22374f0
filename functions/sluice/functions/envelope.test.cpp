#include "sluice/functions/envelope.hpp"
#include "sluice/functions/function_registry.hpp"

#include <doctest/doctest.h>

using namespace sluice::functions;
using namespace std::chrono_literals;
namespace state = sluice::state;

namespace {
address addr(const std::string& ns, const std::string& type, const std::string& id) {
  return address{function_type{ns, type}, id};
}
} // namespace

TEST_SUITE("functions.envelope") {

  TEST_CASE("envelopes, delayed messages and dead letters survive a serializer round trip") {
    auto to_fn = envelope::to_function(addr("a.b", "f", "id/with/slashes"),
                                       make_typed(std::string("payload")), addr("x", "y", "z"), -5);
    auto to_eg =
        envelope::to_egress(egress_id{"ns", "out"}, typed_value{"t/x", std::string("\0\1", 2)});
    CHECK(state::deserialize<envelope>(state::serialize(to_fn)) == to_fn);
    CHECK(state::deserialize<envelope>(state::serialize(to_eg)) == to_eg);
    CHECK(state::serializer<envelope>::type_name() == "functions.envelope");

    delayed_message m;
    m.target = addr("n", "t", "i");
    m.payload = make_typed(int64_t{42});
    m.due = 123456789;
    m.on_event_time = true;
    m.sequence = 7;
    m.token = "tok";
    m.event_time = 99;
    CHECK(state::deserialize<delayed_message>(state::serialize(m)) == m);

    dead_letter d{addr("n", "t", "i"), std::nullopt, make_typed(true), "why"};
    auto tv = make_typed(d);
    CHECK(tv.type_name == "sluice.types/dead-letter");
    CHECK(typed_as<dead_letter>(tv) == d);
    CHECK_FALSE(typed_as<dead_letter>(typed_value{tv.type_name, "garbage"}));

    async_invocation inv{addr("c", "d", "e"), make_typed(1.5), 3};
    CHECK(state::deserialize<async_invocation>(state::serialize(inv)) == inv);
  }

  TEST_CASE("truncated or corrupt envelope bytes are refused with an error") {
    auto bytes = state::serialize(envelope::to_function(addr("a", "b", "c"), make_typed(true)));
    CHECK_THROWS_AS((void)state::deserialize<envelope>(bytes.substr(0, bytes.size() - 1)),
                    state::serialization_error);
    auto newer = bytes;
    newer[0] = 9; // a version this build does not know
    CHECK_THROWS_AS((void)state::deserialize<envelope>(newer), state::serialization_error);
  }

  TEST_CASE("an address's key hash is stable and matches Java's Objects.hash") {
    // Objects.hash("ns", "fn", "id") in Java.
    auto h = state::key_hash<address>{}(addr("ns", "fn", "id"));
    int32_t expected = 1;
    for (const char* s : {"ns", "fn", "id"}) {
      int32_t sh = 0;
      for (const char* p = s; *p; ++p)
        sh = static_cast<int32_t>(31u * static_cast<uint32_t>(sh) + static_cast<unsigned char>(*p));
      expected =
          static_cast<int32_t>(31u * static_cast<uint32_t>(expected) + static_cast<uint32_t>(sh));
    }
    CHECK(h == expected);
    CHECK(state::key_hash<address>{}(addr("ns", "fn", "id2")) != h);
  }

  TEST_CASE("messages give their payload as the declared type or say why not") {
    message m{addr("a", "b", "c"), std::nullopt, make_typed(int32_t{3}), std::nullopt};
    CHECK(m.is<int32_t>());
    CHECK_FALSE(m.is<std::string>());
    CHECK(m.as<int32_t>() == 3);
    CHECK(m.try_as<std::string>() == std::nullopt);
    CHECK_THROWS_WITH_AS((void)m.as<std::string>(),
                         "message to a/b/c has type 'io.statefun.types/int', not "
                         "'io.statefun.types/string'",
                         function_error);
  }

} // TEST_SUITE

TEST_SUITE("functions.registry") {

  TEST_CASE("binding checks types, functions and value specs") {
    function_registry r;
    auto noop = [](context&, const message&) {};
    CHECK(!r.bind({"ns", "f"}, noop, {value_spec::of<int32_t>("a"), value_spec::of<bool>("b")}));
    CHECK(error_text(r.bind({"ns", "f"}, noop)) == "function ns/f is bound twice");
    CHECK(error_text(r.bind({"", "f"}, noop)).find("needs a namespace and a name") !=
          std::string::npos);
    CHECK(error_text(r.bind({"ns", "g"}, nullptr)) == "function ns/g is bound to no function");
    CHECK(error_text(r.bind({"ns", "g"}, noop,
                            {value_spec::of<int32_t>("a"), value_spec::of<int32_t>("a")})) ==
          "function ns/g: persisted value 'a' is declared twice");
    CHECK(error_text(r.bind({"ns", "g"}, noop, {value_spec{"a", "", {}}})) ==
          "function ns/g: persisted value 'a' needs a typename");
    CHECK(error_text(r.bind({"ns", "g"}, noop,
                            {value_spec::of<int32_t>("a", expiration::after_write(-1ms))})) ==
          "function ns/g: persisted value 'a' has a negative TTL");
    CHECK(error_text(r.bind_namespace("", [](const function_type&) {
            return std::optional<function_binding>{};
          })) == "a namespace binding needs a namespace");
  }

  TEST_CASE("resolving prefers exact bindings, then the namespace provider") {
    function_registry r;
    REQUIRE(!r.bind({"ns", "exact"}, [](context&, const message&) {}));
    int asked = 0;
    REQUIRE(!r.bind_namespace("ns", [&](const function_type& t) -> std::optional<function_binding> {
      ++asked;
      if (t.name == "bad") {
        function_binding b; // no function
        return b;
      }
      if (t.name == "throws")
        throw std::runtime_error("provider broke");
      function_binding b;
      b.handler = [](context&, const message&) {};
      b.values = {value_spec::of<int32_t>("v")};
      return b;
    }));
    auto exact = r.resolve({"ns", "exact"});
    REQUIRE(exact);
    CHECK(exact->values.empty());
    CHECK(asked == 0);
    auto dynamic = r.resolve({"ns", "other"});
    REQUIRE(dynamic);
    CHECK(dynamic->type == function_type{"ns", "other"});
    CHECK(dynamic->values.size() == 1);
    CHECK(error_text(r.resolve({"ns", "bad"}).error()) ==
          "the provider of namespace ns gave no function for type ns/bad");
    CHECK(error_text(r.resolve({"ns", "throws"}).error()).find("provider broke") !=
          std::string::npos);
    CHECK(error_text(r.resolve({"other", "x"}).error()) == "no function is bound to type other/x");
  }

} // TEST_SUITE
