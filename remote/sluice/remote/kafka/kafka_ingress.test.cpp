#include "sluice/remote/kafka/kafka_ingress.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/kafka/testing/kafka_test_util.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <thread>

using namespace sluice;
using namespace sluice::remote;
using namespace sluice::remote::kafka;
using namespace sluice::remote::kafka::testing;
namespace fn = sluice::functions;
using std::chrono::milliseconds;

namespace {

struct envelope_collector final : runtime::collector<fn::envelope> {
  using runtime::collector<fn::envelope>::collect;
  void collect(fn::envelope&& e) override { values.push_back(std::move(e)); }
  std::vector<fn::envelope> values;
};

using source_harness = harness<kafka_ingress_source>;

/// Runs steps of `h` until `out` holds `n` envelopes or 10 s passed.
void read_until(source_harness& h, envelope_collector& out, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out.values.size() < n && std::chrono::steady_clock::now() < deadline) {
    auto step = h.fn.run(out, 64);
    if (step.what == runtime::source_step::kind::wait)
      std::this_thread::sleep_for(milliseconds(2));
  }
  REQUIRE(out.values.size() == n);
}

module parse(const std::string& yaml) {
  auto m = parse_module(yaml, "module.yaml");
  REQUIRE_MESSAGE(m, describe(m.error()));
  return std::move(*m);
}

std::string ingress_yaml(const std::string& address, const std::string& topic_a,
                         const std::string& topic_b, const std::string& startup = "earliest") {
  return "kind: io.statefun.kafka.v1/ingress\n"
         "spec:\n"
         "  id: shop/orders\n"
         "  address: " + address + "\n"
         "  consumerGroupId: shop\n"
         "  startupPosition:\n"
         "    type: " + startup + "\n"
         "  topics:\n"
         "    - topic: " + topic_a + "\n"
         "      valueType: shop/Order\n"
         "      targets: [shop/cart, shop/audit]\n"
         "    - topic: " + topic_b + "\n"
         "      valueType: io.statefun.types/string\n"
         "      targets: [shop/notes]\n"
         "  properties:\n"
         "    - fetch.wait.max.ms: 20\n";
}

} // namespace

TEST_SUITE("remote.kafka.ingress") {

TEST_CASE("startup dates parse as StateFun writes them, with any zone offset") {
  CHECK(parse_startup_date("1970-01-01 00:00:00.000 +0000") == 0);
  CHECK(parse_startup_date("2020-02-01 04:15:00.250 +0000") == int64_t{1580530500250});
  CHECK(parse_startup_date("2020-02-01 05:15:00.250 +0100") == int64_t{1580530500250});
  CHECK(parse_startup_date("2020-01-31 20:15:00.250 -08:00") == int64_t{1580530500250});
  CHECK(parse_startup_date("2024-02-29 00:00:00.000 Z").has_value());
  CHECK_FALSE(parse_startup_date("2023-02-29 00:00:00.000 +0000"));
  CHECK_FALSE(parse_startup_date("2020-02-01 04:15:00 +0000"));
  CHECK_FALSE(parse_startup_date("2020-02-01T04:15:00.000+0000"));
  CHECK_FALSE(parse_startup_date("2020-13-01 04:15:00.000 +0000"));
  CHECK_FALSE(parse_startup_date("2020-02-01 04:15:00.000"));
}

TEST_CASE("a Kafka address is a list of host:port") {
  CHECK(is_valid_kafka_address("kafka:9092"));
  CHECK(is_valid_kafka_address("kafka:9092,10.0.0.2:19092"));
  CHECK(is_valid_kafka_address("[::1]:9092"));
  CHECK_FALSE(is_valid_kafka_address(""));
  CHECK_FALSE(is_valid_kafka_address("kafka"));
  CHECK_FALSE(is_valid_kafka_address("kafka:"));
  CHECK_FALSE(is_valid_kafka_address("kafka:0"));
  CHECK_FALSE(is_valid_kafka_address("kafka:70000"));
  CHECK_FALSE(is_valid_kafka_address("kafka:9092,"));
  CHECK_FALSE(is_valid_kafka_address("http://kafka:9092"));
  CHECK_FALSE(is_valid_kafka_address("kafka:90x2"));
}

TEST_CASE("ingress settings follow the module: topics, group, start position, properties") {
  auto m = parse(ingress_yaml("kafka:9092", "a", "b", "latest"));
  auto c = ingress_config(m.kafka_ingresses.at(0));
  REQUIRE_MESSAGE(c, describe(c.error()));
  CHECK(c->bootstrap_servers == "kafka:9092");
  CHECK(c->topics == std::vector<std::string>{"a", "b"});
  CHECK(c->group_id == "shop");
  CHECK(c->starting_offsets == connectors::kafka_starting_offsets::latest);
  CHECK(c->properties.at("fetch.wait.max.ms") == "20");
  CHECK_FALSE(c->bounded);

  auto s = parse("kind: io.statefun.kafka.v1/ingress\n"
                 "spec:\n"
                 "  id: shop/orders\n  address: kafka:9092\n  consumerGroupId: g\n"
                 "  autoOffsetResetPosition: earliest\n"
                 "  startupPosition:\n    type: specific-offsets\n"
                 "    offsets:\n      - a/0: 15\n      - my/topic/2: 7\n"
                 "  topics:\n    - topic: a\n      valueType: x/y\n      targets: [f/g]\n");
  c = ingress_config(s.kafka_ingresses.at(0));
  REQUIRE_MESSAGE(c, describe(c.error()));
  CHECK(c->starting_offsets == connectors::kafka_starting_offsets::specific);
  CHECK(c->fallback_offsets == connectors::kafka_starting_offsets::earliest);
  CHECK(c->specific_offsets.at({"a", 0}) == 15);
  CHECK(c->specific_offsets.at({"my/topic", 2}) == 7);
}

TEST_CASE("a bad ingress address, date or offset is an error naming the declaration") {
  auto m = parse(ingress_yaml("kafka", "a", "b"));
  auto c = ingress_config(m.kafka_ingresses.at(0));
  REQUIRE_FALSE(c);
  CHECK(is(c.error(), remote_errc::invalid_module));
  CHECK(describe(c.error()).find("module.yaml:") != std::string::npos);
  CHECK(describe(c.error()).find("shop/orders: address 'kafka' is not a list of host:port") !=
        std::string::npos);
  CHECK_FALSE(make_kafka_ingress(m.kafka_ingresses.at(0)));

  auto d = parse("kind: io.statefun.kafka.v1/ingress\n"
                 "spec:\n"
                 "  id: shop/orders\n  address: kafka:9092\n  consumerGroupId: g\n"
                 "  startupPosition:\n    type: date\n    date: yesterday\n"
                 "  topics:\n    - topic: a\n      valueType: x/y\n      targets: [f/g]\n");
  c = ingress_config(d.kafka_ingresses.at(0));
  REQUIRE_FALSE(c);
  CHECK(describe(c.error()).find("date 'yesterday'") != std::string::npos);

  module none;
  runtime::stream_environment env;
  auto s = add_kafka_ingresses(env, none);
  REQUIRE_FALSE(s);
  CHECK(describe(s.error()).find("no Kafka ingress") != std::string::npos);
}

TEST_CASE("a record becomes a message to every target of its topic: id = key, value unchanged") {
  auto m = parse(ingress_yaml("kafka:9092", "orders", "notes"));
  auto& spec = m.kafka_ingresses.at(0);
  connectors::kafka_consumed_record r;
  r.topic = "orders";
  r.partition = 2;
  r.offset = 41;
  r.timestamp_ms = 1234;
  r.key = "user-7";
  std::string bytes("\x0a\x03\x00\xff", 4);
  r.value = bytes;
  auto out = ingress_messages(spec, r);
  REQUIRE(out.size() == 2);
  CHECK(out[0] == fn::envelope::to_function(fn::address{{"shop", "cart"}, "user-7"},
                                            fn::typed_value{"shop/Order", bytes}, std::nullopt,
                                            1234));
  CHECK(out[1].target == fn::address{{"shop", "audit"}, "user-7"});
  CHECK(out[1].payload.bytes == bytes);

  r.topic = "notes";
  out = ingress_messages(spec, r);
  REQUIRE(out.size() == 1);
  CHECK(out[0].target == fn::address{{"shop", "notes"}, "user-7"});
  CHECK(out[0].payload.type_name == "io.statefun.types/string");
}

TEST_CASE("a record without a key becomes a dead letter that keeps the record") {
  auto m = parse(ingress_yaml("kafka:9092", "orders", "notes"));
  connectors::kafka_consumed_record r;
  r.topic = "orders";
  r.partition = 1;
  r.offset = 9;
  r.value = "payload";
  for (auto key : {std::optional<std::string_view>{}, std::optional<std::string_view>{""}}) {
    r.key = key;
    auto out = ingress_messages(m.kafka_ingresses.at(0), r);
    REQUIRE(out.size() == 1);
    CHECK(out[0].is_egress());
    CHECK(out[0].egress == fn::egress_id{"sluice", "dead-letters"});
    auto d = fn::typed_as<fn::dead_letter>(out[0].payload);
    REQUIRE(d);
    CHECK(d->payload == fn::typed_value{"shop/Order", "payload"});
    CHECK(d->reason.find("orders/1@9 has " + std::string(key ? "an empty key" : "no key")) !=
          std::string::npos);
  }
}

TEST_CASE("a Kafka ingress from module YAML reads its topics and resumes after its checkpoint") {
  auto orders = new_topic("orders");
  auto notes = new_topic("notes");
  produce(orders, {{"a", "o1"}, {"b", "o2"}, {"c", "o3"}});
  produce(notes, {{"a", "n1"}});
  auto m = parse(ingress_yaml(mock().bootstrap_servers(), orders, notes));
  auto source = make_kafka_ingress(m.kafka_ingresses.at(0));
  REQUIRE_MESSAGE(source, describe(source.error()));
  std::vector<state::operator_state_part> saved;
  {
    source_harness h(*source, 0, 1);
    envelope_collector out;
    read_until(h, out, 7); // 3 orders to 2 targets, 1 note to 1
    std::multiset<std::string> seen;
    for (auto& e : out.values)
      seen.insert(e.target.to_string() + "=" + e.payload.bytes);
    CHECK(seen == std::multiset<std::string>{"shop/cart/a=o1", "shop/cart/b=o2", "shop/cart/c=o3",
                                             "shop/audit/a=o1", "shop/audit/b=o2",
                                             "shop/audit/c=o3", "shop/notes/a=n1"});
    saved = h.checkpoint(1);
    h.fn.close();
  }
  produce(orders, {{"d", "o4"}});
  source_harness restored(*source, 0, 1, saved);
  envelope_collector out;
  read_until(restored, out, 2);
  CHECK(out.values[0].payload.bytes == "o4");
  CHECK(out.values[1].payload.bytes == "o4");
  restored.fn.close();
}

TEST_CASE("a startup date becomes a timestamp start position") {
  // The mock cluster answers every time lookup with "no offset" (its
  // ListOffsets knows only earliest and latest), so only the mapping is
  // checked here; partitions without a record at or after the time start
  // at their end.
  auto m = parse("kind: io.statefun.kafka.v1/ingress\n"
                 "spec:\n"
                 "  id: t/dated\n  address: kafka:9092\n  consumerGroupId: g\n"
                 "  startupPosition:\n    type: date\n    date: 2023-11-14 22:13:20.000 +0000\n"
                 "  topics:\n    - topic: a\n      valueType: x/y\n      targets: [f/g]\n");
  auto c = ingress_config(m.kafka_ingresses.at(0));
  REQUIRE(c);
  CHECK(c->starting_offsets == connectors::kafka_starting_offsets::timestamp);
  CHECK(c->starting_timestamp_ms == 1700000000000);
}

TEST_CASE("an ingress whose broker cannot be reached fails to open within its request timeout") {
  auto m = parse(ingress_yaml("127.0.0.1:1", "a", "b"));
  ingress_options o;
  o.request_timeout = milliseconds(500);
  auto source = make_kafka_ingress(m.kafka_ingresses.at(0), o);
  REQUIRE(source);
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(source_harness(*source, 0, 1),
                       doctest::Contains("metadata of topic 'a' within 500 ms"),
                       connectors::kafka_error);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("an ingress of a topic that does not exist fails to open naming the topic") {
  mock().set_topic_error("no-such-topic", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  auto m = parse(ingress_yaml(mock().bootstrap_servers(), "no-such-topic", "no-such-either"));
  ingress_options o;
  o.request_timeout = milliseconds(2000);
  auto source = make_kafka_ingress(m.kafka_ingresses.at(0), o);
  REQUIRE(source);
  std::string message;
  try {
    source_harness h(*source, 0, 1);
  } catch (const connectors::kafka_error& e) {
    message = e.what();
  }
  CHECK(message.find("topic 'no-such-topic': Broker: Unknown topic or partition") !=
        std::string::npos);
}

} // TEST_SUITE
