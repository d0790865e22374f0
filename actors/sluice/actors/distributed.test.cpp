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

TEST_CASE("the dispatcher allocates slots in registration order and gives them back") {
  cluster_dispatcher_state st;
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  // The int argument: CAF 0.17 dereferences a null argument tuple otherwise.
  auto idle = [](caf::event_based_actor*, int) -> caf::behavior { return {[](int32_t) {}}; };
  auto a = sys.spawn(idle, 0);
  auto b = sys.spawn(idle, 0);
  st.task_managers.push_back({"a", a, 2, 2});
  st.task_managers.push_back({"b", b, 2, 2});
  std::vector<caf::actor> out;
  CHECK_FALSE(st.try_allocate("big", 5, caf::actor{}, out));
  CHECK(out.empty());
  REQUIRE(st.try_allocate("j1", 3, caf::actor{}, out));
  REQUIRE(out.size() == 3);
  CHECK(out[0] == a);
  CHECK(out[1] == a);
  CHECK(out[2] == b);
  CHECK(st.task_managers[0].free == 0);
  CHECK(st.task_managers[1].free == 1);
  st.release("j1");
  CHECK(st.task_managers[0].free == 2);
  CHECK(st.task_managers[1].free == 2);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
}

} // TEST_SUITE
