#include "sluice/state/keyed_state.hpp"
#include "sluice/state/test_backends.hpp"
#include "sluice/state/work_dir.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace sluice::state;
using namespace std::chrono_literals;
using namespace sluice::state::testing;

namespace {

struct average : aggregate_function<int64_t, std::pair<int64_t, int64_t>, double> {
  std::pair<int64_t, int64_t> create_accumulator() const override { return {0, 0}; }
  void add(const int64_t& v, std::pair<int64_t, int64_t>& acc) const override {
    acc.first += v;
    acc.second += 1;
  }
  double get_result(const std::pair<int64_t, int64_t>& acc) const override {
    return static_cast<double>(acc.first) / static_cast<double>(acc.second);
  }
  std::pair<int64_t, int64_t> merge(const std::pair<int64_t, int64_t>& a,
                                    const std::pair<int64_t, int64_t>& b) const override {
    return {a.first + b.first, a.second + b.second};
  }
};

} // namespace

TEST_SUITE("state.keyed") {

TEST_CASE_TEMPLATE("value state holds one value per key", F, heap_fixture, rocksdb_fixture) {
  auto clock = std::make_shared<manual_state_clock>();
  auto b = F::template make<std::string>(clock);
  value_state<int64_t> count(*b, value_state_descriptor<int64_t>("count"));
  b->set_current_key("a");
  CHECK_FALSE(count.value().has_value());
  CHECK(count.value_or(7) == 7);
  count.update(1);
  b->set_current_key("b");
  CHECK_FALSE(count.value().has_value());
  count.update(40);
  count.update(41);
  b->set_current_key("a");
  CHECK(count.value() == std::optional<int64_t>(1));
  b->set_current_key("b");
  CHECK(count.value() == std::optional<int64_t>(41));
  count.clear();
  CHECK_FALSE(count.value().has_value());
  auto keys = b->keys(0);
  CHECK(keys == std::vector<std::string>{"a"});
}

TEST_CASE_TEMPLATE("list state keeps insertion order per key", F, heap_fixture, rocksdb_fixture) {
  auto b = F::template make<int64_t>(std::make_shared<manual_state_clock>());
  list_state<std::string> l(*b, list_state_descriptor<std::string>("events"));
  b->set_current_key(1);
  CHECK(l.get().empty());
  l.add("x");
  l.add("y");
  l.add_all({"z", "w"});
  b->set_current_key(2);
  l.add("other");
  b->set_current_key(1);
  CHECK(l.get() == std::vector<std::string>{"x", "y", "z", "w"});
  l.update({"only"});
  CHECK(l.get() == std::vector<std::string>{"only"});
  l.update({});
  CHECK(l.get().empty());
  b->set_current_key(2);
  CHECK(l.get() == std::vector<std::string>{"other"});
  l.clear();
  CHECK(l.get().empty());
}

TEST_CASE_TEMPLATE("map state stores entries per key", F, heap_fixture, rocksdb_fixture) {
  auto b = F::template make<int32_t>(std::make_shared<manual_state_clock>());
  map_state<std::string, double> m(*b, map_state_descriptor<std::string, double>("prices"));
  b->set_current_key(7);
  CHECK(m.empty());
  m.put("apple", 1.5);
  m.put("pear", 2.0);
  m.put("apple", 1.75);
  CHECK(m.get("apple") == std::optional<double>(1.75));
  CHECK(m.contains("pear"));
  CHECK_FALSE(m.contains("fig"));
  CHECK_FALSE(m.get("fig").has_value());
  auto es = m.entries();
  std::sort(es.begin(), es.end());
  CHECK(es == std::vector<std::pair<std::string, double>>{{"apple", 1.75}, {"pear", 2.0}});
  b->set_current_key(8);
  CHECK(m.empty());
  m.put("fig", 3.0);
  b->set_current_key(7);
  m.remove("pear");
  CHECK(m.entries().size() == 1);
  m.clear();
  CHECK(m.empty());
  b->set_current_key(8);
  CHECK(m.get("fig") == std::optional<double>(3.0));
}

TEST_CASE_TEMPLATE("reducing and aggregating state fold every add", F, heap_fixture,
                   rocksdb_fixture) {
  auto b = F::template make<uint64_t>(std::make_shared<manual_state_clock>());
  reducing_state<int64_t> sum(
    *b, reducing_state_descriptor<int64_t>("sum", [](const int64_t& a, const int64_t& c) {
      return a + c;
    }));
  aggregating_state<int64_t, std::pair<int64_t, int64_t>, double> avg(
    *b, aggregating_state_descriptor<int64_t, std::pair<int64_t, int64_t>, double>(
          "avg", std::make_shared<average>()));
  for (uint64_t k = 0; k < 50; ++k) {
    b->set_current_key(k);
    for (int64_t v = 1; v <= 4; ++v) {
      sum.add(v * static_cast<int64_t>(k));
      avg.add(v);
    }
  }
  for (uint64_t k = 0; k < 50; ++k) {
    b->set_current_key(k);
    CHECK(sum.get() == std::optional<int64_t>(10 * static_cast<int64_t>(k)));
    CHECK(avg.get() == std::optional<double>(2.5));
  }
  b->set_current_key(3);
  sum.clear();
  avg.clear();
  CHECK_FALSE(sum.get().has_value());
  CHECK_FALSE(avg.get().has_value());
}

TEST_CASE_TEMPLATE("namespaces separate the state of one key and merge", F, heap_fixture,
                   rocksdb_fixture) {
  auto b = F::template make<std::string>(std::make_shared<manual_state_clock>());
  reducing_state<int64_t, window_ns> sum(
    *b, reducing_state_descriptor<int64_t>("window-sum", [](const int64_t& a, const int64_t& c) {
      return a + c;
    }));
  list_state<int64_t, window_ns> contents(*b, list_state_descriptor<int64_t>("window-contents"));
  window_ns w1{0, 10}, w2{5, 15}, w3{20, 30};
  b->set_current_key("k");
  for (auto [w, v] : {std::pair{w1, 1}, std::pair{w2, 2}, std::pair{w3, 4}, std::pair{w1, 8}}) {
    sum.set_namespace(w);
    sum.add(v);
    contents.set_namespace(w);
    contents.add(v);
  }
  sum.set_namespace(w1);
  CHECK(sum.get() == std::optional<int64_t>(9));
  sum.set_namespace(w2);
  CHECK(sum.get() == std::optional<int64_t>(2));
  // A session-style merge of w1 and w2 into a new window.
  window_ns merged{0, 15};
  sum.set_namespace(merged);
  sum.merge_namespaces({w1, w2});
  CHECK(sum.get() == std::optional<int64_t>(11));
  sum.set_namespace(w1);
  CHECK_FALSE(sum.get().has_value());
  contents.set_namespace(merged);
  contents.merge_namespaces({w1, w2});
  auto all = contents.get();
  std::sort(all.begin(), all.end());
  CHECK(all == std::vector<int64_t>{1, 2, 8});
  contents.set_namespace(w3);
  CHECK(contents.get() == std::vector<int64_t>{4});
}

TEST_CASE_TEMPLATE("expired entries are never returned", F, heap_fixture, rocksdb_fixture) {
  auto clock = std::make_shared<manual_state_clock>(1000);
  auto b = F::template make<int64_t>(clock);
  state_ttl write_ttl{100ms, ttl_update::on_create_and_write};
  state_ttl read_ttl{100ms, ttl_update::on_read_and_write};
  value_state<int64_t> v(*b, value_state_descriptor<int64_t>("v", write_ttl));
  value_state<int64_t> r(*b, value_state_descriptor<int64_t>("r", read_ttl));
  list_state<int64_t> l(*b, list_state_descriptor<int64_t>("l", write_ttl));
  map_state<int64_t, int64_t> m(*b, map_state_descriptor<int64_t, int64_t>("m", write_ttl));
  b->set_current_key(1);
  v.update(1);
  r.update(2);
  l.add(10);
  m.put(1, 100);
  clock->advance(60ms);
  l.add(11);
  m.put(2, 200);
  CHECK(v.value() == std::optional<int64_t>(1));
  CHECK(r.value() == std::optional<int64_t>(2)); // the read restarts r's clock
  clock->advance(50ms);                          // 110 ms after the first writes
  CHECK_FALSE(v.value().has_value());
  CHECK(r.value() == std::optional<int64_t>(2));
  CHECK(l.get() == std::vector<int64_t>{11});
  CHECK_FALSE(m.contains(1));
  CHECK(m.get(2) == std::optional<int64_t>(200));
  clock->advance(200ms);
  CHECK_FALSE(r.value().has_value());
  CHECK(l.get().empty());
  CHECK(m.empty());
  // A rewrite after expiry starts a fresh entry.
  v.update(5);
  CHECK(v.value() == std::optional<int64_t>(5));
}

TEST_CASE_TEMPLATE("the background sweep removes expired entries nobody reads", F,
                   heap_fixture, rocksdb_fixture) {
  auto clock = std::make_shared<manual_state_clock>(0);
  auto b = F::template make<int64_t>(clock);
  value_state<int64_t> v(*b, value_state_descriptor<int64_t>("v", state_ttl{1s}));
  list_state<int64_t> l(*b, list_state_descriptor<int64_t>("l", state_ttl{1s}));
  for (int64_t k = 0; k < 1000; ++k) {
    b->set_current_key(k);
    v.update(k);
    l.add(k);
  }
  clock->advance(500ms);
  CHECK(b->cleanup_expired(100000) == 0);
  clock->advance(600ms);
  size_t removed = 0;
  for (int i = 0; i < 100 && removed < 2000; ++i)
    removed += b->cleanup_expired(100);
  CHECK(removed == 2000);
  CHECK(b->keys(0).empty());
  CHECK(b->keys(1).empty());
  if (auto* heap = dynamic_cast<heap_keyed_backend<int64_t>*>(b.get()))
    CHECK(heap->key_count() == 0);
}

TEST_CASE_TEMPLATE("a state read with the wrong type is a clear error", F, heap_fixture,
                   rocksdb_fixture) {
  auto b = F::template make<int64_t>(std::make_shared<manual_state_clock>());
  value_state<int64_t> v(*b, value_state_descriptor<int64_t>("total"));
  value_state<int64_t> again(*b, value_state_descriptor<int64_t>("total"));
  b->set_current_key(1);
  v.update(3);
  CHECK(again.value() == std::optional<int64_t>(3));
  try {
    value_state<std::string> wrong(*b, value_state_descriptor<std::string>("total"));
    FAIL("declaring 'total' with another type must throw");
  } catch (const state_error& e) {
    std::string what = e.what();
    CHECK(what.find("'total'") != std::string::npos);
    CHECK(what.find("value<int64>") != std::string::npos);
    CHECK(what.find("value<string>") != std::string::npos);
  }
  CHECK_THROWS_AS(list_state<int64_t>(*b, list_state_descriptor<int64_t>("total")), state_error);
  CHECK_THROWS_AS(value_state<int64_t>(*b, value_state_descriptor<int64_t>("")), state_error);
}

TEST_CASE_TEMPLATE("a key outside the owned key groups is rejected", F, heap_fixture,
                   rocksdb_fixture) {
  // Subtask 0 of 2 owns key groups [0, 63].
  auto range = key_group_range_for_subtask(max_p, 2, 0);
  auto b = F::template make<int64_t>(std::make_shared<manual_state_clock>(), range);
  int64_t inside = -1;
  int64_t outside = -1;
  for (int64_t k = 0; k < 1000 && (inside < 0 || outside < 0); ++k)
    (range.contains(key_group_of(k, max_p)) ? inside : outside) = k;
  CHECK_NOTHROW(b->set_current_key(inside));
  CHECK_THROWS_AS(b->set_current_key(outside), state_error);
}

TEST_CASE("wrong RocksDB configuration is a clear error") {
  rocksdb_config cfg;
  cfg.local_dir = "/proc/sluice-cannot-create-this";
  try {
    rocksdb_keyed_backend<int64_t> b(all_groups, max_p, nullptr, cfg, instance_name());
    FAIL("opening RocksDB in an impossible directory must throw");
  } catch (const state_error& e) {
    CHECK(std::string(e.what()).find("/proc/sluice-cannot-create-this") != std::string::npos);
  }
  rocksdb_config tiny;
  tiny.managed_memory_bytes = 1 << 20; // no other instance is open, so this one decides
  tiny.local_dir = (std::filesystem::temp_directory_path() / instance_name()).string();
  std::filesystem::create_directories(tiny.local_dir);
  try {
    rocksdb_keyed_backend<int64_t> b(all_groups, max_p, nullptr, tiny, instance_name());
    FAIL("a 1 MiB memory budget must be rejected");
  } catch (const state_error& e) {
    CHECK(std::string(e.what()).find("managed-size") != std::string::npos);
  }
  // The instance that failed to open left nothing behind.
  CHECK(std::filesystem::is_empty(tiny.local_dir));
  std::filesystem::remove_all(tiny.local_dir);
  rocksdb_config no_trigger;
  no_trigger.level0_compaction_trigger = -1;
  try {
    rocksdb_keyed_backend<int64_t> b(all_groups, max_p, nullptr, no_trigger, instance_name());
    FAIL("a compaction trigger of -1 L0 files must be rejected");
  } catch (const state_error& e) {
    CHECK(std::string(e.what()).find("level0-file-num-trigger") != std::string::npos);
  }
  no_trigger.level0_compaction_trigger = 17; // RocksDB slows writes down at 20
  try {
    rocksdb_keyed_backend<int64_t> b(all_groups, max_p, nullptr, no_trigger, instance_name());
    FAIL("a compaction trigger of 17 L0 files must be rejected");
  } catch (const state_error& e) {
    CHECK(std::string(e.what()).find("in [1, 16], got 17") != std::string::npos);
  }
}

TEST_CASE("RocksDB instances live in a directory per process; stale ones of killed processes go") {
  namespace fs = std::filesystem;
  auto root = fs::temp_directory_path() / instance_name();
  fs::remove_all(root);
  // What a process killed with SIGKILL left: its pid is gone now.
  pid_t gone = ::fork();
  REQUIRE(gone >= 0);
  if (gone == 0)
    ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  auto mine = process_dir_name("sluice-rocksdb");
  auto stale = root / (mine.substr(0, mine.rfind('-') + 1) + std::to_string(gone));
  fs::create_directories(stale / "sluice-1-v1-0-Keyed_Aggregation");
  std::ofstream(stale / "sluice-1-v1-0-Keyed_Aggregation" / "000009.sst") << "old";
  rocksdb_config cfg;
  cfg.local_dir = root.string();
  {
    rocksdb_keyed_backend<int64_t> a(all_groups, max_p, nullptr, cfg, instance_name());
    rocksdb_keyed_backend<int64_t> b(all_groups, max_p, nullptr, cfg, instance_name());
    CHECK_FALSE(fs::exists(stale));
    CHECK(fs::path(a.path()).parent_path() == root / mine);
    CHECK(fs::path(b.path()).parent_path() == root / mine);
  }
  // The last instance to close took the process's directory along.
  CHECK(fs::is_empty(root));
  fs::remove_all(root);
}

TEST_CASE("the L0 compaction trigger is 8 with native snapshots, 4 without, or as configured") {
  // RocksDB records the options it runs with in the instance's OPTIONS file.
  auto trigger_of = [](const rocksdb_config& cfg) {
    rocksdb_keyed_backend<int64_t> b(all_groups, max_p, nullptr, cfg, instance_name());
    for (const auto& e : std::filesystem::directory_iterator(b.path()))
      if (e.path().filename().string().rfind("OPTIONS-", 0) == 0) {
        std::ifstream in(e.path());
        std::stringstream text;
        text << in.rdbuf();
        auto s = text.str();
        auto at = s.find("level0_file_num_compaction_trigger=");
        REQUIRE(at != std::string::npos);
        return std::stoi(s.substr(at + std::string("level0_file_num_compaction_trigger=").size()));
      }
    FAIL("no OPTIONS file in " << b.path());
    return 0;
  };
  rocksdb_config cfg;
  CHECK(trigger_of(cfg) == 4);
  cfg.native_snapshots = true;
  CHECK(trigger_of(cfg) == 8);
  cfg.level0_compaction_trigger = 6;
  CHECK(trigger_of(cfg) == 6);
}

TEST_CASE("a key type without a serializer on RocksDB is a clear error") {
  struct opaque {
    int v = 0;
    int32_t hash_code() const { return v; }
    bool operator==(const opaque& o) const { return v == o.v; }
  };
  CHECK_NOTHROW(make_keyed_backend<opaque>(backend_kind::heap, all_groups, max_p, nullptr, {},
                                           instance_name()));
  try {
    (void)make_keyed_backend<opaque>(backend_kind::rocksdb, all_groups, max_p, nullptr, {},
                                     instance_name());
    FAIL("RocksDB needs a serializer for the key");
  } catch (const state_error& e) {
    CHECK(std::string(e.what()).find("SLUICE_SERIALIZABLE") != std::string::npos);
  }
}

} // TEST_SUITE

TEST_SUITE("state.heap") {

TEST_CASE("a dense value table holds one value per key of the backend's key groups") {
  // Key groups 0..63 of 128: subtask 0 of 2.
  heap_keyed_backend<int64_t> b(key_group_range{0, 63}, 128);
  auto idx = b.declare<void_namespace, int64_t>(value_state_descriptor<int64_t>("acc"),
                                                state_kind::value, "value<int64>");
  auto& t = b.dense_value<int64_t>(idx);
  std::vector<int64_t> mine;
  for (int64_t k = 0; mine.size() < 300; ++k) {
    if (key_group_for_hash(key_hash<int64_t>{}(k), 128) > 63) {
      CHECK_THROWS_AS(b.dense_hash(k), state_error);
      continue;
    }
    mine.push_back(k);
    auto h = b.dense_hash(k);
    CHECK(t.find(k, h) == nullptr);
    t.insert(k, h, k * 10);
  }
  for (auto k : mine)
    CHECK(*t.find(k, b.dense_hash(k)) == k * 10);
  auto keys = b.keys(idx);
  std::sort(keys.begin(), keys.end());
  CHECK(keys == mine);
  CHECK(&b.dense_value<int64_t>(idx) == &t);
  CHECK_THROWS_AS(b.dense_value<std::string>(idx), state_error);
  auto ttl_idx = b.declare<void_namespace, int64_t>(
    value_state_descriptor<int64_t>("ttl", state_ttl{std::chrono::milliseconds(5)}),
    state_kind::value, "value<int64>");
  CHECK_THROWS_WITH_AS(b.dense_value<int64_t>(ttl_idx), doctest::Contains("has a TTL"),
                       state_error);
}

TEST_CASE_TEMPLATE("every void-namespace state prints the current key's value for queryable state",
                   F, heap_fixture, rocksdb_fixture) {
  auto clock = std::make_shared<manual_state_clock>();
  auto b = F::template make<std::string>(clock);
  value_state<int64_t> count(*b, value_state_descriptor<int64_t>("count"));
  value_state<std::string> fresh(*b, value_state_descriptor<std::string>("fresh", {10ms}));
  list_state<std::string> seen(*b, list_state_descriptor<std::string>("seen"));
  map_state<int32_t, double> by_id(*b, map_state_descriptor<int32_t, double>("by_id"));
  map_state<std::pair<int, int>, bool> by_pair(
    *b, map_state_descriptor<std::pair<int, int>, bool>("by_pair"));
  reducing_state<int64_t> sum(
    *b, reducing_state_descriptor<int64_t>("sum", [](const int64_t& a, const int64_t& c) {
      return a + c;
    }));
  aggregating_state<int64_t, std::pair<int64_t, int64_t>, double> avg(
    *b, aggregating_state_descriptor<int64_t, std::pair<int64_t, int64_t>, double>(
          "avg", std::make_shared<average>()));
  value_state<int64_t, window_ns> windowed(*b, value_state_descriptor<int64_t>("windowed"));

  auto print = [&](const std::string& name) {
    std::string out;
    for (uint32_t i = 0; i < b->states().size(); ++i)
      if (b->states()[i].name == name) {
        REQUIRE(b->states()[i].printer);
        b->states()[i].printer(*b, i, out);
      }
    return out;
  };
  b->set_current_key("k");
  count.update(3);
  fresh.update("x");
  seen.add("a");
  seen.add("b\"");
  by_id.put(7, 0.5);
  by_pair.put({1, 2}, true);
  sum.add(4);
  sum.add(5);
  avg.add(1);
  avg.add(2);
  CHECK(print("count") == "3");
  CHECK(print("fresh") == "\"x\"");
  CHECK(print("seen") == "[\"a\",\"b\\\"\"]");
  CHECK(print("by_id") == "{\"7\":0.5}");
  CHECK(print("by_pair") == "[[[1,2],true]]");
  CHECK(print("sum") == "9");
  CHECK(print("avg") == "1.5");
  CHECK_FALSE(b->states()[7].printer); // namespaced state is not queryable

  clock->advance(10ms);
  CHECK(print("fresh") == "null"); // expired values are never returned
  b->set_current_key("other");
  for (const char* name : {"count", "seen", "by_id", "by_pair", "sum", "avg"})
    CHECK(print(name) == "null");
}

} // TEST_SUITE
