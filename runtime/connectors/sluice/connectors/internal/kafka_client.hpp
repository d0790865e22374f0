#pragma once

#include "sluice/connectors/kafka.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

/// librdkafka handles and configuration, shared by the Kafka connectors
/// here and the stateful-functions Kafka ingress and egress (remote/kafka).
namespace sluice::connectors::internal {

/// A duration as librdkafka's int milliseconds (clamped).
inline int timeout_ms(std::chrono::milliseconds d) {
  return static_cast<int>(std::clamp<int64_t>(d.count(), 0, INT32_MAX));
}

/// Deleter of rd_kafka_conf_t.
struct conf_deleter {
  void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
/// Deleter of rd_kafka_topic_partition_list_t.
struct list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
/// Deleter of rd_kafka_message_t.
struct message_deleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
/// Deleter of rd_kafka_error_t.
struct error_deleter {
  void operator()(rd_kafka_error_t* e) const { rd_kafka_error_destroy(e); }
};
/// Deleter of a client (rd_kafka_t).
struct client_deleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
/// An owned configuration.
using conf_ptr = std::unique_ptr<rd_kafka_conf_t, conf_deleter>;
/// An owned partition list.
using list_ptr = std::unique_ptr<rd_kafka_topic_partition_list_t, list_deleter>;
/// An owned consumed message.
using message_ptr = std::unique_ptr<rd_kafka_message_t, message_deleter>;
/// An owned error object.
using error_ptr = std::unique_ptr<rd_kafka_error_t, error_deleter>;
/// An owned client.
using client_ptr = std::unique_ptr<rd_kafka_t, client_deleter>;

/// Sets one property; throws kafka_error naming `who`, the key and the value.
inline void set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value,
                const std::string& who) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
    throw kafka_error(who + ": invalid Kafka property '" + key + "' = '" + value + "': " + err);
}

/// The client configuration: bootstrap servers, the connector's settings,
/// then the user's (which override).
template <class UserProperties>
conf_ptr make_conf(const std::string& bootstrap, const std::map<std::string, std::string>& own,
                   const UserProperties& user, const std::string& who) {
  conf_ptr conf(rd_kafka_conf_new());
  set(conf.get(), "bootstrap.servers", bootstrap, who);
  for (auto& [k, v] : own)
    set(conf.get(), k, v, who);
  for (auto& [k, v] : user)
    set(conf.get(), k, v, who);
  return conf;
}

/// Creates a client; takes ownership of `conf`. Throws kafka_error.
inline rd_kafka_t* make_client(rd_kafka_type_t type, conf_ptr conf, const std::string& who) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (rk == nullptr)
    throw kafka_error(who + ": cannot create Kafka client: " + err);
  conf.release(); // rd_kafka_new owns it now
  return rk;
}

} // namespace sluice::connectors::internal
