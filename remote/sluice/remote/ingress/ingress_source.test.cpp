#include "sluice/remote/ingress/ingress_source.hpp"

#include "sluice/runtime/environment.hpp"

#include <doctest/doctest.h>

using namespace sluice;
using namespace sluice::remote::ingress;
using sluice::state::operator_state_part;
using sluice::state::operator_state_store;
namespace fn = sluice::functions;

namespace {

struct collecting final : runtime::collector<fn::envelope> {
  using runtime::collector<fn::envelope>::collect;
  std::vector<std::string> ids;
  void collect(fn::envelope&& e) override { ids.push_back(e.target.id); }
};

/// One source subtask with its operator state, opened as an operator does.
struct source_harness {
  operator_state_store store;
  runtime::checkpoint_hooks hooks;
  runtime::runtime_context ctx;
  http_ingress_source source;
  collecting out;

  source_harness(std::shared_ptr<ingress_journal> journal, bool checkpointing,
                 std::vector<operator_state_part> restore = {}, bool restored = false,
                 int32_t parallelism = 1)
      : ctx("source", 0, parallelism, 128)
      , source(std::move(journal)) {
    hooks.restored = restored;
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    ctx.set_checkpointing_enabled(checkpointing);
    runtime::internal::open_if_rich(source, ctx);
  }
  runtime::source_step step(size_t max = 100) { return source.run(out, max); }
  std::vector<operator_state_part> checkpoint(int64_t id) {
    for (auto* f : hooks.checkpointed)
      f->snapshot_state(id, 0);
    return operator_state_store::parse(store.snapshot(), "test");
  }
};

void accept(ingress_journal& j, int from, int to) {
  for (int i = from; i < to; ++i)
    REQUIRE(j.append(fn::envelope::to_function(fn::address{{"a", "b"}, std::to_string(i)},
                                               fn::make_typed(i))));
}

std::vector<std::string> ids(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i < to; ++i)
    out.push_back(std::to_string(i));
  return out;
}

} // namespace

TEST_SUITE("remote.ingress.source") {

TEST_CASE("the source emits accepted messages in order, in bounded steps, and waits when idle") {
  auto j = std::make_shared<ingress_journal>(100, 1 << 20);
  source_harness h(j, true);
  CHECK(h.step().what == runtime::source_step::kind::wait);
  accept(*j, 0, 5);
  CHECK(h.step(3).what == runtime::source_step::kind::more);
  CHECK(h.out.ids == ids(0, 3));
  h.step();
  CHECK(h.out.ids == ids(0, 5));
  CHECK(h.step().what == runtime::source_step::kind::wait);
  // With checkpointing, emitted messages stay until a checkpoint covers them.
  CHECK(j->size() == 5);
}

TEST_CASE("a completed checkpoint truncates the journal up to its position") {
  auto j = std::make_shared<ingress_journal>(100, 1 << 20);
  source_harness h(j, true);
  accept(*j, 0, 4);
  h.step();
  h.checkpoint(1);
  accept(*j, 4, 6);
  h.step();
  h.checkpoint(2);
  h.source.notify_checkpoint_complete(1);
  CHECK(j->first() == 4);
  h.source.notify_checkpoint_complete(2);
  CHECK(j->first() == 6);
  h.source.notify_checkpoint_complete(2); // repeated: nothing left to do
  CHECK(j->first() == 6);
}

TEST_CASE("a restore rewinds to the checkpoint's position: nothing lost, nothing twice") {
  auto j = std::make_shared<ingress_journal>(100, 1 << 20);
  std::vector<operator_state_part> saved;
  {
    source_harness h(j, true);
    accept(*j, 0, 3);
    h.step();
    saved = h.checkpoint(1);
    h.source.notify_checkpoint_complete(1);
    accept(*j, 3, 6);
    h.step(); // 3..5 emitted, then the subtask fails before checkpoint 2
    CHECK(h.out.ids == ids(0, 6));
  }
  accept(*j, 6, 8); // accepted while the job restarts
  source_harness r(j, true, operator_state_store::redistribute({saved}, 0, 1), true);
  r.step();
  CHECK(r.out.ids == ids(3, 8));
}

TEST_CASE("without a completed checkpoint a restarted source starts at the journal's first") {
  auto j = std::make_shared<ingress_journal>(100, 1 << 20);
  {
    source_harness h(j, true);
    accept(*j, 0, 3);
    h.step();
    h.checkpoint(1); // never completes
  }
  source_harness r(j, true);
  r.step();
  CHECK(r.out.ids == ids(0, 3));
}

TEST_CASE("without checkpointing the journal is truncated as soon as messages are emitted") {
  auto j = std::make_shared<ingress_journal>(100, 1 << 20);
  source_harness h(j, false);
  accept(*j, 0, 3);
  h.step();
  CHECK(j->size() == 0);
  CHECK(h.out.ids == ids(0, 3));
}

TEST_CASE("a position saved for another journal is ignored") {
  std::vector<operator_state_part> saved;
  {
    auto old = std::make_shared<ingress_journal>(100, 1 << 20);
    source_harness h(old, true);
    accept(*old, 0, 5);
    h.step();
    saved = h.checkpoint(1);
  }
  auto fresh = std::make_shared<ingress_journal>(100, 1 << 20);
  accept(*fresh, 0, 2);
  source_harness r(fresh, true, operator_state_store::redistribute({saved}, 0, 1), true);
  r.step();
  CHECK(r.out.ids == ids(0, 2));
}

TEST_CASE("the source refuses to run in parallel") {
  auto j = std::make_shared<ingress_journal>(100, 1 << 20);
  CHECK_THROWS_WITH(source_harness(j, true, {}, false, 2), doctest::Contains("parallelism 1"));
}

}
