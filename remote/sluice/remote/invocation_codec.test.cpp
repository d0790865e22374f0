#include "sluice/remote/invocation_codec.hpp"

#include "proto/request_reply.pb.h"

#include <doctest/doctest.h>

namespace rr = io::statefun::sdk::reqreply;
using namespace sluice::functions;
using namespace sluice::remote;

namespace {

address addr(const char* ns, const char* name, const char* id) {
  return address{function_type{ns, name}, id};
}

invocation_request greeter_request() {
  invocation_request req;
  req.target = addr("example", "greeter", "bob");
  req.state.push_back({"seen", std::string{type_names::int32}, value_codec<int32_t>::encode(1)});
  req.state.push_back({"last_name", std::string{type_names::string}, {}});
  req.invocations.push_back({std::nullopt, make_typed(std::string{"Bob"})});
  req.invocations.push_back({addr("example", "caller", "x"), make_typed(int32_t{7})});
  return req;
}

template <class T> std::string error_text(const caf::expected<T>& x) {
  REQUIRE_FALSE(x);
  return describe(x.error());
}

} // namespace

TEST_SUITE("remote.invocation_codec") {

  TEST_CASE("a request round-trips through ToFunction with state and callers") {
    auto req = greeter_request();
    auto bytes = encode_request(req);
    REQUIRE(bytes);
    CHECK(static_cast<uint8_t>((*bytes)[0]) == 0xa2);
    auto back = decode_request(*bytes);
    REQUIRE(back);
    CHECK(back->target == req.target);
    REQUIRE(back->state.size() == 2);
    CHECK(back->state[0].name == "seen");
    REQUIRE(back->state[0].value);
    CHECK(typed_as<int32_t>(*back->state[0].value) == 1);
    CHECK(back->state[1].name == "last_name");
    CHECK_FALSE(back->state[1].value);
    CHECK(back->invocations == req.invocations);
  }

  TEST_CASE("a registered state without a value is sent by name only") {
    auto req = greeter_request();
    auto bytes = encode_request(req);
    REQUIRE(bytes);
    rr::ToFunction to;
    REQUIRE(to.ParseFromString(*bytes));
    const auto& st = to.invocation().state();
    REQUIRE(st.size() == 2);
    CHECK(st[0].state_value().has_value());
    CHECK(st[0].state_value().typename_() == "io.statefun.types/int");
    CHECK_FALSE(st[1].has_state_value());
    // A zero value is a value: has_value with empty bytes.
    req.state[0].bytes = value_codec<int32_t>::encode(0);
    bytes = encode_request(req);
    REQUIRE(to.ParseFromString(*bytes));
    CHECK(to.invocation().state()[0].state_value().has_value());
    CHECK(to.invocation().state()[0].state_value().value().empty());
  }

  TEST_CASE("an empty batch or an invalid target cannot be encoded") {
    auto req = greeter_request();
    req.invocations.clear();
    CHECK(error_text(encode_request(req)).find("empty batch") != std::string::npos);
    req = greeter_request();
    req.target.id.clear();
    CHECK(error_text(encode_request(req)).find("invalid address") != std::string::npos);
  }

  TEST_CASE("an empty reply or one with no result means no side effects") {
    auto req = greeter_request();
    auto out = decode_response("", req);
    REQUIRE(out);
    REQUIRE(std::holds_alternative<invocation_result>(*out));
    CHECK(std::get<invocation_result>(*out) == invocation_result{});
  }

  TEST_CASE("unparsable reply bytes are an error naming function and address") {
    auto req = greeter_request();
    auto text = error_text(decode_response("\xff\xff\xff garbage", req));
    CHECK(text.find("example/greeter") != std::string::npos);
    CHECK(text.find("example/greeter/bob") != std::string::npos);
    CHECK(text.find("not a FromFunction") != std::string::npos);
  }

  TEST_CASE("a missing-state reply lists the specs with expirations") {
    missing_state ms;
    ms.specs.push_back({"seen",
                        std::string{type_names::int32},
                        {expiration_mode::after_invoke, std::chrono::milliseconds{86400000}}});
    ms.specs.push_back({"last_name", std::string{type_names::string}, {}});
    auto bytes = encode_response(invocation_outcome{ms});
    CHECK(static_cast<uint8_t>(bytes[0]) == 0xaa);
    CHECK(static_cast<uint8_t>(bytes[1]) == 0x06);
    auto out = decode_response(bytes, greeter_request());
    REQUIRE(out);
    REQUIRE(std::holds_alternative<missing_state>(*out));
    CHECK(std::get<missing_state>(*out) == ms);
  }

  TEST_CASE("invalid missing-state specs are rejected") {
    auto req = greeter_request();
    rr::FromFunction from;
    auto* spec = from.mutable_incomplete_invocation_context()->add_missing_values();
    spec->set_state_name("x");
    spec->set_type_typename("io.statefun.types/int");
    spec->mutable_expiration_spec()->set_expire_after_millis(-5);
    CHECK(error_text(decode_response(from.SerializeAsString(), req)).find("negative expiration") !=
          std::string::npos);
    spec->mutable_expiration_spec()->set_expire_after_millis(5);
    spec->set_type_typename("nonsense");
    CHECK(error_text(decode_response(from.SerializeAsString(), req)).find("invalid typename") !=
          std::string::npos);
    spec->set_type_typename("");
    auto ok = decode_response(from.SerializeAsString(), req);
    REQUIRE(ok);
    CHECK(std::get<missing_state>(*ok).specs[0].type_name == "io.statefun.types/unset");
    from.mutable_incomplete_invocation_context()->clear_missing_values();
    CHECK(error_text(decode_response(from.SerializeAsString(), req)).find("no missing state") !=
          std::string::npos);
  }

  TEST_CASE("a full invocation result round-trips in order") {
    invocation_result r;
    r.mutations.push_back({state_mutation::kind::modify, "seen", make_typed(int32_t{3})});
    r.mutations.push_back({state_mutation::kind::remove, "last_name", {}});
    r.messages.push_back(
        {addr("example", "audit", "bob"), typed_value{"example/AuditEntry", "{}"}});
    delayed_invocation cancel;
    cancel.is_cancellation = true;
    cancel.cancellation_token = "reminder-bob";
    delayed_invocation later;
    later.cancellation_token = "reminder-bob";
    later.delay = std::chrono::milliseconds{60000};
    later.target = addr("example", "greeter", "bob");
    later.argument = make_typed(std::string{"again"});
    r.delayed = {cancel, later};
    r.egress.push_back({{"example", "greets"}, make_kafka_record("greetings", "bob", "Hello Bob")});
    auto bytes = encode_response(invocation_outcome{r});
    CHECK(static_cast<uint8_t>(bytes[0]) == 0xa2);
    auto out = decode_response(bytes, greeter_request());
    REQUIRE(out);
    REQUIRE(std::holds_alternative<invocation_result>(*out));
    CHECK(std::get<invocation_result>(*out) == r);
    auto rec = parse_kafka_record(std::get<invocation_result>(*out).egress[0].argument);
    REQUIRE(rec);
    CHECK(rec->topic == "greetings");
    CHECK(rec->key == "bob");
    CHECK(rec->value == "Hello Bob");
  }

  TEST_CASE("replies that break the protocol are errors naming the address") {
    auto req = greeter_request();
    auto reject = [&](invocation_result r, const char* why) {
      auto text = error_text(decode_response(encode_response(r), req));
      CHECK_MESSAGE(text.find(why) != std::string::npos, text);
      CHECK(text.find("example/greeter/bob") != std::string::npos);
    };
    invocation_result r;
    r.mutations.push_back({state_mutation::kind::modify, "unknown", make_typed(int32_t{1})});
    reject(r, "not registered");
    r = {};
    r.mutations.push_back({state_mutation::kind::modify, "seen", make_typed(std::string{"x"})});
    reject(r, "registered as 'io.statefun.types/int'");
    r = {};
    r.messages.push_back({addr("example", "", "x"), make_typed(int32_t{1})});
    reject(r, "invalid address");
    r = {};
    r.messages.push_back({addr("example", "audit", "x"), typed_value{"bad", ""}});
    reject(r, "invalid typename 'bad'");
    r = {};
    delayed_invocation d;
    d.delay = std::chrono::milliseconds{-1};
    d.target = addr("example", "audit", "x");
    d.argument = make_typed(int32_t{1});
    r.delayed.push_back(d);
    reject(r, "negative delay");
    r = {};
    delayed_invocation c;
    c.is_cancellation = true;
    r.delayed.push_back(c);
    reject(r, "without a token");
    r = {};
    r.egress.push_back({{"", "greets"}, make_typed(int32_t{1})});
    reject(r, "namespace and type must be set");
  }

  TEST_CASE("a MODIFY without a value and an unknown mutation type are rejected") {
    auto req = greeter_request();
    rr::FromFunction from;
    auto* m = from.mutable_invocation_result()->add_state_mutations();
    m->set_state_name("seen");
    m->set_mutation_type(rr::FromFunction::PersistedValueMutation::MODIFY);
    CHECK(error_text(decode_response(from.SerializeAsString(), req)).find("without a value") !=
          std::string::npos);
    m->set_mutation_type(static_cast<rr::FromFunction::PersistedValueMutation::MutationType>(7));
    CHECK(error_text(decode_response(from.SerializeAsString(), req)).find("unknown type 7") !=
          std::string::npos);
    m->set_mutation_type(rr::FromFunction::PersistedValueMutation::DELETE);
    auto ok = decode_response(from.SerializeAsString(), req);
    REQUIRE(ok);
    CHECK(std::get<invocation_result>(*ok).mutations[0].what == state_mutation::kind::remove);
  }

  TEST_CASE("requests without a batch or target are rejected on the SDK side") {
    CHECK(error_text(decode_request("")).find("no invocation batch") != std::string::npos);
    rr::ToFunction to;
    to.mutable_invocation();
    CHECK(error_text(decode_request(to.SerializeAsString())).find("no target") !=
          std::string::npos);
    CHECK(error_text(decode_request("\x0a\xff")).find("not a ToFunction") != std::string::npos);
  }

  TEST_CASE("a Kafka record needs its typename and a topic") {
    CHECK(error_text(parse_kafka_record(make_typed(int32_t{1}))).find("KafkaProducerRecord") !=
          std::string::npos);
    CHECK(error_text(parse_kafka_record(make_kafka_record("", "k", "v"))).find("without a topic") !=
          std::string::npos);
  }
}
