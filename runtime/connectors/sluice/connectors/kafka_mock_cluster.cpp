#include "sluice/connectors/kafka_mock_cluster.hpp"

#include "sluice/connectors/kafka.hpp"

#include <librdkafka/rdkafka.h>
// rdkafka_mock.h needs rdkafka.h first.
#include <librdkafka/rdkafka_mock.h>

#include <vector>

namespace sluice::connectors {

struct kafka_mock_cluster::impl {
  rd_kafka_t* rk = nullptr; // the cluster runs on this client's threads
  rd_kafka_mock_cluster_t* cluster = nullptr;
  std::string bootstrap;
};

kafka_mock_cluster::kafka_mock_cluster(int brokers) : impl_(std::make_unique<impl>()) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster; silence its "no bootstrap.servers"
  // configuration warning.
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  impl_->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (impl_->rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw kafka_error(std::string("cannot create the mock cluster's client: ") + err);
  }
  impl_->cluster = rd_kafka_mock_cluster_new(impl_->rk, brokers);
  if (impl_->cluster == nullptr) {
    rd_kafka_destroy(impl_->rk);
    throw kafka_error("cannot start a Kafka mock cluster of " + std::to_string(brokers) +
                      " brokers");
  }
  impl_->bootstrap = rd_kafka_mock_cluster_bootstraps(impl_->cluster);
}

kafka_mock_cluster::~kafka_mock_cluster() {
  rd_kafka_mock_cluster_destroy(impl_->cluster);
  rd_kafka_destroy(impl_->rk);
}

const std::string& kafka_mock_cluster::bootstrap_servers() const noexcept {
  return impl_->bootstrap;
}

void kafka_mock_cluster::create_topic(const std::string& topic, int partitions,
                                      int replication_factor) {
  auto err =
    rd_kafka_mock_topic_create(impl_->cluster, topic.c_str(), partitions, replication_factor);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw kafka_error("mock cluster: cannot create topic '" + topic +
                      "': " + rd_kafka_err2str(err));
}

void kafka_mock_cluster::fail_requests(int api_key, int count, int error_code) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                          static_cast<rd_kafka_resp_err_t>(error_code));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, static_cast<int16_t>(api_key),
                                          errors.size(), errors.data());
}

void kafka_mock_cluster::set_topic_error(const std::string& topic, int error_code) {
  rd_kafka_mock_topic_set_error(impl_->cluster, topic.c_str(),
                                static_cast<rd_kafka_resp_err_t>(error_code));
}

void kafka_mock_cluster::clear_request_errors(int api_key) {
  rd_kafka_mock_clear_request_errors(impl_->cluster, static_cast<int16_t>(api_key));
}

} // namespace sluice::connectors
