// TaskManager processes and their membership as a user runs them: `sluice
// jobmanager` and `sluice taskmanager` as child processes on loopback with
// short heartbeats (200 ms, timeout 1 s), observed through the REST API;
// and scripts/start-cluster.sh / stop-cluster.sh with a conf dir of their own.

#include "cluster_processes.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using sluice::test::child_process;
using sluice::test::job_manager_process;
using sluice::test::sh_quoted;
using sluice::test::spawn_shell;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

constexpr auto heartbeat_timeout = 1000ms;

/// Whether `pid` runs (a zombie, exited but not yet reaped by init, does not).
bool alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line))
    return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

using sluice::test::http_get;

/// The ids GET /taskmanagers lists.
std::set<std::string> task_manager_ids(int rest_port) {
  auto [status, body] = http_get(rest_port, "/taskmanagers");
  REQUIRE(status == 200);
  std::set<std::string> ids;
  auto list = json::parse(body); // kept: a range-for over a temporary's member dangles
  for (const auto& tm : list["taskmanagers"])
    ids.insert(tm["id"].get<std::string>());
  return ids;
}

/// Waits until `has(id)` in /taskmanagers equals `present`; how long it took,
/// or nothing after `limit`.
std::optional<std::chrono::milliseconds> wait_listed(int rest_port, const std::string& id,
                                                     bool present,
                                                     std::chrono::milliseconds limit = 15s) {
  auto start = steady::now();
  for (;;) {
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start);
    if (task_manager_ids(rest_port).count(id) == (present ? 1u : 0u))
      return waited;
    if (waited > limit)
      return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

} // namespace

TEST_SUITE("integration.membership") {

TEST_CASE("TaskManager processes are listed with their slots, a killed one is dropped within the "
          "timeout and registers again when restarted, a stopped one deregisters at once") {
  job_manager_process jm(0);
  auto a = sluice::test::task_manager_process(jm.rpc_port, "tm-a", 2);
  auto b = sluice::test::task_manager_process(jm.rpc_port, "tm-b", 3);
  REQUIRE(wait_listed(jm.rest_port, "tm-a", true));
  REQUIRE(wait_listed(jm.rest_port, "tm-b", true));

  auto [status, body] = http_get(jm.rest_port, "/taskmanagers/tm-b");
  REQUIRE(status == 200);
  auto tm = json::parse(body);
  CHECK(tm["slotsNumber"] == 3);
  CHECK(tm["freeSlots"] == 3);
  CHECK(tm["dataPort"].get<int>() > 0);
  CHECK(tm["path"].get<std::string>().rfind("caf.tcp://localhost:", 0) == 0);
  CHECK(tm["hardware"]["cpuCores"].get<int>() >= 1);
  CHECK(tm["hardware"]["physicalMemory"].get<int64_t>() > 0);
  CHECK(tm["timeSinceLastHeartbeat"].get<int64_t>() > 0);
  CHECK(http_get(jm.rest_port, "/taskmanagers/nobody").first == 404);
  auto overview = json::parse(http_get(jm.rest_port, "/overview").second);
  CHECK(overview["taskmanagers"] == 2);
  CHECK(overview["slots-total"] == 5);
  CHECK(overview["slots-available"] == 5);

  // kill -9: the kernel closes its connection, the JobManager drops it.
  auto kill_time = steady::now();
  REQUIRE(a->stop(SIGKILL, 10s));
  REQUIRE(wait_listed(jm.rest_port, "tm-a", false));
  auto killed = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - kill_time);
  MESSAGE("kill -9 detected after " << killed.count() << " ms");
  CHECK(killed < heartbeat_timeout + 500ms);

  a = sluice::test::task_manager_process(jm.rpc_port, "tm-a", 2);
  auto back = wait_listed(jm.rest_port, "tm-a", true);
  REQUIRE(back);
  MESSAGE("restarted TaskManager listed after " << back->count() << " ms");

  // SIGTERM: deregisters before it exits.
  REQUIRE(b->stop(SIGTERM, 10s) == 0);
  CHECK(task_manager_ids(jm.rest_port).count("tm-b") == 0);
  CHECK(task_manager_ids(jm.rest_port).count("tm-a") == 1);
}

TEST_CASE("a TaskManager that stops answering is dropped after the heartbeat timeout and "
          "registers again when it resumes") {
  job_manager_process jm(0);
  auto a = sluice::test::task_manager_process(jm.rpc_port, "tm-hung", 1);
  REQUIRE(wait_listed(jm.rest_port, "tm-hung", true));
  REQUIRE(kill(a->pid(), SIGSTOP) == 0);
  auto lost = wait_listed(jm.rest_port, "tm-hung", false);
  REQUIRE(lost);
  MESSAGE("hung TaskManager dropped after " << lost->count() << " ms");
  CHECK(*lost >= heartbeat_timeout - 250ms);
  CHECK(*lost < heartbeat_timeout + 500ms);
  REQUIRE(kill(a->pid(), SIGCONT) == 0);
  CHECK(wait_listed(jm.rest_port, "tm-hung", true, 5s));
}

TEST_CASE("a TaskManager registers again with a JobManager restarted on the same port, saying "
          "once that it lost it") {
  auto rpc = sluice::test::free_port();
  auto jm = std::make_unique<job_manager_process>(rpc);
  auto a = sluice::test::task_manager_process(rpc, "tm-stays", 2);
  REQUIRE(a->wait_for_line("registered at the JobManager", 10s));
  REQUIRE(wait_listed(jm->rest_port, "tm-stays", true));
  REQUIRE(jm->proc->stop(SIGKILL, 10s));
  REQUIRE(a->wait_for_line("lost the JobManager", 10s));
  // Retrying for a while says nothing more.
  std::this_thread::sleep_for(2500ms);
  jm = std::make_unique<job_manager_process>(rpc);
  auto line = a->wait_for_line("sluice: taskmanager: ", 10s);
  REQUIRE(line);
  CHECK_MESSAGE(line->find("registered at the JobManager") != std::string::npos, *line);
  CHECK(wait_listed(jm->rest_port, "tm-stays", true, 5s));
}

TEST_CASE("bad membership settings stop the daemons with a message, and a TaskManager without "
          "a JobManager keeps retrying and says so once") {
  auto run = [](const std::vector<std::string>& args) {
    auto p = spawn_shell(args, "SLUICE_CONF_DIR= ");
    auto out = p->read_all(30s);
    REQUIRE(out);
    return std::make_pair(*p->stop(SIGKILL, 10s), *out);
  };
  for (auto role : {"jobmanager", "taskmanager"}) {
    auto [code, out] = run({SLUICE_BINARY, role, "-D", "jobmanager.rpc.port=0", "-D",
                            "heartbeat.interval=2 s", "-D", "heartbeat.timeout=1 s"});
    if (std::string(role) == "taskmanager") // port 0 is no address to register at
      CHECK_MESSAGE(out.find("jobmanager.rpc.port") != std::string::npos, out);
    else
      CHECK_MESSAGE(out.find("heartbeat.timeout") != std::string::npos, out);
    CHECK(code == 2);
  }
  auto [code, out] = run({SLUICE_BINARY, "taskmanager", "-D", "jobmanager.rpc.port=6123", "-D",
                          "heartbeat.interval=2 s", "-D", "heartbeat.timeout=1 s"});
  CHECK(code == 2);
  CHECK_MESSAGE(out.find("must not be shorter than heartbeat.interval") != std::string::npos, out);

  // The RPC port of a running JobManager is taken.
  job_manager_process jm(0);
  auto [taken_code, taken] = run({SLUICE_BINARY, "jobmanager", "--rest-port", "0", "-D",
                                  "jobmanager.rpc.port=" + std::to_string(jm.rpc_port)});
  CHECK(taken_code == 1);
  CHECK_MESSAGE(taken.find("cannot listen for TaskManagers on 127.0.0.1:" +
                           std::to_string(jm.rpc_port)) != std::string::npos,
                taken);

  // No JobManager: the TaskManager runs on, retrying, and says so once.
  auto nobody = std::to_string(sluice::test::free_port());
  auto tm = spawn_shell({SLUICE_BINARY, "taskmanager", "-D", "jobmanager.rpc.port=" + nobody},
                  "SLUICE_CONF_DIR= ");
  REQUIRE(tm->wait_for_line("cannot reach the JobManager at localhost:" + nobody, 10s));
  CHECK_FALSE(tm->wait_for_line("cannot reach", 2500ms));
  CHECK(tm->stop(SIGTERM, 10s) == 0);
}

TEST_CASE("start-cluster.sh starts a JobManager and the workers' TaskManagers, stop-cluster.sh "
          "stops them all") {
  char pattern[] = "/tmp/sluice-scripts-test-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  fs::path dir = pattern;
  fs::create_directories(dir / "conf");
  auto rest = sluice::test::free_port();
  auto rpc = sluice::test::free_port();
  std::ofstream(dir / "conf" / "masters") << "localhost:" << rest << "\n";
  std::ofstream(dir / "conf" / "workers") << "# two on this host\nlocalhost\n127.0.0.1\n";
  std::ofstream(dir / "conf" / "sluice-conf.yaml")
    << "jobmanager.rpc.address: localhost\njobmanager.rpc.port: " << rpc
    << "\ntaskmanager.numberOfTaskSlots: 2\nheartbeat.interval: 200 ms\n"
    << "heartbeat.timeout: 1 s\nweb.upload.dir: " << (dir / "uploads").string() << "\n";
  auto env = "SLUICE_BIN=" + sh_quoted(SLUICE_BINARY) + " SLUICE_CONF_DIR=" +
             sh_quoted((dir / "conf").string()) + " SLUICE_LOG_DIR=" +
             sh_quoted((dir / "log").string()) + " SLUICE_PID_DIR=" + sh_quoted((dir / "pids").string()) +
             " ";
  auto script = [&](const std::string& name) {
    auto p = spawn_shell({std::string(REPO_SCRIPTS) + "/" + name}, env);
    auto out = p->read_all(60s);
    REQUIRE(out);
    return std::make_pair(*p->stop(SIGKILL, 10s), *out);
  };
  auto [code, out] = script("start-cluster.sh");
  REQUIRE_MESSAGE(code == 0, out);
  auto deadline = steady::now() + 15s;
  while (task_manager_ids(static_cast<int>(rest)).size() < 2 && steady::now() < deadline)
    std::this_thread::sleep_for(20ms);
  CHECK(task_manager_ids(static_cast<int>(rest)).size() == 2);
  auto overview = json::parse(http_get(static_cast<int>(rest), "/overview").second);
  CHECK(overview["taskmanagers"] == 2);
  CHECK(overview["slots-total"] == 4);
  // Again: nothing new starts.
  auto [again_code, again] = script("start-cluster.sh");
  CHECK_MESSAGE(again_code == 0, again);
  CHECK_MESSAGE(again.find("already running") != std::string::npos, again);
  std::vector<pid_t> pids;
  for (const auto& f : fs::directory_iterator(dir / "pids")) {
    pid_t pid = 0;
    std::ifstream(f.path()) >> pid;
    pids.push_back(pid);
  }
  CHECK(pids.size() == 3);

  auto [stop_code, stopped] = script("stop-cluster.sh");
  CHECK_MESSAGE(stop_code == 0, stopped);
  for (auto pid : pids)
    CHECK_MESSAGE(!alive(pid), "process " << pid << " is still running");
  CHECK(fs::is_empty(dir / "pids"));
  CHECK(http_get(static_cast<int>(rest), "/overview").first == 0);

  // A missing binary says how to get one.
  auto p = spawn_shell({std::string(REPO_SCRIPTS) + "/start-cluster.sh"},
                 env + "SLUICE_BIN=/nonexistent/sluice ");
  auto missing = p->read_all(30s);
  REQUIRE(missing);
  CHECK(p->stop(SIGKILL, 10s) != 0);
  CHECK_MESSAGE(missing->find("build it first") != std::string::npos, *missing);

  // A JobManager that exits at start (a bad setting): its log's tail is shown.
  std::ofstream(dir / "conf" / "sluice-conf.yaml")
    << "jobmanager.rpc.port: " << rpc << "\nheartbeat.interval: 2 s\nheartbeat.timeout: 1 s\n";
  auto [bad_code, bad] = script("start-cluster.sh");
  CHECK(bad_code != 0);
  CHECK_MESSAGE(bad.find("exited at start") != std::string::npos, bad);
  CHECK_MESSAGE(bad.find("must not be shorter than heartbeat.interval") != std::string::npos, bad);
  CHECK(fs::is_empty(dir / "pids"));
  // The logs of the previous start are kept as .1.
  bool kept = false;
  for (const auto& f : fs::directory_iterator(dir / "log"))
    kept = kept || f.path().extension() == ".1";
  CHECK(kept);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}
