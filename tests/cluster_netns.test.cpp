// A TaskManager cut off from the network: TaskManager processes each in a
// network namespace of their own (`ip netns`, a veth pair to the host, where
// the JobManager listens), a job running on one of them, and that one's
// link taken down. No connection closes, so only the heartbeat timeout
// notices; the job must fail over to the other TaskManager from its latest
// checkpoint, its output exactly once. Needs root and `ip`; skipped with a
// message otherwise.

#include "cluster_processes.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using sluice::test::get_json;
using sluice::test::job_manager_process;
using sluice::test::poll;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

bool sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

/// A network namespace `name` joined to the host by a veth pair: the host
/// side is 10.231.<n>.1/24, the namespace side 10.231.<n>.2/24. Removed
/// (with its processes' links) on destruction.
struct network_namespace {
  std::string name;
  std::string host_if;
  std::string host_ip;
  std::string ns_ip;
  bool ok = false;

  network_namespace(const std::string& tag, int n)
      : name("sluice-" + tag + "-" + std::to_string(getpid()))
      , host_if("sl" + std::to_string(getpid() % 100000) + "h" + std::to_string(n))
      , host_ip("10.231." + std::to_string(n) + ".1")
      , ns_ip("10.231." + std::to_string(n) + ".2") {
    auto ns_if = host_if.substr(0, host_if.size() - 2) + "n" + std::to_string(n);
    ok = sh("ip netns add " + name) &&
         sh("ip link add " + host_if + " type veth peer name " + ns_if) &&
         sh("ip link set " + ns_if + " netns " + name) &&
         sh("ip addr add " + host_ip + "/24 dev " + host_if) && sh("ip link set " + host_if + " up") &&
         sh("ip netns exec " + name + " ip addr add " + ns_ip + "/24 dev " + ns_if) &&
         sh("ip netns exec " + name + " ip link set " + ns_if + " up") &&
         sh("ip netns exec " + name + " ip link set lo up");
  }
  ~network_namespace() {
    sh("ip link del " + host_if);
    sh("ip netns del " + name);
  }
  /// Takes the host side of the link down: packets stop, nothing closes.
  bool cut() { return sh("ip link set " + host_if + " down"); }
};

bool listed(int port, const std::string& id) {
  auto list = get_json(port, "/taskmanagers"); // a range-for over a temporary's member dangles
  for (const auto& tm : list["taskmanagers"])
    if (tm["id"] == id)
      return true;
  return false;
}

} // namespace

TEST_SUITE("integration.cluster_netns") {

TEST_CASE("a TaskManager whose network is cut is detected by the heartbeat timeout and its job "
          "recovers on another TaskManager, exactly once") {
  if (geteuid() != 0 || !sh("command -v ip")) {
    MESSAGE("skipped: network namespaces need root and the ip command");
    return;
  }
  network_namespace one("a", 1);
  if (!one.ok) {
    MESSAGE("skipped: cannot create a network namespace with a veth pair here");
    return;
  }
  network_namespace two("b", 2);
  REQUIRE(two.ok);
  auto rpc = sluice::test::free_port();
  job_manager_process jm(rpc, {"jobmanager.rpc.address=0.0.0.0",
                               "execution.checkpointing.interval=200 ms",
                               "restart-strategy.type=fixed-delay",
                               "restart-strategy.fixed-delay.attempts=5",
                               "restart-strategy.fixed-delay.delay=100 ms"});
  auto tm_in = [&](network_namespace& ns, const std::string& id, int slots) {
    auto tm = sluice::test::spawn_shell(
      {"ip", "netns", "exec", ns.name, SLUICE_BINARY, "taskmanager", "-D",
       "jobmanager.rpc.address=" + ns.host_ip, "-D", "jobmanager.rpc.port=" + std::to_string(rpc),
       "-D", "taskmanager.host=" + ns.ns_ip, "-D", "taskmanager.resource-id=" + id, "-D",
       "taskmanager.numberOfTaskSlots=" + std::to_string(slots), "-D",
       "heartbeat.interval=200 ms", "-D", "heartbeat.timeout=1 s"},
      "SLUICE_CONF_DIR= ");
    if (!poll([&] { return listed(jm.rest_port, id); }, 15s)) {
      tm->stop(SIGTERM, 5s);
      FAIL("TaskManager " << id << " in " << ns.name << " did not register: "
                          << tm->read_all(1s).value_or(""));
    }
    return tm;
  };
  auto a = tm_in(one, "tm-netns-a", 2);
  auto b = tm_in(two, "tm-netns-b", 2);

  sluice::test::temp_dir dir;
  auto out = fs::path(dir.path()) / "counts";
  constexpr long records = 20000;
  auto run = sluice::test::sluice_cli("run -d " + jm.m() + "-p 2 -c bounded_counts_main " +
                                      TEST_JOBS + " --output " + out.string() + " --records " +
                                      std::to_string(records) + " --rate 2500");
  REQUIRE_MESSAGE(run.exit_code == 0, run.output);
  auto id = sluice::test::submitted_id(run.output);
  // Slots go in registration order: the job runs on tm-netns-a.
  REQUIRE(a->wait_for_line("job " + id + ": running its subtasks here", 10s));
  auto completed = [&] {
    return get_json(jm.rest_port, "/jobs/" + id + "/checkpoints")["counts"]["completed"]
      .get<int64_t>();
  };
  REQUIRE(poll([&] { return completed() >= 3; }, 20s));
  auto before = completed();
  auto cut_at = steady::now();
  REQUIRE(one.cut());
  REQUIRE(poll([&] { return !listed(jm.rest_port, "tm-netns-a"); }, 10s));
  auto detected = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - cut_at);
  MESSAGE("network cut detected after " << detected.count() << " ms");
  CHECK(detected < 2500ms);
  REQUIRE(b->wait_for_line("job " + id + ": running its subtasks here", 10s));
  REQUIRE(poll([&] { return completed() > before; }, 30s));
  auto recovered = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - cut_at);
  MESSAGE("network cut to the next completed checkpoint: " << recovered.count() << " ms");
  REQUIRE(poll(
    [&] { return get_json(jm.rest_port, "/jobs/" + id)["state"] == "FINISHED"; }, 60s));

  sluice::test::check_counts_exactly_once(out, records);
  // The cut-off process still runs, unaware; it goes with its namespace.
  CHECK(a->stop(SIGKILL, 10s));
}

} // TEST_SUITE
