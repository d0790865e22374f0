#include "sluice/state/rocksdb_backend.hpp"
#include "sluice/state/work_dir.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <random>
#include <thread>

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

/// Instances live in `<root>/sluice-rocksdb-<host>-<pid>/` (work_dir.hpp).
/// The first instance a process opens under a root removes what killed
/// processes left there; the last one to close removes the process's
/// directory once it is empty.
class process_dir_lease {
public:
  explicit process_dir_lease(const std::string& root)
    : dir_(std::filesystem::path(root) / process_dir_name("sluice-rocksdb")) {
    std::lock_guard<std::mutex> lock(mu());
    auto [it, first] = leases().try_emplace(dir_.string(), 0);
    if (first)
      (void)remove_stale_process_dirs(root, "sluice-rocksdb");
    ++it->second;
  }
  ~process_dir_lease() {
    std::lock_guard<std::mutex> lock(mu());
    if (--leases()[dir_.string()] == 0) {
      std::error_code ec;
      std::filesystem::remove(dir_, ec); // only when empty
    }
  }
  process_dir_lease(const process_dir_lease&) = delete;
  process_dir_lease& operator=(const process_dir_lease&) = delete;
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

private:
  // Never destroyed: instances may close during static destruction.
  static std::mutex& mu() {
    static auto* m = new std::mutex;
    return *m;
  }
  static std::map<std::string, int>& leases() {
    static auto* m = new std::map<std::string, int>;
    return *m;
  }
  std::filesystem::path dir_;
};

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

std::string random_instance_id() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i)
    out += digits[rng() % 16];
  return out;
}

/// Opens the RocksDB instance in `dir` with every column it has (read-only
/// for a snapshot to copy from); `names` and `handles` match by index.
/// Throws state_error naming `origin` and `dir`.
std::unique_ptr<rocksdb::DB> open_every_column(const rocksdb::Options& db_options,
                                               const rocksdb::ColumnFamilyOptions& column,
                                               const std::string& dir, const std::string& origin,
                                               bool read_only, std::vector<std::string>& names,
                                               std::vector<rocksdb::ColumnFamilyHandle*>& handles) {
  auto fail = [&](const std::string& what, const rocksdb::Status& st) {
    throw state_error("restore: " + origin + ": cannot " + what + " RocksDB in " + dir + ": " +
                      st.ToString());
  };
  auto st = rocksdb::DB::ListColumnFamilies(db_options, dir, &names);
  if (!st.ok())
    fail("list the columns of", st);
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (auto& n : names)
    descs.emplace_back(n, column);
  rocksdb::DB* db = nullptr;
  st = read_only ? rocksdb::DB::OpenForReadOnly(db_options, dir, descs, &handles, &db)
                 : rocksdb::DB::Open(db_options, dir, descs, &handles, &db);
  if (!st.ok())
    fail("open", st);
  return std::unique_ptr<rocksdb::DB>(db);
}

/// Writes every entry `from` yields from its current position on into
/// `column` of `to`, in batches of about 4 MiB.
rocksdb::Status copy_entries(rocksdb::Iterator& from, rocksdb::DB& to,
                             rocksdb::ColumnFamilyHandle* column,
                             const rocksdb::WriteOptions& write) {
  rocksdb::WriteBatch batch;
  for (; from.Valid(); from.Next()) {
    batch.Put(column, from.key(), from.value());
    if (batch.GetDataSize() >= (size_t{4} << 20)) {
      auto st = to.Write(write, &batch);
      if (!st.ok())
        return st;
      batch.Clear();
    }
  }
  if (!from.status().ok())
    return from.status();
  return to.Write(write, &batch);
}

std::atomic<uint64_t> rewritten_cuts{0};

} // namespace

uint64_t rewritten_flush_cuts() noexcept { return rewritten_cuts.load(); }

namespace internal {

/// What the flush cuts of one instance share with their snapshots.
struct rocksdb_cut_guard {
  /// Held while a cut is finished, and while the instance closes.
  std::mutex mu;
  /// Null once the instance is gone.
  rocksdb_backend_core* owner = nullptr;
  /// Guards `pending` only (the subtask's thread adds to it at the barrier
  /// without waiting for a cut being finished).
  std::mutex list_mu;
  std::vector<std::weak_ptr<rocksdb_cut_state>> pending;
};

/// One flush cut between the barrier and its snapshot's finish().
struct rocksdb_cut_state {
  std::shared_ptr<rocksdb_cut_guard> guard;
  /// The instance as of the cut (the fallback reads it); released when the
  /// cut is finished or dropped.
  const rocksdb::Snapshot* snapshot = nullptr;
  uint64_t sequence = 0;
  uint64_t columns_made = 0;
  /// The states' columns at the cut.
  std::vector<rocksdb::ColumnFamilyHandle*> columns;
  std::string dir;
  /// finish_cut ran: the result (or `error`) is there, the snapshot released.
  bool done = false;
  /// finish() took the result, or the snapshot was dropped: the instance
  /// need not finish it when it closes.
  bool closed = false;
  std::string error;
  std::map<std::string, uint64_t> valid_sizes;
  /// Set when the state as of the cut was written out as a new instance.
  std::string rewritten_instance;
};

class rocksdb_cut final : public deferred_cut {
public:
  explicit rocksdb_cut(std::shared_ptr<rocksdb_cut_state> s) : s_(std::move(s)) {}
  ~rocksdb_cut() override { abandon(); }

  void finish(native_snapshot& snap) override {
    auto& g = *s_->guard;
    std::lock_guard<std::mutex> lock(g.mu);
    // An instance finishes every waiting cut before it closes, so a cut not
    // done yet still has its instance.
    if (!s_->done)
      g.owner->finish_cut(*s_);
    s_->closed = true;
    if (!s_->error.empty())
      throw state_error("snapshot " + std::to_string(snap.checkpoint_id) + ": " + s_->error);
    snap.valid_sizes = s_->valid_sizes;
    if (!s_->rewritten_instance.empty()) {
      snap.rewritten = true;
      snap.instance = s_->rewritten_instance;
      snap.ledger = nullptr; // nothing to reuse, and nothing for later cuts to reuse
    }
  }

  void abandon() noexcept override {
    auto& g = *s_->guard;
    std::lock_guard<std::mutex> lock(g.mu);
    s_->closed = true;
    if (s_->snapshot != nullptr) // held only while the cut is not done: the instance is open
      g.owner->db_->ReleaseSnapshot(s_->snapshot);
    s_->snapshot = nullptr;
  }

private:
  std::shared_ptr<rocksdb_cut_state> s_;
};

} // namespace internal

struct rocksdb_backend_core::options_holder {
  std::unique_ptr<process_dir_lease> lease; // released after the instance's directory is gone
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
    instance_(random_instance_id()), options_(std::make_unique<options_holder>()),
    cuts_(std::make_shared<internal::rocksdb_cut_guard>()) {
  cuts_->owner = this;
  if (config.level0_compaction_trigger < 0 || config.level0_compaction_trigger > 16)
    throw state_error("sluice.state.rocksdb.compaction.level0-file-num-trigger must be auto (0) or "
                      "in [1, 16], got " + std::to_string(config.level0_compaction_trigger));
  auto& o = *options_;
  o.lease = std::make_unique<process_dir_lease>(config.local_dir.empty() ? temp_root()
                                                                          : config.local_dir);
  path_ = (o.lease->dir() / instance_name).string();
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  std::filesystem::create_directories(path_, ec);
  if (ec)
    throw state_error("cannot create RocksDB directory " + path_ + ": " + ec.message());
  // The destructor does not run when the constructor throws: until the
  // instance is open, a failure removes its directory.
  struct remove_unless_open {
    const std::string& dir;
    bool open = false;
    ~remove_unless_open() {
      std::error_code ignored;
      if (!open)
        std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{path_};
  o.memory = process_memory(config);
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = o.memory->cache;
  table.cache_index_and_filter_blocks = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  // Without filters a point read searches every memtable and reads a data
  // block of every L0 file until it finds its key: most reads miss the
  // newest memtable, and after a checkpoint's flush every memtable.
  if (config.use_bloom_filter) {
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    // Building a filter buffers a hash per key of the file (MiBs for a
    // compaction's output): charged to the cache, so it stays in the budget.
    table.cache_usage_options.options_overrides[rocksdb::CacheEntryRole::kFilterConstruction] =
      {rocksdb::CacheEntryRoleOptions::Decision::kEnabled};
    o.column.memtable_prefix_bloom_size_ratio = 0.1;
    o.column.memtable_whole_key_filtering = true;
  }
  o.column.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o.column.merge_operator = std::make_shared<list_append_operator>();
  // Memtables are charged to the shared cache; keep each small, so many
  // states and instances fit in the budget and a flush is short: a write
  // that finds every memtable full stalls the subtask until a flush ends.
  o.column.write_buffer_size =
    std::max<size_t>(size_t{2} << 20, std::min<size_t>(size_t{16} << 20,
                                                       o.memory->managed_bytes / 16));
  o.column.max_write_buffer_number = 4;
  o.column.level0_file_num_compaction_trigger =
    config.level0_compaction_trigger > 0 ? config.level0_compaction_trigger
    : config.native_snapshots           ? 8
                                        : 4;
  static_cast<rocksdb::ColumnFamilyOptions&>(o.db) = o.column;
  o.db.create_if_missing = true;
  o.db.write_buffer_manager = o.memory->write_buffers;
  o.db.max_open_files = 256;
  o.db.max_background_jobs = 2;
  o.db.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  o.db.keep_log_file_num = 1;
  // The instance is a working copy, deleted on close: never flush it then.
  o.db.avoid_flush_during_shutdown = true;
  // Durability comes from checkpoints, as in Flink: no write-ahead log for
  // crash recovery. Native snapshots cut at the log's end do keep one
  // (written out in bulk, never synced): it is part of the snapshot.
  log_cut_ = config.native_snapshots && config.cut == rocksdb_config::snapshot_cut::log;
  o.write.disableWAL = !log_cut_;
  if (log_cut_) {
    o.db.manual_wal_flush = true;
    // Old log files live until every column's memtable holding their data
    // was flushed; a rarely written state must not keep them forever (each
    // snapshot copies the logs' live part).
    o.db.max_total_wal_size = 4 * o.column.write_buffer_size;
  }
  o.read.verify_checksums = false;

  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(o.db, path_, &db);
  if (!st.ok())
    throw state_error("cannot open RocksDB in " + path_ + ": " + st.ToString());
  db_.reset(db);
  cleanup.open = true;
}

rocksdb_backend_core::~rocksdb_backend_core() {
  close_db();
  {
    std::lock_guard<std::mutex> lock(cuts_->mu);
    cuts_->owner = nullptr;
  }
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void rocksdb_backend_core::close_db() noexcept {
  if (!db_)
    return;
  finish_pending_cuts();
  for (auto* c : columns_)
    if (c != nullptr)
      db_->DestroyColumnFamilyHandle(c);
  columns_.clear();
  db_->Close();
  db_.reset();
}

// ---- native snapshots ---------------------------------------------------------

std::shared_ptr<native_snapshot> rocksdb_backend_core::snapshot_native(int64_t id) {
  auto snap = std::make_shared<native_snapshot>();
  snap->checkpoint_id = id;
  snap->instance = instance_;
  snap->ledger = ledger_;
  snap->meta = snapshot_meta(); // throws when a type has no serializer
  auto dir = path_ + ".chk-" + std::to_string(id);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  check(!ec, ec.message(), "create the snapshot directory");
  if (log_cut_) {
    // The log holds every write the memtables do: write out its buffered
    // tail, and the cut is the log's length. Nothing waits for a flush.
    auto st = db_->FlushWAL(false);
    check(st.ok(), st.ToString(), "write out the log");
    try {
      (void) link_live_files(dir, snap->valid_sizes, nullptr);
    } catch (...) {
      std::filesystem::remove_all(dir, ec);
      throw;
    }
    snap->local_dir = dir;
    return snap;
  }
  // The flush cut: the memtables reach the files only by a flush. Seal
  // them here (new writes go to fresh ones) and let the writer wait for
  // their flush; the subtask goes on at once. The RocksDB snapshot keeps
  // the state as of the cut readable, for the rare case that a flush of
  // newer writes gets into the files first (finish_cut).
  auto cut = std::make_shared<internal::rocksdb_cut_state>();
  cut->guard = cuts_;
  cut->dir = dir;
  cut->columns_made = columns_made_.load();
  for (auto* c : columns_)
    if (c != nullptr)
      cut->columns.push_back(c);
  snap->local_dir = dir;
  snap->deferred = std::make_unique<internal::rocksdb_cut>(cut);
  cut->snapshot = db_->GetSnapshot();
  cut->sequence = cut->snapshot->GetSequenceNumber();
  rocksdb::FlushOptions fo;
  fo.wait = false;
  // RocksDB would first wait until a flush cannot stall writes (L0 below
  // its slowdown trigger), i.e. for compactions.
  fo.allow_write_stall = true;
  auto st = cut->columns.empty() ? rocksdb::Status::OK() : db_->Flush(fo, cut->columns);
  check(st.ok(), st.ToString(), "seal the memtables"); // the snapshot's destructor releases the cut
  std::lock_guard<std::mutex> lock(cuts_->list_mu);
  auto& pending = cuts_->pending;
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [](const auto& w) { return w.expired(); }),
                pending.end());
  pending.push_back(cut);
  return snap;
}

bool rocksdb_backend_core::link_live_files(const std::string& dir,
                                           std::map<std::string, uint64_t>& valid_sizes,
                                           const internal::rocksdb_cut_state* cut) {
  // One consistent view of the instance's files, kept from deletion while
  // they are linked. SST files are immutable; the log and the MANIFEST only
  // grow, so a link plus their length now is their content at this point.
  auto st = db_->DisableFileDeletions();
  check(st.ok(), st.ToString(), "hold file deletions");
  struct deletions_again {
    rocksdb::DB* db;
    ~deletions_again() { (void) db->EnableFileDeletions(false); }
  } again{db_.get()};
  // A flush cut: each SST file's newest entry, to tell whether the files
  // hold anything written after the cut. Listed before the files, so a file
  // missing here is one a compaction wrote in between: list again.
  std::map<std::string, uint64_t> newest;
  std::vector<rocksdb::LiveFileStorageInfo> files;
  for (int attempt = 0;; ++attempt) {
    if (cut != nullptr) {
      std::vector<rocksdb::LiveFileMetaData> meta;
      db_->GetLiveFilesMetaData(&meta);
      newest.clear();
      for (const auto& m : meta)
        newest[m.relative_filename] = m.largest_seqno;
    }
    rocksdb::LiveFilesStorageInfoOptions lo;
    lo.wal_size_for_flush = std::numeric_limits<uint64_t>::max(); // never flush here
    files.clear();
    st = db_->GetLiveFilesStorageInfo(lo, &files);
    check(st.ok(), st.ToString(), "list the live files");
    if (cut == nullptr)
      break;
    // A state declared since the cut has its column in the MANIFEST.
    if (columns_made_.load() != cut->columns_made)
      return false;
    bool unknown = false;
    for (const auto& f : files) {
      if (f.file_type != rocksdb::kTableFile)
        continue;
      auto it = newest.find(f.relative_filename);
      if (it == newest.end())
        unknown = true;
      else if (it->second > cut->sequence)
        return false;
    }
    if (!unknown)
      break;
    if (attempt == 4)
      return false;
  }
  std::error_code ec;
  for (const auto& f : files) {
    auto name = f.relative_filename;
    if (!name.empty() && name.front() == '/')
      name.erase(0, 1);
    auto to = std::filesystem::path(dir) / name;
    if (!f.replacement_contents.empty()) {
      std::ofstream out(to, std::ios::binary | std::ios::trunc);
      out << f.replacement_contents;
      check(static_cast<bool>(out.flush()), "cannot write " + to.string(), "snapshot");
      continue;
    }
    std::filesystem::create_hard_link(std::filesystem::path(f.directory) / name, to, ec);
    check(!ec, "cannot link " + name + ": " + ec.message(), "snapshot");
    if (f.trim_to_size)
      valid_sizes[name] = f.size;
  }
  return true;
}

void rocksdb_backend_core::finish_cut(internal::rocksdb_cut_state& cut) noexcept {
  try {
    // Every memtable sealed at or before the cut is flushed once no column
    // has an unflushed sealed one (they flush in order). That waits for
    // memtables sealed after the cut too; when writes keep them coming for
    // longer than a flush of the whole write buffer takes on a healthy disk,
    // the state as of the cut is written out instead of waiting on.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool flushed = false;
    while (!flushed) {
      flushed = true;
      for (auto* c : cut.columns) {
        uint64_t n = 0;
        if (db_->GetIntProperty(c, rocksdb::DB::Properties::kNumImmutableMemTable, &n) && n > 0)
          flushed = false;
      }
      if (flushed)
        break;
      uint64_t errors = 0;
      if (db_->GetIntProperty(rocksdb::DB::Properties::kBackgroundErrors, &errors) && errors > 0)
        throw state_error("RocksDB in " + path_ + " failed to flush the memtables of the cut");
      if (std::chrono::steady_clock::now() > deadline)
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!flushed || !link_live_files(cut.dir, cut.valid_sizes, &cut))
      rewrite_cut(cut);
  } catch (const std::exception& e) {
    cut.error = e.what();
  }
  if (cut.snapshot != nullptr)
    db_->ReleaseSnapshot(cut.snapshot);
  cut.snapshot = nullptr;
  cut.done = true;
}

void rocksdb_backend_core::rewrite_cut(internal::rocksdb_cut_state& cut) {
  std::error_code ec;
  std::filesystem::remove_all(cut.dir, ec);
  cut.valid_sizes.clear();
  rocksdb::Options o = options_->db;
  o.create_if_missing = true;
  o.error_if_exists = true;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(o, cut.dir, &raw);
  check(st.ok(), st.ToString(), "create the snapshot's instance");
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  auto close = [&] {
    for (auto* h : handles)
      db->DestroyColumnFamilyHandle(h);
    handles.clear();
    db->Close();
  };
  try {
    rocksdb::ReadOptions ro;
    ro.snapshot = cut.snapshot;
    ro.fill_cache = false;
    for (auto* c : cut.columns) {
      rocksdb::ColumnFamilyHandle* to = nullptr;
      st = db->CreateColumnFamily(options_->column, c->GetName(), &to);
      check(st.ok(), st.ToString(), "create a column of the snapshot's instance");
      handles.push_back(to);
      std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, c));
      it->SeekToFirst();
      st = copy_entries(*it, *db, to, options_->write);
      check(st.ok(), st.ToString(), "write the state as of the cut");
    }
    rocksdb::FlushOptions fo;
    fo.allow_write_stall = true;
    st = handles.empty() ? rocksdb::Status::OK() : db->Flush(fo, handles);
    check(st.ok(), st.ToString(), "flush the snapshot's instance");
  } catch (...) {
    close();
    throw;
  }
  close();
  // Only what a RocksDB checkpoint holds: no lock, no info log.
  for (const auto& e : std::filesystem::directory_iterator(cut.dir, ec)) {
    auto name = e.path().filename().string();
    if (name == "LOCK" || name.rfind("LOG", 0) == 0)
      std::filesystem::remove(e.path(), ec);
  }
  cut.rewritten_instance = random_instance_id();
  rewritten_cuts.fetch_add(1);
}

void rocksdb_backend_core::finish_pending_cuts() noexcept {
  std::vector<std::shared_ptr<internal::rocksdb_cut_state>> live;
  {
    std::lock_guard<std::mutex> lock(cuts_->list_mu);
    for (auto& w : cuts_->pending)
      if (auto c = w.lock())
        live.push_back(std::move(c));
    cuts_->pending.clear();
  }
  std::lock_guard<std::mutex> lock(cuts_->mu);
  for (auto& c : live)
    if (!c->done && !c->closed)
      finish_cut(*c);
}

void rocksdb_backend_core::checkpoint_completed(int64_t id) { ledger_->confirm(id); }

void rocksdb_backend_core::checkpoint_aborted(int64_t id) { ledger_->forget(id); }

void rocksdb_backend_core::open_with_columns(const std::string& origin) {
  std::vector<std::string> names;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  db_ = open_every_column(options_->db, options_->column, path_, origin, false, names, handles);
  columns_.assign(states_.size(), nullptr);
  std::string unknown;
  for (size_t i = 0; i < handles.size(); ++i) {
    const auto& n = names[i];
    auto it = std::find_if(states_.begin(), states_.end(),
                           [&](const state_meta& m) { return m.name == n; });
    if (it == states_.end()) {
      if (n != rocksdb::kDefaultColumnFamilyName && unknown.empty())
        unknown = n;
      db_->DestroyColumnFamilyHandle(handles[i]);
      continue;
    }
    columns_[static_cast<size_t>(it - states_.begin())] = handles[i];
  }
  if (!unknown.empty())
    throw state_error("restore: " + origin + ": the RocksDB files hold state '" + unknown +
                      "', which the snapshot's description does not list (corrupt snapshot)");
  for (uint32_t i = 0; i < states_.size(); ++i)
    if (columns_[i] == nullptr)
      on_declare(i); // a state the program gained since the snapshot
  sweep_cursor_.assign(columns_.size(), std::string());
}

void rocksdb_backend_core::delete_foreign_key_groups() {
  std::string lo;
  std::string hi;
  append_key_group(lo, range_.start);
  append_key_group(hi, range_.end + 1);
  std::string top;
  append_key_group(top, max_parallelism_);
  for (uint32_t i = 0; i < columns_.size(); ++i) {
    if (range_.start > 0) {
      auto st = db_->DeleteRange(options_->write, columns_[i], rocksdb::Slice(), lo);
      check(st.ok(), st.ToString(), "delete range");
    }
    if (range_.end + 1 < max_parallelism_) {
      auto st = db_->DeleteRange(options_->write, columns_[i], hi, top);
      check(st.ok(), st.ToString(), "delete range");
    }
  }
}

void rocksdb_backend_core::copy_key_groups(const native_restore_source& src) {
  std::vector<std::string> names;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  auto db =
    open_every_column(options_->db, options_->column, src.dir, src.origin, true, names, handles);
  auto release = [&] {
    for (auto* h : handles)
      db->DestroyColumnFamilyHandle(h);
    handles.clear();
    db->Close();
  };
  std::string lo;
  std::string hi;
  append_key_group(lo, std::max(range_.start, src.range.start));
  append_key_group(hi, std::min(range_.end, src.range.end) + 1);
  try {
    for (size_t c = 0; c < handles.size(); ++c) {
      if (names[c] == rocksdb::kDefaultColumnFamilyName)
        continue;
      auto it = std::find_if(states_.begin(), states_.end(),
                             [&](const state_meta& m) { return m.name == names[c]; });
      if (it == states_.end())
        throw state_error("restore: " + src.origin + ": the RocksDB files hold state '" +
                          names[c] +
                          "', which the snapshot's description does not list (corrupt snapshot)");
      auto* target = column(static_cast<uint32_t>(it - states_.begin()));
      rocksdb::ReadOptions ro;
      rocksdb::Slice upper(hi);
      ro.iterate_upper_bound = &upper;
      ro.fill_cache = false;
      std::unique_ptr<rocksdb::Iterator> iter(db->NewIterator(ro, handles[c]));
      iter->Seek(lo);
      auto st = copy_entries(*iter, *db_, target, options_->write);
      if (!iter->status().ok())
        throw state_error("restore: " + src.origin + ": cannot read RocksDB in " + src.dir + ": " +
                          iter->status().ToString());
      check(st.ok(), st.ToString(), "write");
    }
  } catch (...) {
    release();
    throw;
  }
  release();
}

void rocksdb_backend_core::restore_native(
  const std::vector<std::shared_ptr<native_restore_source>>& sources) {
  for (const auto& src : sources) {
    snapshot_info info;
    try {
      info = read_snapshot_info(src->meta);
    } catch (const state_error& e) {
      throw state_error("restore: " + src->origin + ": " + e.what());
    }
    if (info.range.start != src->range.start || info.range.end != src->range.end)
      throw state_error("restore: " + src->origin + ": the snapshot holds key groups [" +
                        std::to_string(info.range.start) + ", " + std::to_string(info.range.end) +
                        "], the checkpoint says [" + std::to_string(src->range.start) + ", " +
                        std::to_string(src->range.end) + "]");
    // Entries keep their stored layout (TTL stamp in front of the value),
    // so a state cannot gain or lose its TTL through a native snapshot.
    for (const auto& s : info.states)
      for (const auto& m : states_)
        if (m.name == s.name && m.ttl.enabled() != s.ttl)
          throw state_error("restore: " + src->origin + ": state '" + s.name + "' was " +
                            (s.ttl ? "snapshotted with" : "snapshotted without") +
                            " a TTL and is now declared " + (s.ttl ? "without" : "with") +
                            " one; a native RocksDB snapshot cannot change that, restore from "
                            "a savepoint (canonical format) instead");
    // The states' descriptions (declared, same kinds and types) and the
    // timers come from the meta snapshot, as from a canonical one.
    try {
      restore({std::string_view(src->meta)});
    } catch (const state_error& e) {
      throw state_error(src->origin + ": " + e.what());
    }
  }
  const native_restore_source* base = nullptr;
  for (const auto& src : sources)
    if (src->range.start <= range_.start && src->range.end >= range_.end)
      base = src.get();
  if (base != nullptr) {
    // The old instance holds all our key groups: it becomes this instance.
    close_db();
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    std::filesystem::rename(base->dir, path_, ec);
    if (ec) {
      ec.clear();
      std::filesystem::copy(base->dir, path_, std::filesystem::copy_options::recursive, ec);
      if (ec)
        throw state_error("restore: " + base->origin + ": cannot move " + base->dir + " to " +
                          path_ + ": " + ec.message());
    }
    open_with_columns(base->origin);
    if (base->range.start == range_.start && base->range.end == range_.end) {
      if (base->reusable)
        ledger_->seed(base->files);
    } else {
      delete_foreign_key_groups();
    }
    return;
  }
  for (const auto& src : sources)
    if (src->range.start <= range_.end && range_.start <= src->range.end)
      copy_key_groups(*src);
}

void rocksdb_backend_core::on_declare(uint32_t idx) {
  columns_made_.fetch_add(1); // before the column exists: see link_live_files
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
