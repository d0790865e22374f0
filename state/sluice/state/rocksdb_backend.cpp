#include "sluice/state/rocksdb_backend.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

#include <cstring>
#include <filesystem>
#include <mutex>

namespace sluice::state {

namespace {

/// Appends list elements: both operands are runs of length-prefixed
/// elements, so their concatenation is one.
class list_append_operator final : public rocksdb::AssociativeMergeOperator {
public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger*) const override {
    new_value->clear();
    if (existing != nullptr)
      new_value->assign(existing->data(), existing->size());
    new_value->append(value.data(), value.size());
    return true;
  }
  const char* Name() const override { return "sluice.list_append"; }
};

/// The block cache and write-buffer manager every instance in the process
/// shares; created by the first backend from its configuration.
struct shared_memory {
  std::shared_ptr<rocksdb::Cache> cache;
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers;
  size_t managed_bytes = 0;
};

std::shared_ptr<shared_memory> process_memory(const rocksdb_config& c) {
  static std::mutex mu;
  static std::weak_ptr<shared_memory> current;
  std::lock_guard<std::mutex> lock(mu);
  if (auto m = current.lock())
    return m;
  if (c.managed_memory_bytes < (size_t{8} << 20))
    throw state_error("state.backend.rocksdb.memory.managed-size must be at least 8 MiB, got " +
                      std::to_string(c.managed_memory_bytes) + " bytes");
  if (!(c.write_buffer_ratio > 0 && c.write_buffer_ratio < 1))
    throw state_error("state.backend.rocksdb.memory.write-buffer-ratio must be in (0, 1)");
  auto m = std::make_shared<shared_memory>();
  m->managed_bytes = c.managed_memory_bytes;
  rocksdb::LRUCacheOptions lru;
  lru.capacity = c.managed_memory_bytes;
  lru.num_shard_bits = 4;
  lru.high_pri_pool_ratio = c.high_priority_pool_ratio;
  m->cache = rocksdb::NewLRUCache(lru);
  m->write_buffers = std::make_shared<rocksdb::WriteBufferManager>(
    static_cast<size_t>(static_cast<double>(c.managed_memory_bytes) * c.write_buffer_ratio),
    m->cache);
  current = m;
  return m;
}

std::string temp_root() {
  std::error_code ec;
  auto p = std::filesystem::temp_directory_path(ec);
  return ec ? std::string("/tmp") : p.string();
}

uint64_t read_varint(std::string_view& in, bool& ok) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      ok = true;
      return v;
    }
  }
  ok = false;
  return 0;
}

int64_t read_stamp(std::string_view v) {
  int64_t s = 0;
  if (v.size() >= sizeof s)
    std::memcpy(&s, v.data(), sizeof s);
  return s;
}

} // namespace

struct rocksdb_backend_core::options_holder {
  std::shared_ptr<shared_memory> memory;
  rocksdb::Options db;
  rocksdb::ColumnFamilyOptions column;
  rocksdb::WriteOptions write;
  rocksdb::ReadOptions read;
};

rocksdb_backend_core::rocksdb_backend_core(key_group_range range, int32_t max_parallelism,
                                           std::shared_ptr<const state_clock> clock,
                                           const rocksdb_config& config,
                                           const std::string& instance_name)
  : keyed_state_backend_base(range, max_parallelism, std::move(clock)),
    options_(std::make_unique<options_holder>()) {
  auto root = config.local_dir.empty() ? temp_root() : config.local_dir;
  path_ = (std::filesystem::path(root) / instance_name).string();
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  std::filesystem::create_directories(path_, ec);
  if (ec)
    throw state_error("cannot create RocksDB directory " + path_ + ": " + ec.message());

  auto& o = *options_;
  o.memory = process_memory(config);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = o.memory->cache;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // A point read of a key that has no entry yet (every new key's first
  // access) otherwise reads a data block of every sorted run.
  if (config.use_bloom_filter)
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.column.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o.column.merge_operator = std::make_shared<list_append_operator>();
  // Memtables are charged to the shared cache; keep each small, so many
  // states and instances fit in the budget and a flush is short: a write
  // that finds every memtable full stalls the subtask until a flush ends.
  o.column.write_buffer_size =
    std::max<size_t>(size_t{2} << 20, std::min<size_t>(size_t{16} << 20,
                                                       o.memory->managed_bytes / 16));
  o.column.max_write_buffer_number = 4;
  static_cast<rocksdb::ColumnFamilyOptions&>(o.db) = o.column;
  o.db.create_if_missing = true;
  o.db.write_buffer_manager = o.memory->write_buffers;
  o.db.max_open_files = 256;
  o.db.max_background_jobs = 2;
  o.db.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.db.keep_log_file_num = 1;
  // The instance is a working copy, deleted on close: never flush it then.
  o.db.avoid_flush_during_shutdown = true;
  // Durability comes from checkpoints, as in Flink: no write-ahead log.
  o.write.disableWAL = true;
  o.read.verify_checksums = false;

  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(o.db, path_, &db);
  if (!st.ok())
    throw state_error("cannot open RocksDB in " + path_ + ": " + st.ToString());
  db_.reset(db);
}

rocksdb_backend_core::~rocksdb_backend_core() {
  if (db_) {
    for (auto* c : columns_)
      if (c != nullptr)
        db_->DestroyColumnFamilyHandle(c);
    columns_.clear();
    db_->Close();
    db_.reset();
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void rocksdb_backend_core::on_declare(uint32_t idx) {
  rocksdb::ColumnFamilyHandle* h = nullptr;
  auto st = db_->CreateColumnFamily(options_->column, states_[idx].name, &h);
  if (!st.ok())
    throw state_error("cannot create RocksDB column for state '" + states_[idx].name +
                      "': " + st.ToString());
  if (columns_.size() <= idx)
    columns_.resize(idx + 1, nullptr);
  columns_[idx] = h;
  sweep_cursor_.resize(columns_.size());
}

rocksdb::ColumnFamilyHandle* rocksdb_backend_core::column(uint32_t idx) const {
  if (idx >= columns_.size() || columns_[idx] == nullptr)
    throw state_error("RocksDB state index " + std::to_string(idx) + " was never declared");
  return columns_[idx];
}

void rocksdb_backend_core::check(bool ok, const std::string& status, const char* what) const {
  if (!ok)
    throw state_error(std::string("RocksDB ") + what + " failed in " + path_ + ": " + status);
}

void rocksdb_backend_core::append_key_group(std::string& out, int32_t kg) const {
  if (max_parallelism_ <= 128) {
    out.push_back(static_cast<char>(kg));
  } else {
    out.push_back(static_cast<char>((kg >> 8) & 0xff));
    out.push_back(static_cast<char>(kg & 0xff));
  }
}

bool rocksdb_backend_core::get(uint32_t idx, std::string_view key, std::string& value) {
  auto st = db_->Get(options_->read, column(idx), rocksdb::Slice(key.data(), key.size()), &value);
  if (st.IsNotFound())
    return false;
  check(st.ok(), st.ToString(), "get");
  return true;
}

void rocksdb_backend_core::put(uint32_t idx, std::string_view key, std::string_view value) {
  auto st = db_->Put(options_->write, column(idx), rocksdb::Slice(key.data(), key.size()),
                     rocksdb::Slice(value.data(), value.size()));
  check(st.ok(), st.ToString(), "put");
}

void rocksdb_backend_core::merge(uint32_t idx, std::string_view key, std::string_view value) {
  auto st = db_->Merge(options_->write, column(idx), rocksdb::Slice(key.data(), key.size()),
                       rocksdb::Slice(value.data(), value.size()));
  check(st.ok(), st.ToString(), "merge");
}

void rocksdb_backend_core::remove(uint32_t idx, std::string_view key) {
  auto st = db_->Delete(options_->write, column(idx), rocksdb::Slice(key.data(), key.size()));
  check(st.ok(), st.ToString(), "delete");
}

void rocksdb_backend_core::scan(uint32_t idx, std::string_view prefix,
                                const std::function<bool(std::string_view, std::string_view)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options_->read, column(idx)));
  // An empty string_view may hold a null pointer, which Slice must not.
  rocksdb::Slice p(prefix.empty() ? "" : prefix.data(), prefix.size());
  for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (!fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size())))
      break;
  }
  check(it->status().ok(), it->status().ToString(), "scan");
}

size_t rocksdb_backend_core::cleanup_expired(size_t budget) {
  size_t removed = 0;
  size_t visited = 0;
  auto now = clock_->now_ms();
  for (uint32_t i = 0; i < states_.size() && visited < budget; ++i) {
    auto& ttl = states_[i].ttl;
    if (!ttl.enabled() || i >= columns_.size() || columns_[i] == nullptr)
      continue;
    bool list = states_[i].kind == state_kind::list;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options_->read, columns_[i]));
    auto& cursor = sweep_cursor_[i];
    for (it->Seek(cursor); it->Valid() && visited < budget; it->Next()) {
      ++visited;
      auto k = it->key();
      auto v = it->value();
      if (!list) {
        if (ttl.expired(read_stamp(std::string_view(v.data(), v.size())), now)) {
          remove(i, std::string_view(k.data(), k.size()));
          ++removed;
        }
        continue;
      }
      // Lists: keep the live elements, drop the rest.
      std::string_view in(v.data(), v.size());
      std::string kept;
      size_t dropped = 0;
      while (!in.empty()) {
        bool ok = false;
        auto start = in;
        auto len = read_varint(in, ok);
        if (!ok || len > in.size())
          throw state_error("corrupt list entry in RocksDB state '" + states_[i].name + "'");
        auto elem = in.substr(0, len);
        in.remove_prefix(len);
        if (ttl.expired(read_stamp(elem), now))
          ++dropped;
        else
          kept.append(start.data(), static_cast<size_t>(in.data() - start.data()));
      }
      if (dropped > 0) {
        removed += dropped;
        if (kept.empty())
          remove(i, std::string_view(k.data(), k.size()));
        else
          put(i, std::string_view(k.data(), k.size()), kept);
      }
    }
    cursor = it->Valid() ? it->key().ToString() : std::string();
  }
  return removed;
}

uint64_t rocksdb_backend_core::estimated_live_bytes() const {
  uint64_t total = 0;
  for (auto* c : columns_) {
    uint64_t v = 0;
    if (c != nullptr && db_->GetIntProperty(c, "rocksdb.estimate-live-data-size", &v))
      total += v;
  }
  return total;
}

} // namespace sluice::state
