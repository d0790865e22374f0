#pragma once

#include <memory>
#include <string>

namespace sluice::connectors {

/// An in-process Kafka cluster for tests: librdkafka's mock cluster, which
/// listens on loopback ports and speaks the Kafka protocol to any client.
/// It does not emulate transaction isolation or fencing (see the connectors
/// README). Owned by the test that creates it; destroying it stops the
/// brokers, which takes about a second once clients have connected (its
/// broker threads poll with a 1 s timeout), so tests share one cluster.
class kafka_mock_cluster {
public:
  /// Starts `brokers` mock brokers. Throws kafka_error if it cannot.
  explicit kafka_mock_cluster(int brokers = 3);
  ~kafka_mock_cluster();
  kafka_mock_cluster(const kafka_mock_cluster&) = delete;
  kafka_mock_cluster& operator=(const kafka_mock_cluster&) = delete;

  /// "127.0.0.1:port,..." for clients' bootstrap.servers.
  [[nodiscard]] const std::string& bootstrap_servers() const noexcept;
  /// Creates `topic` with `partitions` partitions.
  void create_topic(const std::string& topic, int partitions, int replication_factor = 1);
  /// Makes the next `count` requests with Kafka API key `api_key` (0 =
  /// Produce) fail with Kafka error code `error_code`, for fault injection.
  void fail_requests(int api_key, int count, int error_code);
  /// Makes metadata requests for `topic` answer with Kafka error code
  /// `error_code` (0 = none again): with 3 (UNKNOWN_TOPIC_OR_PARTITION) a
  /// topic looks missing, which the mock cannot show otherwise because it
  /// creates every topic a client asks about.
  void set_topic_error(const std::string& topic, int error_code);
  /// Drops the errors fail_requests queued for `api_key` that were not used.
  void clear_request_errors(int api_key);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace sluice::connectors
