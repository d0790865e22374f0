// The official StateFun JS SDK through the whole runtime: functions served by
// tests/compat/js/server.js (apache-flink-statefun 3.3.0) and an embedded C++
// function in one functions job, driven through the HTTP ingress: the state
// handshake, state across invocations, messages both ways between JS and
// C++, delayed messages and their cancellation, Kafka-egress records, DELETE
// mutations, and batching behind a slow call.

#include "sluice/functions/application.hpp"
#include "sluice/remote/ingress/functions_job.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/kafka_record.hpp"
#include "sluice/remote/remote_function.hpp"
#include "sluice/sluice.hpp"
#include "js_server.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>

using namespace std::chrono_literals;
using namespace sluice;
namespace fn = sluice::functions;
using remote::internal::test_http_client;

namespace {

/// cpp/caller: an embedded C++ function. A string from the ingress goes to
/// the JS greeter of the same id (with this function as the caller); the
/// greeter's answer (its count, an int) goes to the test/out egress.
void bind_cpp_caller(fn::function_registry& reg) {
  REQUIRE(!reg.bind(fn::function_type{"cpp", "caller"}, [](fn::context& ctx, const fn::message& m) {
    if (m.is<std::string>())
      ctx.send(fn::address{{"example", "greeter"}, ctx.self().id}, m.as<std::string>());
    else
      ctx.send_egress(fn::egress_id{"test", "out"},
                      "cpp " + ctx.self().id + " got " + std::to_string(m.as<int32_t>()));
  }));
}

/// The functions job: example/* and test/* on the JS server, cpp/caller
/// embedded, behind an HTTP ingress; every egress record collected as text.
struct js_job {
  explicit js_job(uint16_t js_port) {
    auto declared = remote::parse_module("kind: io.statefun.endpoints.v2/http\n"
                                         "spec:\n"
                                         "  functions: example/*\n"
                                         "  urlPathTemplate: http://127.0.0.1:" +
                                           std::to_string(js_port) +
                                           "/statefun\n"
                                           "---\n"
                                           "kind: io.statefun.endpoints.v2/http\n"
                                           "spec:\n"
                                           "  functions: test/*\n"
                                           "  urlPathTemplate: http://127.0.0.1:" +
                                           std::to_string(js_port) + "/statefun\n",
                                         "compat module");
    REQUIRE(declared);
    module = *declared;
    client = std::make_shared<remote::remote_function_client>();
    auto reg = std::make_shared<fn::function_registry>();
    REQUIRE(!remote::bind_endpoints(*reg, module, client));
    bind_cpp_caller(*reg);
    auto started = remote::ingress::http_ingress::start({});
    REQUIRE(started);
    ingress = *started;
    configuration cfg;
    cfg.parallelism = 2;
    cfg.buffer_timeout = 0ms;
    stream_environment env(cfg);
    auto egress = remote::ingress::run_http_functions(env, *ingress, reg, module);
    REQUIRE(egress);
    out = egress->map([](const fn::envelope& e) {
                   auto id = e.egress.to_string();
                   if (auto text = fn::typed_as<std::string>(e.payload))
                     return id + ": " + *text;
                   if (auto record = remote::parse_kafka_record(e.payload))
                     return id + ": kafka " + record->topic + " " + record->key + " " +
                            record->value;
                   return id + ": <" + e.payload.type_name + ">";
                 })
            .collect();
    job = env.execute_async("js functions");
  }
  ~js_job() {
    job->cancel();
    job->wait();
    ingress->stop();
  }

  /// Whether some egress line is `line`, waiting up to `timeout`.
  bool egress_has(const std::string& line, std::chrono::milliseconds timeout = 20s) {
    return sluice::test::eventually(
      [&] {
        auto v = out->values();
        return std::find(v.begin(), v.end(), line) != v.end();
      },
      timeout);
  }
  size_t count_of(const std::string& line) {
    auto v = out->values();
    return static_cast<size_t>(std::count(v.begin(), v.end(), line));
  }

  remote::module module;
  std::shared_ptr<remote::remote_function_client> client;
  std::shared_ptr<remote::ingress::http_ingress> ingress;
  std::shared_ptr<runtime::collected<std::string>> out;
  std::shared_ptr<runtime::job_client> job;
};

int32_t int_reply(const remote::internal::test_reply& r) {
  REQUIRE(r.status == 200);
  REQUIRE(r.content_type == "application/vnd.io.statefun.types/int");
  auto v = fn::typed_as<int32_t>(fn::typed_value{"io.statefun.types/int", r.body});
  REQUIRE(v);
  return *v;
}

} // namespace

TEST_SUITE("compat.js_runtime") {

TEST_CASE("JS functions keep state through sluice: handshake, counts, DELETE, egresses") {
  sluice::test::js_server js;
  js_job job(js.port());
  test_http_client http(job.ingress->port());
  // The first call completes the state handshake (seen, last_name) and
  // answers the caller; the count then lives in sluice's state.
  auto greet = [&] {
    return int_reply(http.request("POST", "/functions/example/greeter/ann?reply=true", "Ann", {},
                                  "text/plain", 30s));
  };
  CHECK(greet() == 1);
  CHECK(greet() == 2);
  // JS -> JS (example/audit) -> egress, and the greeter's Kafka record.
  CHECK(job.egress_has("example/audit-log: Ann seen 2 time(s), entry 2"));
  CHECK(job.egress_has("example/greets: kafka greetings ann Hello Ann, #2"));
  // "forget" deletes the values (DELETE mutations): counting starts over.
  CHECK(http.request("POST", "/functions/example/greeter/ann", "forget", {}, "text/plain").status ==
        202);
  CHECK(greet() == 1);
}

TEST_CASE("messages cross between an embedded C++ function and a JS function both ways") {
  sluice::test::js_server js;
  js_job job(js.port());
  test_http_client http(job.ingress->port());
  for (int i = 0; i < 3; ++i)
    CHECK(http.request("POST", "/functions/cpp/caller/bea", "Bea", {}, "text/plain").status == 202);
  // C++ -> JS greeter (caller cpp/caller/bea) -> back to C++ -> egress.
  CHECK(job.egress_has("test/out: cpp bea got 1"));
  CHECK(job.egress_has("test/out: cpp bea got 2"));
  CHECK(job.egress_has("test/out: cpp bea got 3"));
}

TEST_CASE("a JS function's delayed message arrives, and a cancelled one does not") {
  sluice::test::js_server js;
  js_job job(js.port());
  test_http_client http(job.ingress->port());
  CHECK(http.request("POST", "/functions/test/reminder/r1", "schedule:200", {}, "text/plain")
          .status == 202);
  CHECK(http.request("POST", "/functions/test/reminder/r2", "schedule:1000", {}, "text/plain")
          .status == 202);
  CHECK(http.request("POST", "/functions/test/reminder/r2", "cancel", {}, "text/plain").status ==
        202);
  CHECK(http.request("POST", "/functions/test/reminder/r3", "schedule:1200", {}, "text/plain")
          .status == 202);
  CHECK(job.egress_has("test/out: rang r1"));
  // r3 was due after r2: once it rang, r2 would have too.
  CHECK(job.egress_has("test/out: rang r3"));
  CHECK(job.count_of("test/out: rang r2") == 0);
  CHECK(job.count_of("test/out: rang r1") == 1);
}

TEST_CASE("messages to a JS function with a call in flight go out as batches, in order") {
  sluice::test::js_server js;
  js_job job(js.port());
  test_http_client http(job.ingress->port());
  constexpr int messages = 100;
  for (int i = 0; i < messages; ++i)
    REQUIRE(http.request("POST", "/functions/test/slow/s", std::to_string(i), {}, "text/plain")
              .status == 202);
  REQUIRE(job.egress_has("test/out: slow s " + std::to_string(messages - 1), 30s));
  std::vector<std::string> seen;
  for (auto& l : job.out->values())
    if (l.rfind("test/out: slow s ", 0) == 0)
      seen.push_back(l.substr(17));
  REQUIRE(seen.size() == static_cast<size_t>(messages));
  for (int i = 0; i < messages; ++i)
    CHECK(seen[static_cast<size_t>(i)] == std::to_string(i));
  // 20 ms per message: most waited behind a call in flight.
  CHECK(job.client->stats().attempts < static_cast<uint64_t>(messages) / 2);
}

}
