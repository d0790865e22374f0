#include "sluice/actors/distributed.hpp"

#include <doctest/doctest.h>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

using namespace sluice::actors;

namespace {

/// Serializes `x` as one message element and reads it back by its
/// registered name, as a node receiving it would.
template <class T>
T round_trip(caf::actor_system& sys, const T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  auto msg = caf::make_message(x);
  REQUIRE(!msg.save(sink));
  caf::message back;
  caf::binary_deserializer source{sys, buf};
  REQUIRE(!back.load(source));
  REQUIRE(back.match_elements<T>());
  return back.get_as<T>(0);
}

} // namespace

TEST_SUITE("actors.distributed") {

TEST_CASE("the control-plane messages that cross nodes survive serialization") {
  caf::actor_system_config cfg;
  add_control_message_types(cfg);
  caf::actor_system sys{cfg};
  remote_deployment rd;
  rd.job_id = "abc";
  rd.spec = std::string("lib\0args", 8);
  rd.vertex = 2;
  rd.index = 3;
  rd.attempt = 4;
  rd.checkpoint_dir = "/shared/chk";
  rd.restore_dir = "/shared/chk/abc/chk-7";
  rd.restore_owns_shared_files = true;
  auto back = round_trip(sys, rd);
  CHECK(back.job_id == rd.job_id);
  CHECK(back.spec == rd.spec);
  CHECK(back.vertex == 2);
  CHECK(back.index == 3);
  CHECK(back.attempt == 4);
  CHECK(back.checkpoint_dir == rd.checkpoint_dir);
  CHECK(back.restore_dir == rd.restore_dir);
  CHECK(back.restore_owns_shared_files);

  subtask_metrics_cell cell;
  cell.records_in = 11;
  cell.records_out = 22;
  cell.busy_ns = 33;
  cell.input_watermark = -5;
  std::vector<subtask_metrics_sample> samples{sample_metrics(cell, 1, 2, 3)};
  auto got = round_trip(sys, samples);
  REQUIRE(got.size() == 1);
  subtask_metrics_cell copy;
  apply_metrics(got[0], copy);
  CHECK(got[0].vertex == 1);
  CHECK(got[0].index == 2);
  CHECK(got[0].attempt == 3);
  CHECK(copy.records_in.load() == 11);
  CHECK(copy.records_out.load() == 22);
  CHECK(copy.busy_ns.load() == 33);
  CHECK(copy.input_watermark.load() == -5);
}

TEST_CASE("the slot pool allocates slots in registration order, gives them back, and names the "
          "jobs a lost TaskManager held slots for") {
  slot_pool pool;
  auto board = std::make_shared<slot_board>();
  pool.set_board(board);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // The int argument: CAF 0.17 dereferences a null argument tuple otherwise.
  auto idle = [](caf::event_based_actor*, int) -> caf::behavior { return {[](int32_t) {}}; };
  auto a = sys.spawn(idle, 0);
  auto b = sys.spawn(idle, 0);
  auto jm = sys.spawn(idle, 0);
  pool.add("a", a, 2);
  pool.add("b", b, 2);
  std::vector<caf::actor> out;
  CHECK_FALSE(pool.try_allocate("big", 5, caf::actor{}, out));
  CHECK(out.empty());
  REQUIRE(pool.try_allocate("j1", 3, jm, out));
  REQUIRE(out.size() == 3);
  CHECK(out[0] == a);
  CHECK(out[1] == a);
  CHECK(out[2] == b);
  CHECK(pool.task_managers()[0].free == 0);
  CHECK(pool.task_managers()[1].free == 1);
  CHECK(pool.free_slots() == 1);
  {
    std::lock_guard<std::mutex> guard(board->mtx);
    REQUIRE(board->task_managers.size() == 2);
    CHECK(board->task_managers[1].id == "b");
    CHECK(board->task_managers[1].free == 1);
  }
  pool.release("j1");
  CHECK(pool.task_managers()[0].free == 2);
  CHECK(pool.task_managers()[1].free == 2);

  // Losing a TaskManager names the JobMasters holding slots there.
  out.clear();
  REQUIRE(pool.try_allocate("j2", 1, jm, out)); // on a
  REQUIRE(pool.try_allocate("j3", 2, caf::actor{}, out)); // a, then b
  std::vector<caf::actor> affected;
  CHECK(pool.remove("a", affected) == a);
  CHECK(affected == std::vector<caf::actor>{jm}); // j3 has no JobMaster handle
  CHECK(pool.total_slots() == 2);
  CHECK(pool.free_slots() == 1);
  affected.clear();
  CHECK(pool.remove("nobody", affected) == nullptr);
  CHECK(affected.empty());
  for (auto& x : {a, b, jm})
    caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
}

} // TEST_SUITE
