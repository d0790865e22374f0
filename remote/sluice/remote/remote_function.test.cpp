#include "sluice/remote/remote_function.hpp"

#include "sluice/functions/dispatcher_test_util.hpp"
#include "sluice/remote/internal/test_http_server.hpp"
#include "sluice/remote/invocation_codec.hpp"
#include "sluice/remote/sdk/function_server.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

using namespace sluice::functions;
using namespace std::chrono_literals;
using sluice::functions::testing::addr;
using sluice::functions::testing::core_fixture;
using sluice::remote::bind_endpoints;
using sluice::remote::describe;
using sluice::remote::module;
using sluice::remote::remote_function_client;
using sluice::remote::internal::closed_port;
using sluice::remote::internal::scripted_reply;
using sluice::remote::internal::seen_request;
using sluice::remote::internal::test_http_server;
namespace sdk = sluice::remote::sdk;
namespace state = sluice::state;

namespace {

// One endpoint declaration: fast retries, 3 attempts, a short call timeout.
std::string endpoint_yaml(const std::string& functions, uint16_t port, uint32_t max_batch = 1000,
                          const std::string& call = "2s") {
  return "kind: io.statefun.endpoints.v2/http\nspec:\n  functions: " + functions +
         "\n  urlPathTemplate: http://127.0.0.1:" + std::to_string(port) +
         "/statefun/{function.name}\n  maxNumBatchRequests: " + std::to_string(max_batch) +
         "\n  transport:\n    call: " + call +
         "\n    connect: 1s\n    max_attempts: 3\n    initial_backoff: 1ms\n"
         "    max_backoff: 10ms\n";
}

module parse(const std::string& yaml) {
  auto m = sluice::remote::parse_module(yaml, "module.yaml");
  REQUIRE_MESSAGE(m, describe(m.error()));
  return std::move(*m);
}

// A registry with the module's endpoints bound over a fresh client.
std::shared_ptr<function_registry> remote_registry(const module& m) {
  auto reg = std::make_shared<function_registry>();
  auto err = bind_endpoints(*reg, m, std::make_shared<remote_function_client>());
  REQUIRE_MESSAGE(!err, describe(err));
  return reg;
}

// Whether `a` has no batch in flight (and so nothing waiting either).
bool idle(core_fixture& f, const address& a) {
  f.backend->set_current_key(a);
  return f.core->status().in_flight == 0;
}

std::optional<int32_t> stored_int(core_fixture& f, const address& a, const std::string& name) {
  auto v = f.stored(a, name);
  if (!v)
    return std::nullopt;
  return typed_as<int32_t>(typed_value{v->type_name, v->bytes});
}

std::string text_of(const typed_value& v) {
  auto s = typed_as<std::string>(v);
  return s ? *s : "<" + v.type_name + ">";
}

// example/counter on the C++ SDK: counts messages in `count` and tells
// local/audit and the egress example/out; "reset" deletes the count, "later"
// schedules a "tick" to itself under token "tick", "cancel" cancels it, and
// a "tick" goes to egress example/ticks.
std::shared_ptr<sdk::function_registry> counter_functions() {
  auto reg = std::make_shared<sdk::function_registry>();
  reg->bind({"example", "counter"}, {sdk::value<int32_t>("count")},
            [](sdk::context& ctx, const sdk::message& msg) {
              auto text = msg.as<std::string>();
              if (text == "reset") {
                ctx.storage().remove("count");
              } else if (text == "later") {
                ctx.send_after(1000ms, ctx.self(), make_typed(std::string{"tick"}), "tick");
              } else if (text == "cancel") {
                ctx.cancel_delayed("tick");
              } else if (text == "tick") {
                ctx.send_egress({"example", "ticks"}, make_typed(ctx.self().id));
              } else {
                auto n = ctx.storage().get<int32_t>("count").value_or(0) + 1;
                ctx.storage().set("count", n);
                ctx.send(sdk::address{{"local", "audit"}, ctx.self().id}, make_typed(n));
                ctx.send_egress({"example", "out"}, make_typed(text + "#" + std::to_string(n)));
              }
            });
  return reg;
}

// A gate a function handler waits at until the test opens it (bounded, so
// a failing test cannot hang the server).
class gate {
public:
  void wait_open() {
    std::unique_lock<std::mutex> lock{mtx_};
    entered_ = true;
    cv_.notify_all();
    cv_.wait_for(lock, 20s, [&] { return open_; });
  }
  bool wait_entered() {
    std::unique_lock<std::mutex> lock{mtx_};
    return cv_.wait_for(lock, 20s, [&] { return entered_; });
  }
  void open() {
    std::lock_guard<std::mutex> lock{mtx_};
    open_ = true;
    cv_.notify_all();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

// The scripted function behind the failure tests (example/*): registers
// `seen` through the missing-state handshake, then adds the batch size to
// it. Requests for the address with id "bad" get `failure` instead, unless
// it is "ok".
struct scripted_function {
  std::atomic<const char*> failure{"ok"};
  test_http_server server{[this](const seen_request& r, int) { return answer(r); }};

  scripted_reply answer(const seen_request& r) {
    scripted_reply reply;
    auto req = sluice::remote::decode_request(r.body);
    if (!req) {
      reply.status = 400;
      return reply;
    }
    const std::string mode = req->target.id == "bad" ? failure.load() : "ok";
    std::optional<int32_t> seen;
    bool registered = false;
    for (const auto& s : req->state)
      if (s.name == "seen") {
        registered = true;
        if (s.value)
          seen = typed_as<int32_t>(*s.value);
      }
    if (!registered) {
      reply.body = sluice::remote::encode_response(
          invocation_outcome{missing_state{{value_spec::of<int32_t>("seen")}}});
      return reply;
    }
    if (mode == "500") {
      reply.status = 500;
      reply.content_type = "text/plain";
      reply.body = "boom";
    } else if (mode == "hang") {
      reply.what = scripted_reply::kind::hang;
    } else if (mode == "close") {
      reply.what = scripted_reply::kind::close;
    } else if (mode == "garbage") {
      reply.body = "\x0a\x7fgarbage"; // a field longer than the body
    } else {
      invocation_result result;
      auto n = seen.value_or(0) + static_cast<int32_t>(req->invocations.size());
      result.mutations.push_back({state_mutation::kind::modify, "seen", make_typed(n)});
      if (mode == "unregistered")
        result.mutations.push_back({state_mutation::kind::modify, "other", make_typed(n)});
      reply.body = sluice::remote::encode_response(invocation_outcome{result});
    }
    return reply;
  }

  // How many requests carried `argument` to the address with id `id`.
  size_t attempts(const std::string& id, const std::string& argument) const {
    size_t n = 0;
    for (const auto& r : server.requests()) {
      auto req = sluice::remote::decode_request(r.body);
      if (req && req->target.id == id)
        for (const auto& inv : req->invocations)
          if (text_of(inv.argument) == argument)
            ++n;
    }
    return n;
  }

  std::string url(const std::string& function_name) const {
    return "http://127.0.0.1:" + std::to_string(server.port()) + "/statefun/" + function_name;
  }
};

} // namespace

TEST_SUITE("remote.remote_function") {

  TEST_CASE("a remote function on the C++ SDK registers its state, keeps it across invocations, "
            "deletes it, and sends messages, delayed messages and egress records") {
    for (auto kind : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
      CAPTURE(state::to_string(kind));
      auto server = sdk::function_server::start(counter_functions());
      REQUIRE_MESSAGE(server, describe(server.error()));
      auto reg = remote_registry(parse(endpoint_yaml("example/*", (*server)->port())));
      // An embedded function next to the remote one, in the same registry.
      REQUIRE(!reg->bind(
          {"local", "audit"},
          [](context& ctx, const message& m) { ctx.storage().set("last", m.as<int32_t>()); },
          {value_spec::of<int32_t>("last")}));
      core_fixture f(reg, kind);
      auto a = addr("example", "counter", "a");

      // The first batch: the function asks for `count`, the dispatcher
      // registers it and sends the same batch again.
      f.send(a, make_typed(std::string("hello")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      CHECK((*server)->requests_served() == 2);
      CHECK(stored_int(f, a, "count") == 1);
      auto out = f.take();
      REQUIRE(out.size() == 2);
      CHECK(out[0] ==
            envelope::to_function(addr("local", "audit", "a"), make_typed(int32_t{1}), a));
      CHECK(out[1] ==
            envelope::to_egress(egress_id{"example", "out"}, make_typed(std::string("hello#1"))));
      // The message to another function runs it (the feedback edge, by hand).
      f.send(out[0]);
      CHECK(stored_int(f, addr("local", "audit", "a"), "last") == 1);

      // State carries over to the next invocation, without a new handshake.
      f.send(a, make_typed(std::string("again")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      CHECK((*server)->requests_served() == 3);
      CHECK(stored_int(f, a, "count") == 2);
      f.take();

      // A DELETE mutation removes the value; counting starts over.
      f.send(a, make_typed(std::string("reset")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      CHECK_FALSE(f.stored(a, "count"));
      f.send(a, make_typed(std::string("x")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      CHECK(stored_int(f, a, "count") == 1);
      f.take();

      // A delayed message under a token, cancelled.
      f.send(a, make_typed(std::string("later")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      f.backend->set_current_key(a);
      REQUIRE(f.core->pending_delayed().size() == 1);
      CHECK(f.core->pending_delayed()[0].token == "tick");
      f.send(a, make_typed(std::string("cancel")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      f.backend->set_current_key(a);
      CHECK(f.core->pending_delayed().empty());
      f.advance_to(f.now + 1000);
      CHECK(f.take().empty());

      // Scheduled again, it is delivered when due, and its egress record out.
      f.send(a, make_typed(std::string("later")));
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      f.advance_to(f.now + 1000);
      out = f.take();
      REQUIRE(out.size() == 1);
      CHECK(out[0] == envelope::to_function(a, make_typed(std::string("tick")), a));
      f.send(out[0]);
      REQUIRE(f.complete_until([&] { return idle(f, a); }));
      out = f.take();
      REQUIRE(out.size() == 1);
      CHECK(out[0] ==
            envelope::to_egress(egress_id{"example", "ticks"}, make_typed(std::string("a"))));
      CHECK(core_fixture::dead_letters(out).empty());
    }
  }

  TEST_CASE("messages that arrive during a slow call go out as the next batches, in order, "
            "bounded by maxNumBatchRequests, and a full backlog reports backpressure") {
    gate slow;
    std::mutex mtx;
    std::vector<std::string> received;
    auto functions = std::make_shared<sdk::function_registry>();
    functions->bind({"example", "log"}, {}, [&](sdk::context&, const sdk::message& msg) {
      auto text = msg.as<std::string>();
      {
        std::lock_guard<std::mutex> lock{mtx};
        received.push_back(text);
      }
      if (text == "block")
        slow.wait_open();
    });
    sdk::server_config cfg;
    cfg.threads = 2; // one stays free while the slow call blocks the other
    auto server = sdk::function_server::start(functions, cfg);
    REQUIRE_MESSAGE(server, describe(server.error()));
    auto reg = remote_registry(parse(endpoint_yaml("example/log", (*server)->port(), 3)));
    core_fixture f(reg, state::backend_kind::heap);
    auto a = addr("example", "log", "a");
    auto b = addr("example", "log", "b");

    CHECK(f.send(a, make_typed(std::string("block"))) == dispatch_status::accepted);
    REQUIRE(slow.wait_entered());
    CHECK(f.send(a, make_typed(std::string("m1"))) == dispatch_status::accepted);
    CHECK(f.send(a, make_typed(std::string("m2"))) == dispatch_status::accepted);
    CHECK(f.send(a, make_typed(std::string("m3"))) == dispatch_status::backpressure);
    CHECK(f.send(a, make_typed(std::string("m4"))) == dispatch_status::backpressure);
    CHECK(f.send(a, make_typed(std::string("m5"))) == dispatch_status::backpressure);
    CHECK(f.core->backpressured());
    f.backend->set_current_key(a);
    CHECK(f.core->status().backlog == 5);

    // Another address is not held up by the slow one.
    f.send(b, make_typed(std::string("b1")));
    REQUIRE(f.complete_until([&] { return idle(f, b); }));
    CHECK((*server)->requests_served() == 2);

    slow.open();
    REQUIRE(f.complete_until([&] {
      f.backend->set_current_key(a);
      return f.core->status().in_flight == 3;
    }));
    CHECK(f.core->status().backlog == 2);
    CHECK_FALSE(f.core->backpressured());
    REQUIRE(f.complete_until([&] { return idle(f, a); }));
    // block, then [m1 m2 m3], then [m4 m5]; and b1.
    CHECK((*server)->requests_served() == 4);
    std::vector<std::string> of_a;
    {
      std::lock_guard<std::mutex> lock{mtx};
      for (auto& t : received)
        if (t != "b1")
          of_a.push_back(t);
    }
    CHECK(of_a == std::vector<std::string>{"block", "m1", "m2", "m3", "m4", "m5"});
    CHECK(core_fixture::dead_letters(f.take()).empty());
  }

  TEST_CASE("a failing remote call dead-letters its batch with a reason naming the function, the "
            "address and the URL, keeps the address's state, and holds up no other address") {
    struct failure_case {
      const char* mode;
      const char* reason;
      size_t attempts;
    };
    for (auto c : {failure_case{"500", "HTTP 500", 3},
                   failure_case{"hang", "no reply within the call timeout", 1},
                   failure_case{"close", "gave up after 3 attempt(s)", 3},
                   failure_case{"garbage", "not a FromFunction message", 1},
                   failure_case{"unregistered", "'other', which is not registered", 1}}) {
      std::string mode = c.mode;
      CAPTURE(mode);
      scripted_function fn;
      auto reg =
          remote_registry(parse(endpoint_yaml("example/*", fn.server.port(), 1000, "500ms")));
      core_fixture f(reg, state::backend_kind::heap);
      auto bad = addr("example", "greeter", "bad");
      auto good = addr("example", "greeter", "good");
      f.send(bad, make_typed(std::string("1")));
      REQUIRE(f.complete_until([&] { return idle(f, bad); }));
      REQUIRE(stored_int(f, bad, "seen") == 1);

      fn.failure = c.mode;
      f.send(bad, make_typed(std::string("2")));
      f.send(good, make_typed(std::string("g")));
      REQUIRE(f.complete_until([&] { return idle(f, bad) && idle(f, good); }));
      auto dead = core_fixture::dead_letters(f.take());
      REQUIRE(dead.size() == 1);
      CHECK(dead[0].target == bad);
      CHECK(dead[0].payload == make_typed(std::string("2")));
      INFO(dead[0].reason);
      CHECK(dead[0].reason.find("function example/greeter at address example/greeter/bad "
                                "failed: ") == 0);
      CHECK(dead[0].reason.find(fn.url("greeter")) != std::string::npos);
      CHECK(dead[0].reason.find(c.reason) != std::string::npos);
      CHECK(fn.attempts("bad", "2") == c.attempts);
      // The failed batch changed nothing; the other address went on.
      CHECK(stored_int(f, bad, "seen") == 1);
      CHECK(stored_int(f, good, "seen") == 1);

      // The address works again once its function does.
      fn.failure = "ok";
      f.send(bad, make_typed(std::string("3")));
      REQUIRE(f.complete_until([&] { return idle(f, bad); }));
      CHECK(stored_int(f, bad, "seen") == 2);
      CHECK(core_fixture::dead_letters(f.take()).empty());
    }
  }

  TEST_CASE("an endpoint that is down dead-letters its messages with the connect error, and the "
            "endpoints that are up keep working") {
    scripted_function up;
    auto down_port = closed_port();
    auto reg = remote_registry(parse(endpoint_yaml("example/down", down_port) + "---\n" +
                                     endpoint_yaml("example/*", up.server.port())));
    core_fixture f(reg, state::backend_kind::heap);
    auto a = addr("example", "down", "a");
    auto b = addr("example", "greeter", "b");
    f.send(a, make_typed(std::string("1")));
    f.send(b, make_typed(std::string("1")));
    REQUIRE(f.complete_until([&] { return idle(f, a) && idle(f, b); }));
    auto dead = core_fixture::dead_letters(f.take());
    REQUIRE(dead.size() == 1);
    INFO(dead[0].reason);
    CHECK(dead[0].target == a);
    CHECK(dead[0].reason.find("http://127.0.0.1:" + std::to_string(down_port) + "/statefun/down") !=
          std::string::npos);
    CHECK(dead[0].reason.find("connect to 127.0.0.1:" + std::to_string(down_port)) !=
          std::string::npos);
    CHECK_FALSE(f.stored(a, "seen"));
    CHECK(stored_int(f, b, "seen") == 1);
  }

  TEST_CASE(
      "bind_endpoints binds exactly the declared endpoints, an exact one before a namespace") {
    scripted_function wide;
    scripted_function exact;
    auto m = parse(endpoint_yaml("example/*", wide.server.port()) + "---\n" +
                   endpoint_yaml("example/special", exact.server.port(), 7));
    auto reg = remote_registry(m);
    auto special = reg->resolve({"example", "special"});
    REQUIRE(special);
    CHECK(special->max_batch_requests == 7);
    auto other = reg->resolve({"example", "other"});
    REQUIRE(other);
    CHECK(other->max_batch_requests == 1000);
    CHECK_FALSE(reg->resolve({"elsewhere", "f"}));

    core_fixture f(reg, state::backend_kind::heap);
    f.send(addr("example", "special", "x"), make_typed(std::string("1")));
    f.send(addr("example", "other", "x"), make_typed(std::string("1")));
    f.send(addr("elsewhere", "f", "x"), make_typed(std::string("1")));
    REQUIRE(f.complete_until([&] {
      return idle(f, addr("example", "special", "x")) && idle(f, addr("example", "other", "x"));
    }));
    CHECK(exact.server.requests().size() == 2); // handshake and batch
    CHECK(wide.server.requests().size() == 2);
    CHECK(wide.attempts("x", "1") == 2);
    auto dead = core_fixture::dead_letters(f.take());
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].reason.find("no function is bound to type elsewhere/f") != std::string::npos);
  }

  TEST_CASE("bind_endpoints refuses a null client and a type or namespace bound already") {
    auto m = parse(endpoint_yaml("example/*", 1) + "---\n" + endpoint_yaml("example/greeter", 1));
    function_registry reg;
    auto err = bind_endpoints(reg, m, nullptr);
    REQUIRE(err);
    CHECK(describe(err).find("without a client") != std::string::npos);

    function_registry taken;
    REQUIRE(!taken.bind({"example", "greeter"}, [](context&, const message&) {}));
    err = bind_endpoints(taken, m, std::make_shared<remote_function_client>());
    REQUIRE(err);
    CHECK(describe(err).find("endpoint for example/greeter (module.yaml:") != std::string::npos);
    CHECK(describe(err).find("bound twice") != std::string::npos);

    function_registry ns_taken;
    REQUIRE(!ns_taken.bind_namespace(
        "example", [](const function_type&) { return std::optional<function_binding>{}; }));
    err = bind_endpoints(ns_taken, m, std::make_shared<remote_function_client>());
    REQUIRE(err);
    CHECK(describe(err).find("endpoint for example/*") != std::string::npos);
  }
}
