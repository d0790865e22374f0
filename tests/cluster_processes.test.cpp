// Jobs on TaskManager processes: `sluice jobmanager` plus `sluice
// taskmanager` children on loopback, a job library submitted with `sluice
// run`, its subtasks deployed to the TaskManagers (which load the library
// the JobManager sends them) with batches crossing processes; and a
// TaskManager killed with SIGKILL mid-job, the job recovering from its
// latest checkpoint on the remaining slots, its output exactly once.

#include "cluster_processes.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
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
using sluice::test::task_manager_process;
namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

/// The word counts of a text as the word count computes them: lower-cased,
/// split on every character that is not an ASCII letter.
std::map<std::string, long> count_words(const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, long> out;
  std::string word;
  char c;
  auto flush = [&] {
    if (!word.empty())
      ++out[word];
    word.clear();
  };
  while (in.get(c)) {
    if (std::isalpha(static_cast<unsigned char>(c)) && static_cast<unsigned char>(c) < 128)
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    else
      flush();
  }
  flush();
  return out;
}

/// Waits until every id is listed in /taskmanagers.
void wait_registered(int port, const std::vector<std::string>& ids) {
  REQUIRE(poll(
    [&] {
      auto list = get_json(port, "/taskmanagers");
      size_t found = 0;
      for (const auto& tm : list["taskmanagers"])
        for (const auto& id : ids)
          found += tm["id"] == id;
      return found == ids.size();
    },
    15s));
}

std::string job_status(int port, const std::string& id) {
  return get_json(port, "/jobs/" + id)["state"].get<std::string>();
}

int64_t completed_checkpoints(int port, const std::string& id) {
  return get_json(port, "/jobs/" + id + "/checkpoints")["counts"]["completed"].get<int64_t>();
}

} // namespace

TEST_SUITE("integration.cluster_processes") {

TEST_CASE("a keyed job runs on two TaskManager processes with exact results") {
  // No failure is injected here: heartbeats that tolerate a loaded machine
  // (sanitizer builds, parallel tests) instead of the 1 s that the
  // failure tests need for quick detection.
  const std::vector<std::string> patient{"heartbeat.timeout=20 s"};
  job_manager_process jm(0, patient);
  auto a = task_manager_process(jm.rpc_port, "tm-a", 2, patient);
  auto b = task_manager_process(jm.rpc_port, "tm-b", 2, patient);
  wait_registered(jm.rest_port, {"tm-a", "tm-b"});
  sluice::test::temp_dir dir;
  auto input = std::string(EXAMPLE_DATA) + "/words.txt";
  auto out = fs::path(dir.path()) / "counts";
  // Parallelism 4 needs the slots of both TaskManagers: the keyed exchange
  // crosses processes.
  auto run = sluice::test::sluice_cli("run " + jm.m() + "-p 4 " + WORDCOUNT_JOB + " --input " +
                                      input + " --output " + out.string());
  REQUIRE_MESSAGE(run.exit_code == 0, run.output);
  auto id = sluice::test::submitted_id(run.output);
  CHECK(run.output.find("Job with JobID " + id + " has finished.") != std::string::npos);
  auto want = count_words(input);
  REQUIRE(want.size() > 10);
  CHECK(sluice::test::final_counts(sluice::test::finished_parts(out)) == want);
  // Both TaskManagers loaded the library and ran subtasks of the job.
  for (auto* tm : {a.get(), b.get()})
    CHECK(tm->wait_for_line("job " + id + ": running its subtasks here", 5s));
  auto job = get_json(jm.rest_port, "/jobs/" + id);
  for (const auto& v : job["vertices"])
    CHECK_MESSAGE(v["status"] == "FINISHED", v.dump());
}

TEST_CASE("a TaskManager killed with SIGKILL mid-job: the job recovers from its latest checkpoint "
          "on the remaining TaskManagers, its output exactly once") {
  job_manager_process jm(0, {"execution.checkpointing.interval=200 ms",
                             "restart-strategy.type=fixed-delay",
                             "restart-strategy.fixed-delay.attempts=5",
                             "restart-strategy.fixed-delay.delay=100 ms"});
  auto a = task_manager_process(jm.rpc_port, "tm-a", 2);
  wait_registered(jm.rest_port, {"tm-a"});
  auto b = task_manager_process(jm.rpc_port, "tm-b", 2);
  wait_registered(jm.rest_port, {"tm-a", "tm-b"});
  auto c = task_manager_process(jm.rpc_port, "tm-c", 2);
  wait_registered(jm.rest_port, {"tm-a", "tm-b", "tm-c"});
  sluice::test::temp_dir dir;
  auto out = fs::path(dir.path()) / "counts";
  constexpr long records = 40000;
  auto run = sluice::test::sluice_cli("run -d " + jm.m() + "-p 4 -c bounded_counts_main " +
                                      TEST_JOBS + " --output " + out.string() + " --records " +
                                      std::to_string(records) + " --rate 4000");
  REQUIRE_MESSAGE(run.exit_code == 0, run.output);
  auto id = sluice::test::submitted_id(run.output);
  // Slots are taken in registration order: tm-a and tm-b run the job.
  REQUIRE(a->wait_for_line("job " + id + ": running its subtasks here", 10s));
  REQUIRE(poll([&] { return completed_checkpoints(jm.rest_port, id) >= 3; },
                                   20s));
  auto before = completed_checkpoints(jm.rest_port, id);
  // tm-a's job library directory; while tm-a lives nothing removes it.
  auto left_by_a = [killed_pid = a->pid()] {
    auto mark = "-" + std::to_string(killed_pid) + "-";
    int n = 0;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path())) {
      auto name = e.path().filename().string();
      n += name.rfind("sluice-taskmanager-", 0) == 0 && name.find(mark) != std::string::npos;
    }
    return n;
  };
  CHECK(left_by_a() == 1);
  auto killed_at = steady::now();
  REQUIRE(a->stop(SIGKILL, 10s));
  // Recovered: a checkpoint completes again, so every subtask runs and
  // acknowledges, on tm-b and tm-c.
  REQUIRE(poll(
    [&] { return completed_checkpoints(jm.rest_port, id) > before; }, 30s));
  auto recovery =
    std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  MESSAGE("kill -9 to the next completed checkpoint: " << recovery.count() << " ms");
  CHECK(c->wait_for_line("job " + id + ": running its subtasks here", 1s));
  REQUIRE(poll([&] { return job_status(jm.rest_port, id) == "FINISHED"; },
                                   60s));
  auto exceptions = get_json(jm.rest_port, "/jobs/" + id + "/exceptions");
  // The failure names what happened: the TaskManager lost, or its
  // subtasks' connection gone.
  auto failures = exceptions.dump();
  MESSAGE(failures);
  CHECK((failures.find("tm-a") != std::string::npos ||
         failures.find("unreachable") != std::string::npos));

  // Exactly once: each key's running sum went 1, 2, ..., records/10, and
  // every value is in the committed output once.
  sluice::test::check_counts_exactly_once(out, records);

  // tm-a's directory outlived it; the next TaskManager to start on this
  // host (this one, or one of a test running beside) removes it.
  auto d = task_manager_process(jm.rpc_port, "tm-d", 1);
  wait_registered(jm.rest_port, {"tm-d"});
  CHECK(left_by_a() == 0);
}

} // TEST_SUITE
