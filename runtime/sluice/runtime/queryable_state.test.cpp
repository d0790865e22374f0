#include "sluice/runtime/operators.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <unistd.h>
#include <utility>

using namespace sluice;
using namespace sluice::runtime;

namespace {

constexpr int32_t max_p = 128;

/// A running sum per key (v % 10) in a keyed fold, as one subtask of two.
struct fold_fixture {
  using sel_t = int64_t (*)(const int64_t&);
  using fold_t = void (*)(int64_t&, int64_t&&);
  static int64_t key_of(const int64_t& v) { return v % 10; }
  static void add(int64_t& acc, int64_t&& v) { acc += v; }

  explicit fold_fixture(state::backend_kind kind) {
    settings.backend = kind;
    settings.ttl_cleanup_interval = std::chrono::milliseconds(0);
    settings.rocksdb.managed_memory_bytes = size_t{64} << 20;
    runtime_context ctx("sums", 0, 2, max_p);
    ctx.set_state_config(&settings);
    ctx.set_instance_id("qs-test-" + std::to_string(::getpid()) + "-" +
                        state::to_string(kind));
    op.set_output(&out);
    op.open_operator(ctx);
  }
  ~fold_fixture() { op.close(); }

  static bool owned(int64_t key) {
    auto range = state::key_group_range_for_subtask(max_p, 2, 0);
    return range.contains(
      state::key_group_for_hash(state::key_hash<int64_t>{}(key), max_p));
  }

  state_settings settings;
  discarding_collector<int64_t> out;
  keyed_fold_operator<int64_t, int64_t, sel_t, fold_t> op{"sums", &key_of, &add};
};

} // namespace

TEST_SUITE("runtime.queryable_state") {

TEST_CASE("a keyed operator answers for the keys of its key groups only") {
  for (auto kind : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
    CAPTURE(state::to_string(kind));
    fold_fixture f(kind);
    int64_t mine = -1, theirs = -1;
    for (int64_t k = 0; k < 10; ++k)
      (fold_fixture::owned(k) ? mine : theirs) = k;
    REQUIRE(mine >= 0);
    REQUIRE(theirs >= 0);
    f.op.collect(int64_t{mine});
    f.op.collect(int64_t{mine + 10});
    auto r = f.op.query_keyed_state(std::to_string(mine));
    CHECK(r.status == state_query_status::ok);
    CHECK(r.body == "{\"key\":" + std::to_string(mine) + ",\"states\":{\"_aggregate\":" +
                      std::to_string(2 * mine + 10) + "}}");
    CHECK(f.op.query_keyed_state(std::to_string(theirs)).status ==
          state_query_status::not_owner);
    // A key of this subtask without an entry.
    for (int64_t k = 100; k < 200; ++k)
      if (fold_fixture::owned(k) && k % 10 != mine) {
        auto none = f.op.query_keyed_state(std::to_string(k));
        CHECK(none.body == "{\"key\":" + std::to_string(k) + ",\"states\":{\"_aggregate\":null}}");
        break;
      }
    auto bad = f.op.query_keyed_state("ten");
    CHECK(bad.status == state_query_status::bad_key);
    CHECK_FALSE(bad.body.empty());
    // Records after a query still fold into their own key.
    f.op.collect(int64_t{mine + 20});
    CHECK(f.op.query_keyed_state(std::to_string(mine)).body.find(std::to_string(3 * mine + 30)) !=
          std::string::npos);
  }
}

TEST_CASE("an operator on a non-keyed stream has no keyed state to query") {
  identity_operator<int64_t> op("pass");
  CHECK(op.query_keyed_state("1").status == state_query_status::no_keyed_state);
}

} // TEST_SUITE
