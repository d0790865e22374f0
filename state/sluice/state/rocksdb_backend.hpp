#pragma once

#include "sluice/state/keyed_backend.hpp"
#include "sluice/state/native_snapshot.hpp"
#include "sluice/state/serializer.hpp"
#include "sluice/state/snapshot.hpp"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
} // namespace rocksdb

/// The RocksDB keyed state backend: state lives in an embedded RocksDB
/// instance per operator subtask, so it may be far larger than memory.
///
/// Layout: one column family per declared state; keys are
/// key-group | serialized key | serialized namespace [| serialized map key],
/// the key group in 1 byte when max parallelism <= 128 and 2 bytes (big
/// endian) above, so a key-group range is one contiguous key range that can
/// be scanned and moved. Values carry an 8-byte TTL stamp first when the
/// state has a TTL. List values are a run of length-prefixed elements that
/// RocksDB's merge operator appends to, so add() never reads.
///
/// Memory: every instance in the process shares one block cache and one
/// write-buffer manager that charges memtables to that cache, so the whole
/// process stays within `managed_memory_bytes` however many instances run.
namespace sluice::state {

namespace internal {
struct rocksdb_cut_guard;
struct rocksdb_cut_state;
class rocksdb_cut;
} // namespace internal

/// RocksDB settings (configuration keys state.backend.rocksdb.*).
struct rocksdb_config {
  /// Directory the working instances live in ("" = the system temp dir).
  std::string local_dir;
  /// Block cache plus memtables of all instances in the process.
  size_t managed_memory_bytes = size_t{256} << 20;
  /// Share of the managed memory memtables may take.
  double write_buffer_ratio = 0.5;
  /// Share of the block cache kept for index and filter blocks.
  double high_priority_pool_ratio = 0.1;
  /// Bloom filters on point reads (Flink's use-bloom-filter; on here, off in
  /// Flink): 10 bits per key in every SST file (in the block cache, so in the
  /// managed budget) and a whole-key filter of a tenth of each memtable's
  /// size. A read then skips the memtables and L0 files that do not hold its
  /// key. With a checkpoint every second most reads miss the memtables
  /// (each checkpoint flushes them), and the keyed sum of
  /// bench/checkpoint_overhead runs about 1.5x as fast with the filters.
  bool use_bloom_filter = true;
  /// L0 files that start a compaction into L1
  /// (sluice.state.rocksdb.compaction.level0-file-num-trigger). 0 = auto:
  /// 8 for an instance that takes native snapshots, else RocksDB's and
  /// Flink's 4. Each flush-cut checkpoint flushes the memtables, so a
  /// checkpoint a second adds an L0 file per instance per second, small
  /// beside a full 16 MiB memtable; at 4 every fourth checkpoint rewrote all
  /// of L1. At 8 a keyed sum with 1 M keys and a checkpoint a second spends
  /// half the compaction CPU (bench/checkpoint_overhead, docs/benchmarks.md
  /// session 15). The price: a read probes up to 8 L0 files' filters before
  /// L1, and a checkpoint references up to 8 uncompacted L0 files.
  int level0_compaction_trigger = 0;
  /// How a native snapshot cuts the instance (sluice.state.rocksdb.snapshot-cut).
  /// `log` (opt-in): every write also goes to a write-ahead log that is
  /// buffered in memory and written out when its buffer fills or a snapshot
  /// is taken; the snapshot hard-links the files and records the log's
  /// length, and the writer copies that prefix, so the subtask never waits
  /// for a memtable flush. `flush` (default, no log): the barrier seals the
  /// memtables and the subtask goes on; the checkpoint writer waits for
  /// their flush into SST files and links the files then (Flink flushes on
  /// the subtask's thread). `log`
  /// stays opt-in until an exactly-once functions test that fails under
  /// ASan with it is explained (docs/architecture.md).
  enum class snapshot_cut { log, flush };
  snapshot_cut cut = snapshot_cut::flush;
  /// Set by the runtime when this instance will take native snapshots
  /// (checkpoints on, incremental): only then is a log kept.
  bool native_snapshots = false;
};

/// How many flush cuts in this process were written out whole because a
/// later flush got into the files first (native_snapshot::rewritten).
uint64_t rewritten_flush_cuts() noexcept;

/// The key-type independent half of the RocksDB backend: byte-level access
/// to the column of each state under the current key's prefix.
class rocksdb_backend_core : public virtual keyed_state_backend_base {
public:
  /// Opens a fresh instance in `config.local_dir`/`instance_name`
  /// (removed again on destruction: it is a working copy, checkpoints are
  /// written elsewhere). Throws state_error naming the directory on failure.
  rocksdb_backend_core(key_group_range range, int32_t max_parallelism,
                       std::shared_ptr<const state_clock> clock, const rocksdb_config& config,
                       const std::string& instance_name);
  ~rocksdb_backend_core() override;

  /// key-group | serialized current key.
  [[nodiscard]] const std::string& key_prefix() const noexcept { return prefix_; }
  [[nodiscard]] int64_t now() const { return clock_->now_ms(); }

  /// Reads `key` of state `idx` into `value`; false when absent.
  [[nodiscard]] bool get(uint32_t idx, std::string_view key, std::string& value);
  void put(uint32_t idx, std::string_view key, std::string_view value);
  /// Appends `value` to the list stored at `key`.
  void merge(uint32_t idx, std::string_view key, std::string_view value);
  void remove(uint32_t idx, std::string_view key);
  /// Calls `fn(key, value)` for each entry whose key starts with `prefix`,
  /// in key order, until `fn` returns false.
  void scan(uint32_t idx, std::string_view prefix,
            const std::function<bool(std::string_view, std::string_view)>& fn);

  size_t cleanup_expired(size_t budget) override;

  /// The instance's directory.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// RocksDB's estimate of the live data size, in bytes (all columns).
  [[nodiscard]] uint64_t estimated_live_bytes() const;

  /// Encodes a key group as the key prefix does (1 or 2 bytes).
  void append_key_group(std::string& out, int32_t kg) const;

  /// A RocksDB checkpoint of the instance in `path()`.chk-<id>: its files
  /// hard-linked, no data copied. The flush cut seals the memtables here and
  /// returns; the snapshot's finish() waits for their flush and links the
  /// files (the log cut links them here).
  std::shared_ptr<native_snapshot> snapshot_native(int64_t id) override;
  /// One source with this instance's key groups: its directory becomes
  /// the instance. One that covers more: the same, then the key groups not
  /// owned are deleted (DeleteRange). Otherwise the owned key groups of each
  /// overlapping source are copied in (Flink's rescaling restore).
  void restore_native(const std::vector<std::shared_ptr<native_restore_source>>& sources) override;
  void checkpoint_completed(int64_t id) override;
  void checkpoint_aborted(int64_t id) override;
  /// The uploads that native snapshots of this instance may reference.
  [[nodiscard]] const std::shared_ptr<native_upload_ledger>& ledger() const noexcept {
    return ledger_;
  }

protected:
  void on_declare(uint32_t idx) override;

  std::string prefix_;

private:
  friend class internal::rocksdb_cut;

  rocksdb::ColumnFamilyHandle* column(uint32_t idx) const;
  /// Completes a flush cut (with the cut guard's lock held): waits until
  /// the memtables sealed at the cut are flushed, then links the files, or
  /// writes the state as of the cut out when they no longer exist alone.
  void finish_cut(internal::rocksdb_cut_state& cut) noexcept;
  /// Links the live files of the current version into `dir`; false when
  /// `cut` is given and the version holds anything written after it.
  bool link_live_files(const std::string& dir, std::map<std::string, uint64_t>& valid_sizes,
                       const internal::rocksdb_cut_state* cut);
  /// Writes every entry as of the cut into a new RocksDB instance in its
  /// directory.
  void rewrite_cut(internal::rocksdb_cut_state& cut);
  /// Finishes the cuts whose snapshots still wait (before the instance
  /// closes).
  void finish_pending_cuts() noexcept;
  void check(bool ok, const std::string& status, const char* what) const;
  /// Closes the instance (its files stay).
  void close_db() noexcept;
  /// Opens the instance in path_ with every column family it has, maps them
  /// to the declared states and creates the missing ones.
  void open_with_columns(const std::string& origin);
  /// Copies the owned key groups of `src` (opened read-only) into this
  /// instance.
  void copy_key_groups(const native_restore_source& src);
  /// Deletes every entry outside the owned key groups.
  void delete_foreign_key_groups();

  std::string path_;
  bool log_cut_ = false; ///< snapshots cut at the log's end (rocksdb_config::cut)
  std::string instance_; ///< random; names this instance's shared files
  std::shared_ptr<native_upload_ledger> ledger_ = std::make_shared<native_upload_ledger>();
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> columns_;
  struct options_holder;
  std::unique_ptr<options_holder> options_;
  std::vector<std::string> sweep_cursor_; ///< per state: where the TTL sweep resumes
  /// Flush cuts not finished yet, and the lock that keeps the instance open
  /// while one is finished.
  std::shared_ptr<internal::rocksdb_cut_guard> cuts_;
  /// Columns created or being created: a cut whose version gained one is
  /// not the state at the cut.
  std::atomic<uint64_t> columns_made_{0};
};

namespace internal {
inline int64_t stamp_of(std::string_view v);
inline void append_stamp(std::string& out, int64_t stamp);
} // namespace internal

/// RocksDB backend for keys of type K.
template <class K>
class rocksdb_keyed_backend final : public keyed_state_backend<K>, public rocksdb_backend_core {
public:
  rocksdb_keyed_backend(key_group_range range, int32_t max_parallelism,
                        std::shared_ptr<const state_clock> clock, const rocksdb_config& config,
                        const std::string& instance_name)
    : keyed_state_backend_base(range, max_parallelism, clock),
      keyed_state_backend<K>(range, max_parallelism, clock),
      rocksdb_backend_core(range, max_parallelism, clock, config, instance_name) {}

  backend_kind kind() const noexcept override { return backend_kind::rocksdb; }

  void set_current_key(const K& key) override {
    auto kg = this->key_group_of_key(key);
    set_current_key_group(kg);
    this->key_ = key;
    prefix_.clear();
    append_key_group(prefix_, kg);
    serialize_into(prefix_, key);
  }

  std::vector<K> keys(uint32_t index) override {
    std::vector<K> out;
    std::string last;
    scan(index, {}, [&](std::string_view k, std::string_view) {
      byte_reader r(k.substr(max_parallelism_ <= 128 ? 1 : 2));
      auto key = serializer<K>::read(r);
      auto used = k.substr(0, k.size() - r.remaining());
      if (used != last) {
        last = std::string(used);
        out.push_back(std::move(key));
      }
      return true;
    });
    return out;
  }

protected:
  /// A scan of each state's column per owned key group: the stored key and
  /// value bytes are the snapshot's, less the key-group prefix and the
  /// native-endian TTL stamp.
  void write_snapshot_entries(snapshot_writer& w) override {
    const size_t kg_bytes = max_parallelism_ <= 128 ? 1 : 2;
    const auto now = clock_->now_ms();
    std::string prefix;
    std::string elements;
    for (uint32_t idx = 0; idx < states_.size(); ++idx) {
      const auto& meta = states_[idx];
      const bool list = meta.kind == state_kind::list;
      const bool ttl = meta.ttl.enabled();
      for (auto kg = range_.start; kg <= range_.end; ++kg) {
        prefix.clear();
        append_key_group(prefix, kg);
        try {
          scan(idx, prefix, [&](std::string_view k, std::string_view v) {
            auto rest = k.substr(kg_bytes);
            byte_reader r(rest);
            (void)serializer<K>::read(r);
            auto key = rest.substr(0, r.offset());
            auto ns = rest.substr(r.offset());
            if (!list) {
              int64_t stamp = 0;
              if (ttl) {
                byte_reader vr(v);
                (void)vr.read_view(sizeof(int64_t));
                stamp = internal::stamp_of(v);
                if (meta.ttl.expired(stamp, now))
                  return true;
                v.remove_prefix(sizeof(int64_t));
              }
              w.add_value(kg, idx, key, ns, v, stamp);
              return true;
            }
            elements.clear();
            uint64_t n = 0;
            byte_reader lr(v);
            while (!lr.at_end()) {
              auto len = lr.read_varint();
              auto elem = lr.read_view(static_cast<size_t>(len));
              int64_t stamp = 0;
              if (ttl) {
                byte_reader er(elem);
                (void)er.read_view(sizeof(int64_t));
                stamp = internal::stamp_of(elem);
                if (meta.ttl.expired(stamp, now))
                  continue;
                elem.remove_prefix(sizeof(int64_t));
              }
              snapshot_writer::append_list_element(elements, elem, stamp);
              ++n;
            }
            if (n > 0)
              w.add_list(kg, idx, key, ns, n, elements);
            return true;
          });
        } catch (const serialization_error& e) {
          throw state_error("cannot snapshot state '" + meta.name + "': stored bytes of key group " +
                            std::to_string(kg) + " are malformed (" + e.what() + ")");
        }
      }
    }
  }

  void restore_snapshot_entry(uint32_t idx, int32_t kg, const snapshot_entry& e) override {
    const auto& meta = states_.at(idx);
    auto key_group = this->key_group_of_key(deserialize<K>(e.key));
    if (key_group != kg)
      throw state_error("restore: state '" + meta.name + "': a key in the block of key group " +
                        std::to_string(kg) + " belongs to key group " +
                        std::to_string(key_group) + " (corrupt snapshot)");
    std::string k;
    append_key_group(k, kg);
    k.append(e.key.data(), e.key.size());
    k.append(e.ns.data(), e.ns.size());
    const bool ttl = meta.ttl.enabled();
    std::string v;
    if (meta.kind == state_kind::list) {
      if (e.elements.empty())
        return;
      for (auto& [bytes, stamp] : e.elements) {
        byte_writer w(v);
        w.write_varint(bytes.size() + (ttl ? sizeof(int64_t) : 0));
        if (ttl)
          internal::append_stamp(v, stamp);
        v.append(bytes.data(), bytes.size());
      }
    } else {
      if (ttl)
        internal::append_stamp(v, e.stamp);
      v.append(e.value.data(), e.value.size());
    }
    put(idx, k, v);
  }
};

// ---- RocksDB state implementations ----------------------------------------

namespace internal {

/// Turns a decoding failure of stored bytes into an error naming the state.
template <class F>
auto decode_stored(const std::string& state, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const serialization_error& e) {
    throw state_error("state '" + state + "': stored bytes cannot be read as the declared type (" +
                      e.what() + ")");
  }
}

inline void append_stamp(std::string& out, int64_t stamp) {
  char b[sizeof stamp];
  std::memcpy(b, &stamp, sizeof stamp);
  out.append(b, sizeof stamp);
}

inline int64_t stamp_of(std::string_view v) {
  int64_t s = 0;
  if (v.size() >= sizeof s)
    std::memcpy(&s, v.data(), sizeof s);
  return s;
}

} // namespace internal

/// Common part of the RocksDB states: the state's index and TTL, and the
/// key of the current key and namespace.
template <class N>
class rocksdb_state_base {
protected:
  rocksdb_state_base(rocksdb_backend_core& b, uint32_t idx)
    : b_(b), idx_(idx), ttl_(b.states()[idx].ttl), name_(b.states()[idx].name) {}

  /// key-group | key | namespace of the current key.
  const std::string& key() {
    key_ = b_.key_prefix();
    serialize_into(key_, ns_);
    return key_;
  }
  int64_t stamp() const { return ttl_.enabled() ? b_.now() : 0; }
  size_t stamp_bytes() const noexcept { return ttl_.enabled() ? sizeof(int64_t) : 0; }

  rocksdb_backend_core& b_;
  uint32_t idx_;
  state_ttl ttl_;
  std::string name_;
  N ns_{};
  std::string key_;
  std::string buf_;
};

/// RocksDB value state; also the storage of reducing and aggregating state.
template <class N, class V>
class rocksdb_value_state final : public internal_value_state<N, V>, rocksdb_state_base<N> {
  using base = rocksdb_state_base<N>;

public:
  rocksdb_value_state(rocksdb_backend_core& b, uint32_t idx) : base(b, idx) {}

  void set_namespace(const N& ns) override { this->ns_ = ns; }

  const V* get() override {
    auto& k = this->key();
    if (!this->b_.get(this->idx_, k, this->buf_))
      return nullptr;
    if (this->ttl_.enabled()) {
      auto now = this->b_.now();
      if (this->ttl_.expired(internal::stamp_of(this->buf_), now)) {
        this->b_.remove(this->idx_, k);
        return nullptr;
      }
      if (this->ttl_.update == ttl_update::on_read_and_write) {
        std::memcpy(this->buf_.data(), &now, sizeof now);
        this->b_.put(this->idx_, k, this->buf_);
      }
    }
    auto payload = std::string_view(this->buf_).substr(this->stamp_bytes());
    value_ = internal::decode_stored(this->name_, [&] { return deserialize<V>(payload); });
    return &*value_;
  }

  void put(V value) override {
    std::string out;
    if (this->ttl_.enabled())
      internal::append_stamp(out, this->stamp());
    serialize_into(out, value);
    this->b_.put(this->idx_, this->key(), out);
  }

  void clear() override { this->b_.remove(this->idx_, this->key()); }

  void merge_namespaces(const std::vector<N>& sources,
                        const std::function<V(const V&, const V&)>& merge) override {
    auto target = this->ns_;
    std::optional<V> acc;
    for (auto& s : sources) {
      if (s == target)
        continue;
      this->ns_ = s;
      if (auto* v = get()) {
        acc = acc ? merge(*acc, *v) : *v;
        clear();
      }
    }
    this->ns_ = target;
    if (!acc)
      return;
    if (auto* v = get())
      put(merge(*v, *acc));
    else
      put(std::move(*acc));
  }

private:
  std::optional<V> value_;
};

/// RocksDB list state: elements are appended with RocksDB merges.
template <class N, class T>
class rocksdb_list_state final : public internal_list_state<N, T>, rocksdb_state_base<N> {
  using base = rocksdb_state_base<N>;

public:
  rocksdb_list_state(rocksdb_backend_core& b, uint32_t idx) : base(b, idx) {}

  void set_namespace(const N& ns) override { this->ns_ = ns; }

  bool get(std::vector<T>& out) override {
    auto& k = this->key();
    if (!this->b_.get(this->idx_, k, this->buf_))
      return false;
    auto now = this->ttl_.enabled() ? this->b_.now() : 0;
    bool dropped = false;
    bool any = false;
    std::string kept;
    internal::decode_stored(this->name_, [&] {
      byte_reader r(this->buf_);
      while (!r.at_end()) {
        auto len = r.read_varint();
        auto elem = r.read_view(static_cast<size_t>(len));
        if (this->ttl_.enabled()) {
          if (this->ttl_.expired(internal::stamp_of(elem), now)) {
            dropped = true;
            continue;
          }
          if (this->ttl_.update == ttl_update::on_read_and_write)
            dropped = true; // rewritten below with fresh stamps
          auto fresh = this->ttl_.update == ttl_update::on_read_and_write;
          append_element(kept, elem.substr(sizeof(int64_t)),
                         fresh ? now : internal::stamp_of(elem));
        }
        out.push_back(deserialize<T>(elem.substr(this->stamp_bytes())));
        any = true;
      }
      return 0;
    });
    if (dropped) {
      if (kept.empty())
        this->b_.remove(this->idx_, k);
      else
        this->b_.put(this->idx_, k, kept);
    }
    return any;
  }

  void add(T value) override {
    std::string e;
    encode(e, value, this->stamp());
    this->b_.merge(this->idx_, this->key(), e);
  }

  void add_all(std::vector<T> values) override {
    if (values.empty())
      return;
    std::string run;
    auto s = this->stamp();
    for (auto& v : values)
      encode(run, v, s);
    this->b_.merge(this->idx_, this->key(), run);
  }

  void update(std::vector<T> values) override {
    if (values.empty()) {
      clear();
      return;
    }
    std::string run;
    auto s = this->stamp();
    for (auto& v : values)
      encode(run, v, s);
    this->b_.put(this->idx_, this->key(), run);
  }

  void clear() override { this->b_.remove(this->idx_, this->key()); }

  void merge_namespaces(const std::vector<N>& sources) override {
    auto target = this->ns_;
    std::string run;
    for (auto& s : sources) {
      if (s == target)
        continue;
      this->ns_ = s;
      auto& k = this->key();
      if (this->b_.get(this->idx_, k, this->buf_)) {
        run += this->buf_;
        this->b_.remove(this->idx_, k);
      }
    }
    this->ns_ = target;
    if (!run.empty())
      this->b_.merge(this->idx_, this->key(), run);
  }

private:
  void encode(std::string& out, const T& value, int64_t stamp) {
    tmp_.clear();
    if (this->ttl_.enabled())
      internal::append_stamp(tmp_, stamp);
    serialize_into(tmp_, value);
    byte_writer w(out);
    w.write_varint(tmp_.size());
    out += tmp_;
  }

  void append_element(std::string& out, std::string_view payload, int64_t stamp) {
    byte_writer w(out);
    w.write_varint(payload.size() + sizeof(int64_t));
    internal::append_stamp(out, stamp);
    out.append(payload.data(), payload.size());
  }

  std::string tmp_;
};

/// RocksDB map state: one RocksDB entry per map entry.
template <class N, class UK, class UV>
class rocksdb_map_state final : public internal_map_state<N, UK, UV>, rocksdb_state_base<N> {
  using base = rocksdb_state_base<N>;

public:
  rocksdb_map_state(rocksdb_backend_core& b, uint32_t idx) : base(b, idx) {}

  void set_namespace(const N& ns) override { this->ns_ = ns; }

  std::optional<UV> get(const UK& key) override {
    auto k = entry_key(key);
    if (!this->b_.get(this->idx_, k, this->buf_))
      return std::nullopt;
    if (!live(k, this->buf_))
      return std::nullopt;
    auto payload = std::string_view(this->buf_).substr(this->stamp_bytes());
    return internal::decode_stored(this->name_, [&] { return deserialize<UV>(payload); });
  }

  void put(UK key, UV value) override {
    std::string out;
    if (this->ttl_.enabled())
      internal::append_stamp(out, this->stamp());
    serialize_into(out, value);
    this->b_.put(this->idx_, entry_key(key), out);
  }

  void remove(const UK& key) override { this->b_.remove(this->idx_, entry_key(key)); }

  bool contains(const UK& key) override {
    auto k = entry_key(key);
    return this->b_.get(this->idx_, k, this->buf_) && live(k, this->buf_);
  }

  void entries(std::vector<std::pair<UK, UV>>& out) override {
    auto prefix = this->key();
    std::vector<std::string> expired;
    auto now = this->ttl_.enabled() ? this->b_.now() : 0;
    internal::decode_stored(this->name_, [&] {
      this->b_.scan(this->idx_, prefix, [&](std::string_view k, std::string_view v) {
        if (this->ttl_.enabled() && this->ttl_.expired(internal::stamp_of(v), now)) {
          expired.emplace_back(k);
          return true;
        }
        auto uk = deserialize<UK>(k.substr(prefix.size()));
        out.emplace_back(std::move(uk), deserialize<UV>(v.substr(this->stamp_bytes())));
        return true;
      });
      return 0;
    });
    for (auto& k : expired)
      this->b_.remove(this->idx_, k);
  }

  bool empty() override {
    auto prefix = this->key();
    bool found = false;
    auto now = this->ttl_.enabled() ? this->b_.now() : 0;
    this->b_.scan(this->idx_, prefix, [&](std::string_view, std::string_view v) {
      found = !this->ttl_.enabled() || !this->ttl_.expired(internal::stamp_of(v), now);
      return !found;
    });
    return !found;
  }

  void clear() override {
    auto prefix = this->key();
    std::vector<std::string> keys;
    this->b_.scan(this->idx_, prefix, [&](std::string_view k, std::string_view) {
      keys.emplace_back(k);
      return true;
    });
    for (auto& k : keys)
      this->b_.remove(this->idx_, k);
  }

private:
  std::string entry_key(const UK& key) {
    std::string k = this->key();
    serialize_into(k, key);
    return k;
  }

  /// Whether the stored entry is live; expired entries are deleted, and a
  /// read under on_read_and_write restamps.
  bool live(const std::string& k, std::string& v) {
    if (!this->ttl_.enabled())
      return true;
    auto now = this->b_.now();
    if (this->ttl_.expired(internal::stamp_of(v), now)) {
      this->b_.remove(this->idx_, k);
      return false;
    }
    if (this->ttl_.update == ttl_update::on_read_and_write) {
      std::memcpy(v.data(), &now, sizeof now);
      this->b_.put(this->idx_, k, v);
    }
    return true;
  }
};

} // namespace sluice::state
