#include "sluice/state/native_snapshot.hpp"

#include "sluice/state/keyed_state.hpp"
#include "sluice/state/snapshot.hpp"
#include "sluice/state/test_backends.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

using namespace sluice::state;
using namespace sluice::state::testing;
namespace fs = std::filesystem;

namespace {

struct states {
  value_state<int64_t> count;
  list_state<std::string> events;
  map_state<std::string, int64_t, window_ns> prices;

  explicit states(keyed_state_backend_base& b)
    : count(b, value_state_descriptor<int64_t>("count")),
      events(b, list_state_descriptor<std::string>("events")),
      prices(b, map_state_descriptor<std::string, int64_t>("prices")) {}
};

const window_ns w{0, 10};

void fill(keyed_state_backend<int64_t>& b, states& s, int64_t k, int64_t round) {
  b.set_current_key(k);
  s.count.update(k * 10 + round);
  s.events.add("e" + std::to_string(k) + "-" + std::to_string(round));
  s.prices.set_namespace(w);
  s.prices.put("p", k + round);
}

/// fill() for keys [0, n).
void fill_keys(keyed_state_backend<int64_t>& b, states& s, int64_t n, int64_t round) {
  for (int64_t k = 0; k < n; ++k)
    fill(b, s, k, round);
}

void check_key(keyed_state_backend<int64_t>& b, states& s, int64_t k, int64_t rounds) {
  CAPTURE(k);
  b.set_current_key(k);
  CHECK(s.count.value() == std::optional<int64_t>(k * 10 + rounds - 1));
  std::vector<std::string> events;
  for (int64_t r = 0; r < rounds; ++r)
    events.push_back("e" + std::to_string(k) + "-" + std::to_string(r));
  CHECK(s.events.get() == events);
  s.prices.set_namespace(w);
  CHECK(s.prices.get("p") == std::optional<int64_t>(k + rounds - 1));
}

/// The two ways a native snapshot cuts the instance.
struct flush_cut {
  static constexpr auto cut = rocksdb_config::snapshot_cut::flush;
};
struct log_cut {
  static constexpr auto cut = rocksdb_config::snapshot_cut::log;
};

template <class Cut>
std::unique_ptr<keyed_state_backend<int64_t>> make_rocksdb(key_group_range range = all_groups) {
  rocksdb_config cfg;
  cfg.managed_memory_bytes = size_t{64} << 20;
  cfg.native_snapshots = true;
  cfg.cut = Cut::cut;
  return std::make_unique<rocksdb_keyed_backend<int64_t>>(
    range, max_p, std::make_shared<manual_state_clock>(), cfg, instance_name());
}

/// What a checkpoint download gives a restore: a copy of the snapshot's
/// files (of a log or MANIFEST, the part the snapshot holds) and its meta.
std::shared_ptr<native_restore_source> source_of(native_snapshot& snap, key_group_range range) {
  snap.finish(); // what the checkpoint writer does first
  auto src = std::make_shared<native_restore_source>();
  src->dir = snap.local_dir + ".download";
  fs::remove_all(src->dir);
  fs::create_directories(src->dir);
  for (const auto& e : fs::directory_iterator(snap.local_dir)) {
    auto name = e.path().filename().string();
    auto to = fs::path(src->dir) / name;
    auto valid = snap.valid_sizes.find(name);
    if (valid == snap.valid_sizes.end()) {
      fs::copy_file(e.path(), to);
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes(valid->second, '\0');
    REQUIRE(in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())));
    std::ofstream(to, std::ios::binary) << bytes;
  }
  src->meta = snap.meta;
  src->range = range;
  src->origin = "test snapshot";
  return src;
}

/// Restores `snap` into a fresh instance and checks keys 0..n-1 after
/// `rounds` rounds of fill().
template <class Cut>
void check_restored(native_snapshot& snap, int64_t n, int64_t rounds) {
  auto r = make_rocksdb<Cut>();
  states rs(*r);
  r->restore_native({source_of(snap, all_groups)});
  for (int64_t k = 0; k < n; ++k)
    check_key(*r, rs, k, rounds);
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

} // namespace

TEST_SUITE("state.native_snapshot") {

TEST_CASE("a flush cut hard-links the flushed files and its meta holds no entries") {
  auto b = make_rocksdb<flush_cut>();
  states s(*b);
  fill_keys(*b, s, 1000, 0);
  auto snap = b->snapshot_native(1);
  REQUIRE(snap);
  CHECK(snap->deferred); // the barrier only sealed the memtables
  CHECK(files_in(snap->local_dir).empty());
  snap->finish();
  CHECK_FALSE(snap->deferred);
  CHECK_FALSE(snap->rewritten);
  CHECK(snap->ledger != nullptr); // later checkpoints may reuse its uploads
  auto files = files_in(snap->local_dir);
  CHECK(files.count("CURRENT") == 1);
  bool any_sst = false;
  for (auto& f : files)
    any_sst = any_sst || f.find(".sst") != std::string::npos;
  CHECK(any_sst); // the memtables were flushed into the snapshot
  auto info = read_snapshot_info(snap->meta);
  CHECK(info.states.size() == 3);
  // Descriptions and the key-group index only: the entries are in the files.
  CHECK(snap->meta.size() * 10 < b->snapshot().size());
  auto dir = snap->local_dir;
  snap.reset();
  CHECK_FALSE(fs::exists(dir)); // the hard links go with the snapshot
}

TEST_CASE("a log cut flushes nothing: the snapshot holds the log up to the cut") {
  auto b = make_rocksdb<log_cut>();
  states s(*b);
  fill_keys(*b, s, 1000, 0);
  auto snap = b->snapshot_native(1);
  REQUIRE(snap);
  auto files = files_in(snap->local_dir);
  CHECK(files.count("CURRENT") == 1);
  bool any_sst = false;
  uint64_t logged = 0;
  for (auto& f : files) {
    any_sst = any_sst || f.find(".sst") != std::string::npos;
    if (f.find(".log") != std::string::npos && snap->valid_sizes.count(f))
      logged += snap->valid_sizes.at(f);
  }
  CHECK_FALSE(any_sst); // no flush: the entries are in the log
  CHECK(logged > 1000 * 3 * 8);
  // The linked log keeps growing with the instance; the snapshot's part
  // does not.
  auto before = snap->valid_sizes;
  fill_keys(*b, s, 1000, 1);
  (void) b->snapshot_native(2);
  CHECK(snap->valid_sizes == before);
}

TEST_CASE_TEMPLATE("a native snapshot restores into an instance with the same key groups", Cut,
                   flush_cut, log_cut) {
  auto b = make_rocksdb<Cut>();
  states s(*b);
  fill_keys(*b, s, 500, 0);
  auto snap = b->snapshot_native(1);
  // Writes after the cut are not in the snapshot.
  fill_keys(*b, s, 500, 1);
  // A later snapshot writes those to the log the first one linked, or (the
  // flush cut) into files before the first cut is finished: its files alone
  // are gone, and it writes out the state as of the cut instead.
  auto later = b->snapshot_native(2);
  later->finish();
  CHECK_FALSE(later->rewritten);
  auto src = source_of(*snap, all_groups);
  if (Cut::cut == rocksdb_config::snapshot_cut::flush) {
    CHECK(snap->rewritten);
    CHECK(snap->ledger == nullptr); // a new instance: nothing shared with earlier uploads
    CHECK(snap->instance.size() == 16);
    CHECK(snap->instance != later->instance); // its files are stored under a name of their own
    auto files = files_in(snap->local_dir);
    CHECK(files.count("CURRENT") == 1);
    CHECK(files.count("LOCK") == 0);
    CHECK(files.count("LOG") == 0);
  }
  auto r = make_rocksdb<Cut>();
  states rs(*r);
  r->restore_native({src});
  for (int64_t k = 0; k < 500; ++k)
    check_key(*r, rs, k, 1);
  check_restored<Cut>(*later, 500, 2);
  CHECK(r->keys(0).size() == 500);
  // The restored instance keeps working and snapshots again.
  fill(*r, rs, 7, 1);
  CHECK(r->snapshot_native(2));
}

TEST_CASE_TEMPLATE("a native snapshot restores from 2 into 3 subtasks, each with only its key groups",
                   Cut, flush_cut, log_cut) {
  const int64_t n = 2000;
  std::vector<std::unique_ptr<keyed_state_backend<int64_t>>> old;
  std::vector<std::shared_ptr<native_snapshot>> snaps;
  for (int32_t i = 0; i < 2; ++i) {
    auto range = key_group_range_for_subtask(max_p, 2, i);
    old.push_back(make_rocksdb<Cut>(range));
    states s(*old.back());
    for (int64_t k = 0; k < n; ++k)
      if (range.contains(key_group_of(k, max_p))) {
        fill(*old.back(), s, k, 0);
        fill(*old.back(), s, k, 1);
      }
    snaps.push_back(old.back()->snapshot_native(1));
  }
  std::multiset<int64_t> seen;
  for (int32_t i = 0; i < 3; ++i) {
    auto range = key_group_range_for_subtask(max_p, 3, i);
    CAPTURE(i);
    std::vector<std::shared_ptr<native_restore_source>> sources;
    for (int32_t j = 0; j < 2; ++j) {
      auto theirs = key_group_range_for_subtask(max_p, 2, j);
      if (theirs.start <= range.end && range.start <= theirs.end)
        sources.push_back(source_of(*snaps[j], theirs));
    }
    auto r = make_rocksdb<Cut>(range);
    states rs(*r);
    r->restore_native(sources);
    for (uint32_t idx = 0; idx < 3; ++idx)
      for (auto k : r->keys(idx)) {
        CHECK(range.contains(key_group_of(k, max_p))); // nothing of other subtasks
        if (idx == 0)
          seen.insert(k);
      }
    for (int64_t k = 0; k < n; ++k)
      if (range.contains(key_group_of(k, max_p)))
        check_key(*r, rs, k, 2);
  }
  CHECK(seen.size() == static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    CHECK(seen.count(k) == 1);
}

TEST_CASE("a flush cut taken before a state was declared is written out without it") {
  auto b = make_rocksdb<flush_cut>();
  value_state<int64_t> v(*b, value_state_descriptor<int64_t>("v"));
  b->set_current_key(1);
  v.update(5);
  auto snap = b->snapshot_native(1);
  // Declared after the cut: its column would be in the linked MANIFEST.
  value_state<int64_t> w(*b, value_state_descriptor<int64_t>("w"));
  w.update(6);
  snap->finish();
  CHECK(snap->rewritten);
  auto r = make_rocksdb<flush_cut>();
  value_state<int64_t> rv(*r, value_state_descriptor<int64_t>("v"));
  r->restore_native({source_of(*snap, all_groups)});
  r->set_current_key(1);
  CHECK(rv.value() == std::optional<int64_t>(5));
}

TEST_CASE("a flush cut that cannot link its files fails with the reason; the instance goes on") {
  auto b = make_rocksdb<flush_cut>();
  states s(*b);
  fill_keys(*b, s, 100, 0);
  auto snap = b->snapshot_native(1);
  fs::remove_all(snap->local_dir); // the checkpoint's local directory is gone
  auto err = error_of([&] { snap->finish(); });
  CHECK(contains(err, "snapshot 1"));
  CHECK(contains(err, "cannot link"));
  snap->finish(); // once: nothing is left to finish
  // The failed cut released what it held; the next one works.
  fill_keys(*b, s, 100, 1);
  check_restored<flush_cut>(*b->snapshot_native(2), 100, 2);
}

TEST_CASE("an instance that closes first finishes the flush cuts still waiting") {
  auto b = make_rocksdb<flush_cut>();
  auto s = std::make_unique<states>(*b);
  fill_keys(*b, *s, 300, 0);
  auto snap = b->snapshot_native(1);
  auto dropped = b->snapshot_native(2);
  auto dropped_dir = dropped->local_dir;
  dropped.reset(); // an aborted checkpoint: its cut is released unfinished
  CHECK_FALSE(fs::exists(dropped_dir));
  s.reset();
  b.reset();
  snap->finish();
  check_restored<flush_cut>(*snap, 300, 1);
}

TEST_CASE("the heap backend cannot restore a native snapshot and says what to do") {
  auto b = make_rocksdb<log_cut>();
  states s(*b);
  fill(*b, s, 1, 0);
  auto snap = b->snapshot_native(1);
  auto heap = heap_fixture::make<int64_t>(std::make_shared<manual_state_clock>());
  states hs(*heap);
  CHECK(heap->snapshot_native(1) == nullptr);
  auto err = error_of([&] { heap->restore_native({source_of(*snap, all_groups)}); });
  CHECK(contains(err, "heap backend cannot restore a native RocksDB snapshot"));
  CHECK(contains(err, "savepoint"));
}

TEST_CASE("a state that gained a TTL cannot come back from a native snapshot") {
  auto b = make_rocksdb<log_cut>();
  value_state<int64_t> v(*b, value_state_descriptor<int64_t>("v"));
  b->set_current_key(1);
  v.update(1);
  auto snap = b->snapshot_native(1);
  auto r = make_rocksdb<log_cut>();
  value_state_descriptor<int64_t> d("v");
  d.ttl.ttl = std::chrono::milliseconds(1000);
  value_state<int64_t> rv(*r, d);
  auto err = error_of([&] { r->restore_native({source_of(*snap, all_groups)}); });
  CHECK(contains(err, "state 'v'"));
  CHECK(contains(err, "TTL"));
  CHECK(contains(err, "test snapshot"));
}

TEST_CASE("the upload ledger reuses only uploads of completed checkpoints still live") {
  native_upload_ledger l;
  native_file_ref a{"1.sst", "shared/c1/x-1.sst", 10, 1, true};
  native_file_ref b{"2.sst", "shared/c2/x-2.sst", 20, 2, true};
  native_file_ref c{"3.sst", "shared/c3/x-3.sst", 30, 3, true};
  native_file_ref manifest{"MANIFEST-1", "n-MANIFEST-1", 5, 4, false};
  l.uploaded(1, {a, manifest});
  CHECK(l.reusable({"1.sst"}).empty()); // checkpoint 1 not complete yet
  l.confirm(1);
  auto r = l.reusable({"1.sst", "MANIFEST-1"});
  CHECK(r.size() == 1); // private files are never reused
  CHECK(r.at("1.sst") == a);
  l.uploaded(2, {b});
  l.uploaded(3, {c});
  l.forget(2); // aborted
  l.confirm(3);
  r = l.reusable({"1.sst", "2.sst", "3.sst"});
  CHECK(r.count("2.sst") == 0);
  CHECK(r.count("3.sst") == 1);
  // 1.sst was compacted away: forgotten for good.
  r = l.reusable({"3.sst"});
  CHECK(r.size() == 1);
  CHECK(l.reusable({"1.sst", "3.sst"}).count("1.sst") == 0);
}

} // TEST_SUITE
