#include "sluice/functions/dispatcher.hpp"
#include "sluice/functions/dispatcher_test_util.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace sluice::functions;
using namespace sluice::functions::testing;
using namespace std::chrono_literals;
namespace state = sluice::state;

namespace {

const function_type greeter{"example", "greeter"};
const function_type counter_type{"example", "counter"};
const egress_id out_egress{"example", "out"};

std::vector<state::backend_kind> both_backends() {
  return {state::backend_kind::heap, state::backend_kind::rocksdb};
}

/// Appends every message's string to "log" and sends the log to egress.
std::shared_ptr<function_registry> logging_registry() {
  auto r = std::make_shared<function_registry>();
  auto err = r->bind(greeter,
                     [](context& ctx, const message& m) {
                       auto log = ctx.storage().get<std::string>("log").value_or("");
                       log += m.as<std::string>();
                       ctx.storage().set("log", log);
                       ctx.send_egress(out_egress, log);
                     },
                     {value_spec::of<std::string>("log")});
  REQUIRE(!err);
  err = r->bind(counter_type,
                [](context& ctx, const message&) {
                  auto n = ctx.storage().get<int64_t>("n").value_or(0) + 1;
                  ctx.storage().set("n", n);
                  ctx.send_egress(out_egress, ctx.self().id + "=" + std::to_string(n));
                },
                {value_spec::of<int64_t>("n")});
  REQUIRE(!err);
  return r;
}

std::vector<std::string> egress_strings(const std::vector<envelope>& envs) {
  std::vector<std::string> out;
  for (const auto& e : envs)
    if (e.is_egress() && e.egress == out_egress)
      out.push_back(*typed_as<std::string>(e.payload));
  return out;
}

} // namespace

TEST_SUITE("functions.dispatcher") {

  TEST_CASE("messages to one address are handled one at a time in arrival order") {
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      core_fixture f(logging_registry(), kind);
      auto a = addr("example", "greeter", "a");
      auto b = addr("example", "greeter", "b");
      for (std::string s : {"1", "2", "3"}) {
        f.send(a, make_typed(s));
        f.send(b, make_typed("x" + s));
      }
      CHECK(egress_strings(f.take()) ==
            std::vector<std::string>{"1", "x1", "12", "x1x2", "123", "x1x2x3"});
    }
  }

  TEST_CASE("state persists across invocations, and each address has its own") {
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      core_fixture f(logging_registry(), kind);
      auto a = addr("example", "counter", "a");
      auto b = addr("example", "counter", "b");
      f.send(a, make_typed(std::string("go")));
      f.send(a, make_typed(std::string("go")));
      f.send(b, make_typed(std::string("go")));
      f.send(a, make_typed(std::string("go")));
      CHECK(egress_strings(f.take()) == std::vector<std::string>{"a=1", "a=2", "b=1", "a=3"});
      auto sa = f.stored(a, "n");
      REQUIRE(sa);
      CHECK(sa->type_name == "io.statefun.types/long");
      CHECK(typed_as<int64_t>(typed_value{sa->type_name, sa->bytes}) == 3);
      // Another function type's address with the same id shares nothing.
      CHECK_FALSE(f.stored(addr("example", "greeter", "a"), "n"));
    }
  }

  TEST_CASE("a value that expires after write is gone once its TTL passed since the last write") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter,
                     [](context& ctx, const message& m) {
                       auto cmd = m.as<std::string>();
                       if (cmd == "write")
                         ctx.storage().set<std::string>("v", "value");
                       auto v = ctx.storage().get<std::string>("v");
                       ctx.send_egress(out_egress, v ? *v : std::string("none"));
                     },
                     {value_spec::of<std::string>("v", expiration::after_write(100ms))}));
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      core_fixture f(r, kind);
      auto a = addr("example", "greeter", "a");
      f.send(a, make_typed(std::string("write")));
      f.advance_to(f.now + 60);
      f.send(a, make_typed(std::string("read"))); // a read does not extend it
      f.advance_to(f.now + 39);
      f.send(a, make_typed(std::string("read")));
      f.advance_to(f.now + 1);
      f.send(a, make_typed(std::string("read")));
      CHECK(egress_strings(f.take()) ==
            std::vector<std::string>{"value", "value", "value", "none"});
      CHECK_FALSE(f.stored(a, "v")); // dropped when found expired
    }
  }

  TEST_CASE("a value that expires after invoke lives while the address is invoked") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter,
                     [](context& ctx, const message& m) {
                       auto cmd = m.as<std::string>();
                       if (cmd == "write")
                         ctx.storage().set<std::string>("v", "value");
                       if (cmd == "peek") {
                         auto v = ctx.storage().get<std::string>("v");
                         ctx.send_egress(out_egress, v ? *v : std::string("none"));
                       }
                       // "noop" does not touch the value, and still keeps it alive.
                     },
                     {value_spec::of<std::string>("v", expiration::after_invoke(100ms))}));
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      core_fixture f(r, kind);
      auto a = addr("example", "greeter", "a");
      f.send(a, make_typed(std::string("write")));
      for (int i = 0; i < 5; ++i) {
        f.advance_to(f.now + 90);
        f.send(a, make_typed(std::string("noop")));
      }
      f.send(a, make_typed(std::string("peek")));
      f.advance_to(f.now + 100);
      f.send(a, make_typed(std::string("peek")));
      CHECK(egress_strings(f.take()) == std::vector<std::string>{"value", "none"});
    }
  }

  TEST_CASE("an undeclared value, a wrong type or a throwing handler is a dead letter and changes "
            "nothing") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter,
                     [](context& ctx, const message& m) {
                       ctx.storage().set<int64_t>("n", 7);
                       ctx.send_egress(out_egress, std::string("sent before the failure"));
                       ctx.send(addr("example", "greeter", "other"), std::string("hi"));
                       auto cmd = m.as<std::string>(); // an int payload fails here
                       if (cmd == "undeclared")
                         ctx.storage().set<int64_t>("missing", 1);
                       if (cmd == "wrong type")
                         ctx.storage().set<std::string>("n", "text");
                       if (cmd == "throw")
                         throw std::runtime_error("boom");
                       if (cmd == "throw empty")
                         throw std::runtime_error("");
                     },
                     {value_spec::of<int64_t>("n")}));
    core_fixture f(r, state::backend_kind::heap);
    auto a = addr("example", "greeter", "a");
    f.send(a, make_typed(std::string("undeclared")));
    f.send(a, make_typed(std::string("wrong type")));
    f.send(a, make_typed(std::string("throw")));
    f.send(a, make_typed(std::string("throw empty")));
    f.send(a, make_typed(int32_t{5}));
    auto out = f.take();
    auto dead = core_fixture::dead_letters(out);
    REQUIRE(dead.size() == 5);
    CHECK(out.size() == 5); // nothing else left: the effects were dropped
    for (const auto& d : dead) {
      CHECK(d.target == a);
      CHECK(d.reason.find("function example/greeter at address example/greeter/a") !=
            std::string::npos);
    }
    CHECK(dead[0].reason.find("no persisted value 'missing'") != std::string::npos);
    CHECK(dead[1].reason.find("declared as 'io.statefun.types/long'") != std::string::npos);
    CHECK(dead[2].reason.find("boom") != std::string::npos);
    CHECK(dead[3].reason == "function example/greeter at address example/greeter/a failed: ");
    CHECK(dead[4].reason.find("'io.statefun.types/int', not 'io.statefun.types/string'") !=
          std::string::npos);
    CHECK(dead[4].payload == make_typed(int32_t{5}));
    CHECK_FALSE(f.stored(a, "n"));
    for (const auto& e : out)
      CHECK(e.egress == dispatcher_options{}.dead_letter_egress);
  }

  TEST_CASE("messages to unbound types go to the configured dead-letter egress with the reason") {
    dispatcher_options opts;
    opts.dead_letter_egress = egress_id{"ops", "dlq"};
    core_fixture f(logging_registry(), state::backend_kind::heap, opts);
    auto to = addr("example", "nobody", "x");
    auto caller = addr("example", "greeter", "a");
    f.send(envelope::to_function(to, make_typed(std::string("hello")), caller, 42));
    auto out = f.take();
    REQUIRE(out.size() == 1);
    CHECK(out[0].egress == egress_id{"ops", "dlq"});
    CHECK(out[0].event_time == 42);
    auto d = core_fixture::dead_letters(out);
    REQUIRE(d.size() == 1);
    CHECK(d[0].target == to);
    CHECK(d[0].caller == caller);
    CHECK(d[0].payload == make_typed(std::string("hello")));
    CHECK(d[0].reason == "no function is bound to type example/nobody (message to "
                         "example/nobody/x)");
  }

  TEST_CASE("functions send to functions and egresses, and egress envelopes pass through") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter, [](context& ctx, const message& m) {
      ctx.send(addr("example", "counter", m.as<std::string>()), std::string("from greeter"));
      ctx.send_egress(out_egress, std::string("greeted ") + m.as<std::string>());
    }));
    core_fixture f(r, state::backend_kind::heap);
    auto a = addr("example", "greeter", "a");
    f.send(envelope::to_function(a, make_typed(std::string("bob")), std::nullopt, 7));
    f.send(envelope::to_egress(egress_id{"x", "y"}, make_typed(int32_t{1})));
    auto out = f.take();
    REQUIRE(out.size() == 3);
    CHECK(out[0] == envelope::to_function(addr("example", "counter", "bob"),
                                          make_typed(std::string("from greeter")), a, 7));
    CHECK(out[1] ==
          envelope::to_egress(out_egress, make_typed(std::string("greeted bob")), int64_t{7}));
    CHECK(out[2] == envelope::to_egress(egress_id{"x", "y"}, make_typed(int32_t{1})));
  }

  TEST_CASE("a namespace provider binds every type of its namespace") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(
        !r->bind_namespace("dyn", [](const function_type& t) -> std::optional<function_binding> {
          if (t.name == "unknown")
            return std::nullopt;
          function_binding b;
          b.handler = [](context& ctx, const message&) {
            ctx.send_egress(out_egress, ctx.self().type.name);
          };
          return b;
        }));
    core_fixture f(r, state::backend_kind::heap);
    f.send(addr("dyn", "alpha", "1"), make_typed(true));
    f.send(addr("dyn", "beta", "1"), make_typed(true));
    f.send(addr("dyn", "unknown", "1"), make_typed(true));
    auto out = f.take();
    CHECK(egress_strings(out) == std::vector<std::string>{"alpha", "beta"});
    CHECK(core_fixture::dead_letters(out).size() == 1);
  }

  TEST_CASE("a delayed message is delivered after its delay, from its sender") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter, [](context& ctx, const message& m) {
      ctx.send_after(100ms, addr("example", "counter", "c"), m.as<std::string>());
    }));
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      core_fixture f(r, kind);
      auto a = addr("example", "greeter", "a");
      const auto t0 = f.now;
      f.send(envelope::to_function(a, make_typed(std::string("first")), std::nullopt, 5));
      f.advance_to(t0 + 10);
      f.send(a, make_typed(std::string("second")));
      CHECK(f.take().empty());
      f.backend->set_current_key(a);
      CHECK(f.core->pending_delayed().size() == 2);
      f.advance_to(t0 + 99);
      CHECK(f.take().empty());
      f.advance_to(t0 + 100);
      auto out = f.take();
      REQUIRE(out.size() == 1);
      CHECK(out[0] == envelope::to_function(addr("example", "counter", "c"),
                                            make_typed(std::string("first")), a, 5));
      f.advance_to(t0 + 200);
      out = f.take();
      REQUIRE(out.size() == 1);
      CHECK(*typed_as<std::string>(out[0].payload) == "second");
      f.backend->set_current_key(a);
      CHECK(f.core->pending_delayed().empty());
      CHECK(f.timer_queues.processing_timers() == 0);
    }
  }

  TEST_CASE("cancelling a delayed message prevents it, and tokens are per sending address") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter, [](context& ctx, const message& m) {
      auto cmd = m.as<std::string>();
      auto to = addr("example", "counter", ctx.self().id);
      if (cmd == "schedule")
        ctx.send_after(50ms, to, std::string("reminder"), "tok");
      else if (cmd == "cancel")
        ctx.cancel_delayed("tok");
      else if (cmd == "reschedule") {
        ctx.cancel_delayed("tok");
        ctx.send_after(80ms, to, std::string("rescheduled"), "tok");
      }
    }));
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      core_fixture f(r, kind);
      auto a = addr("example", "greeter", "a");
      auto b = addr("example", "greeter", "b");
      const auto t0 = f.now;
      f.send(a, make_typed(std::string("schedule")));
      f.send(b, make_typed(std::string("schedule"))); // same token, other address: fine
      f.send(a, make_typed(std::string("schedule"))); // same token, same address: refused
      auto out = f.take();
      auto dead = core_fixture::dead_letters(out);
      REQUIRE(dead.size() == 1);
      CHECK(dead[0].reason.find("token 'tok' is already pending") != std::string::npos);
      f.send(a, make_typed(std::string("cancel")));
      f.advance_to(t0 + 50);
      out = f.take();
      REQUIRE(out.size() == 1); // only b's
      CHECK(out[0].caller == b);
      CHECK(out[0].target == addr("example", "counter", "b"));
      CHECK(f.timer_queues.processing_timers() == 0); // a's timer went with its message
      // Cancelling what was delivered, or never sent, is a no-op.
      f.send(b, make_typed(std::string("cancel")));
      CHECK(f.take().empty());
      // Cancel then schedule under the same token in one invocation.
      f.send(a, make_typed(std::string("schedule")));
      f.send(a, make_typed(std::string("reschedule")));
      f.advance_to(t0 + 50 + 79);
      CHECK(f.take().empty());
      f.advance_to(t0 + 50 + 80);
      out = f.take();
      REQUIRE(out.size() == 1);
      CHECK(*typed_as<std::string>(out[0].payload) == "rescheduled");
    }
  }

  TEST_CASE("an event-time delayed message is delivered when the watermark passes its time") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind(greeter, [](context& ctx, const message&) {
      ctx.send_after_event_time(1000ms, addr("example", "counter", "c"),
                                make_typed(std::string("later")));
    }));
    core_fixture f(r, state::backend_kind::heap);
    auto a = addr("example", "greeter", "a");
    // Without an event time or a watermark there is no base time.
    f.send(a, make_typed(std::string("x")));
    CHECK(core_fixture::dead_letters(f.take()).size() == 1);
    f.send(envelope::to_function(a, make_typed(std::string("x")), std::nullopt, 5000));
    f.advance_to(f.now + 10'000); // processing time does not fire it
    f.watermark_to(5999);
    CHECK(f.take().empty());
    f.watermark_to(6000);
    auto out = f.take();
    REQUIRE(out.size() == 1);
    CHECK(out[0].event_time == 6000);
    CHECK(out[0].caller == a);
  }

  // ---- async functions ------------------------------------------------------------------

  namespace {
  struct async_setup {
    std::shared_ptr<fake_async_function> fn = std::make_shared<fake_async_function>();
    std::shared_ptr<function_registry> registry = std::make_shared<function_registry>();
    explicit async_setup(std::vector<value_spec> specs = {}) {
      REQUIRE(!registry->bind_async(greeter, fn, std::move(specs)));
    }
  };

  std::vector<std::string> arguments(const invocation_request& r) {
    std::vector<std::string> out;
    for (const auto& i : r.invocations)
      out.push_back(*typed_as<std::string>(i.argument));
    return out;
  }
  } // namespace

  TEST_CASE("async: one invocation in flight per address, later messages go in the next batch") {
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      async_setup s;
      core_fixture f(s.registry, kind);
      auto a = addr("example", "greeter", "a");
      auto b = addr("example", "greeter", "b");
      for (std::string m : {"1", "2", "3"})
        CHECK(f.send(a, make_typed(m)) == dispatch_status::accepted);
      f.send(b, make_typed(std::string("b1")));
      REQUIRE(s.fn->requests.size() == 2);
      CHECK(s.fn->requests[0].target == a);
      CHECK(arguments(s.fn->requests[0]) == std::vector<std::string>{"1"});
      CHECK(arguments(s.fn->requests[1]) == std::vector<std::string>{"b1"});
      f.backend->set_current_key(a);
      CHECK(f.core->status().in_flight == 1);
      CHECK(f.core->status().backlog == 2);
      f.core->on_complete(a, async_result{});
      REQUIRE(s.fn->requests.size() == 3);
      CHECK(arguments(s.fn->requests[2]) == std::vector<std::string>{"2", "3"});
      f.send(a, make_typed(std::string("4")));
      f.core->on_complete(a, async_result{});
      REQUIRE(s.fn->requests.size() == 4);
      CHECK(arguments(s.fn->requests[3]) == std::vector<std::string>{"4"});
      f.core->on_complete(a, async_result{});
      f.backend->set_current_key(a);
      CHECK(f.core->status().in_flight == 0);
      // A stale completion changes nothing.
      f.core->on_complete(a, async_result::failed("late"));
      CHECK(f.take().empty());
      CHECK(s.fn->requests.size() == 4);
    }
  }

  TEST_CASE("async: batches are bounded by max_batch_requests, and a full backlog reports "
            "backpressure") {
    async_setup s;
    dispatcher_options opts;
    opts.max_batch_requests = 3;
    core_fixture f(s.registry, state::backend_kind::heap, opts);
    auto a = addr("example", "greeter", "a");
    f.send(a, make_typed(std::string("0")));
    CHECK(f.send(a, make_typed(std::string("1"))) == dispatch_status::accepted);
    CHECK(f.send(a, make_typed(std::string("2"))) == dispatch_status::accepted);
    CHECK_FALSE(f.core->backpressured());
    CHECK(f.send(a, make_typed(std::string("3"))) == dispatch_status::backpressure);
    CHECK(f.core->backpressured());
    // Messages that were already on their way are still kept.
    CHECK(f.send(a, make_typed(std::string("4"))) == dispatch_status::backpressure);
    f.core->on_complete(a, async_result{});
    REQUIRE(s.fn->requests.size() == 2);
    CHECK(arguments(s.fn->requests[1]) == std::vector<std::string>{"1", "2", "3"});
    CHECK_FALSE(f.core->backpressured());
    f.core->on_complete(a, async_result{});
    REQUIRE(s.fn->requests.size() == 3);
    CHECK(arguments(s.fn->requests[2]) == std::vector<std::string>{"4"});
  }

  TEST_CASE("async: a binding's own max_batch_requests bounds its batches and backlog") {
    auto fn = std::make_shared<fake_async_function>();
    auto registry = std::make_shared<function_registry>();
    REQUIRE(!registry->bind_async(greeter, fn, {}, 2));
    core_fixture f(registry, state::backend_kind::heap);
    auto a = addr("example", "greeter", "a");
    f.send(a, make_typed(std::string("0")));
    CHECK(f.send(a, make_typed(std::string("1"))) == dispatch_status::accepted);
    CHECK(f.send(a, make_typed(std::string("2"))) == dispatch_status::backpressure);
    CHECK(f.send(a, make_typed(std::string("3"))) == dispatch_status::backpressure);
    f.core->on_complete(a, async_result{});
    REQUIRE(fn->requests.size() == 2);
    CHECK(arguments(fn->requests[1]) == std::vector<std::string>{"1", "2"});
    CHECK_FALSE(f.core->backpressured());
  }

  TEST_CASE("async: results apply outgoing, delayed, egress and state, and every registered value "
            "is sent") {
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      async_setup s({value_spec::of<int32_t>("seen"), value_spec::of<std::string>("name")});
      core_fixture f(s.registry, kind);
      auto a = addr("example", "greeter", "a");
      f.send(envelope::to_function(a, make_typed(std::string("hi")), std::nullopt, 9));
      REQUIRE(s.fn->requests.size() == 1);
      const auto& req = s.fn->requests[0];
      REQUIRE(req.state.size() == 2);
      CHECK(req.state[0].name == "seen");
      CHECK(req.state[0].type_name == "io.statefun.types/int");
      CHECK_FALSE(req.state[0].bytes);
      async_result r;
      r.effects.messages.push_back(
          {addr("example", "counter", "x"), make_typed(std::string("out"))});
      r.effects.delayed.push_back({false, "tok", 30ms, addr("example", "counter", "y"),
                                   make_typed(std::string("delayed"))});
      r.effects.egress.push_back({out_egress, make_typed(std::string("eg"))});
      r.effects.mutations.push_back({state_mutation::kind::modify, "seen", make_typed(int32_t{1})});
      f.core->on_complete(a, std::move(r));
      auto out = f.take();
      REQUIRE(out.size() == 2);
      CHECK(out[0] == envelope::to_function(addr("example", "counter", "x"),
                                            make_typed(std::string("out")), a, 9));
      CHECK(out[1] == envelope::to_egress(out_egress, make_typed(std::string("eg")), int64_t{9}));
      f.send(a, make_typed(std::string("again")));
      REQUIRE(s.fn->requests.size() == 2);
      CHECK(s.fn->requests[1].state[0].bytes == make_typed(int32_t{1}).bytes);
      CHECK_FALSE(s.fn->requests[1].state[1].bytes);
      f.advance_to(f.now + 30);
      out = f.take();
      REQUIRE(out.size() == 1);
      CHECK(*typed_as<std::string>(out[0].payload) == "delayed");
      CHECK(out[0].caller == a);
    }
  }

  TEST_CASE("async: a failed invocation leaves state untouched and dead-letters its batch") {
    for (auto kind : both_backends()) {
      CAPTURE(state::to_string(kind));
      async_setup s({value_spec::of<int32_t>("seen")});
      core_fixture f(s.registry, kind);
      auto a = addr("example", "greeter", "a");
      f.send(a, make_typed(std::string("1")));
      async_result ok;
      ok.effects.mutations.push_back(
          {state_mutation::kind::modify, "seen", make_typed(int32_t{1})});
      f.core->on_complete(a, std::move(ok));
      f.send(a, make_typed(std::string("2")));
      f.send(a, make_typed(std::string("3")));
      f.send(a, make_typed(std::string("4")));
      f.core->on_complete(a, async_result::failed("HTTP 500 after 3 attempts"));
      auto dead = core_fixture::dead_letters(f.take());
      REQUIRE(dead.size() == 1);
      CHECK(dead[0].reason == "function example/greeter at address example/greeter/a failed: "
                              "HTTP 500 after 3 attempts");
      CHECK(dead[0].payload == make_typed(std::string("2")));
      // The next batch went out with the state as the last success left it.
      REQUIRE(s.fn->requests.size() == 3);
      CHECK(arguments(s.fn->requests[2]) == std::vector<std::string>{"3", "4"});
      CHECK(s.fn->requests[2].state[0].bytes == make_typed(int32_t{1}).bytes);
      // A result that breaks the rules fails too, without touching state.
      async_result bad;
      bad.effects.mutations.push_back(
          {state_mutation::kind::modify, "seen", make_typed(int32_t{9})});
      bad.effects.mutations.push_back(
          {state_mutation::kind::modify, "undeclared", make_typed(true)});
      bad.effects.messages.push_back({addr("example", "counter", "x"), make_typed(true)});
      f.core->on_complete(a, std::move(bad));
      auto out = f.take();
      dead = core_fixture::dead_letters(out);
      CHECK(out.size() == 2); // no outgoing message
      REQUIRE(dead.size() == 2);
      CHECK(dead[0].reason.find("'undeclared', which is not registered") != std::string::npos);
      auto v = f.stored(a, "seen");
      REQUIRE(v);
      CHECK(typed_value{v->type_name, v->bytes} == make_typed(int32_t{1}));
    }
  }

  TEST_CASE("async: missing values are registered and the same batch is sent again") {
    async_setup s;
    core_fixture f(s.registry, state::backend_kind::heap);
    auto a = addr("example", "greeter", "a");
    f.send(a, make_typed(std::string("1")));
    f.send(a, make_typed(std::string("2"))); // waits
    REQUIRE(s.fn->requests.size() == 1);
    CHECK(s.fn->requests[0].state.empty());
    f.core->on_complete(a, async_result::missing_values(
                               {value_spec::of<int32_t>("seen", expiration::after_invoke(1000ms)),
                                value_spec{"raw", "", {}}}));
    REQUIRE(s.fn->requests.size() == 2);
    const auto& retry = s.fn->requests[1];
    CHECK(arguments(retry) == std::vector<std::string>{"1"});
    REQUIRE(retry.state.size() == 2);
    CHECK(retry.state[0].name == "seen");
    CHECK(retry.state[1].name == "raw");
    CHECK(f.take().empty());
    async_result r;
    r.effects.mutations.push_back({state_mutation::kind::modify, "seen", make_typed(int32_t{4})});
    r.effects.mutations.push_back(
        {state_mutation::kind::modify, "raw", typed_value{"io.statefun.types/unset", "x"}});
    f.core->on_complete(a, std::move(r));
    REQUIRE(s.fn->requests.size() == 3);
    CHECK(arguments(s.fn->requests[2]) == std::vector<std::string>{"2"});
    CHECK(s.fn->requests[2].state[0].bytes == make_typed(int32_t{4}).bytes);
    // Reporting as missing what is registered is an error, not a loop.
    f.core->on_complete(a, async_result::missing_values({value_spec::of<int32_t>("seen")}));
    auto dead = core_fixture::dead_letters(f.take());
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].reason.find("all registered") != std::string::npos);
    CHECK(s.fn->requests.size() == 3);
    // A registered name with another type fails the batch too.
    f.send(a, make_typed(std::string("3")));
    f.core->on_complete(a, async_result::missing_values({value_spec::of<std::string>("seen")}));
    dead = core_fixture::dead_letters(f.take());
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].reason.find("registered as 'io.statefun.types/int'") != std::string::npos);
  }

  TEST_CASE("async: a function's answer becomes a done or missing-values result") {
    invocation_result effects;
    effects.egress.push_back({out_egress, make_typed(std::string("eg"))});
    auto done = async_result::from(invocation_outcome{effects});
    CHECK(done.outcome == async_result::status::done);
    CHECK(done.effects == effects);
    auto missing =
        async_result::from(invocation_outcome{missing_state{{value_spec::of<int32_t>("seen")}}});
    CHECK(missing.outcome == async_result::status::missing_values);
    REQUIRE(missing.missing.size() == 1);
    CHECK(missing.missing[0].name == "seen");
  }

  TEST_CASE("async: without a completion route the invocation fails into dead letters") {
    async_setup s;
    core_fixture f(s.registry, state::backend_kind::heap);
    f.route = false;
    f.send(addr("example", "greeter", "a"), make_typed(std::string("1")));
    auto dead = core_fixture::dead_letters(f.take());
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].reason.find("no route for async completions") != std::string::npos);
    f.backend->set_current_key(addr("example", "greeter", "a"));
    CHECK(f.core->status().in_flight == 0);
  }

  TEST_CASE("snapshots carry function state, pending delayed messages and async batches") {
    auto fn = std::make_shared<fake_async_function>();
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind_async(counter_type, fn));
    REQUIRE(!r->bind(greeter,
                     [](context& ctx, const message& m) {
                       ctx.storage().set("last", m.as<std::string>());
                       ctx.send_after(100ms, addr("example", "counter", "c"), m.as<std::string>(),
                                      "tok-" + m.as<std::string>());
                     },
                     {value_spec::of<std::string>("last")}));
    auto g = addr("example", "greeter", "g");
    auto c = addr("example", "counter", "c");
    using state::backend_kind;
    for (auto [from, to] : {std::pair{backend_kind::heap, backend_kind::rocksdb},
                            std::pair{backend_kind::rocksdb, backend_kind::heap}}) {
      CAPTURE(state::to_string(from));
      std::string snap;
      int64_t t0;
      {
        core_fixture f(r, from);
        t0 = f.now;
        f.send(g, make_typed(std::string("x")));
        f.send(g, make_typed(std::string("y")));
        f.send(c, make_typed(std::string("1"))); // in flight
        f.send(c, make_typed(std::string("2"))); // buffered
        f.send(c, make_typed(std::string("3"))); // buffered
        snap = f.backend->snapshot();
      }
      fn->requests.clear();
      core_fixture f(r, to);
      f.backend->restore({snap});
      f.core->resume_in_flight();
      REQUIRE(fn->requests.size() == 1); // the batch in flight goes out again
      CHECK(arguments(fn->requests[0]) == std::vector<std::string>{"1"});
      f.backend->set_current_key(c);
      CHECK(f.core->status().backlog == 2);
      f.core->on_complete(c, async_result{});
      REQUIRE(fn->requests.size() == 2);
      CHECK(arguments(fn->requests[1]) == std::vector<std::string>{"2", "3"});
      auto last = f.stored(g, "last");
      REQUIRE(last);
      CHECK(typed_as<std::string>(typed_value{last->type_name, last->bytes}) == "y");
      f.backend->set_current_key(g);
      REQUIRE(f.core->pending_delayed().size() == 2);
      // The restored messages keep their tokens: a duplicate is still refused.
      f.send(g, make_typed(std::string("x")));
      CHECK(core_fixture::dead_letters(f.take()).size() == 1);
      // The timers came back with the snapshot and deliver in order.
      f.advance_to(t0 + 100);
      std::vector<std::string> delivered;
      for (const auto& e : f.take())
        delivered.push_back(*typed_as<std::string>(e.payload));
      CHECK(delivered == std::vector<std::string>{"x", "y"});
    }
  }

} // TEST_SUITE
