#pragma once

#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/source.hpp"
#include "sluice/runtime/two_phase_commit_sink.hpp"
#include "sluice/state/serializer.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// Kafka source and sink on librdkafka (Flink's KafkaSource and KafkaSink).
/// librdkafka stays behind this header: its handles live in internal classes
/// defined in kafka.cpp.
namespace sluice::connectors {

/// A Kafka client call failed (unreachable brokers, unknown topic, failed
/// delivery, transaction error); the message names the topic or
/// transactional id and the bootstrap servers.
class kafka_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Extra librdkafka configuration properties ("fetch.wait.max.ms" -> "100");
/// they are applied after the connector's own and override them.
using kafka_properties = std::map<std::string, std::string>;

// ---------------------------------------------------------------- source --

/// Where a partition without restored state starts reading.
enum class kafka_starting_offsets {
  earliest,  ///< the oldest offset still in the log
  latest,    ///< the end of the log when the source opens
  committed, ///< the group's committed offset; `fallback_offsets` if there is none
  specific,  ///< `specific_offsets`; `fallback_offsets` for partitions not listed
  timestamp, ///< the first record at or after `starting_timestamp_ms`; the end if none
};

/// Settings of a kafka_source.
struct kafka_source_config {
  /// "host:port[,host:port...]".
  std::string bootstrap_servers;
  /// Topics to read; all their partitions are read.
  std::vector<std::string> topics;
  /// Consumer group the offsets of completed checkpoints are committed to
  /// (for monitoring; the source's positions live in its checkpoints). Empty
  /// = no commits (an internal group id is used for the client).
  std::string group_id;
  kafka_starting_offsets starting_offsets = kafka_starting_offsets::earliest;
  /// committed, specific: where partitions without such an offset start
  /// (earliest or latest).
  kafka_starting_offsets fallback_offsets = kafka_starting_offsets::earliest;
  /// specific: (topic, partition) -> first offset to read.
  std::map<std::pair<std::string, int32_t>, int64_t> specific_offsets;
  /// timestamp: epoch milliseconds.
  int64_t starting_timestamp_ms = 0;
  /// True: stop at the end offsets the subtask sees when it opens (batch
  /// reads and tests). False: read until cancelled.
  bool bounded = false;
  kafka_properties properties;
  /// Bound on each metadata, watermark and committed-offset request made
  /// while opening; past it the source fails with a kafka_error.
  std::chrono::milliseconds request_timeout{10000};
  /// How long a step that found no record asks to wait before the next.
  std::chrono::milliseconds idle_wait{10};
};

/// The position of one partition in a source checkpoint: the offset of the
/// next record to read.
struct kafka_partition_offset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;
  static constexpr const char* sluice_type_name = "kafka_partition_offset";
  SLUICE_SERIALIZABLE(topic, partition, next_offset)
  friend bool operator==(const kafka_partition_offset& a, const kafka_partition_offset& b) {
    return a.topic == b.topic && a.partition == b.partition && a.next_offset == b.next_offset;
  }
};

/// The subtask (of `parallelism`) that reads `partition` of `topic`: Flink's
/// KafkaSourceEnumerator rule, (start(topic) + partition) % parallelism with
/// start(topic) = ((hash(topic) * 31) & 0x7fffffff) % parallelism and hash
/// Java's String.hashCode (over the UTF-8 bytes). Consecutive partitions go
/// to consecutive subtasks; every subtask computes it alone, so no
/// consumer-group protocol is needed and rescaling needs no coordination.
[[nodiscard]] int32_t kafka_partition_owner(std::string_view topic, int32_t partition,
                                            int32_t parallelism);

/// Turns a record's key and value into T. The views are valid during the
/// call only; a null key or value arrives as an empty view.
template <class T>
using kafka_deserializer = std::function<T(std::string_view key, std::string_view value)>;

/// A consumed record as a kafka_record_reader sees it; the views are valid
/// during the call only.
struct kafka_consumed_record {
  std::string_view topic;
  int32_t partition = 0;
  int64_t offset = 0;
  /// Create or log-append time (epoch ms); nullopt if the record has none.
  std::optional<int64_t> timestamp_ms;
  /// nullopt for a null key.
  std::optional<std::string_view> key;
  /// A null value arrives as an empty view.
  std::string_view value;
};

/// Turns one record into any number of Ts, collected into `out` (for
/// sources that fan a record out or route it by topic).
template <class T>
using kafka_record_reader =
  std::function<void(const kafka_consumed_record& record, runtime::collector<T>& out)>;

/// The value as a std::string (the key is ignored).
[[nodiscard]] kafka_deserializer<std::string> kafka_string_deserializer();

namespace internal {

/// Receives the records a kafka_source_reader polls.
class kafka_record_handler {
public:
  virtual ~kafka_record_handler() = default;
  virtual void on_record(const kafka_consumed_record& record) = 0;
};

/// One subtask's consumer: the partitions it owns, their positions and, in
/// bounded mode, their stop offsets. Used by one subtask thread only.
class kafka_source_reader {
public:
  /// Connects, reads the topics' metadata, assigns the partitions this
  /// subtask owns at their restored (else starting) offsets. Throws
  /// kafka_error if that cannot be done within config.request_timeout.
  kafka_source_reader(const kafka_source_config& config, int32_t subtask, int32_t parallelism,
                      const std::vector<kafka_partition_offset>& restored);
  ~kafka_source_reader();
  kafka_source_reader(const kafka_source_reader&) = delete;
  kafka_source_reader& operator=(const kafka_source_reader&) = delete;

  /// Hands at most `max_records` ready records to `handler` without
  /// blocking.
  runtime::source_step poll(size_t max_records, kafka_record_handler& handler);
  /// The next offset of every owned partition.
  [[nodiscard]] std::vector<kafka_partition_offset> positions() const;
  /// Commits `offsets` to the consumer group, asynchronously, ignoring
  /// failures (they are for monitoring only). No-op without a group id.
  void commit(const std::vector<kafka_partition_offset>& offsets);

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace internal

/// Reads Kafka topics (Flink's KafkaSource). Partitions are assigned
/// explicitly (kafka_partition_owner, rd_kafka_assign), not through the
/// consumer-group protocol. The next offset of each owned partition is union
/// list operator state, so after a restore at any parallelism each subtask
/// picks the entries of the partitions it now owns. Offsets of completed
/// checkpoints are committed to `group_id` for monitoring. Steps never block:
/// a step emits what librdkafka has fetched already and asks to wait when
/// nothing is there.
///
/// Copied per subtask before open(); a copy carries the settings only.
template <class T>
class kafka_source final : public runtime::source_function<T>,
                           public runtime::checkpointed_function,
                           public runtime::checkpoint_listener {
public:
  kafka_source(kafka_source_config config, kafka_deserializer<T> deserializer)
    : kafka_source(std::move(config), reader_of(std::move(deserializer))) {}
  /// A source whose `reader` turns each record into any number of Ts.
  kafka_source(kafka_source_config config, kafka_record_reader<T> reader)
    : config_(std::move(config)), deserializer_(std::move(reader)) {
    if (config_.bootstrap_servers.empty())
      throw std::invalid_argument("kafka_source needs bootstrap servers");
    if (config_.topics.empty())
      throw std::invalid_argument("kafka_source needs at least one topic");
    if (!deserializer_)
      throw std::invalid_argument("kafka_source needs a deserializer");
  }
  kafka_source(const kafka_source& other)
    : runtime::source_function<T>(other), runtime::checkpointed_function(other),
      runtime::checkpoint_listener(other), config_(other.config_),
      deserializer_(other.deserializer_) {}
  kafka_source& operator=(const kafka_source&) = delete;

  void initialize_state(const runtime::function_initialization_context& ctx) override {
    offsets_ = &ctx.operator_state().template union_list_state<kafka_partition_offset>(
      "kafka-source-offsets");
    restored_ = ctx.is_restored();
  }

  void open(const runtime::runtime_context& ctx) override {
    std::vector<kafka_partition_offset> restored;
    if (restored_ && offsets_ != nullptr)
      restored = offsets_->get();
    reader_ = std::make_unique<internal::kafka_source_reader>(config_, ctx.subtask_index(),
                                                              ctx.parallelism(), restored);
  }

  void close() override { reader_.reset(); }

  runtime::source_step run(runtime::collector<T>& out, size_t max_records) override {
    emitter e{out, deserializer_};
    return reader_->poll(max_records, e);
  }

  void snapshot_state(int64_t checkpoint_id, int64_t /*timestamp_ms*/) override {
    if (reader_ == nullptr)
      return; // not open: the restored offsets stand
    auto now = reader_->positions();
    offsets_->update(now);
    to_commit_.emplace_back(checkpoint_id, std::move(now));
  }

  void notify_checkpoint_complete(int64_t checkpoint_id) override {
    // Subsuming: commit the newest completed checkpoint's offsets only.
    const std::vector<kafka_partition_offset>* newest = nullptr;
    for (auto& [id, offsets] : to_commit_)
      if (id <= checkpoint_id)
        newest = &offsets;
    if (newest != nullptr && reader_ != nullptr)
      reader_->commit(*newest);
    while (!to_commit_.empty() && to_commit_.front().first <= checkpoint_id)
      to_commit_.erase(to_commit_.begin());
  }

  void notify_checkpoint_aborted(int64_t checkpoint_id) override {
    for (auto it = to_commit_.begin(); it != to_commit_.end(); ++it)
      if (it->first == checkpoint_id) {
        to_commit_.erase(it);
        break;
      }
  }

  /// The next offset of every partition this subtask reads (empty before
  /// open()).
  [[nodiscard]] std::vector<kafka_partition_offset> positions() const {
    return reader_ ? reader_->positions() : std::vector<kafka_partition_offset>{};
  }

private:
  static kafka_record_reader<T> reader_of(kafka_deserializer<T> d) {
    if (!d)
      return {};
    return [d = std::move(d)](const kafka_consumed_record& r, runtime::collector<T>& out) {
      out.collect(d(r.key.value_or(std::string_view{}), r.value));
    };
  }

  struct emitter final : internal::kafka_record_handler {
    emitter(runtime::collector<T>& o, const kafka_record_reader<T>& d) : out(o), read(d) {}
    void on_record(const kafka_consumed_record& record) override { read(record, out); }
    runtime::collector<T>& out;
    const kafka_record_reader<T>& read;
  };

  kafka_source_config config_;
  kafka_record_reader<T> deserializer_;
  state::operator_list_state<kafka_partition_offset>* offsets_ = nullptr;
  bool restored_ = false;
  std::unique_ptr<internal::kafka_source_reader> reader_;
  std::vector<std::pair<int64_t, std::vector<kafka_partition_offset>>> to_commit_;
};

// ------------------------------------------------------------------ sink --

/// What a kafka_sink promises (Flink's DeliveryGuarantee).
enum class kafka_delivery_guarantee {
  /// Records are sent; nothing waits for them on checkpoints (lost or
  /// duplicated after a failure).
  none,
  /// Every checkpoint waits until all records sent before it are
  /// acknowledged (duplicated after a failure, never lost).
  at_least_once,
  /// Records go into one Kafka transaction per checkpoint, committed when
  /// the checkpoint completes; read_committed consumers see each record once.
  exactly_once,
};

/// A record as it is written to Kafka. No key = null key (the partitioner
/// then spreads records); an empty key is a key.
struct kafka_producer_record {
  std::optional<std::string> key;
  std::string value;
};

/// Turns a T into the record that is written.
template <class T>
using kafka_serializer = std::function<kafka_producer_record(const T&)>;

/// A std::string as the value, with a null key.
[[nodiscard]] kafka_serializer<std::string> kafka_string_serializer();

/// Settings of a kafka_sink.
struct kafka_sink_config {
  /// "host:port[,host:port...]".
  std::string bootstrap_servers;
  std::string topic;
  kafka_delivery_guarantee guarantee = kafka_delivery_guarantee::none;
  /// exactly_once: transactional ids are "<prefix>-<subtask>-<sequence>".
  /// Required then, and must be unique to the job among everything that
  /// writes to the cluster.
  std::string transactional_id_prefix;
  kafka_properties properties;
  /// How long a checkpoint (and the end of the input) waits for outstanding
  /// deliveries before it fails.
  std::chrono::milliseconds flush_timeout{60000};
  /// Bound on init, commit and abort of a transaction.
  std::chrono::milliseconds transaction_timeout{60000};
};

/// The handle of one sink transaction as it is kept in checkpoints. Empty
/// for the none and at_least_once guarantees.
struct kafka_transaction {
  std::string transactional_id;
  static constexpr const char* sluice_type_name = "kafka_transaction";
  SLUICE_SERIALIZABLE(transactional_id)
};

namespace internal {

/// The producers of one sink subtask: one plain producer, or (exactly_once)
/// one transactional producer per open or pre-committed transaction. Used by
/// one subtask thread only.
class kafka_writer {
public:
  kafka_writer(const kafka_sink_config& config, int32_t subtask);
  ~kafka_writer();
  kafka_writer(const kafka_writer&) = delete;
  kafka_writer& operator=(const kafka_writer&) = delete;

  /// Starts the transaction `sequence` (exactly_once: a new producer with
  /// its transactional id, initialized; otherwise a no-op handle).
  [[nodiscard]] kafka_transaction begin(int64_t sequence);
  /// Queues `record` on the producer of `txn`; throws kafka_error if an
  /// earlier delivery failed.
  void send(const kafka_transaction& txn, const kafka_producer_record& record);
  /// Serves delivery reports without blocking; throws kafka_error if a
  /// delivery failed.
  void poll(const kafka_transaction& txn);
  /// Waits up to flush_timeout until every record of `txn` is acknowledged;
  /// throws kafka_error on a failed delivery or the timeout.
  void flush(const kafka_transaction& txn);
  /// Commits a flushed transaction of this writer (no-op if not transactional).
  void commit(const kafka_transaction& txn);
  /// Aborts a transaction of this writer, or fences a foreign one by
  /// initializing its transactional id (no-op if not transactional).
  void abort(const kafka_transaction& txn);
  /// After a restore: finishes a transaction pre-committed before the
  /// failure by initializing a producer with its transactional id (see
  /// the connectors README for what the broker then does).
  void recover(const kafka_transaction& txn);
  /// Non-transactional: flushes what is queued (bounded by flush_timeout,
  /// failures ignored). Then destroys every producer.
  void close();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace internal

/// Writes records to a Kafka topic (Flink's KafkaSink) with a chosen
/// delivery guarantee. It is a two_phase_commit_sink for every guarantee:
/// pre-commit flushes (at_least_once, exactly_once), commit commits the
/// Kafka transaction (exactly_once). Transactional ids are
/// "<prefix>-<subtask>-<sequence>" with a sequence kept in union list state,
/// so ids used after a restore never collide with ids of the restored
/// checkpoint, at any parallelism.
///
/// Copied per subtask before open(); a copy carries the settings only.
template <class T>
class kafka_sink final : public runtime::two_phase_commit_sink<T, kafka_transaction> {
public:
  kafka_sink(kafka_sink_config config, kafka_serializer<T> serializer)
    : config_(std::move(config)), serializer_(std::move(serializer)) {
    if (config_.bootstrap_servers.empty())
      throw std::invalid_argument("kafka_sink needs bootstrap servers");
    if (config_.topic.empty())
      throw std::invalid_argument("kafka_sink needs a topic");
    if (config_.guarantee == kafka_delivery_guarantee::exactly_once &&
        config_.transactional_id_prefix.empty())
      throw std::invalid_argument("an exactly-once kafka_sink needs a transactional id prefix");
    if (!serializer_)
      throw std::invalid_argument("kafka_sink needs a serializer");
  }
  kafka_sink(const kafka_sink& other)
    : runtime::two_phase_commit_sink<T, kafka_transaction>(other), config_(other.config_),
      serializer_(other.serializer_) {}
  kafka_sink& operator=(const kafka_sink&) = delete;

  void open_sink(const runtime::runtime_context& ctx) override {
    if (config_.guarantee == kafka_delivery_guarantee::exactly_once) {
      sequence_state_ = &ctx.operator_state().template union_list_state<int64_t>(
        "kafka-sink-transaction-sequence");
      for (auto s : sequence_state_->get())
        next_sequence_ = std::max(next_sequence_, s + 1);
    }
    writer_ = std::make_unique<internal::kafka_writer>(config_, ctx.subtask_index());
  }
  void close_sink() override {
    if (writer_)
      writer_->close();
    writer_.reset();
  }

  kafka_transaction begin_transaction() override {
    auto seq = next_sequence_++;
    // Written before the checkpoint's operator state is taken (this runs in
    // snapshot_state), so a restore starts above every id in the checkpoint.
    if (sequence_state_ != nullptr)
      sequence_state_->update({seq});
    return writer_->begin(seq);
  }
  void write(kafka_transaction& txn, T&& value) override {
    writer_->send(txn, serializer_(value));
  }
  void flush(kafka_transaction& txn) override { writer_->poll(txn); }
  void pre_commit(kafka_transaction& txn) override {
    if (config_.guarantee != kafka_delivery_guarantee::none)
      writer_->flush(txn);
    else
      writer_->poll(txn);
  }
  void commit(kafka_transaction& txn) override { writer_->commit(txn); }
  void abort(kafka_transaction& txn) override { writer_->abort(txn); }
  void recover_and_commit(kafka_transaction& txn) override { writer_->recover(txn); }
  void recover_and_abort(kafka_transaction& txn) override { writer_->abort(txn); }

  /// The transactional id of the open transaction's producer is
  /// "<prefix>-<subtask>-<sequence>"; this is the next sequence.
  [[nodiscard]] int64_t next_transaction_sequence() const noexcept { return next_sequence_; }

private:
  kafka_sink_config config_;
  kafka_serializer<T> serializer_;
  std::unique_ptr<internal::kafka_writer> writer_;
  state::operator_list_state<int64_t>* sequence_state_ = nullptr;
  int64_t next_sequence_ = 0;
};

} // namespace sluice::connectors
