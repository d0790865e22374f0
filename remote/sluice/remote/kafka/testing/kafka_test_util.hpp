#pragma once

// Test support for the Kafka ingress and egress (header-only, not part of
// the library): a shared mock cluster, a plain producer and a reader of
// whole topics, and a harness that opens a checkpointed function the way
// its operator does.

#include "sluice/connectors/kafka_mock_cluster.hpp"
#include "sluice/connectors/testing/function_harness.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sluice::remote::kafka::testing {

/// One mock cluster per test process (stopping one takes a second); tests
/// give themselves topics of their own with new_topic.
inline connectors::kafka_mock_cluster& mock() {
  static connectors::kafka_mock_cluster cluster(3);
  return cluster;
}

/// A fresh topic of `partitions` partitions on the mock, named after `base`.
inline std::string new_topic(const std::string& base, int partitions = 3) {
  static int n = 0;
  auto name = base + "-" + std::to_string(++n);
  mock().create_topic(name, partitions);
  return name;
}

/// A record as tests write and read it.
struct test_record {
  std::optional<std::string> key;
  std::string value;
  int32_t partition = -1; ///< -1 when writing: the partitioner picks
  int64_t timestamp_ms = 0; ///< 0 when writing: now
};

/// Writes `records` to `topic` and waits until all are acknowledged.
inline void produce(const std::string& topic, const std::vector<test_record>& records) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", mock().bootstrap_servers().c_str(), err,
                    sizeof err);
  auto* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (p == nullptr)
    throw std::runtime_error(err);
  for (auto& r : records) {
    const void* key = r.key ? r.key->data() : nullptr;
    size_t key_len = r.key ? r.key->size() : 0;
    rd_kafka_resp_err_t e;
    // A full local queue: serve delivery reports until there is room.
    while ((e = rd_kafka_producev(
      p, RD_KAFKA_V_TOPIC(topic.c_str()),
      RD_KAFKA_V_PARTITION(r.partition < 0 ? RD_KAFKA_PARTITION_UA : r.partition),
      RD_KAFKA_V_KEY(key, key_len),
      RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
      RD_KAFKA_V_TIMESTAMP(r.timestamp_ms), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error(rd_kafka_err2str(e));
  }
  auto flushed = rd_kafka_flush(p, 10000);
  rd_kafka_destroy(p);
  if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("test producer: flush failed");
}

/// Everything in `topic` (every partition from the start) as a consumer
/// with `isolation` (read_committed by default) reads it, stopping at the
/// end of every partition, or after `wait`.
inline std::vector<test_record> read_topic(const std::string& topic,
                                           const char* isolation = "read_committed",
                                           std::chrono::milliseconds wait = std::chrono::seconds(10)) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  auto set = [&](const char* k, const char* v) { rd_kafka_conf_set(conf, k, v, err, sizeof err); };
  set("bootstrap.servers", mock().bootstrap_servers().c_str());
  set("group.id", "test-reader");
  set("isolation.level", isolation);
  set("enable.partition.eof", "true");
  set("fetch.wait.max.ms", "20");
  auto* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (c == nullptr)
    throw std::runtime_error(err);
  const rd_kafka_metadata_t* md = nullptr;
  auto* rkt = rd_kafka_topic_new(c, topic.c_str(), nullptr);
  auto merr = rd_kafka_metadata(c, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (merr != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1) {
    if (md != nullptr)
      rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(c);
    throw std::runtime_error("test reader: no metadata for " + topic);
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  auto* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<test_record> out;
  int at_end = 0;
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (at_end < partitions && std::chrono::steady_clock::now() < deadline) {
    auto* m = rd_kafka_consumer_poll(c, 20);
    if (m == nullptr)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++at_end;
    } else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      test_record r;
      if (m->key != nullptr)
        r.key = std::string(static_cast<const char*>(m->key), m->key_len);
      r.value.assign(static_cast<const char*>(m->payload), m->len);
      r.partition = m->partition;
      r.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
      out.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return out;
}

/// Opens a source or sink function outside a job (see connectors::testing).
template <class F>
using harness = connectors::testing::function_harness<F>;

} // namespace sluice::remote::kafka::testing
