#include "sluice/remote/kafka/kafka_egress.hpp"

#include "sluice/connectors/internal/kafka_client.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/kafka_record.hpp"
#include "sluice/remote/kafka/kafka_ingress.hpp"

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>
#include <utility>

namespace sluice::remote::kafka {

using connectors::kafka_error;
using namespace connectors::internal;

namespace {

/// Delivery outcomes of one producer, recorded by its delivery callback
/// (run inside rd_kafka_poll/flush on the subtask's thread).
struct delivery_state {
  int64_t failed = 0;
  std::string first;
  /// Where the last marker landed (-1: none since reset).
  int64_t marker_offset = -1;
};

/// Tags the marker message among the records (its per-message opaque).
char marker_tag;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<delivery_state*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (st->failed++ == 0)
      st->first = std::string(rd_kafka_err2str(m->err)) + " (topic " +
                  rd_kafka_topic_name(m->rkt) + ")";
    return;
  }
  if (m->_private == &marker_tag)
    st->marker_offset = m->offset;
}

std::string who_of(const kafka_egress_spec& spec) {
  return "Kafka egress " + spec.id.to_string() + " (at " + spec.address + ")";
}

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

} // namespace

namespace internal {

class egress_writer {
public:
  egress_writer(const kafka_egress_spec& spec, const egress_options& options, int32_t subtask)
    : spec_(spec), options_(options), subtask_(subtask), who_(who_of(spec)),
      transactional_(spec.delivery == kafka_egress_spec::semantic::exactly_once) {
    for (auto& [k, v] : spec.properties)
      if (k.rfind("sluice.", 0) != 0)
        user_[k] = v;
    producer_.reset(make_producer(transactional_ ? transactional_id(subtask) : ""));
    if (!transactional_)
      return;
    // Fences the previous incarnation of this subtask: the broker aborts a
    // transaction it left open, so nothing of it becomes visible later.
    check(rd_kafka_init_transactions(producer_.get(), timeout_ms(options_.request_timeout)),
          "init of transactional id '" + transactional_id(subtask) + "'");
    marker_partitions_ = partition_count(options_.marker_topic);
    int64_t low = 0;
    marker_floor_ = 0;
    auto err = rd_kafka_query_watermark_offsets(producer_.get(), options_.marker_topic.c_str(),
                                                marker_partition(), &low, &marker_floor_,
                                                timeout_ms(options_.request_timeout));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("cannot read the end offset of marker topic '" + options_.marker_topic + "' within " +
           ms(options_.request_timeout) + ": " + rd_kafka_err2str(err));
  }

  egress_writer(const egress_writer&) = delete;
  egress_writer& operator=(const egress_writer&) = delete;

  ~egress_writer() {
    if (producer_ && !transactional_)
      (void)rd_kafka_flush(producer_.get(), timeout_ms(options_.flush_timeout));
  }

  [[noreturn]] void fail(const std::string& what) const { throw kafka_error(who_ + ": " + what); }

  /// The marker partition of this subtask's batches.
  [[nodiscard]] int32_t marker_partition() const { return subtask_ % marker_partitions_; }
  /// An offset at or before the next marker of this subtask.
  [[nodiscard]] int64_t marker_floor() const { return marker_floor_; }

  /// Queues `r` (none, at-least-once); throws if an earlier delivery failed.
  void send(const kafka_egress_record& r) {
    check_deliveries();
    produce(producer_.get(), r.topic, RD_KAFKA_PARTITION_UA, r.key, r.value, nullptr);
    rd_kafka_poll(producer_.get(), 0);
  }

  /// Serves delivery reports; throws if one failed.
  void poll() {
    rd_kafka_poll(producer_.get(), 0);
    check_deliveries();
  }

  /// Waits until everything queued is acknowledged; throws on a failed
  /// delivery or after flush_timeout.
  void flush() {
    auto err = rd_kafka_flush(producer_.get(), timeout_ms(options_.flush_timeout));
    check_deliveries();
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail(std::to_string(rd_kafka_outq_len(producer_.get())) +
           " record(s) still unacknowledged after " + ms(options_.flush_timeout) + " (" +
           rd_kafka_err2str(err) + ")");
  }

  /// Produces `batch` and its marker in one transaction and commits it.
  void commit_batch(const kafka_egress_batch& batch) {
    auto* rk = producer_.get();
    for (auto& r : batch.records)
      ensure_topic(r.topic);
    check(rd_kafka_begin_transaction(rk), "begin of the transaction of batch " + batch.id);
    delivery_.marker_offset = -1;
    try {
      for (auto& r : batch.records) {
        check_deliveries();
        produce(rk, r.topic, RD_KAFKA_PARTITION_UA, r.key, r.value, nullptr);
      }
      produce(rk, options_.marker_topic, batch.marker_partition, prefix(), batch.id, &marker_tag);
      flush();
    } catch (...) {
      error_ptr(rd_kafka_abort_transaction(rk, timeout_ms(options_.request_timeout)));
      delivery_ = {};
      throw;
    }
    error_ptr err(rd_kafka_commit_transaction(rk, timeout_ms(options_.request_timeout)));
    if (err) {
      std::string what = rd_kafka_error_string(err.get());
      if (rd_kafka_error_txn_requires_abort(err.get()))
        error_ptr(rd_kafka_abort_transaction(rk, timeout_ms(options_.request_timeout)));
      fail("commit of batch " + batch.id + " (" + std::to_string(batch.records.size()) +
           " records) failed: " + what);
    }
    if (delivery_.marker_offset >= 0 && batch.marker_partition == marker_partition())
      marker_floor_ = std::max(marker_floor_, delivery_.marker_offset + 1);
  }

  /// Fences transactional id `<prefix>-<origin>` of a subtask that no
  /// longer exists, so a zombie of it cannot commit while we recover.
  void fence(int32_t origin) {
    client_ptr p(make_producer(transactional_id(origin)));
    check(rd_kafka_init_transactions(p.get(), timeout_ms(options_.request_timeout)),
          "fencing of transactional id '" + transactional_id(origin) + "'");
  }

  /// The ids of `wanted` whose markers are in partition `partition` of the
  /// marker topic at or after `from`, read committed.
  std::set<std::string> committed_markers(int32_t partition, int64_t from,
                                          const std::set<std::string>& wanted) {
    std::set<std::string> found;
    std::map<std::string, std::string> own{
      {"group.id", prefix() + "-recovery"},
      {"isolation.level", "read_committed"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      // A floor that fell out of the log (retention): scan what is left.
      {"auto.offset.reset", "earliest"},
    };
    client_ptr c(make_client(RD_KAFKA_CONSUMER, make_conf(spec_.address, own, user_, who_), who_));
    auto* rk = c.get();
    int64_t low = 0;
    int64_t high = 0;
    auto err = rd_kafka_query_watermark_offsets(rk, options_.marker_topic.c_str(), partition,
                                                &low, &high, timeout_ms(options_.request_timeout));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("cannot read the offsets of marker partition " + options_.marker_topic + "/" +
           std::to_string(partition) + " within " + ms(options_.request_timeout) + ": " +
           rd_kafka_err2str(err));
    from = std::max(from, low);
    if (from >= high)
      return found;
    list_ptr assignment(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(assignment.get(), options_.marker_topic.c_str(), partition)
      ->offset = from;
    if (auto e = rd_kafka_assign(rk, assignment.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail(std::string("cannot assign the marker partition: ") + rd_kafka_err2str(e));
    auto deadline = std::chrono::steady_clock::now() + options_.request_timeout;
    auto key = prefix();
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline)
        fail("could not read marker partition " + options_.marker_topic + "/" +
             std::to_string(partition) + " up to offset " + std::to_string(high) + " within " +
             ms(options_.request_timeout) +
             " (a transaction left open by another producer holds it back?)");
      message_ptr m(rd_kafka_consumer_poll(rk, 100));
      if (!m)
        continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->offset >= high)
          break;
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        char reason[512];
        if (rd_kafka_fatal_error(rk, reason, sizeof reason) != RD_KAFKA_RESP_ERR_NO_ERROR)
          fail(std::string("fatal consumer error while reading markers: ") + reason);
        continue;
      }
      std::string_view k(static_cast<const char*>(m->key), m->key ? m->key_len : 0);
      std::string_view v(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
      if (k == key) {
        auto it = wanted.find(std::string(v));
        if (it != wanted.end())
          found.insert(*it);
      }
      if (found.size() == wanted.size() || m->offset + 1 >= high)
        break;
    }
    rd_kafka_consumer_close(rk);
    return found;
  }

private:
  [[nodiscard]] std::string prefix() const {
    return options_.transactional_id_prefix.empty()
             ? "sluice-" + spec_.id.ns + "-" + spec_.id.name
             : options_.transactional_id_prefix;
  }
  [[nodiscard]] std::string transactional_id(int32_t subtask) const {
    return prefix() + "-" + std::to_string(subtask);
  }

  rd_kafka_t* make_producer(const std::string& transactional_id) {
    std::map<std::string, std::string> own;
    if (!transactional_id.empty()) {
      own["transactional.id"] = transactional_id;
      own["transaction.timeout.ms"] = std::to_string(spec_.transaction_timeout.count());
    }
    auto conf = make_conf(spec_.address, own, user_, who_);
    rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
    rd_kafka_conf_set_opaque(conf.get(), &delivery_);
    return make_client(RD_KAFKA_PRODUCER, std::move(conf), who_);
  }

  void check(rd_kafka_error_t* raw, const std::string& what) const {
    error_ptr err(raw);
    if (err)
      fail(what + " failed: " + rd_kafka_error_string(err.get()));
  }

  void check_deliveries() {
    if (delivery_.failed > 0) {
      auto what = std::to_string(delivery_.failed) +
                  " record(s) could not be delivered: " + delivery_.first;
      delivery_ = {};
      fail(what);
    }
  }

  /// Queues one record; a full local queue is back-pressure: serve delivery
  /// reports until there is room, within flush_timeout.
  void produce(rd_kafka_t* rk, const std::string& topic, int32_t partition, const std::string& key,
               const std::string& value, void* opaque) {
    auto deadline = std::chrono::steady_clock::now() + options_.flush_timeout;
    for (;;) {
      auto err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        fail("cannot send a record to topic '" + topic + "': " + rd_kafka_err2str(err));
      if (std::chrono::steady_clock::now() > deadline)
        fail("the producer queue stayed full for " + ms(options_.flush_timeout));
      rd_kafka_poll(rk, 10);
    }
  }

  int32_t partition_count(const std::string& topic) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer_.get(), topic.c_str(), nullptr);
    if (rkt == nullptr)
      fail("cannot use topic '" + topic + "': " + rd_kafka_err2str(rd_kafka_last_error()));
    const rd_kafka_metadata_t* md = nullptr;
    auto err =
      rd_kafka_metadata(producer_.get(), 0, rkt, &md, timeout_ms(options_.request_timeout));
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("cannot read the metadata of topic '" + topic + "' within " +
           ms(options_.request_timeout) + ": " + rd_kafka_err2str(err));
    std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(
      md, rd_kafka_metadata_destroy);
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt <= 0)
      fail("topic '" + topic + "' does not exist (" +
           (md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "no metadata") + ")");
    return md->topics[0].partition_cnt;
  }

  /// Checks once per topic that it exists, so a missing topic fails the
  /// commit at once with its name (a producer would retry for
  /// topic.metadata.propagation.max.ms and then report it per record).
  void ensure_topic(const std::string& topic) {
    if (known_topics_.count(topic) == 0) {
      (void)partition_count(topic);
      known_topics_.insert(topic);
    }
  }

  kafka_egress_spec spec_;
  egress_options options_;
  int32_t subtask_;
  std::string who_;
  bool transactional_;
  std::map<std::string, std::string> user_;
  delivery_state delivery_;
  client_ptr producer_;
  int32_t marker_partitions_ = 1;
  int64_t marker_floor_ = 0;
  std::set<std::string> known_topics_;
};

} // namespace internal

caf::expected<kafka_egress_record> egress_record(const functions::egress_id& egress,
                                                 const functions::envelope& e) {
  auto id = egress.to_string();
  if (!e.is_egress())
    return make_error(remote_errc::invalid_request,
                      "Kafka egress " + id + " got a message for function " + e.target.to_string());
  if (e.egress != egress)
    return make_error(remote_errc::invalid_request, "Kafka egress " + id +
                                                      " got a record for egress " +
                                                      e.egress.to_string());
  auto rec = parse_kafka_record(e.payload);
  if (!rec)
    return make_error(remote_errc::invalid_request,
                      "Kafka egress " + id + ": " + describe(rec.error()));
  return kafka_egress_record{std::move(rec->topic), std::move(rec->key), std::move(rec->value)};
}

// ------------------------------------------------------------------- sink --

kafka_egress_sink::kafka_egress_sink(kafka_egress_spec spec, egress_options options)
  : spec_(std::move(spec)), options_(std::move(options)),
    egress_{spec_.id.ns, spec_.id.name},
    exactly_once_(spec_.delivery == kafka_egress_spec::semantic::exactly_once) {}

kafka_egress_sink::kafka_egress_sink(const kafka_egress_sink& other)
  : runtime::two_phase_commit_sink<functions::envelope, kafka_egress_transaction>(other),
    spec_(other.spec_), options_(other.options_), egress_(other.egress_),
    exactly_once_(other.exactly_once_) {}

kafka_egress_sink::~kafka_egress_sink() = default;

void kafka_egress_sink::open_sink(const runtime::runtime_context& ctx) {
  subtask_ = ctx.subtask_index();
  writer_ = std::make_unique<internal::egress_writer>(spec_, options_, subtask_);
  if (!exactly_once_)
    return;
  std::random_device rd;
  nonce_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  batches_state_ =
    &ctx.operator_state().template union_list_state<kafka_egress_batch>("kafka-egress-batches");
  finish_restored_batches(subtask_, ctx.parallelism());
  batches_state_->clear();
}

void kafka_egress_sink::finish_restored_batches(int32_t subtask, int32_t parallelism) {
  // Union state: every subtask sees every batch; the batches of origin j
  // are finished by subtask j % p alone, in order, so a marker lookup and
  // the commit that follows never race with another subtask on one batch.
  std::vector<kafka_egress_batch> mine;
  for (auto& b : batches_state_->get())
    if (b.origin % parallelism == subtask)
      mine.push_back(b);
  if (mine.empty())
    return;
  std::sort(mine.begin(), mine.end(), [](auto& a, auto& b) {
    return a.origin != b.origin ? a.origin < b.origin : a.seq < b.seq;
  });
  std::set<int32_t> origins;
  for (auto& b : mine)
    if (b.origin != subtask)
      origins.insert(b.origin);
  // Our own id was fenced when the writer initialized it.
  for (auto o : origins)
    writer_->fence(o);
  std::map<int32_t, std::pair<int64_t, std::set<std::string>>> by_partition;
  for (auto& b : mine) {
    auto& [from, ids] = by_partition.try_emplace(b.marker_partition, b.marker_floor,
                                                 std::set<std::string>{})
                          .first->second;
    from = std::min(from, b.marker_floor);
    ids.insert(b.id);
  }
  std::set<std::string> committed;
  for (auto& [partition, scan] : by_partition)
    for (auto& id : writer_->committed_markers(partition, scan.first, scan.second))
      committed.insert(id);
  for (auto& b : mine) {
    if (committed.count(b.id) != 0) {
      ++found_committed_;
      continue;
    }
    writer_->commit_batch(b);
    ++recommitted_;
  }
}

void kafka_egress_sink::close_sink() {
  writer_.reset();
  current_.clear();
  pending_.clear();
}

kafka_egress_transaction kafka_egress_sink::begin_transaction() {
  if (!exactly_once_)
    return {};
  auto seq = next_seq_++;
  return {std::to_string(subtask_) + ":" + std::to_string(nonce_) + ":" + std::to_string(seq)};
}

void kafka_egress_sink::write(kafka_egress_transaction& /*txn*/, functions::envelope&& value) {
  auto rec = egress_record(egress_, value);
  if (!rec)
    throw std::invalid_argument(describe(rec.error()));
  if (exactly_once_)
    current_.push_back(std::move(*rec));
  else
    writer_->send(*rec);
}

void kafka_egress_sink::flush(kafka_egress_transaction& /*txn*/) {
  if (!exactly_once_)
    writer_->poll();
}

void kafka_egress_sink::pre_commit(kafka_egress_transaction& txn) {
  if (!exactly_once_) {
    if (spec_.delivery == kafka_egress_spec::semantic::at_least_once)
      writer_->flush();
    else
      writer_->poll();
    return;
  }
  if (!current_.empty()) {
    kafka_egress_batch b;
    b.id = txn.batch;
    b.origin = subtask_;
    b.seq = next_seq_ - 1;
    b.marker_partition = writer_->marker_partition();
    b.marker_floor = writer_->marker_floor();
    b.records = std::move(current_);
    current_.clear();
    pending_.emplace(txn.batch, std::move(b));
  }
  store_batches();
}

void kafka_egress_sink::store_batches() {
  std::vector<kafka_egress_batch> all;
  all.reserve(pending_.size());
  for (auto& [id, b] : pending_)
    all.push_back(b);
  batches_state_->update(std::move(all));
}

void kafka_egress_sink::commit(kafka_egress_transaction& txn) {
  if (!exactly_once_)
    return;
  auto it = pending_.find(txn.batch);
  if (it == pending_.end())
    return; // nothing was written in it
  writer_->commit_batch(it->second);
  pending_.erase(it);
}

void kafka_egress_sink::abort(kafka_egress_transaction& txn) {
  if (!exactly_once_)
    return;
  // Nothing of a batch reaches Kafka before its commit.
  if (!pending_.erase(txn.batch))
    current_.clear();
}

void kafka_egress_sink::recover_and_commit(kafka_egress_transaction& /*txn*/) {}

void kafka_egress_sink::recover_and_abort(kafka_egress_transaction& /*txn*/) {}

// ---------------------------------------------------------------- builders --

caf::expected<kafka_egress_sink> make_kafka_egress(const kafka_egress_spec& spec,
                                                   egress_options options) {
  auto bad = [&](const std::string& what) {
    return make_error(remote_errc::invalid_module,
                      spec.declared_at + ": Kafka egress " + spec.id.to_string() + ": " + what);
  };
  if (!is_valid_kafka_address(spec.address))
    return bad("address '" + spec.address +
               "' is not a list of host:port (e.g. kafka:9092,kafka2:9092)");
  for (auto& [k, v] : spec.properties) {
    if (k == "sluice.marker.topic")
      options.marker_topic = v;
    else if (k == "sluice.transactional.id.prefix")
      options.transactional_id_prefix = v;
    else if (k.rfind("sluice.", 0) == 0)
      return bad("unknown property '" + k +
                 "' (sluice.* properties: sluice.marker.topic, sluice.transactional.id.prefix)");
    else if (k == "transactional.id" || k == "enable.idempotence")
      return bad("property '" + k + "' is set by the egress (deliverySemantic)");
  }
  if (spec.delivery == kafka_egress_spec::semantic::exactly_once) {
    if (options.marker_topic.empty())
      return bad("an exactly-once egress needs a marker topic (sluice.marker.topic)");
    if (spec.transaction_timeout.count() <= 0)
      return bad("transactionTimeout must be positive");
  }
  return kafka_egress_sink(spec, std::move(options));
}

caf::error add_kafka_egresses(const runtime::data_stream<functions::envelope>& egress,
                              const module& m, const egress_options& options) {
  for (auto& spec : m.kafka_egresses) {
    auto sink = make_kafka_egress(spec, options);
    if (!sink)
      return std::move(sink.error());
    auto id = spec.id.to_string();
    functions::egress_id eid{spec.id.ns, spec.id.name};
    egress.filter([eid](const functions::envelope& e) { return e.is_egress() && e.egress == eid; })
      .name("To " + id)
      .add_sink(std::move(*sink), "Kafka egress " + id)
      .uid("kafka-egress-" + id);
  }
  return {};
}

} // namespace sluice::remote::kafka
