#include "sluice/runtime/checkpoint_storage.hpp"

#include "sluice/state/keyed_state.hpp"
#include "sluice/state/work_dir.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

using namespace sluice::runtime;
using namespace sluice;
namespace fs = std::filesystem;

namespace {

constexpr int32_t max_p = 128;

struct scratch {
  fs::path dir;
  scratch() {
    char tmpl[] = "/tmp/sluice-incr-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

/// A RocksDB backend of subtask `index` of `parallelism` with one value
/// state "sum" (key -> value).
struct rocks {
  std::unique_ptr<state::keyed_state_backend<int64_t>> b;
  std::unique_ptr<state::value_state<int64_t>> sum;

  rocks(const fs::path& local, int32_t index, int32_t parallelism,
        state::rocksdb_config::snapshot_cut cut = state::rocksdb_config::snapshot_cut::flush) {
    static std::atomic<int> n{0};
    state::rocksdb_config cfg;
    cfg.local_dir = local.string();
    cfg.managed_memory_bytes = size_t{64} << 20;
    cfg.native_snapshots = true;
    cfg.cut = cut;
    b = std::make_unique<state::rocksdb_keyed_backend<int64_t>>(
      state::key_group_range_for_subtask(max_p, parallelism, index), max_p, nullptr, cfg,
      "incr-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    sum = std::make_unique<state::value_state<int64_t>>(
      *b, state::value_state_descriptor<int64_t>("sum"));
  }
  bool owns(int64_t k) const { return b->key_groups().contains(b->key_group_of_key(k)); }
  /// Sets every owned key of [from, to) to k * factor.
  void put(int64_t from, int64_t to, int64_t factor) {
    for (auto k = from; k < to; ++k)
      if (owns(k)) {
        b->set_current_key(k);
        sum->update(k * factor);
      }
  }
  std::optional<int64_t> get(int64_t k) {
    b->set_current_key(k);
    return sum->value();
  }
};

/// Takes checkpoint `id` of `subtasks` (subtask i = index i) the way a
/// subtask and its writer do, and returns its metadata (not completed).
checkpoint_metadata take(checkpoint_storage& st, int64_t id, std::vector<rocks*> subtasks) {
  st.begin(id);
  checkpoint_metadata md;
  md.job_id = "job1";
  md.checkpoint_id = id;
  operator_state_handle op;
  op.uid = "sum";
  op.parallelism = static_cast<int32_t>(subtasks.size());
  op.max_parallelism = max_p;
  for (size_t i = 0; i < subtasks.size(); ++i) {
    operator_snapshot snap;
    snap.native_keyed = subtasks[i]->b->snapshot_native(id);
    REQUIRE(snap.native_keyed);
    auto w = write_operator_snapshot(st.checkpoint_dir(id), id, "sum-s" + std::to_string(i), snap);
    CHECK_FALSE(snap.native_keyed); // the local hard links are gone
    subtask_state_handle h;
    h.subtask = static_cast<int32_t>(i);
    h.keyed_state_file = w.keyed_state_file;
    h.bytes = w.bytes;
    h.native_files = w.native_files;
    op.subtasks.push_back(h);
  }
  md.operators.push_back(op);
  return md;
}

std::set<std::string> shared_of(const checkpoint_metadata& md) {
  std::set<std::string> out;
  for (auto& op : md.operators)
    for (auto& s : op.subtasks)
      for (auto& f : s.native_files)
        if (f.shared)
          out.insert(f.stored);
  return out;
}

/// Files under <job dir>/shared.
std::set<std::string> shared_files_on_disk(const fs::path& job_dir) {
  std::set<std::string> out;
  if (!fs::exists(job_dir / "shared"))
    return out;
  for (auto& e : fs::recursive_directory_iterator(job_dir / "shared"))
    if (e.is_regular_file())
      out.insert(fs::relative(e.path(), job_dir).string());
  return out;
}

/// Restores subtask `index` of `parallelism` from completed checkpoint `id`.
std::unique_ptr<rocks> restore(checkpoint_storage& st, const fs::path& local, int64_t id,
                               int32_t index, int32_t parallelism) {
  auto rp = restore_point::read(st.checkpoint_dir(id));
  auto r = load_operator_restore(rp, *rp.find("sum"), index, parallelism, max_p, local.string());
  CHECK(r.keyed.empty());
  auto out = std::make_unique<rocks>(local, index, parallelism);
  out->b->restore_native(r.native_keyed);
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// Gives a stored file an inode of its own (stored files are hard links to
/// the live instance's files), so damaging it leaves the instance alone.
void detach(const fs::path& p) {
  auto tmp = p;
  tmp += ".detached";
  fs::copy_file(p, tmp);
  fs::rename(tmp, p);
}

void flip_byte(const fs::path& p, std::streamoff at) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.get(c);
  f.seekp(at);
  f.put(static_cast<char>(c ^ 0x5a));
}

} // namespace

TEST_SUITE("runtime.incremental_checkpoints") {

TEST_CASE("an incremental checkpoint uploads only SST files no completed checkpoint stored") {
  scratch s;
  checkpoint_storage st(s.dir / "chk", "job1", 3);
  rocks r(s.dir, 0, 1);
  r.put(0, 5000, 1);
  auto md1 = take(st, 1, {&r});
  auto first = shared_of(md1);
  REQUIRE_FALSE(first.empty());
  for (auto& f : first)
    CHECK(f.rfind("shared/c1/", 0) == 0);
  st.complete(md1);
  r.b->checkpoint_completed(1);

  r.put(5000, 6000, 1); // a few more keys: one more small SST after the flush
  auto md2 = take(st, 2, {&r});
  auto second = shared_of(md2);
  std::set<std::string> reused;
  std::set<std::string> uploaded;
  for (auto& f : second)
    (f.rfind("shared/c1/", 0) == 0 ? reused : uploaded).insert(f);
  CHECK(reused == first); // nothing was compacted: every old file is referenced
  CHECK(uploaded.size() >= 1);
  for (auto& f : uploaded)
    CHECK(f.rfind("shared/c2/", 0) == 0);
  uint64_t all = 0;
  for (auto& f : md2.operators[0].subtasks[0].native_files)
    all += f.size;
  // What checkpoint 2 wrote is its new file, the private files and the meta.
  CHECK(md2.operators[0].subtasks[0].bytes < all / 2);
  st.complete(md2);
  CHECK(st.shared_references(*first.begin()) == 2);

  // Checkpoint 3 is taken before 2's completion reaches the backend: it
  // must not reference 2's uploads (2 might still be aborted).
  r.put(6000, 6100, 1);
  auto md3 = take(st, 3, {&r});
  for (auto& f : shared_of(md3))
    CHECK(f.rfind("shared/c2/", 0) != 0);
}

TEST_CASE("a shared file is deleted when no retained checkpoint references it any more") {
  scratch s;
  auto job = s.dir / "job1";
  checkpoint_storage st(s.dir, "job1", 1);
  rocks r(s.dir / "db", 0, 1);
  r.put(0, 3000, 1);
  auto md1 = take(st, 1, {&r});
  st.complete(md1);
  r.b->checkpoint_completed(1);
  // Overwrite every key: a new file; checkpoint 1's stay in the instance.
  r.put(0, 3000, 2);
  auto md2 = take(st, 2, {&r});
  auto shared1 = shared_of(md1);
  auto shared2 = shared_of(md2);
  std::set<std::string> common;
  for (auto& f : shared1)
    if (shared2.count(f) != 0)
      common.insert(f);
  CHECK(common.size() == shared1.size()); // no compaction yet: all kept
  auto dropped = st.complete(md2);
  CHECK(dropped == std::vector<int64_t>{1});
  CHECK(shared_files_on_disk(job) == shared2); // shared ones survive chk-1's deletion
  for (auto& f : common)
    CHECK(st.shared_references(f) == 1);
  r.b->checkpoint_completed(2);

  // A successor that no longer references one of the files (as after a
  // compaction).
  checkpoint_metadata md3 = md2;
  md3.checkpoint_id = 3;
  st.begin(3);
  auto& files = md3.operators[0].subtasks[0].native_files;
  auto gone = std::find_if(files.begin(), files.end(), [](auto& f) { return f.shared; });
  REQUIRE(gone != files.end());
  auto gone_path = gone->stored;
  files.erase(gone);
  for (auto& f : files)
    if (!f.shared)
      fs::copy_file(st.checkpoint_dir(2) / f.stored, st.checkpoint_dir(3) / f.stored);
  fs::copy_file(st.checkpoint_dir(2) / md3.operators[0].subtasks[0].keyed_state_file,
                st.checkpoint_dir(3) / md3.operators[0].subtasks[0].keyed_state_file);
  st.complete(md3);
  CHECK_FALSE(fs::exists(job / gone_path));
  CHECK(shared_files_on_disk(job) == shared_of(md3));

  // An aborted checkpoint's uploads are deleted with it.
  r.put(0, 100, 3);
  auto md4 = take(st, 4, {&r});
  std::set<std::string> new4;
  for (auto& f : shared_of(md4))
    if (f.rfind("shared/c4/", 0) == 0)
      new4.insert(f);
  REQUIRE_FALSE(new4.empty());
  st.discard(4);
  for (auto& f : new4)
    CHECK_FALSE(fs::exists(job / f));
  CHECK_FALSE(fs::exists(job / "shared" / "c4"));
  CHECK(shared_files_on_disk(job) == shared_of(md3));

  // Leftovers of a checkpoint that never completed (a writer that finished
  // after the abort) go at the next completion.
  fs::create_directories(job / "shared" / "c5");
  { std::ofstream(job / "shared" / "c5" / "x-000099.sst") << "late"; }
  st.begin(6);
  auto md6 = md3;
  md6.checkpoint_id = 6;
  for (auto& f : md6.operators[0].subtasks[0].native_files)
    if (!f.shared)
      fs::copy_file(st.checkpoint_dir(3) / f.stored, st.checkpoint_dir(6) / f.stored);
  fs::copy_file(st.checkpoint_dir(3) / md6.operators[0].subtasks[0].keyed_state_file,
                st.checkpoint_dir(6) / md6.operators[0].subtasks[0].keyed_state_file);
  st.complete(md6);
  CHECK_FALSE(fs::exists(job / "shared" / "c5"));
  CHECK(shared_files_on_disk(job) == shared_of(md6));
}

TEST_CASE("the reference counts are rebuilt from the retained checkpoints' metadata") {
  scratch s;
  auto job = s.dir / "job1";
  rocks r(s.dir / "db", 0, 1);
  checkpoint_metadata md2;
  {
    checkpoint_storage st(s.dir, "job1", 2);
    r.put(0, 2000, 1);
    st.complete(take(st, 1, {&r}));
    r.b->checkpoint_completed(1);
    r.put(2000, 2100, 1);
    md2 = take(st, 2, {&r});
    st.complete(md2);
  }
  // A new coordinator (a restarted process) on the same directory.
  checkpoint_storage st(s.dir, "job1", 2);
  auto shared2 = shared_of(md2);
  std::string old_file;
  for (auto& f : shared2)
    if (f.rfind("shared/c1/", 0) == 0)
      old_file = f;
  REQUIRE_FALSE(old_file.empty());
  CHECK(st.shared_references(old_file) == 2);
  // Checkpoint 3 keeps only the file checkpoint 2 uploaded: after it, 1 and
  // 2 are subsumed (2 retained) and chk-1's-only files must go, 2's stay.
  auto md3 = md2;
  md3.checkpoint_id = 3;
  st.begin(3);
  auto& files = md3.operators[0].subtasks[0].native_files;
  files.erase(std::remove_if(files.begin(), files.end(),
                             [](auto& f) { return f.shared && f.stored.rfind("shared/c1/", 0) == 0; }),
              files.end());
  for (auto& f : files)
    if (!f.shared)
      fs::copy_file(st.checkpoint_dir(2) / f.stored, st.checkpoint_dir(3) / f.stored);
  fs::copy_file(st.checkpoint_dir(2) / md3.operators[0].subtasks[0].keyed_state_file,
                st.checkpoint_dir(3) / md3.operators[0].subtasks[0].keyed_state_file);
  CHECK(st.complete(md3) == std::vector<int64_t>{1});
  CHECK(fs::exists(job / old_file)); // checkpoint 2 is retained and needs it
  CHECK(st.shared_references(old_file) == 1);
}

TEST_CASE("a restore from an incremental checkpoint equals the state at the checkpoint") {
  scratch s;
  checkpoint_storage st(s.dir / "chk", "job1", 2);
  rocks r(s.dir, 0, 1);
  r.put(0, 4000, 1);
  st.complete(take(st, 1, {&r}));
  r.b->checkpoint_completed(1);
  r.put(0, 1000, 2); // overwrites, partly in checkpoint 1's files
  st.complete(take(st, 2, {&r}));
  r.put(0, 4000, 3); // after the checkpoint: lost in the "failure"
  // A download a killed process left half done (its pid is gone).
  pid_t gone = ::fork();
  REQUIRE(gone >= 0);
  if (gone == 0)
    ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  auto mine = state::process_dir_name("sluice-restore");
  auto stale = s.dir / (mine.substr(0, mine.rfind('-') + 1) + std::to_string(gone) + "-abc123");
  fs::create_directories(stale);
  std::ofstream(stale / "000012.sst") << "partial";
  auto back = restore(st, s.dir, 2, 0, 1);
  CHECK_FALSE(fs::exists(stale));
  for (int64_t k = 0; k < 4000; k += 7)
    CHECK(back->get(k) == std::optional<int64_t>(k * (k < 1000 ? 2 : 1)));
  CHECK_FALSE(back->get(4000).has_value());
  CHECK(back->b->keys(0).size() == 4000);
  // A staging directory that cannot be made: where and why.
  auto rp = restore_point::read(st.checkpoint_dir(2));
  auto err = error_of([&] {
    (void)load_operator_restore(rp, *rp.find("sum"), 0, 1, max_p, "/proc/sluice-no-staging");
  });
  CHECK(contains(err, "operator 'sum' subtask 0"));
  CHECK(contains(err, "cannot create a directory under /proc/sluice-no-staging"));
}

TEST_CASE("an incremental checkpoint of 2 subtasks restores into 3") {
  scratch s;
  checkpoint_storage st(s.dir / "chk", "job1", 1);
  rocks a(s.dir, 0, 2);
  rocks b(s.dir, 1, 2);
  for (auto* r : {&a, &b})
    r->put(0, 3000, 5);
  st.complete(take(st, 1, {&a, &b}));
  a.b->checkpoint_completed(1);
  b.b->checkpoint_completed(1);
  for (auto* r : {&a, &b})
    r->put(1000, 3000, 7);
  st.complete(take(st, 2, {&a, &b}));
  std::multiset<int64_t> seen;
  for (int32_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    auto r = restore(st, s.dir, 2, i, 3);
    for (auto k : r->b->keys(0)) {
      CHECK(r->owns(k));
      seen.insert(k);
    }
    for (int64_t k = 0; k < 3000; ++k)
      if (r->owns(k))
        CHECK(r->get(k) == std::optional<int64_t>(k * (k < 1000 ? 5 : 7)));
  }
  CHECK(seen.size() == 3000);
  CHECK(std::set<int64_t>(seen.begin(), seen.end()).size() == 3000);
}

TEST_CASE("a missing or corrupt shared file fails the restore naming operator and file") {
  scratch s;
  checkpoint_storage st(s.dir / "chk", "job1", 1);
  rocks r(s.dir, 0, 1);
  r.put(0, 2000, 1);
  auto md = take(st, 1, {&r});
  st.complete(md);
  auto shared = shared_of(md);
  REQUIRE_FALSE(shared.empty());
  auto victim = st.job_dir() / *shared.begin();
  detach(victim);

  flip_byte(victim, 100);
  auto err = error_of([&] { (void)restore(st, s.dir, 1, 0, 1); });
  CHECK(contains(err, "operator 'sum' subtask 0"));
  CHECK(contains(err, victim.string()));
  CHECK(contains(err, "corrupt"));

  fs::resize_file(victim, 10);
  err = error_of([&] { (void)restore(st, s.dir, 1, 0, 1); });
  CHECK(contains(err, victim.string()));
  CHECK(contains(err, "has 10 bytes"));

  fs::remove(victim);
  err = error_of([&] { (void)restore(st, s.dir, 1, 0, 1); });
  CHECK(contains(err, "operator 'sum'"));
  CHECK(contains(err, victim.string()));
  CHECK(contains(err, "missing"));
  // Nothing of the failed downloads is left behind.
  for (auto& e : fs::directory_iterator(s.dir))
    CHECK(e.path().filename().string().rfind("sluice-restore-", 0) != 0);
}

TEST_CASE("files are stored as hard links; a live log's link grows, its restore stops at the cut") {
  scratch s;
  checkpoint_storage st(s.dir / "chk", "job1", 2);
  rocks r(s.dir, 0, 1, state::rocksdb_config::snapshot_cut::log);
  r.put(0, 3000, 1);
  auto md = take(st, 1, {&r});
  st.complete(md);
  r.b->checkpoint_completed(1);
  const auto& files = md.operators[0].subtasks[0].native_files;
  const state::native_file_ref* log = nullptr;
  for (const auto& f : files) {
    auto p = f.shared ? st.job_dir() / f.stored : st.checkpoint_dir(1) / f.stored;
    if (f.name.size() > 4 && f.name.compare(f.name.size() - 4, 4, ".log") == 0 && f.prefix)
      log = &f;
    // Same filesystem: nothing was copied, each stored file is a link to
    // the instance's own file (CURRENT is written, not linked).
    if (f.name != "CURRENT")
      CHECK_MESSAGE(fs::hard_link_count(p) >= 2, f.name);
  }
  REQUIRE(log != nullptr);
  // Writes after the cut reach the same log file (the next snapshot writes
  // the buffered log out), so the stored link grows past the recorded size.
  r.put(0, 3000, 9);
  (void)take(st, 2, {&r});
  auto stored = st.checkpoint_dir(1) / log->stored;
  CHECK(fs::file_size(stored) > log->size);
  // Checkpoint 1 restores the state at its cut, not the later writes.
  auto back = restore(st, s.dir, 1, 0, 1);
  for (int64_t k = 0; k < 3000; k += 11)
    CHECK(back->get(k) == std::optional<int64_t>(k));
  // A stored prefix shorter than the recorded one fails the restore.
  detach(stored);
  fs::resize_file(stored, log->size - 1);
  auto err = error_of([&] { (void)restore(st, s.dir, 1, 0, 1); });
  CHECK(contains(err, "operator 'sum' subtask 0"));
  CHECK(contains(err, stored.string()));
  CHECK(contains(err, "truncated"));
}

TEST_CASE("native file lists survive the metadata and bad shared paths are rejected") {
  checkpoint_metadata md;
  md.job_id = "job1";
  md.checkpoint_id = 4;
  operator_state_handle op;
  op.uid = "sum";
  subtask_state_handle h;
  h.keyed_state_file = "sum-s0.keyed";
  h.native_files.push_back({"000012.sst", "shared/c3/ab-000012.sst", 1234, 99, true});
  h.native_files.push_back({"CURRENT", "sum-s0.CURRENT", 16, 7, false});
  h.native_files.push_back({"000011.log", "sum-s0.000011.log", 4096, 5, false, true});
  op.subtasks.push_back(h);
  md.operators.push_back(op);
  auto back = checkpoint_metadata::from_json(md.to_json(), "test");
  CHECK(back.operators[0].subtasks[0].native_files == h.native_files);
  // "prefix" is optional (older metadata has none) but must be a boolean.
  auto text = md.to_json();
  auto at = text.find("\"prefix\": true");
  REQUIRE(at != std::string::npos);
  auto no_prefix = text;
  no_prefix.replace(at, std::strlen("\"prefix\": true"), "\"prefix\": false");
  CHECK_FALSE(checkpoint_metadata::from_json(no_prefix, "test").operators[0].subtasks[0]
                .native_files[2].prefix);
  auto bad_prefix = text;
  bad_prefix.replace(at, std::strlen("\"prefix\": true"), "\"prefix\": \"yes\"");
  auto err = error_of([&] { (void)checkpoint_metadata::from_json(bad_prefix, "test"); });
  CHECK(contains(err, "test: malformed checkpoint metadata"));
  for (auto bad : {"shared/c3/../../x.sst", "shared/../x", "/etc/passwd", "shared/cx/a.sst"}) {
    CAPTURE(bad);
    auto m = md;
    m.operators[0].subtasks[0].native_files[0].stored = bad;
    CHECK(contains(error_of([&] { (void)checkpoint_metadata::from_json(m.to_json(), "test"); }),
                   "invalid"));
  }
}

} // TEST_SUITE
