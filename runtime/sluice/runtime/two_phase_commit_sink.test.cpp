#include "sluice/runtime/two_phase_commit_sink.hpp"

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace sluice::runtime;

namespace {

/// Transactions are numbered; the "external system" is a shared map of
/// transaction -> (records, status).
struct fake_system {
  struct txn_data {
    std::vector<int> records;
    std::string status = "open"; // open, prepared, committed, aborted
  };
  std::map<int64_t, txn_data> txns;
  int64_t next = 0;
  std::vector<int> visible() const {
    std::vector<int> out;
    for (auto& [id, t] : txns)
      if (t.status == "committed")
        out.insert(out.end(), t.records.begin(), t.records.end());
    return out;
  }
};

class fake_sink final : public two_phase_commit_sink<int, int64_t> {
public:
  explicit fake_sink(std::shared_ptr<fake_system> sys) : sys_(std::move(sys)) {}
  int64_t begin_transaction() override {
    auto id = sys_->next++;
    sys_->txns[id];
    return id;
  }
  void write(int64_t& txn, int&& v) override { sys_->txns[txn].records.push_back(v); }
  void pre_commit(int64_t& txn) override { sys_->txns[txn].status = "prepared"; }
  void commit(int64_t& txn) override {
    auto& t = sys_->txns[txn];
    REQUIRE((t.status == "prepared" || t.status == "committed"));
    t.status = "committed";
  }
  void abort(int64_t& txn) override { sys_->txns[txn].status = "aborted"; }

private:
  std::shared_ptr<fake_system> sys_;
};

/// One sink instance with its operator state, opened as an operator does.
struct harness {
  sluice::state::operator_state_store store;
  checkpoint_hooks hooks;
  runtime_context ctx{"sink", 0, 1, 128};
  fake_sink sink;
  harness(std::shared_ptr<fake_system> sys, bool checkpointing,
          std::vector<sluice::state::operator_state_part> restore = {}, bool restored = false)
    : sink(std::move(sys)) {
    hooks.restored = restored;
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    ctx.set_checkpointing_enabled(checkpointing);
    internal::open_if_rich(sink, ctx);
  }
  std::vector<sluice::state::operator_state_part> checkpoint(int64_t id) {
    for (auto* f : hooks.checkpointed)
      f->snapshot_state(id, 0);
    return sluice::state::operator_state_store::parse(store.snapshot(), "test");
  }
};

} // namespace

TEST_SUITE("runtime.two_phase_commit") {

TEST_CASE("records become visible only when their checkpoint completes") {
  auto sys = std::make_shared<fake_system>();
  harness h(sys, true);
  REQUIRE(h.hooks.checkpointed.size() == 1);
  REQUIRE(h.hooks.listeners.size() == 1);
  h.sink.invoke(1);
  h.sink.invoke(2);
  h.checkpoint(1);
  h.sink.invoke(3);
  CHECK(sys->visible().empty());
  h.checkpoint(2);
  CHECK(h.sink.pending_transactions() == 2);
  h.sink.notify_checkpoint_complete(1);
  CHECK(sys->visible() == std::vector<int>{1, 2});
  // Subsuming: completing 3 commits 2 as well.
  h.sink.invoke(4);
  h.checkpoint(3);
  h.sink.notify_checkpoint_complete(3);
  CHECK(sys->visible() == std::vector<int>{1, 2, 3, 4});
  h.sink.close();
}

TEST_CASE("a restore commits pre-committed transactions and aborts the open one") {
  auto sys = std::make_shared<fake_system>();
  std::vector<sluice::state::operator_state_part> saved;
  {
    harness h(sys, true);
    h.sink.invoke(1);
    saved = h.checkpoint(1); // pre-commits {1}; the notification never comes
    h.sink.invoke(2);        // lost with the failure; the source replays it
    // crash: no close()
  }
  harness r(sys, true, sluice::state::operator_state_store::redistribute({saved}, 0, 1), true);
  CHECK(sys->visible() == std::vector<int>{1});
  CHECK(sys->txns[1].status == "aborted");
  r.sink.invoke(2);
  r.checkpoint(2);
  r.sink.notify_checkpoint_complete(2);
  CHECK(sys->visible() == std::vector<int>{1, 2});
  // Restoring the same checkpoint again commits again: idempotent.
  harness again(sys, true, sluice::state::operator_state_store::redistribute({saved}, 0, 1), true);
  CHECK(sys->visible() == std::vector<int>{1, 2});
}

TEST_CASE("without checkpointing the end of the input commits") {
  auto sys = std::make_shared<fake_system>();
  harness h(sys, false);
  h.sink.invoke(5);
  h.sink.finish();
  h.sink.close();
  CHECK(sys->visible() == std::vector<int>{5});
}

} // TEST_SUITE
