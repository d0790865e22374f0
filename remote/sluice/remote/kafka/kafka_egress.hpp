#pragma once

#include "sluice/functions/envelope.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/runtime/data_stream.hpp"
#include "sluice/runtime/two_phase_commit_sink.hpp"
#include "sluice/state/serializer.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sluice::remote::kafka {

/// Settings of Kafka egresses that module YAML does not carry. The egress's
/// `properties` may set the two names with a `sluice.` prefix
/// (`sluice.marker.topic`, `sluice.transactional.id.prefix`); they are
/// taken out before the rest goes to librdkafka.
struct egress_options {
  /// exactly-once: the topic that commit markers go to (must exist; any
  /// number of partitions, 1 is enough; retention longer than the oldest
  /// checkpoint a job may be restored from).
  std::string marker_topic = "sluice-egress-markers";
  /// exactly-once: transactional ids are `<prefix>-<subtask>`; empty =
  /// `sluice-<egress namespace>-<egress name>`. Unique per job and egress
  /// among everything writing to the cluster.
  std::string transactional_id_prefix;
  /// How long a checkpoint (at-least-once) or a commit waits for records to
  /// be acknowledged.
  std::chrono::milliseconds flush_timeout{60000};
  /// Bound on metadata lookups, transaction init/commit and the recovery
  /// scan of the marker topic.
  std::chrono::milliseconds request_timeout{30000};
};

/// One record for Kafka as the exactly-once egress keeps it until its
/// checkpoint completes. An empty key is written as a null key.
struct kafka_egress_record {
  std::string topic;
  std::string key;
  std::string value;
  friend bool operator==(const kafka_egress_record& a, const kafka_egress_record& b) {
    return a.topic == b.topic && a.key == b.key && a.value == b.value;
  }
  static constexpr const char* sluice_type_name = "remote.kafka_egress_record";
  SLUICE_SERIALIZABLE(topic, key, value)
};

/// The records an exactly-once egress subtask took in between two
/// checkpoints, written in one Kafka transaction with the commit marker
/// `id` once the later checkpoint completes. Kept in union list state until
/// then, so whichever subtask restores it can finish it.
struct kafka_egress_batch {
  /// `<origin>:<run nonce>:<seq>`, unique across runs: the marker's value.
  std::string id;
  /// The subtask that took the records in; after a restore at parallelism
  /// p, subtask origin % p finishes the batch.
  int32_t origin = 0;
  /// Orders the batches of one origin.
  int64_t seq = 0;
  /// The marker topic partition this batch's marker goes to, and an offset
  /// at or before where it lands: a recovery scans from there.
  int32_t marker_partition = 0;
  int64_t marker_floor = 0;
  std::vector<kafka_egress_record> records;
  static constexpr const char* sluice_type_name = "remote.kafka_egress_batch";
  SLUICE_SERIALIZABLE(id, origin, seq, marker_partition, marker_floor, records)
};

/// The handle the two-phase-commit protocol keeps per checkpoint: the
/// batch id (empty below exactly-once).
struct kafka_egress_transaction {
  std::string batch;
  static constexpr const char* sluice_type_name = "remote.kafka_egress_transaction";
  SLUICE_SERIALIZABLE(batch)
};

/// The Kafka record an egress envelope for `egress` carries: fails if the
/// envelope is not for that egress, its payload typename is not StateFun's
/// KafkaProducerRecord or its bytes do not parse.
[[nodiscard]] caf::expected<kafka_egress_record> egress_record(const functions::egress_id& egress,
                                                               const functions::envelope& e);

namespace internal {
/// The librdkafka side of one egress subtask (defined in kafka_egress.cpp).
class egress_writer;
} // namespace internal

/// Writes the envelopes of one Kafka egress (StateFun's generic Kafka
/// egress: payload KafkaProducerRecord -> topic, key, value) with the
/// module's deliverySemantic, on the runtime's two-phase-commit sink:
/// - `none`: records are produced as they come; checkpoints do not wait.
/// - `at-least-once`: produced as they come; each checkpoint flushes and
///   fails if a record was not acknowledged.
/// - `exactly-once`: a checkpoint's records are kept (in memory and in the
///   checkpoint) and produced only when the checkpoint completes, in one
///   Kafka transaction together with a marker record (marker topic, value =
///   batch id). A restored subtask scans the marker topic (read_committed)
///   for the markers of the batches its checkpoint holds and produces only
///   those not found, so every batch is committed exactly once; see
///   docs/architecture.md, "Kafka egress".
/// Invalid payloads throw (the job fails with a message naming the egress).
/// Copied per subtask before open(); a copy carries the settings only.
class kafka_egress_sink final
  : public runtime::two_phase_commit_sink<functions::envelope, kafka_egress_transaction> {
public:
  /// A sink for `spec` (validated by make_kafka_egress).
  kafka_egress_sink(kafka_egress_spec spec, egress_options options);
  kafka_egress_sink(const kafka_egress_sink& other);
  kafka_egress_sink& operator=(const kafka_egress_sink&) = delete;
  ~kafka_egress_sink() override;

  void open_sink(const runtime::runtime_context& ctx) override;
  void close_sink() override;
  kafka_egress_transaction begin_transaction() override;
  void write(kafka_egress_transaction& txn, functions::envelope&& value) override;
  void flush(kafka_egress_transaction& txn) override;
  void pre_commit(kafka_egress_transaction& txn) override;
  void commit(kafka_egress_transaction& txn) override;
  void abort(kafka_egress_transaction& txn) override;
  /// Restored batches are finished in open_sink from the union state.
  void recover_and_commit(kafka_egress_transaction& txn) override;
  /// Nothing of an open transaction reached Kafka: nothing to undo.
  void recover_and_abort(kafka_egress_transaction& txn) override;

  /// exactly-once: batches waiting for their checkpoint to complete.
  [[nodiscard]] size_t pending_batches() const noexcept { return pending_.size(); }
  /// exactly-once: restored batches this subtask committed when it opened,
  /// and those it found committed already (their marker was there).
  [[nodiscard]] std::pair<size_t, size_t> recovered() const noexcept {
    return {recommitted_, found_committed_};
  }

private:
  void finish_restored_batches(int32_t subtask, int32_t parallelism);
  void store_batches();

  kafka_egress_spec spec_;
  egress_options options_;
  functions::egress_id egress_;
  bool exactly_once_ = false;
  std::unique_ptr<internal::egress_writer> writer_;
  state::operator_list_state<kafka_egress_batch>* batches_state_ = nullptr;
  std::vector<kafka_egress_record> current_;
  std::map<std::string, kafka_egress_batch> pending_;
  int32_t subtask_ = 0;
  uint64_t nonce_ = 0;
  int64_t next_seq_ = 0;
  size_t recommitted_ = 0;
  size_t found_committed_ = 0;
};

/// The sink of egress `spec`: fails naming the declaration for a bad
/// address, an exactly-once egress without a marker topic, or a bad
/// `sluice.*` property.
[[nodiscard]] caf::expected<kafka_egress_sink> make_kafka_egress(const kafka_egress_spec& spec,
                                                                 egress_options options = {});

/// Adds a sink per Kafka egress of `m` to `egress` (the egress envelopes of
/// run_functions): each takes the envelopes for its id (named "Kafka egress
/// <ns/name>", uid "kafka-egress-<ns/name>"). Envelopes for other egresses
/// are left to other sinks. Fails if an egress is invalid.
[[nodiscard]] caf::error add_kafka_egresses(const runtime::data_stream<functions::envelope>& egress,
                                            const module& m, const egress_options& options = {});

} // namespace sluice::remote::kafka
