#include "sluice/remote/sdk/function_server.hpp"

#include "sluice/remote/invocation_codec.hpp"
#include "sluice/remote/remote_function_client.hpp"

#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

using namespace sluice::functions;
using namespace sluice::remote;
using namespace sluice::remote::sdk;
using std::chrono::milliseconds;

namespace {

// example/counter: counts messages in `count`, remembers the last string in
// `last`, forgets everything on "reset", and on "fail" throws.
std::shared_ptr<function_registry> counter_registry() {
  auto reg = std::make_shared<function_registry>();
  reg->bind({"example", "counter"},
            {sdk::value<int32_t>("count", expire_after_invoke(milliseconds{86400000})),
             sdk::value<std::string>("last")},
            [](context& ctx, const message& msg) {
              auto text = msg.as<std::string>();
              if (text == "fail")
                throw std::runtime_error("asked to fail");
              if (text == "reset") {
                ctx.storage().remove("count");
                ctx.storage().remove("last");
                return;
              }
              auto n = ctx.storage().get<int32_t>("count").value_or(0) + 1;
              ctx.storage().set("count", n);
              ctx.storage().set("last", text);
              if (ctx.caller())
                ctx.send(*ctx.caller(), make_typed(n));
              ctx.cancel_delayed("tick-" + ctx.self().id);
              ctx.send_after(milliseconds{1000}, ctx.self(), make_typed(std::string{"tick"}),
                             "tick-" + ctx.self().id);
              ctx.send_egress({"example", "out"},
                              make_kafka_record("counts", ctx.self().id, std::to_string(n)));
            });
  reg->bind({"example", "stateless"}, {}, [](context& ctx, const message& msg) {
    ctx.send_egress({"example", "echo"}, msg.raw());
  });
  return reg;
}

invocation_request counter_request(std::vector<std::string> texts) {
  invocation_request req;
  req.target = address{{"example", "counter"}, "a"};
  for (auto& t : texts)
    req.invocations.push_back({std::nullopt, make_typed(t)});
  return req;
}

invocation_outcome handle(const function_registry& reg, const invocation_request& req) {
  auto bytes = encode_request(req);
  REQUIRE(bytes);
  auto reply = reg.handle(*bytes);
  REQUIRE_MESSAGE(reply, describe(reply.error()));
  auto out = decode_response(*reply, req);
  REQUIRE_MESSAGE(out, describe(out.error()));
  return *out;
}

} // namespace

TEST_SUITE("remote.sdk") {

  TEST_CASE("missing declared state is answered with every missing spec") {
    auto reg = counter_registry();
    auto out = handle(*reg, counter_request({"x"}));
    REQUIRE(std::holds_alternative<missing_state>(out));
    auto& specs = std::get<missing_state>(out).specs;
    REQUIRE(specs.size() == 2);
    CHECK(specs[0] == value_spec{"count",
                                 "io.statefun.types/int",
                                 {expiration_mode::after_invoke, milliseconds{86400000}}});
    CHECK(specs[1] == value_spec{"last", "io.statefun.types/string", {}});
    // Only the absent name is missing.
    auto req = counter_request({"x"});
    req.state.push_back({"count", "io.statefun.types/int", {}});
    out = handle(*reg, req);
    REQUIRE(std::holds_alternative<missing_state>(out));
    CHECK(std::get<missing_state>(out).specs.size() == 1);
  }

  TEST_CASE("a batch runs in order and answers one mutation per changed value") {
    auto reg = counter_registry();
    auto req = counter_request({"x", "y", "z"});
    req.state.push_back({"count", "io.statefun.types/int", value_codec<int32_t>::encode(1)});
    req.state.push_back({"last", "io.statefun.types/string", {}});
    req.invocations[1].caller = address{{"example", "caller"}, "c"};
    auto out = handle(*reg, req);
    REQUIRE(std::holds_alternative<invocation_result>(out));
    auto& r = std::get<invocation_result>(out);
    REQUIRE(r.mutations.size() == 2);
    CHECK(r.mutations[0].name == "count");
    CHECK(typed_as<int32_t>(r.mutations[0].value) == 4);
    CHECK(typed_as<std::string>(r.mutations[1].value) == "z");
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].target.to_string() == "example/caller/c");
    CHECK(typed_as<int32_t>(r.messages[0].argument) == 3);
    REQUIRE(r.delayed.size() == 6);
    CHECK(r.delayed[0].is_cancellation);
    CHECK(r.delayed[0].cancellation_token == "tick-a");
    CHECK_FALSE(r.delayed[1].is_cancellation);
    CHECK(r.delayed[1].delay == milliseconds{1000});
    REQUIRE(r.egress.size() == 3);
    auto rec = parse_kafka_record(r.egress[2].argument);
    REQUIRE(rec);
    CHECK(rec->value == "4");
  }

  TEST_CASE("removed values are DELETEs and untouched values send nothing") {
    auto reg = counter_registry();
    auto req = counter_request({"reset"});
    req.state.push_back({"count", "io.statefun.types/int", value_codec<int32_t>::encode(5)});
    req.state.push_back({"last", "io.statefun.types/string", {}});
    auto out = handle(*reg, req);
    auto& r = std::get<invocation_result>(out);
    REQUIRE(r.mutations.size() == 2);
    CHECK(r.mutations[0].what == state_mutation::kind::remove);
    CHECK(r.mutations[1].what == state_mutation::kind::remove);
    invocation_request none;
    none.target = address{{"example", "stateless"}, "s"};
    none.invocations.push_back({std::nullopt, make_typed(int32_t{1})});
    out = handle(*reg, none);
    CHECK(std::get<invocation_result>(out).mutations.empty());
    CHECK(std::get<invocation_result>(out).egress.size() == 1);
  }

  TEST_CASE("SDK errors: unknown function, bad bytes, a throwing handler, a "
            "state of the wrong type") {
    auto reg = counter_registry();
    invocation_request req;
    req.target = address{{"example", "nobody"}, "a"};
    req.invocations.push_back({std::nullopt, make_typed(int32_t{1})});
    auto r = reg->handle(*encode_request(req));
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), remote_errc::unknown_function));
    r = reg->handle("\xff\xff");
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), remote_errc::invalid_request));
    req = counter_request({"fail"});
    req.state.push_back({"count", "io.statefun.types/int", {}});
    req.state.push_back({"last", "io.statefun.types/string", {}});
    r = reg->handle(*encode_request(req));
    REQUIRE_FALSE(r);
    CHECK(is(r.error(), remote_errc::function_failed));
    CHECK(describe(r.error()).find("asked to fail") != std::string::npos);
    req = counter_request({"x"});
    req.state.push_back(
        {"count", "io.statefun.types/string", value_codec<std::string>::encode("oops")});
    req.state.push_back({"last", "io.statefun.types/string", {}});
    r = reg->handle(*encode_request(req));
    REQUIRE_FALSE(r);
    CHECK(describe(r.error()).find("declared as 'io.statefun.types/int'") != std::string::npos);
  }

  TEST_CASE("the client and the SDK server complete the state handshake over "
            "HTTP") {
    auto server = function_server::start(counter_registry());
    REQUIRE(server);
    CHECK((*server)->port() != 0);
    remote_function_client client;
    http_endpoint_spec ep;
    ep.url =
        *parse_url("http://127.0.0.1:" + std::to_string((*server)->port()) + "/{function.name}");
    std::mutex mtx;
    std::condition_variable cv;
    std::optional<caf::expected<invocation_outcome>> got;
    auto call = [&](invocation_request req) {
      {
        std::lock_guard<std::mutex> lock{mtx};
        got.reset();
      }
      client.invoke(ep, std::move(req), [&](caf::expected<invocation_outcome> r) {
        std::lock_guard<std::mutex> lock{mtx};
        got = std::move(r);
        cv.notify_all();
      });
      std::unique_lock<std::mutex> lock{mtx};
      REQUIRE(cv.wait_for(lock, std::chrono::seconds{10}, [&] { return got.has_value(); }));
      REQUIRE_MESSAGE(*got, describe(got->error()));
      return **got;
    };
    auto req = counter_request({"x"});
    auto first = call(req);
    REQUIRE(std::holds_alternative<missing_state>(first));
    for (auto& spec : std::get<missing_state>(first).specs)
      req.state.push_back({spec.name, spec.type_name, {}});
    auto second = call(req);
    REQUIRE(std::holds_alternative<invocation_result>(second));
    CHECK(typed_as<int32_t>(std::get<invocation_result>(second).mutations[0].value) == 1);
    // A throwing handler is HTTP 500: retried, then the call fails.
    ep.transport.max_attempts = 2;
    ep.transport.initial_backoff = milliseconds{1};
    auto fail_req = counter_request({"fail"});
    fail_req.state = req.state;
    {
      std::lock_guard<std::mutex> lock{mtx};
      got.reset();
    }
    client.invoke(ep, fail_req, [&](caf::expected<invocation_outcome> r) {
      std::lock_guard<std::mutex> lock{mtx};
      got = std::move(r);
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lock{mtx};
    REQUIRE(cv.wait_for(lock, std::chrono::seconds{10}, [&] { return got.has_value(); }));
    REQUIRE_FALSE(*got);
    CHECK(describe(got->error()).find("HTTP 500") != std::string::npos);
    CHECK(describe(got->error()).find("asked to fail") != std::string::npos);
    CHECK((*server)->requests_served() == 4);
  }

  TEST_CASE("a server on a taken port fails to start with the reason") {
    auto first = function_server::start(counter_registry());
    REQUIRE(first);
    server_config cfg;
    cfg.port = (*first)->port();
    auto second = function_server::start(counter_registry(), cfg);
    REQUIRE_FALSE(second);
    CHECK(is(second.error(), remote_errc::server_failed));
    CHECK(describe(second.error()).find(std::to_string(cfg.port)) != std::string::npos);
  }
}
