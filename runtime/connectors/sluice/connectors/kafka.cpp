#include "sluice/connectors/kafka.hpp"
#include "sluice/connectors/internal/kafka_client.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>

namespace sluice::connectors {

int32_t kafka_partition_owner(std::string_view topic, int32_t partition, int32_t parallelism) {
  if (parallelism <= 0)
    throw std::invalid_argument("kafka_partition_owner: parallelism must be positive");
  // Java's String.hashCode with int32 wrap-around, as Flink computes it.
  uint32_t h = 0;
  for (char c : topic)
    h = 31 * h + static_cast<uint32_t>(static_cast<unsigned char>(c));
  auto start = static_cast<int32_t>((h * 31u) & 0x7fffffffu) % parallelism;
  return static_cast<int32_t>((static_cast<int64_t>(start) + partition) % parallelism);
}

kafka_deserializer<std::string> kafka_string_deserializer() {
  return [](std::string_view, std::string_view value) { return std::string(value); };
}

kafka_serializer<std::string> kafka_string_serializer() {
  return [](const std::string& v) { return kafka_producer_record{std::nullopt, v}; };
}

namespace internal {

// ---------------------------------------------------------------- reader --

struct kafka_source_reader::impl {
  struct partition_state {
    std::string topic;
    int32_t partition = 0;
    int64_t next = 0;
    int64_t stop = INT64_MAX; // bounded: first offset not to read
    bool done = false;
  };

  kafka_source_config config;
  std::string who; // "kafka source (topics a,b at host:port)"
  rd_kafka_t* rk = nullptr;
  std::vector<partition_state> parts;
  size_t remaining = 0; // bounded: partitions not done
  bool commit_offsets = false;

  ~impl() {
    if (rk != nullptr) {
      rd_kafka_consumer_close(rk);
      rd_kafka_destroy(rk);
    }
  }

  [[noreturn]] void fail(const std::string& what) const { throw kafka_error(who + ": " + what); }

  int32_t partition_count(const std::string& topic) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    if (rkt == nullptr)
      fail("cannot use topic '" + topic + "': " + rd_kafka_err2str(rd_kafka_last_error()));
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms(config.request_timeout));
    rd_kafka_topic_destroy(rkt);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("cannot read the metadata of topic '" + topic + "' within " +
           std::to_string(config.request_timeout.count()) + " ms: " + rd_kafka_err2str(err));
    std::unique_ptr<const rd_kafka_metadata_t, void (*)(const rd_kafka_metadata_t*)> guard(
      md, rd_kafka_metadata_destroy);
    if (md->topic_cnt != 1)
      fail("no metadata for topic '" + topic + "'");
    if (md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("topic '" + topic + "': " + rd_kafka_err2str(md->topics[0].err));
    if (md->topics[0].partition_cnt <= 0)
      fail("topic '" + topic + "' has no partitions");
    return md->topics[0].partition_cnt;
  }

  void open(int32_t subtask, int32_t parallelism,
            const std::vector<kafka_partition_offset>& restored) {
    std::string topics;
    for (auto& t : config.topics)
      topics += (topics.empty() ? "" : ",") + t;
    who = "kafka source (topic " + topics + " at " + config.bootstrap_servers + ")";
    commit_offsets = !config.group_id.empty();
    std::map<std::string, std::string> own{
      {"group.id", commit_offsets ? config.group_id : "sluice-kafka-source"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // Only for a position that fell out of the log (retention).
      {"auto.offset.reset", "earliest"},
    };
    rk = make_client(RD_KAFKA_CONSUMER,
                     make_conf(config.bootstrap_servers, own, config.properties, who), who);

    std::map<std::pair<std::string, int32_t>, int64_t> restored_at;
    for (auto& e : restored)
      restored_at[{e.topic, e.partition}] = e.next_offset;

    for (auto& topic : config.topics) {
      int32_t n = partition_count(topic);
      for (int32_t p = 0; p < n; ++p)
        if (kafka_partition_owner(topic, p, parallelism) == subtask)
          parts.push_back({topic, p, 0, INT64_MAX, false});
    }

    auto to = timeout_ms(config.request_timeout);
    std::vector<partition_state*> need_committed;
    std::vector<partition_state*> need_times;
    for (auto& ps : parts) {
      int64_t low = 0;
      int64_t high = 0;
      auto err = rd_kafka_query_watermark_offsets(rk, ps.topic.c_str(), ps.partition, &low,
                                                  &high, to);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail("cannot read the offsets of partition " + ps.topic + "/" +
             std::to_string(ps.partition) + " within " +
             std::to_string(config.request_timeout.count()) + " ms: " + rd_kafka_err2str(err));
      if (config.bounded)
        ps.stop = high;
      auto it = restored_at.find({ps.topic, ps.partition});
      auto fallback = config.fallback_offsets == kafka_starting_offsets::latest ? high : low;
      auto specific = config.specific_offsets.find({ps.topic, ps.partition});
      if (it != restored_at.end())
        ps.next = it->second;
      else if (config.starting_offsets == kafka_starting_offsets::latest)
        ps.next = high;
      else if (config.starting_offsets == kafka_starting_offsets::earliest)
        ps.next = low;
      else if (config.starting_offsets == kafka_starting_offsets::specific)
        ps.next = specific != config.specific_offsets.end() ? specific->second : fallback;
      else if (config.starting_offsets == kafka_starting_offsets::timestamp) {
        ps.next = high; // replaced below if a record is at or after the time
        need_times.push_back(&ps);
      } else {
        ps.next = fallback;
        need_committed.push_back(&ps);
      }
    }
    if (!need_times.empty()) {
      list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(need_times.size())));
      for (auto* ps : need_times)
        rd_kafka_topic_partition_list_add(list.get(), ps->topic.c_str(), ps->partition)->offset =
          config.starting_timestamp_ms;
      auto err = rd_kafka_offsets_for_times(rk, list.get(), to);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail("cannot look up the offsets at time " + std::to_string(config.starting_timestamp_ms) +
             " within " + std::to_string(config.request_timeout.count()) +
             " ms: " + rd_kafka_err2str(err));
      for (auto* ps : need_times) {
        auto* e = rd_kafka_topic_partition_list_find(list.get(), ps->topic.c_str(), ps->partition);
        if (e != nullptr && e->err == RD_KAFKA_RESP_ERR_NO_ERROR && e->offset >= 0)
          ps->next = e->offset;
      }
    }
    if (!need_committed.empty() && commit_offsets) {
      list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(need_committed.size())));
      for (auto* ps : need_committed)
        rd_kafka_topic_partition_list_add(list.get(), ps->topic.c_str(), ps->partition);
      auto err = rd_kafka_committed(rk, list.get(), to);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail("cannot read the committed offsets of group '" + config.group_id + "' within " +
             std::to_string(config.request_timeout.count()) + " ms: " + rd_kafka_err2str(err));
      for (auto* ps : need_committed) {
        auto* e = rd_kafka_topic_partition_list_find(list.get(), ps->topic.c_str(), ps->partition);
        if (e != nullptr && e->err == RD_KAFKA_RESP_ERR_NO_ERROR && e->offset >= 0)
          ps->next = e->offset;
      }
    }

    list_ptr assignment(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
    for (auto& ps : parts) {
      ps.done = config.bounded && ps.next >= ps.stop;
      if (!ps.done) {
        ++remaining;
        rd_kafka_topic_partition_list_add(assignment.get(), ps.topic.c_str(), ps.partition)
          ->offset = ps.next;
      }
    }
    auto err = rd_kafka_assign(rk, assignment.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail(std::string("cannot assign partitions: ") + rd_kafka_err2str(err));
  }

  partition_state* find(const rd_kafka_message_t& m) {
    const char* topic = rd_kafka_topic_name(m.rkt);
    for (auto& ps : parts)
      if (ps.partition == m.partition && ps.topic == topic)
        return &ps;
    return nullptr;
  }

  void finish_partition(partition_state& ps) {
    ps.done = true;
    --remaining;
    // Stop fetching what we will not read; already fetched records are
    // skipped by the done check.
    list_ptr l(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(l.get(), ps.topic.c_str(), ps.partition);
    rd_kafka_pause_partitions(rk, l.get());
  }

  runtime::source_step poll(size_t max_records, kafka_record_handler& handler) {
    if (config.bounded && remaining == 0)
      return runtime::source_step::finished();
    size_t emitted = 0;
    while (emitted < max_records) {
      message_ptr m(rd_kafka_consumer_poll(rk, 0));
      if (!m)
        break;
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        // librdkafka retries transport and leader errors itself; only a
        // fatal error ends the source.
        char reason[512];
        if (rd_kafka_fatal_error(rk, reason, sizeof reason) != RD_KAFKA_RESP_ERR_NO_ERROR)
          fail(std::string("fatal consumer error: ") + reason);
        continue;
      }
      auto* ps = find(*m);
      if (ps == nullptr || ps->done)
        continue;
      if (m->offset >= ps->stop) {
        finish_partition(*ps);
        continue;
      }
      kafka_consumed_record record;
      record.topic = ps->topic;
      record.partition = ps->partition;
      record.offset = m->offset;
      rd_kafka_timestamp_type_t ts_type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
      auto ts = rd_kafka_message_timestamp(m.get(), &ts_type);
      if (ts_type != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts >= 0)
        record.timestamp_ms = ts;
      if (m->key != nullptr)
        record.key = std::string_view(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr)
        record.value = std::string_view(static_cast<const char*>(m->payload), m->len);
      handler.on_record(record);
      ps->next = m->offset + 1;
      ++emitted;
      if (ps->next >= ps->stop)
        finish_partition(*ps);
    }
    if (config.bounded && remaining == 0)
      return runtime::source_step::finished();
    if (emitted > 0)
      return runtime::source_step::more();
    return runtime::source_step::wait(config.idle_wait);
  }
};

kafka_source_reader::kafka_source_reader(const kafka_source_config& config, int32_t subtask,
                                         int32_t parallelism,
                                         const std::vector<kafka_partition_offset>& restored)
  : impl_(std::make_unique<impl>()) {
  impl_->config = config;
  impl_->open(subtask, parallelism, restored);
}

kafka_source_reader::~kafka_source_reader() = default;

runtime::source_step kafka_source_reader::poll(size_t max_records,
                                               kafka_record_handler& handler) {
  return impl_->poll(max_records, handler);
}

std::vector<kafka_partition_offset> kafka_source_reader::positions() const {
  std::vector<kafka_partition_offset> out;
  out.reserve(impl_->parts.size());
  for (auto& ps : impl_->parts)
    out.push_back({ps.topic, ps.partition, ps.next});
  return out;
}

void kafka_source_reader::commit(const std::vector<kafka_partition_offset>& offsets) {
  if (!impl_->commit_offsets || offsets.empty())
    return;
  list_ptr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (auto& o : offsets)
    rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), o.partition)->offset =
      o.next_offset;
  // Asynchronous and unchecked: the committed offsets only show progress
  // to monitoring tools; positions are restored from checkpoints.
  (void)rd_kafka_commit(impl_->rk, list.get(), 1);
}

// ---------------------------------------------------------------- writer --

namespace {

/// Delivery failures of one producer, recorded by its delivery callback
/// (which librdkafka runs inside rd_kafka_poll/flush on the caller's thread).
struct delivery_errors {
  int64_t failed = 0;
  std::string first;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
    return;
  auto* errors = static_cast<delivery_errors*>(opaque);
  if (errors->failed++ == 0)
    errors->first = rd_kafka_err2str(m->err);
}

} // namespace

struct kafka_writer::impl {
  struct producer {
    rd_kafka_t* rk = nullptr;
    rd_kafka_topic_t* rkt = nullptr;
    std::unique_ptr<delivery_errors> errors = std::make_unique<delivery_errors>();
  };

  kafka_sink_config config;
  int32_t subtask = 0;
  bool transactional = false;
  std::string who;
  producer plain;                        // none, at_least_once
  std::map<std::string, producer> txns;  // exactly_once: by transactional id
  producer* current = nullptr;           // exactly_once: the open transaction's
  std::string current_id;

  ~impl() {
    destroy(plain);
    for (auto& [id, p] : txns)
      destroy(p);
  }

  static void destroy(producer& p) {
    if (p.rkt != nullptr)
      rd_kafka_topic_destroy(p.rkt);
    if (p.rk != nullptr)
      rd_kafka_destroy(p.rk);
    p.rkt = nullptr;
    p.rk = nullptr;
  }

  [[noreturn]] void fail(const std::string& what) const { throw kafka_error(who + ": " + what); }

  producer make_producer(const std::string& transactional_id) {
    producer p;
    std::map<std::string, std::string> own;
    if (!transactional_id.empty())
      own["transactional.id"] = transactional_id;
    auto conf = make_conf(config.bootstrap_servers, own, config.properties, who);
    rd_kafka_conf_set_dr_msg_cb(conf.get(), on_delivery);
    rd_kafka_conf_set_opaque(conf.get(), p.errors.get());
    p.rk = make_client(RD_KAFKA_PRODUCER, std::move(conf), who);
    p.rkt = rd_kafka_topic_new(p.rk, config.topic.c_str(), nullptr);
    if (p.rkt == nullptr) {
      std::string why = rd_kafka_err2str(rd_kafka_last_error());
      destroy(p);
      fail("cannot use topic '" + config.topic + "': " + why);
    }
    return p;
  }

  /// Fetches the topic's partitions now: left to itself a new producer
  /// learns them from a background scan that runs once a second, which
  /// would delay the first delivery of every transaction by up to 1 s.
  void load_metadata(producer& p) {
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(p.rk, 0, p.rkt, &md, timeout_ms(config.transaction_timeout));
    if (md != nullptr)
      rd_kafka_metadata_destroy(md);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      destroy(p);
      fail("cannot read the metadata of topic '" + config.topic + "' within " +
           std::to_string(config.transaction_timeout.count()) + " ms: " + rd_kafka_err2str(err));
    }
  }

  /// Throws if `err` is set; destroys nothing.
  void check_txn(rd_kafka_error_t* raw, const std::string& what, const std::string& id) {
    error_ptr err(raw);
    if (err)
      fail(what + " of transaction '" + id + "' failed within " +
           std::to_string(config.transaction_timeout.count()) +
           " ms: " + rd_kafka_error_string(err.get()));
  }

  /// A producer with transactional id `id`, initialized: the broker fences
  /// earlier producers of that id and finishes their transaction.
  producer init_transactional(const std::string& id) {
    auto p = make_producer(id);
    try {
      check_txn(rd_kafka_init_transactions(p.rk, timeout_ms(config.transaction_timeout)),
                "init", id);
    } catch (...) {
      destroy(p);
      throw;
    }
    return p;
  }

  producer& of(const kafka_transaction& txn) {
    if (!transactional)
      return plain;
    if (current != nullptr && txn.transactional_id == current_id)
      return *current;
    auto it = txns.find(txn.transactional_id);
    if (it == txns.end())
      fail("no open transaction '" + txn.transactional_id + "'");
    return it->second;
  }

  void check_deliveries(producer& p) {
    if (p.errors->failed > 0)
      fail(std::to_string(p.errors->failed) + " record(s) could not be delivered: " +
           p.errors->first);
  }
};

kafka_writer::kafka_writer(const kafka_sink_config& config, int32_t subtask)
  : impl_(std::make_unique<impl>()) {
  impl_->config = config;
  impl_->subtask = subtask;
  impl_->transactional = config.guarantee == kafka_delivery_guarantee::exactly_once;
  impl_->who = "kafka sink (topic " + config.topic + " at " + config.bootstrap_servers + ")";
  if (!impl_->transactional)
    impl_->plain = impl_->make_producer("");
}

kafka_writer::~kafka_writer() = default;

kafka_transaction kafka_writer::begin(int64_t sequence) {
  if (!impl_->transactional)
    return {};
  auto id = impl_->config.transactional_id_prefix + "-" + std::to_string(impl_->subtask) + "-" +
            std::to_string(sequence);
  auto p = impl_->init_transactional(id);
  impl_->load_metadata(p);
  error_ptr err(rd_kafka_begin_transaction(p.rk));
  if (err) {
    impl_->destroy(p);
    impl_->fail("begin of transaction '" + id + "' failed: " + rd_kafka_error_string(err.get()));
  }
  auto old = impl_->txns.find(id);
  if (old != impl_->txns.end()) {
    impl_->destroy(old->second);
    impl_->txns.erase(old);
  }
  auto it = impl_->txns.emplace(id, std::move(p)).first;
  impl_->current = &it->second;
  impl_->current_id = id;
  return {id};
}

void kafka_writer::send(const kafka_transaction& txn, const kafka_producer_record& record) {
  auto& p = impl_->of(txn);
  impl_->check_deliveries(p);
  const void* key = record.key ? record.key->data() : nullptr;
  size_t key_len = record.key ? record.key->size() : 0;
  // A full local queue is back-pressure: serve delivery reports until
  // there is room, within the flush timeout.
  auto deadline = std::chrono::steady_clock::now() + impl_->config.flush_timeout;
  for (;;) {
    auto err = rd_kafka_producev(
      p.rk, RD_KAFKA_V_RKT(p.rkt), RD_KAFKA_V_KEY(key, key_len),
      RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
      break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      impl_->fail(std::string("cannot send a record: ") + rd_kafka_err2str(err));
    if (std::chrono::steady_clock::now() > deadline)
      impl_->fail("the producer queue stayed full for " +
                  std::to_string(impl_->config.flush_timeout.count()) + " ms");
    rd_kafka_poll(p.rk, 10);
  }
  rd_kafka_poll(p.rk, 0);
}

void kafka_writer::poll(const kafka_transaction& txn) {
  auto& p = impl_->of(txn);
  rd_kafka_poll(p.rk, 0);
  impl_->check_deliveries(p);
}

void kafka_writer::flush(const kafka_transaction& txn) {
  auto& p = impl_->of(txn);
  auto err = rd_kafka_flush(p.rk, timeout_ms(impl_->config.flush_timeout));
  impl_->check_deliveries(p);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    impl_->fail(std::to_string(rd_kafka_outq_len(p.rk)) +
                " record(s) or requests still undelivered after " +
                std::to_string(impl_->config.flush_timeout.count()) + " ms (" +
                rd_kafka_err2str(err) + ")");
}

void kafka_writer::commit(const kafka_transaction& txn) {
  if (!impl_->transactional)
    return;
  auto it = impl_->txns.find(txn.transactional_id);
  if (it == impl_->txns.end()) {
    // Not ours (any more): a restored transaction is finished by recover().
    recover(txn);
    return;
  }
  auto& p = it->second;
  if (impl_->current == &p)
    impl_->current = nullptr;
  error_ptr err(rd_kafka_commit_transaction(p.rk, timeout_ms(impl_->config.transaction_timeout)));
  if (err) {
    std::string what = rd_kafka_error_string(err.get());
    if (rd_kafka_error_txn_requires_abort(err.get()))
      error_ptr(rd_kafka_abort_transaction(p.rk, timeout_ms(impl_->config.transaction_timeout)));
    impl_->destroy(p);
    impl_->txns.erase(it);
    impl_->fail("commit of transaction '" + txn.transactional_id + "' failed: " + what);
  }
  impl_->destroy(p);
  impl_->txns.erase(it);
}

void kafka_writer::abort(const kafka_transaction& txn) {
  if (!impl_->transactional || txn.transactional_id.empty())
    return;
  auto it = impl_->txns.find(txn.transactional_id);
  if (it == impl_->txns.end()) {
    // A transaction of a failed run: initializing its id fences the old
    // producer and makes the broker abort what it left open.
    auto p = impl_->init_transactional(txn.transactional_id);
    impl_->destroy(p);
    return;
  }
  auto& p = it->second;
  if (impl_->current == &p)
    impl_->current = nullptr;
  error_ptr err(rd_kafka_abort_transaction(p.rk, timeout_ms(impl_->config.transaction_timeout)));
  std::string what = err ? rd_kafka_error_string(err.get()) : "";
  impl_->destroy(p);
  impl_->txns.erase(it);
  if (!what.empty())
    impl_->fail("abort of transaction '" + txn.transactional_id + "' failed: " + what);
}

void kafka_writer::recover(const kafka_transaction& txn) {
  if (!impl_->transactional || txn.transactional_id.empty())
    return;
  // librdkafka cannot resume a transaction by producer id and epoch (Flink
  // does so with the Java client): initializing the id is all it offers.
  // The broker then completes a commit that was already requested, and
  // aborts a transaction that was still open (see the README).
  auto p = impl_->init_transactional(txn.transactional_id);
  impl_->destroy(p);
}

void kafka_writer::close() {
  if (impl_->plain.rk != nullptr)
    (void)rd_kafka_flush(impl_->plain.rk, timeout_ms(impl_->config.flush_timeout));
  impl_->destroy(impl_->plain);
  // Pre-committed transactions stay open on the broker until a restore
  // finishes them or transaction.timeout.ms aborts them.
  for (auto& [id, p] : impl_->txns)
    impl_->destroy(p);
  impl_->txns.clear();
  impl_->current = nullptr;
}

} // namespace internal
} // namespace sluice::connectors
