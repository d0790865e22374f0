#include "sluice/remote/cluster/membership.hpp"

#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <doctest/doctest.h>

#include <map>
#include <stdexcept>
#include <string>

using namespace sluice::remote::cluster;
using namespace std::chrono_literals;

TEST_SUITE("remote.cluster.membership") {

TEST_CASE("every membership message survives a serializer round trip") {
  caf::actor_system_config cfg;
  add_membership_types(cfg);
  caf::actor_system sys{cfg};
  task_manager_registration r;
  r.id = "127.0.0.1:40000-a1b2c3";
  r.host = "127.0.0.1";
  r.port = 40000;
  r.slots = 4;
  r.cpu_cores = 2;
  r.physical_memory = int64_t{8} << 30;
  r.free_memory = int64_t{3} << 30;
  for (auto msg : {caf::make_message(tm_reg_atom::value, r, caf::actor{}, caf::actor{}),
                   caf::make_message(tm_reg_atom::value),
                   caf::make_message(tm_hb_atom::value, r.id), caf::make_message(jm_hb_atom::value),
                   caf::make_message(tm_unknown_atom::value),
                   caf::make_message(tm_bye_atom::value, r.id)}) {
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    REQUIRE_MESSAGE(!sink(msg), caf::to_string(msg));
    caf::message back;
    caf::binary_deserializer source{sys, buf};
    REQUIRE(!source(back));
    CHECK(caf::to_string(back) == caf::to_string(msg));
  }
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE(!sink(r));
  task_manager_registration back;
  caf::binary_deserializer source{sys, buf};
  REQUIRE(!source(back));
  CHECK(back.id == r.id);
  CHECK(back.port == r.port);
  CHECK(back.slots == 4);
  CHECK(back.physical_memory == r.physical_memory);
  CHECK(back.free_memory == r.free_memory);
}

TEST_CASE("the registry drops a TaskManager not heard from within the timeout, and only that one") {
  task_manager_registry reg;
  auto t0 = task_manager_registry::clock::now();
  task_manager_registration a, b;
  a.id = "a";
  a.slots = 2;
  b.id = "b";
  b.slots = 3;
  reg.add(a, t0);
  reg.add(b, t0);
  CHECK(reg.heartbeat("a", t0 + 900ms));
  CHECK_FALSE(reg.heartbeat("nobody", t0 + 900ms));
  CHECK(reg.expire(t0 + 1000ms, 1s).empty());
  CHECK(reg.expire(t0 + 1001ms, 1s) == std::vector<std::string>{"b"});
  auto list = reg.list();
  REQUIRE(list.size() == 1);
  CHECK(list[0].id == "a");
  CHECK(list[0].slots == 2);
  CHECK(list[0].free_slots == 2);
  CHECK(list[0].last_heartbeat_ms > 0);
  CHECK(reg.remove("a"));
  CHECK_FALSE(reg.remove("a"));
  CHECK(reg.size() == 0);
}

TEST_CASE("heartbeat settings default to 1 s and 5 s and the timeout may not undercut the interval") {
  std::map<std::string, std::string> none;
  auto hb = take_heartbeat_settings(none);
  CHECK(hb.interval == 1s);
  CHECK(hb.timeout == 5s);
  std::map<std::string, std::string> s{{"heartbeat.interval", "200 ms"},
                                       {"heartbeat.timeout", "1 s"}, {"other", "x"}};
  hb = take_heartbeat_settings(s);
  CHECK(hb.interval == 200ms);
  CHECK(hb.timeout == 1s);
  CHECK(s.size() == 1);
  std::map<std::string, std::string> bad{{"heartbeat.interval", "2 s"},
                                         {"heartbeat.timeout", "1 s"}};
  CHECK_THROWS_WITH_AS((void) take_heartbeat_settings(bad),
                       doctest::Contains("must not be shorter than heartbeat.interval"),
                       std::invalid_argument);
}

}
