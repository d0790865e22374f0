#include "sluice/remote/module.hpp"

#include "sluice/remote/errors.hpp"

#include <doctest/doctest.h>

using namespace sluice::remote;
using sluice::functions::function_type;

namespace {

std::string error_of(std::string_view yaml) {
  auto m = parse_module(yaml, "module.yaml");
  REQUIRE_FALSE(m);
  CHECK(is(m.error(), remote_errc::invalid_module));
  return describe(m.error());
}

constexpr std::string_view full_module = R"(kind: io.statefun.endpoints.v2/http
spec:
  functions: example/*
  urlPathTemplate: http://functions:8000/{function.name}
  maxNumBatchRequests: 500
  transport:
    type: io.statefun.transports.v1/async
    call: 2m
    connect: 20s
    pool_ttl: 15s
    pool_size: 16
    payload_max_bytes: 1048576
---
kind: io.statefun.endpoints.v2/http
spec:
  functions: example/greeter
  urlPathTemplate: http://127.0.0.1:9000/greet/{function.name}
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: example/names
  address: kafka:9092
  consumerGroupId: greeter
  startupPosition: { type: earliest }
  autoOffsetResetPosition: latest
  topics:
    - topic: names
      valueType: io.statefun.types/string
      targets: [ example/greeter ]
  properties: [ { max.poll.records: "500" } ]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: example/greets
  address: kafka:9092
  deliverySemantic: { type: exactly-once, transactionTimeout: 15min }
  properties: [ { foo.config: bar } ]
---
kind: sluice.io/v1/http-ingress
spec:
  id: example/http
  port: 8090
---
kind: sluice.io/v1/file-egress
spec:
  id: example/out
  path: /tmp/out.txt
  format: json
---
kind: sluice.io/v1/dead-letter-egress
spec:
  path: /tmp/dead.jsonl
)";

} // namespace

TEST_SUITE("remote.module") {

  TEST_CASE("a StateFun 3.x module with endpoints, Kafka and sluice kinds parses") {
    auto m = parse_module(full_module, "module.yaml");
    REQUIRE_MESSAGE(m, describe(m.error()));
    REQUIRE(m->endpoints.size() == 2);
    const auto& wild = m->endpoints[0];
    CHECK(wild.functions.ns == "example");
    CHECK_FALSE(wild.functions.name);
    CHECK(wild.max_num_batch_requests == 500);
    CHECK(wild.transport.call == std::chrono::minutes{2});
    CHECK(wild.transport.connect == std::chrono::seconds{20});
    CHECK(wild.transport.pool_size == 16);
    CHECK(wild.transport.payload_max_bytes == 1048576);
    CHECK(wild.url.host == "functions");
    CHECK(wild.url.port == 8000);
    CHECK(wild.url.target == "/{function.name}");
    CHECK(wild.declared_at == "module.yaml:1:1");
    const auto& exact = m->endpoints[1];
    CHECK(exact.max_num_batch_requests == 1000);
    CHECK(exact.transport.call == std::chrono::minutes{2});
    CHECK(exact.declared_at == "module.yaml:14:1");
    REQUIRE(m->kafka_ingresses.size() == 1);
    const auto& in = m->kafka_ingresses[0];
    CHECK(in.id.to_string() == "example/names");
    CHECK(in.consumer_group_id == "greeter");
    CHECK(in.startup_position.type == kafka_startup_position::kind::earliest);
    REQUIRE(in.topics.size() == 1);
    CHECK(in.topics[0].value_type == "io.statefun.types/string");
    CHECK(in.topics[0].targets == std::vector{function_type{"example", "greeter"}});
    CHECK(in.properties == kafka_properties{{"max.poll.records", "500"}});
    REQUIRE(m->kafka_egresses.size() == 1);
    CHECK(m->kafka_egresses[0].delivery == kafka_egress_spec::semantic::exactly_once);
    CHECK(m->kafka_egresses[0].transaction_timeout == std::chrono::minutes{15});
    REQUIRE(m->http_ingresses.size() == 1);
    CHECK(m->http_ingresses[0].port == 8090);
    CHECK(m->http_ingresses[0].bind_address == "127.0.0.1");
    REQUIRE(m->file_egresses.size() == 1);
    CHECK(m->file_egresses[0].line_format == file_egress_spec::format::json);
    REQUIRE(m->dead_letters);
    CHECK(m->dead_letters->path == "/tmp/dead.jsonl");
  }

  TEST_CASE("an exact endpoint beats a namespace endpoint; others have none") {
    auto m = parse_module(full_module, "module.yaml");
    REQUIRE(m);
    auto* greeter = m->endpoint_for({"example", "greeter"});
    REQUIRE(greeter);
    CHECK(greeter->url.port == 9000);
    auto* other = m->endpoint_for({"example", "audit"});
    REQUIRE(other);
    CHECK(other->url.port == 8000);
    CHECK(m->endpoint_for({"other", "greeter"}) == nullptr);
  }

  TEST_CASE("durations take Flink's units") {
    using namespace std::chrono;
    CHECK(parse_duration("500ms") == milliseconds{500});
    CHECK(parse_duration("10s") == seconds{10});
    CHECK(parse_duration("2m") == minutes{2});
    CHECK(parse_duration("15min") == minutes{15});
    CHECK(parse_duration("1 h") == hours{1});
    CHECK(parse_duration("1d") == hours{24});
    CHECK(parse_duration("250") == milliseconds{250});
    CHECK(parse_duration("3 seconds") == seconds{3});
    CHECK_FALSE(parse_duration("ten seconds"));
    CHECK_FALSE(parse_duration("10 fortnights"));
    CHECK_FALSE(parse_duration("-5s"));
    CHECK_FALSE(parse_duration(""));
    CHECK_FALSE(parse_duration("99999999999999999999d"));
  }

  TEST_CASE("module errors name the file, line and what was wrong") {
    auto text = error_of("kind: io.statefun.endpoints.v2/http\nspec:\n"
                         "  functions: example/*\n");
    CHECK(text.find("module.yaml:3:3") != std::string::npos);
    CHECK(text.find("missing field 'urlPathTemplate'") != std::string::npos);

    text = error_of("kind: io.statefun.endpoints.v2/http\nspec:\n"
                    "  functions: example/*\n"
                    "  urlPathTemplate: http://h/{function.name}\n"
                    "  transport:\n    call: 2 fortnights\n");
    CHECK(text.find("module.yaml:6:11") != std::string::npos);
    CHECK(text.find("bad duration '2 fortnights' for transport.call") != std::string::npos);

    text = error_of("kind: io.statefun.endpoints.v2/http\nspec:\n"
                    "  functions: nope\n  urlPathTemplate: http://h/\n");
    CHECK(text.find("module.yaml:3:14") != std::string::npos);
    CHECK(text.find("bad function type 'nope'") != std::string::npos);

    text = error_of("---\nkind: io.statefun.endpoints.v2/http\nspec:\n"
                    "  functions: ex/*\n  urlPathTemplate: ftp://h/\n");
    CHECK(text.find("module.yaml:5:20") != std::string::npos);
    CHECK(text.find("unknown scheme 'ftp'") != std::string::npos);

    text = error_of("kind: com.example/thing\nspec: {}\n");
    CHECK(text.find("module.yaml:1:7: unknown kind 'com.example/thing'") != std::string::npos);

    text = error_of("kind: io.statefun.kinesis.v1/ingress\nspec: {}\n");
    CHECK(text.find("not supported") != std::string::npos);

    text = error_of("kind: io.statefun.kafka.v1/ingress\nspec:\n"
                    "  id: example/names\n  address: k:9092\n"
                    "  consumerGroupId: g\n  topics:\n"
                    "    - topic: t\n      valueType: nonsense\n"
                    "      targets: [ example/greeter ]\n");
    CHECK(text.find("module.yaml:8:18") != std::string::npos);
    CHECK(text.find("bad typename 'nonsense' for valueType") != std::string::npos);

    text = error_of("kind: io.statefun.endpoints.v2/http\nspec:\n"
                    "  functions: example/*\n  urlPathTemplate: http://h/\n"
                    "  urlPathTemplat: http://x/\n");
    CHECK(text.find("module.yaml:5:3: unknown field 'urlPathTemplat'") != std::string::npos);

    text = error_of("kind: io.statefun.endpoints.v2/http\nspec:\n"
                    "  functions: example/*\n  urlPathTemplate: http://h/\n"
                    "  transport:\n    trust_cacerts: /ca.pem\n");
    CHECK(text.find("not supported") != std::string::npos);

    text = error_of("kind: [unterminated\n");
    CHECK(text.find("module.yaml:") != std::string::npos);
    CHECK(text.find("invalid YAML") != std::string::npos);

    text = error_of("version: \"3.0\"\nmodule: {}\n");
    CHECK(text.find("legacy") != std::string::npos);
  }

  TEST_CASE("two endpoints for the same functions are rejected with both lines") {
    auto text = error_of("kind: io.statefun.endpoints.v2/http\nspec:\n"
                         "  functions: example/*\n  urlPathTemplate: http://a/\n"
                         "---\nkind: io.statefun.endpoints.v2/http\nspec:\n"
                         "  functions: example/*\n  urlPathTemplate: http://b/\n");
    CHECK(text.find("module.yaml:6:1") != std::string::npos);
    CHECK(text.find("already declared at module.yaml:1:1") != std::string::npos);
  }

  TEST_CASE("the okhttp transport's timeouts block and endpoint v1 are read") {
    auto m = parse_module("kind: io.statefun.endpoints.v2/http\nspec:\n  functions: a/b\n"
                          "  urlPathTemplate: http://h:1/\n  transport:\n"
                          "    type: io.statefun.transports.v1/okhttp\n"
                          "    timeouts: { call: 30s, connect: 1s, read: 10s, write: 10s }\n"
                          "---\nkind: io.statefun.endpoints.v1/http\nspec:\n  functions: a/c\n"
                          "  urlPathTemplate: http://h:1/\n  timeouts: { call: 5s }\n",
                          "m.yaml");
    REQUIRE_MESSAGE(m, describe(m.error()));
    CHECK(m->endpoints[0].transport.call == std::chrono::seconds{30});
    CHECK(m->endpoints[0].transport.connect == std::chrono::seconds{1});
    CHECK(m->endpoints[1].transport.call == std::chrono::seconds{5});
  }

  TEST_CASE("a missing module file is an error naming the path") {
    auto m = load_module("/nonexistent/module.yaml");
    REQUIRE_FALSE(m);
    CHECK(describe(m.error()).find("/nonexistent/module.yaml") != std::string::npos);
  }

  TEST_CASE("URLs: ports, schemes and the function-name placeholder") {
    auto u = parse_url("http://127.0.0.1:8000/fn/{function.name}?x=1");
    REQUIRE(u);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 8000);
    CHECK(u->target == "/fn/{function.name}?x=1");
    CHECK(substitute_function_name(u->target, "greeter") == "/fn/greeter?x=1");
    u = parse_url("http://functions");
    REQUIRE(u);
    CHECK(u->port == 80);
    CHECK(u->target == "/");
    u = parse_url("http+unix:///var/run/fn.sock/path");
    REQUIRE(u);
    CHECK(u->host == "/var/run/fn.sock");
    CHECK(u->target == "/path");
    CHECK_FALSE(parse_url("http://h:70000/"));
    CHECK_FALSE(parse_url("http://:80/"));
    CHECK_FALSE(parse_url("gopher://h/"));
  }
}
