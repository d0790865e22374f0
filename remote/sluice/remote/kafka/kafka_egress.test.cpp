#include "sluice/remote/kafka/kafka_egress.hpp"

#include "sluice/connectors/kafka.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/kafka_record.hpp"
#include "sluice/remote/kafka/testing/kafka_test_util.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>

using namespace sluice;
using namespace sluice::remote;
using namespace sluice::remote::kafka;
using namespace sluice::remote::kafka::testing;
namespace fn = sluice::functions;
using std::chrono::milliseconds;

namespace {

using sink_harness = harness<kafka_egress_sink>;

const fn::egress_id out_id{"shop", "out"};

fn::envelope record_for(const std::string& topic, const std::string& key, const std::string& value) {
  return fn::envelope::to_egress(out_id, make_kafka_record(topic, key, value));
}

kafka_egress_spec spec_of(kafka_egress_spec::semantic s) {
  kafka_egress_spec spec;
  spec.id = {"shop", "out"};
  spec.address = mock().bootstrap_servers();
  spec.delivery = s;
  spec.declared_at = "module.yaml:7";
  return spec;
}

/// An exactly-once egress with a marker topic of its own.
kafka_egress_sink exactly_once_sink(const std::string& prefix) {
  auto spec = spec_of(kafka_egress_spec::semantic::exactly_once);
  egress_options o;
  o.marker_topic = new_topic("markers", 2);
  o.transactional_id_prefix = prefix;
  o.request_timeout = milliseconds(5000);
  o.flush_timeout = milliseconds(5000);
  auto sink = make_kafka_egress(spec, o);
  REQUIRE_MESSAGE(sink, describe(sink.error()));
  return std::move(*sink);
}

std::multiset<std::string> values_of(const std::vector<test_record>& records) {
  std::multiset<std::string> out;
  for (auto& r : records)
    out.insert(r.key.value_or("") + "=" + r.value);
  return out;
}

/// Restores `saved` (one snapshot per old subtask) into `p` new subtasks.
std::vector<std::unique_ptr<sink_harness>>
restore(const kafka_egress_sink& proto, const std::vector<std::vector<state::operator_state_part>>& saved,
        int32_t p) {
  std::vector<std::unique_ptr<sink_harness>> out;
  for (int32_t i = 0; i < p; ++i)
    out.push_back(std::make_unique<sink_harness>(
      proto, i, p, state::operator_state_store::redistribute(saved, i, p)));
  return out;
}

} // namespace

TEST_SUITE("remote.kafka.egress") {

TEST_CASE("an egress envelope must carry a KafkaProducerRecord for this egress") {
  auto ok = egress_record(out_id, record_for("t", "k", "v"));
  REQUIRE(ok);
  CHECK(*ok == kafka_egress_record{"t", "k", "v"});

  auto typed = egress_record(out_id, fn::envelope::to_egress(out_id, fn::make_typed(std::string("v"))));
  REQUIRE_FALSE(typed);
  CHECK(describe(typed.error()) ==
        "Kafka egress shop/out: a Kafka egress record must have typename "
        "'type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord', not "
        "'io.statefun.types/string'");
  auto garbage = egress_record(
    out_id, fn::envelope::to_egress(out_id, fn::typed_value{std::string(kafka_producer_record_type),
                                                            "\xff\xff\xff"}));
  REQUIRE_FALSE(garbage);
  CHECK(describe(garbage.error()).find("do not parse") != std::string::npos);
  auto no_topic = egress_record(out_id, record_for("", "k", "v"));
  REQUIRE_FALSE(no_topic);
  CHECK(describe(no_topic.error()) == "Kafka egress shop/out: a Kafka egress record without a topic");
  auto other = egress_record(fn::egress_id{"shop", "other"}, record_for("t", "k", "v"));
  REQUIRE_FALSE(other);
  CHECK(describe(other.error()) == "Kafka egress shop/other got a record for egress shop/out");
}

TEST_CASE("bad egress settings are errors naming the declaration") {
  auto spec = spec_of(kafka_egress_spec::semantic::exactly_once);
  spec.address = "kafka:none";
  auto s = make_kafka_egress(spec);
  REQUIRE_FALSE(s);
  CHECK(is(s.error(), remote_errc::invalid_module));
  CHECK(describe(s.error()) == "module.yaml:7: Kafka egress shop/out: address 'kafka:none' is not "
                               "a list of host:port (e.g. kafka:9092,kafka2:9092)");
  spec = spec_of(kafka_egress_spec::semantic::exactly_once);
  spec.properties = {{"sluice.marker.topik", "m"}};
  auto unknown = make_kafka_egress(spec);
  REQUIRE_FALSE(unknown);
  CHECK(describe(unknown.error()).find("unknown property 'sluice.marker.topik'") !=
        std::string::npos);
  spec.properties = {{"transactional.id", "mine"}};
  CHECK_FALSE(make_kafka_egress(spec));
  spec.properties = {{"sluice.marker.topic", ""}};
  auto no_marker = make_kafka_egress(spec);
  REQUIRE_FALSE(no_marker);
  CHECK(describe(no_marker.error()).find("needs a marker topic") != std::string::npos);
}

TEST_CASE("an exactly-once egress fails to open when its marker topic does not exist") {
  auto spec = spec_of(kafka_egress_spec::semantic::exactly_once);
  egress_options o;
  o.marker_topic = "no-such-marker-topic";
  mock().set_topic_error(o.marker_topic, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  o.request_timeout = milliseconds(2000);
  auto sink = make_kafka_egress(spec, o);
  REQUIRE(sink);
  CHECK_THROWS_WITH_AS(sink_harness(*sink, 0, 1),
                       doctest::Contains("topic 'no-such-marker-topic' does not exist"),
                       connectors::kafka_error);
}

TEST_CASE("an exactly-once egress whose broker cannot be reached fails to open in time") {
  auto spec = spec_of(kafka_egress_spec::semantic::exactly_once);
  spec.address = "127.0.0.1:1";
  spec.properties = {{"log_level", "0"}};
  egress_options o;
  o.request_timeout = milliseconds(500);
  auto sink = make_kafka_egress(spec, o);
  REQUIRE(sink);
  auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(sink_harness(*sink, 0, 1),
                       doctest::Contains("Kafka egress shop/out (at 127.0.0.1:1): init of "
                                         "transactional id 'sluice-shop-out-0' failed"),
                       connectors::kafka_error);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("an at-least-once egress writes topic, key and value and flushes on checkpoints") {
  auto a = new_topic("alo-a");
  auto b = new_topic("alo-b");
  auto spec = spec_of(kafka_egress_spec::semantic::at_least_once);
  spec.properties = {{"linger.ms", "10000"}}; // only the checkpoint's flush sends them
  auto sink = make_kafka_egress(spec);
  REQUIRE(sink);
  sink_harness h(*sink, 0, 1);
  h.fn.invoke(record_for(a, "k1", "v1"));
  h.fn.invoke(record_for(b, "", "v2"));
  h.fn.end_of_batch();
  h.checkpoint(1);
  CHECK(values_of(read_topic(a)) == std::multiset<std::string>{"k1=v1"});
  auto in_b = read_topic(b);
  REQUIRE(in_b.size() == 1);
  CHECK_FALSE(in_b[0].key); // an empty key is a null key
  h.fn.notify_checkpoint_complete(1);
  h.fn.close();
}

TEST_CASE("an egress record to a topic that does not exist fails the commit naming the topic") {
  auto proto = exactly_once_sink("eo-missing");
  mock().set_topic_error("no-such-output", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  sink_harness h(proto, 0, 1);
  h.fn.invoke(record_for("no-such-output", "k", "v"));
  h.checkpoint(1);
  CHECK_THROWS_WITH_AS(h.fn.notify_checkpoint_complete(1),
                       doctest::Contains("topic 'no-such-output' does not exist"),
                       connectors::kafka_error);
  CHECK(h.fn.pending_batches() == 1); // kept for the restore
  h.fn.close();
}

TEST_CASE("an egress fails on a payload that is not a KafkaProducerRecord") {
  auto sink = make_kafka_egress(spec_of(kafka_egress_spec::semantic::at_least_once));
  REQUIRE(sink);
  sink_harness h(*sink, 0, 1);
  CHECK_THROWS_WITH(h.fn.invoke(fn::envelope::to_egress(out_id, fn::make_typed(int32_t{3}))),
                    doctest::Contains("not 'io.statefun.types/int'"));
  h.fn.close();
}

TEST_CASE("an exactly-once egress writes a checkpoint's records only when it completes") {
  auto out = new_topic("eo");
  auto proto = exactly_once_sink("eo-basic");
  sink_harness h(proto, 0, 1);
  h.fn.invoke(record_for(out, "a", "1"));
  h.fn.invoke(record_for(out, "b", "2"));
  h.checkpoint(1);
  h.fn.invoke(record_for(out, "c", "3"));
  CHECK(h.fn.pending_batches() == 1);
  CHECK(read_topic(out, "read_uncommitted").empty());
  h.fn.notify_checkpoint_complete(1);
  CHECK(h.fn.pending_batches() == 0);
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"a=1", "b=2"});
  h.checkpoint(2);
  h.checkpoint(3); // an empty batch: nothing to commit
  h.fn.notify_checkpoint_complete(3);
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"a=1", "b=2", "c=3"});
  h.fn.close();
}

TEST_CASE("a restored exactly-once egress commits each restored batch exactly once") {
  auto out = new_topic("eo-restore");
  auto proto = exactly_once_sink("eo-restore");
  std::vector<state::operator_state_part> cp2;
  std::vector<state::operator_state_part> cp3;
  {
    sink_harness h(proto, 0, 1);
    h.fn.invoke(record_for(out, "a", "1"));
    h.checkpoint(1);
    h.fn.notify_checkpoint_complete(1);
    h.fn.invoke(record_for(out, "b", "2"));
    cp2 = h.checkpoint(2);
    h.fn.notify_checkpoint_complete(2); // committed, then the job fails
    h.fn.invoke(record_for(out, "c", "3"));
    cp3 = h.checkpoint(3); // completed, but the failure comes before the commit
    // no close(): the subtask dies
  }
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"a=1", "b=2"});
  {
    // Restored from checkpoint 2: batch 2 committed already (its marker is there).
    sink_harness h(proto, 0, 1, cp2);
    CHECK(h.fn.recovered() == std::pair<size_t, size_t>{0, 1});
    h.fn.close();
  }
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"a=1", "b=2"});
  {
    // Restored from checkpoint 3: batch 3 was never committed.
    sink_harness h(proto, 0, 1, cp3);
    CHECK(h.fn.recovered() == std::pair<size_t, size_t>{1, 0});
    h.fn.close();
  }
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"a=1", "b=2", "c=3"});
  {
    // Restored from checkpoint 3 again (the job failed once more): nothing twice.
    sink_harness h(proto, 0, 1, cp3);
    CHECK(h.fn.recovered() == std::pair<size_t, size_t>{0, 1});
    h.fn.close();
  }
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"a=1", "b=2", "c=3"});
}

TEST_CASE("an exactly-once egress restored at a lower parallelism finishes the batches of all") {
  auto out = new_topic("eo-rescale");
  auto proto = exactly_once_sink("eo-rescale");
  std::vector<std::vector<state::operator_state_part>> saved;
  {
    std::vector<std::unique_ptr<sink_harness>> old;
    for (int32_t i = 0; i < 3; ++i)
      old.push_back(std::make_unique<sink_harness>(proto, i, 3));
    for (int32_t i = 0; i < 3; ++i)
      old[i]->fn.invoke(record_for(out, "k" + std::to_string(i), "x"));
    for (int32_t i = 0; i < 3; ++i)
      saved.push_back(old[i]->checkpoint(1));
    old[1]->fn.notify_checkpoint_complete(1); // only subtask 1 committed before the failure
  }
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"k1=x"});
  auto now = restore(proto, saved, 2);
  CHECK(now[0]->fn.recovered() == std::pair<size_t, size_t>{2, 0}); // origins 0 and 2
  CHECK(now[1]->fn.recovered() == std::pair<size_t, size_t>{0, 1}); // origin 1
  for (auto& h : now)
    h->fn.close();
  CHECK(values_of(read_topic(out)) == std::multiset<std::string>{"k0=x", "k1=x", "k2=x"});
}

} // TEST_SUITE
