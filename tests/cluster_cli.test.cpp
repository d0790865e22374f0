// The session cluster as a user drives it: `sluice jobmanager` as a child
// process on a free loopback port, and the `sluice` client commands (run,
// list, savepoint, stop, cancel) against its REST API, with job libraries
// (examples/wordcount_job, tests/jobs/test_jobs.cpp).

#include "cluster_processes.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using sluice::test::child_process;
using sluice::test::cli_result;
using sluice::test::final_counts;
using sluice::test::finished_parts;
using sluice::test::sluice_cli;
using sluice::test::submitted_id;
using namespace std::chrono_literals;

/// A JobManager on a free port with its own directories, stopped at the end.
struct job_manager_fixture {
  fs::path dir;
  std::unique_ptr<child_process> jm;
  std::string address;
  /// The lines the jobmanager printed before serving (stderr included when
  /// started with `shell_command`).
  std::vector<std::string> startup;

  job_manager_fixture() : job_manager_fixture("") {}

  /// With `shell_command` ("" = the default arguments): the jobmanager
  /// started by `sh -c "<shell_command> 2>&1"` instead, e.g. with
  /// SLUICE_CONF_DIR set.
  explicit job_manager_fixture(const std::string& shell_command) {
    char pattern[] = "/tmp/sluice-cli-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    dir = pattern;
    if (shell_command.empty())
      jm = std::make_unique<child_process>(std::vector<std::string>{
        SLUICE_BINARY, "jobmanager", "--rest-port", "0", "-D", "jobmanager.rpc.port=0", "-D",
        "web.upload.dir=" + (dir / "uploads").string(), "-D", "parallelism.default=2"});
    else
      jm = std::make_unique<child_process>(
        std::vector<std::string>{"/bin/sh", "-c", shell_command + " 2>&1"});
    for (;;) {
      auto line = jm->wait_for_line("sluice: ", 30s);
      REQUIRE_MESSAGE(line, "the jobmanager did not start");
      startup.push_back(*line);
      if (line->find("REST API on http://127.0.0.1:") != std::string::npos) {
        address = "127.0.0.1:" + std::to_string(sluice::test::number_after(*line, "127.0.0.1:"));
        break;
      }
    }
  }
  ~job_manager_fixture() {
    if (jm->pid() > 0) // a test may have stopped it already
      CHECK(jm->stop(SIGTERM, 30s) == 0);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string m() const { return "-m " + address + " "; }
};

/// The body of `GET path` from the REST API at `address` (host:port); empty
/// unless the answer is 200.
std::string http_get(const std::string& address, const std::string& path) {
  auto [status, body] =
    sluice::test::http_get(std::stoi(address.substr(address.rfind(':') + 1)), path);
  return status == 200 ? body : std::string();
}

/// How many threads process `pid` runs.
size_t thread_count(pid_t pid) {
  auto tasks = fs::path("/proc") / std::to_string(pid) / "task";
  return static_cast<size_t>(std::distance(fs::directory_iterator(tasks), fs::directory_iterator()));
}

/// Waits until `sluice list -a` shows `text`.
bool list_shows(const job_manager_fixture& f, const std::string& text,
                std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (sluice_cli("list -a " + f.m()).output.find(text) != std::string::npos)
      return true;
    std::this_thread::yield();
  }
  return false;
}

/// Waits until every task of job `id` is RUNNING: the job turns RUNNING
/// before its tasks do, and a savepoint needs them all running.
bool tasks_running(const job_manager_fixture& f, const std::string& id,
                   std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto overview = nlohmann::json::parse(http_get(f.address, "/jobs/overview"), nullptr, false);
    if (overview.is_object())
      for (const auto& j : overview["jobs"])
        if (j.value("jid", "") == id && j["tasks"].value("total", 0) > 0 &&
            j["tasks"].value("running", 0) == j["tasks"].value("total", 0))
          return true;
    std::this_thread::yield();
  }
  return false;
}

/// Waits until the JobManager holds no job's mini-cluster: each job brings
/// its own TaskManagers, and GET /overview counts those still alive.
bool no_task_managers(const job_manager_fixture& f, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto overview = nlohmann::json::parse(http_get(f.address, "/overview"), nullptr, false);
    if (overview.is_object() && overview.value("taskmanagers", -1) == 0)
      return true;
    std::this_thread::yield();
  }
  return false;
}

} // namespace

TEST_SUITE("integration.cluster_cli") {

TEST_CASE("sluice run counts the words of the bundled input as examples/word_count does") {
  job_manager_fixture f;
  auto input = std::string(EXAMPLE_DATA) + "/words.txt";
  auto out = f.dir / "counts";
  auto run = sluice_cli("run " + f.m() + WORDCOUNT_JOB + " --input " + input +
                        " --parallelism 2 --output " + out.string());
  REQUIRE_MESSAGE(run.exit_code == 0, run.output);
  auto id = submitted_id(run.output);
  CHECK(run.output.find("Job with JobID " + id + " has finished.") != std::string::npos);

  std::string reference;
  {
    FILE* p = popen((std::string(WORD_COUNT) + " --input " + input + " --parallelism 2").c_str(),
                    "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
      reference.append(buf, n);
    REQUIRE(pclose(p) == 0);
  }
  auto want = final_counts(reference);
  REQUIRE(!want.empty());
  CHECK(final_counts(finished_parts(out)) == want);

  auto list = sluice_cli("list -a " + f.m());
  CHECK(list.exit_code == 0);
  CHECK(list.output.find(id + " : Streaming WordCount (FINISHED)") != std::string::npos);
  CHECK(list.output.find("No running jobs.") != std::string::npos);
}

TEST_CASE("a long-running job is listed, savepointed, stopped with a savepoint, resumed and "
          "cancelled through the CLI") {
  job_manager_fixture f;
  auto run = sluice_cli("run -d " + f.m() + TEST_JOBS + " --output " + (f.dir / "a").string());
  REQUIRE_MESSAGE(run.exit_code == 0, run.output);
  auto id = submitted_id(run.output);
  REQUIRE(list_shows(f, id + " : endless counts (RUNNING)", 30s));
  REQUIRE(tasks_running(f, id, 30s));
  auto running = sluice_cli("list -r " + f.m());
  CHECK(running.output.find("Running/Restarting Jobs") != std::string::npos);
  CHECK(running.output.find(id) != std::string::npos);

  auto sp = sluice_cli("savepoint " + f.m() + id + " " + (f.dir / "sp").string());
  REQUIRE_MESSAGE(sp.exit_code == 0, sp.output);
  CHECK(sp.output.find("Triggering savepoint for job " + id + ".") != std::string::npos);
  std::smatch taken;
  REQUIRE(std::regex_search(sp.output, taken, std::regex("Savepoint completed. Path: (\\S+)")));
  auto first_savepoint = taken[1].str();

  auto stop = sluice_cli("stop -p " + (f.dir / "stop").string() + " " + f.m() + id);
  REQUIRE_MESSAGE(stop.exit_code == 0, stop.output);
  CHECK(stop.output.find("Suspending job \"" + id + "\" with a savepoint.") != std::string::npos);
  std::smatch m;
  REQUIRE(std::regex_search(stop.output, m, std::regex("Savepoint completed. Path: (\\S+)")));
  auto savepoint = m[1].str();
  CHECK(list_shows(f, id + " : endless counts (FINISHED)", 30s));

  auto resumed = sluice_cli("run -d -p 3 -s " + savepoint + " " + f.m() + TEST_JOBS +
                            " --output " + (f.dir / "b").string());
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.output);
  auto id2 = submitted_id(resumed.output);
  REQUIRE(list_shows(f, id2 + " : endless counts (RUNNING)", 30s));
  auto cancel = sluice_cli("cancel " + f.m() + id2);
  CHECK_MESSAGE(cancel.exit_code == 0, cancel.output);
  CHECK(cancel.output.find("Cancelling job " + id2 + ".") != std::string::npos);
  CHECK(cancel.output.find("Cancelled job " + id2 + ".") != std::string::npos);
  CHECK(sluice_cli("list -a " + f.m()).output.find(id2 + " : endless counts (CANCELED)") !=
        std::string::npos);

  // The first savepoint is no longer needed: dispose of it (no JobManager
  // involved; the path is the one `savepoint` printed).
  auto dispose = sluice_cli("savepoint -d " + first_savepoint);
  CHECK_MESSAGE(dispose.exit_code == 0, dispose.output);
  CHECK(dispose.output.find("Disposing savepoint '" + first_savepoint + "'.") != std::string::npos);
  CHECK(dispose.output.find("Savepoint '" + first_savepoint + "' disposed.") != std::string::npos);
  CHECK_FALSE(fs::exists(first_savepoint));
  CHECK(fs::exists(savepoint)); // the stop's savepoint stays
  // A retained checkpoint (here: the stop's savepoint, marked a checkpoint)
  // is not disposed of as a savepoint.
  auto checkpoint = f.dir / "chk-7";
  fs::copy(savepoint, checkpoint, fs::copy_options::recursive);
  std::string metadata;
  {
    std::ifstream in(checkpoint / "_metadata");
    metadata.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  auto flag = metadata.find("\"savepoint\": true");
  REQUIRE(flag != std::string::npos);
  metadata.replace(flag, 17, "\"savepoint\": false");
  std::ofstream(checkpoint / "_metadata", std::ios::trunc) << metadata;
  auto not_savepoint = sluice_cli("savepoint -d " + checkpoint.string());
  CHECK(not_savepoint.exit_code != 0);
  CHECK_MESSAGE(not_savepoint.output.find("is a checkpoint, not a savepoint") != std::string::npos,
                not_savepoint.output);
  CHECK(fs::exists(checkpoint / "_metadata"));
  auto again = sluice_cli("savepoint -d " + first_savepoint);
  CHECK(again.exit_code != 0);
  CHECK_MESSAGE(again.output.find("could not dispose savepoint '" + first_savepoint + "'") !=
                  std::string::npos,
                again.output);
  // Flink prints locations as file: URIs; those are taken too.
  auto uri = sluice_cli("savepoint -d file:" + savepoint);
  CHECK_MESSAGE(uri.exit_code == 0, uri.output);
  CHECK_FALSE(fs::exists(savepoint));
}

TEST_CASE("sluice savepoint -d refuses a directory that is not a savepoint and leaves it alone") {
  char pattern[] = "/tmp/sluice-dispose-test-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  fs::path dir = pattern;
  std::ofstream(dir / "keep.txt") << "precious\n";
  auto r = sluice_cli("savepoint -d " + dir.string());
  CHECK(r.exit_code != 0);
  CHECK_MESSAGE(r.output.find("could not dispose savepoint '" + dir.string() +
                              "': " + (dir / "_metadata").string()) != std::string::npos,
                r.output);
  CHECK(r.output.find("disposed.") == std::string::npos);
  CHECK(fs::exists(dir / "keep.txt"));

  auto both = sluice_cli("savepoint -d " + dir.string() + " 0123456789abcdef0123456789abcdef");
  CHECK(both.exit_code == 2);
  auto neither = sluice_cli("savepoint");
  CHECK(neither.exit_code == 2);
  CHECK(neither.output.find("savepoint needs a job id") != std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST_CASE("sluice info prints a job library's execution plan without a JobManager") {
  auto info = sluice_cli(std::string("info -p 3 ") + WORDCOUNT_JOB + " --input " + EXAMPLE_DATA +
                         "/words.txt --output /nonexistent/out");
  REQUIRE_MESSAGE(info.exit_code == 0, info.output);
  auto begin = info.output.find("----------------------- Execution Plan -----------------------\n");
  REQUIRE(begin != std::string::npos);
  auto json_begin = info.output.find('{', begin);
  auto json_end = info.output.find("\n------", json_begin);
  REQUIRE(json_end != std::string::npos);
  auto plan = nlohmann::json::parse(info.output.substr(json_begin, json_end - json_begin), nullptr,
                                    false);
  REQUIRE(plan.is_object());
  CHECK(plan["name"] == "Streaming WordCount");
  REQUIRE(plan["nodes"].size() == 2);
  for (const auto& n : plan["nodes"])
    CHECK(n["parallelism"] == 3);
  CHECK(plan["nodes"][1]["inputs"][0]["ship_strategy"] == "HASH");
  CHECK_FALSE(fs::exists("/nonexistent/out")); // built, not run

  auto missing = sluice_cli("info /nonexistent/job.so");
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("cannot read job library '/nonexistent/job.so'") != std::string::npos);
  auto no_entry = sluice_cli(std::string("info -c no_such_entry ") + TEST_JOBS);
  CHECK(no_entry.exit_code == 1);
  CHECK(no_entry.output.find("has no entry symbol 'no_such_entry'") != std::string::npos);
  auto bad_args = sluice_cli(std::string("info ") + TEST_JOBS + " --nope");
  CHECK(bad_args.exit_code == 1);
  CHECK(bad_args.output.find("returned 2: usage: --output DIR") != std::string::npos);
  auto throws = sluice_cli(std::string("info -c throwing_job_main ") + TEST_JOBS);
  CHECK(throws.exit_code == 1);
  CHECK(throws.output.find("failed while building its pipeline: no pipeline today") !=
        std::string::npos);
  CHECK(throws.output.find("Execution Plan") == std::string::npos);
  auto none = sluice_cli("info");
  CHECK(none.exit_code == 2);
}

TEST_CASE("the jobmanager releases every ended job's mini-cluster and stops promptly") {
  job_manager_fixture f;
  auto input = std::string(EXAMPLE_DATA) + "/words.txt";
  auto word_count = [&](int i) {
    auto r = sluice_cli("run " + f.m() + WORDCOUNT_JOB + " --input " + input + " --output " +
                        (f.dir / ("counts" + std::to_string(i))).string());
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  };
  word_count(0);
  REQUIRE(no_task_managers(f, 30s));
  auto threads = thread_count(f.jm->pid());
  for (int i = 1; i <= 3; ++i)
    word_count(i);
  // Endless jobs, one stopped with a savepoint (taken on a REST operation
  // thread) and one cancelled: their clusters go too.
  auto endless = [&](const std::string& out) {
    auto r = sluice_cli("run -d " + f.m() + TEST_JOBS + " --output " + (f.dir / out).string());
    REQUIRE_MESSAGE(r.exit_code == 0, r.output);
    auto id = submitted_id(r.output);
    REQUIRE(tasks_running(f, id, 30s));
    return id;
  };
  auto stopped = endless("a");
  auto stop = sluice_cli("stop -p " + (f.dir / "sp").string() + " " + f.m() + stopped);
  REQUIRE_MESSAGE(stop.exit_code == 0, stop.output);
  auto cancelled = endless("b");
  auto cancel = sluice_cli("cancel " + f.m() + cancelled);
  REQUIRE_MESSAGE(cancel.exit_code == 0, cancel.output);

  CHECK(no_task_managers(f, 30s));
  // A released cluster's threads exit on their own, shortly after.
  auto pid = f.jm->pid();
  CHECK_MESSAGE(sluice::test::poll([&] { return thread_count(pid) <= threads; }, 10s),
                "threads: " << thread_count(pid) << " > " << threads);
  // The history stays.
  auto list = sluice_cli("list -a " + f.m());
  CHECK(list.output.find(stopped + " : endless counts (FINISHED)") != std::string::npos);
  CHECK(list.output.find(cancelled + " : endless counts (CANCELED)") != std::string::npos);
  CHECK(http_get(f.address, "/jobs/" + stopped).find("\"FINISHED\"") != std::string::npos);

  auto before = std::chrono::steady_clock::now();
  CHECK(f.jm->stop(SIGTERM, 30s) == 0);
  CHECK(std::chrono::steady_clock::now() - before < 5s);
}

TEST_CASE("bad job ids, libraries and addresses fail with a clear message and a non-zero exit") {
  job_manager_fixture f;
  auto unknown = "0123456789abcdef0123456789abcdef";
  for (auto cmd : {"cancel ", "stop ", "savepoint "}) {
    auto r = sluice_cli(std::string(cmd) + f.m() + unknown);
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.output.find(std::string("unknown job id '") + unknown + "'") !=
                    std::string::npos,
                  r.output);
  }

  auto missing = sluice_cli("run " + f.m() + "/nonexistent/job.so");
  CHECK(missing.exit_code != 0);
  CHECK(missing.output.find("cannot read job library '/nonexistent/job.so'") != std::string::npos);

  auto not_a_library = f.dir / "words.so";
  fs::copy_file(std::string(EXAMPLE_DATA) + "/words.txt", not_a_library);
  auto bad = sluice_cli("run " + f.m() + not_a_library.string());
  CHECK(bad.exit_code != 0);
  CHECK_MESSAGE(bad.output.find("job library 'words.so': cannot be loaded") != std::string::npos,
                bad.output);

  auto no_entry = sluice_cli("run -c no_such_entry " + f.m() + TEST_JOBS);
  CHECK(no_entry.exit_code != 0);
  CHECK_MESSAGE(no_entry.output.find("has no entry symbol 'no_such_entry'") != std::string::npos,
                no_entry.output);

  auto throws = sluice_cli("run -c throwing_job_main " + f.m() + TEST_JOBS);
  CHECK(throws.exit_code != 0);
  CHECK_MESSAGE(throws.output.find("failed while building its pipeline: no pipeline today") !=
                  std::string::npos,
                throws.output);

  auto executes = sluice_cli("run -c executing_job_main " + f.m() + TEST_JOBS);
  CHECK(executes.exit_code != 0);
  CHECK(executes.output.find("the entry called execute()") != std::string::npos);

  auto bad_args = sluice_cli("run " + f.m() + TEST_JOBS + " --nope");
  CHECK(bad_args.exit_code != 0);
  CHECK(bad_args.output.find("returned 2: usage: --output DIR") != std::string::npos);

  auto bad_savepoint = sluice_cli("run -s " + (f.dir / "no-savepoint").string() + " " + f.m() +
                                  TEST_JOBS + " --output " + (f.dir / "c").string());
  CHECK(bad_savepoint.exit_code != 0);
  CHECK_MESSAGE(bad_savepoint.output.find("cannot run job") != std::string::npos,
                bad_savepoint.output);

  auto port = std::to_string(sluice::test::free_port());
  for (auto cmd : {"list ", "cancel 0123456789abcdef0123456789abcdef "}) {
    auto r = sluice_cli(std::string(cmd) + "-m 127.0.0.1:" + port);
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.output.find("cannot reach the JobManager at 127.0.0.1:" + port) !=
                    std::string::npos,
                  r.output);
  }
  // Nothing the bad runs uploaded stays behind.
  CHECK(fs::is_empty(f.dir / "uploads"));
}

TEST_CASE("the jobmanager refuses an invalid setting, naming it") {
  auto bad = sluice_cli("jobmanager --rest-port 0 -D parallelism.default=many");
  CHECK(bad.exit_code == 2);
  CHECK_MESSAGE(bad.output.find("parallelism.default") != std::string::npos, bad.output);
  auto port = sluice_cli("jobmanager -D rest.port=http");
  CHECK(port.exit_code == 2);
  CHECK_MESSAGE(port.output.find("rest.port") != std::string::npos, port.output);
  for (auto kv : {"state.savepoints.dir=s3://bucket/savepoints", "taskmanager.numberOfTaskSlots=0",
                  "jobmanager.rpc.port=70000", "rest.address=example.org",
                  "heartbeat.interval=soon", "heartbeat.timeout=500ms"}) {
    auto r = sluice_cli(std::string("jobmanager --rest-port 0 -D ") + kv);
    CHECK(r.exit_code == 2);
    auto key = std::string(kv).substr(0, std::string(kv).find('='));
    CHECK_MESSAGE(r.output.find(key) != std::string::npos, r.output);
  }
  auto no_conf = sluice_cli("jobmanager --rest-port 0", "SLUICE_CONF_DIR=/nonexistent/conf ");
  CHECK(no_conf.exit_code == 2);
  CHECK_MESSAGE(no_conf.output.find("SLUICE_CONF_DIR=/nonexistent/conf: no sluice-conf.yaml "
                                    "there") != std::string::npos,
                no_conf.output);
}

TEST_CASE("the documented conf/sluice-conf.yaml is accepted as it is, without a warning") {
  job_manager_fixture f(std::string("exec ") + SLUICE_BINARY + " jobmanager --config " +
                        REPO_CONF + " --rest-port 0 -D jobmanager.rpc.port=0");
  for (const auto& line : f.startup)
    CHECK_MESSAGE(line.find("warning") == std::string::npos, line);
  CHECK(f.startup.front() ==
        "sluice: configuration from " + std::string(REPO_CONF) + "/sluice-conf.yaml");
}

TEST_CASE("sluice-conf.yaml from SLUICE_CONF_DIR configures the jobmanager, -D overrides it, and "
          "state.savepoints.dir is where savepoints go by default") {
  char pattern[] = "/tmp/sluice-conf-test-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  fs::path dir = pattern;
  fs::create_directories(dir / "conf");
  std::ofstream(dir / "conf" / "sluice-conf.yaml")
    << "jobmanager.rpc.address: localhost\n"
    << "jobmanager.rpc.port: 0\n"
    << "rest.address: localhost\n"
    << "rest.port: 0\n"
    << "web.upload.dir: " << (dir / "uploads").string() << "\n"
    << "taskmanager.numberOfTaskSlots: 4\n"
    << "parallelism.default: 2\n"
    << "heartbeat.interval: 5 s\n"
    << "heartbeat.timeout: 30 s\n"
    << "state.backend: hashmap\n"
    << "state.checkpoints.dir: " << (dir / "checkpoints").string() << "\n"
    << "state.savepoints.dir: file://" << (dir / "savepoints").string() << "\n";
  auto env = "SLUICE_CONF_DIR=" + (dir / "conf").string() + " ";
  {
    job_manager_fixture f(env + "exec " + SLUICE_BINARY + " jobmanager -D parallelism.default=1");
    for (const auto& line : f.startup)
      CHECK_MESSAGE(line.find("warning") == std::string::npos, line);
    CHECK(f.startup.front() ==
          "sluice: configuration from " + (dir / "conf" / "sluice-conf.yaml").string());

    auto run = sluice_cli("run -d " + f.m() + TEST_JOBS + " --output " + (dir / "out").string());
    REQUIRE_MESSAGE(run.exit_code == 0, run.output);
    auto id = submitted_id(run.output);
    REQUIRE(tasks_running(f, id, 30s));
    // parallelism.default=1 from -D, not 2 from the file: two tasks.
    CHECK(http_get(f.address, "/jobs/overview").find("\"total\":2") != std::string::npos);

    auto savepoints = (dir / "savepoints").string() + "/";
    auto sp = sluice_cli("savepoint " + f.m() + id);
    REQUIRE_MESSAGE(sp.exit_code == 0, sp.output);
    std::smatch m;
    REQUIRE(std::regex_search(sp.output, m, std::regex("Savepoint completed. Path: (\\S+)")));
    CHECK_MESSAGE(m[1].str().rfind(savepoints, 0) == 0, sp.output);
    CHECK(fs::exists(m[1].str() + "/_metadata"));
    auto stop = sluice_cli("stop " + f.m() + id);
    REQUIRE_MESSAGE(stop.exit_code == 0, stop.output);
    REQUIRE(std::regex_search(stop.output, m, std::regex("Savepoint completed. Path: (\\S+)")));
    CHECK_MESSAGE(m[1].str().rfind(savepoints, 0) == 0, stop.output);
    CHECK(fs::exists(m[1].str() + "/_metadata"));
  }
  // sluice info builds with the same file (parallelism.default: 2), and the
  // JobManager's own keys in it are no warning.
  auto info = sluice_cli(std::string("info ") + TEST_JOBS + " --output /nonexistent", env);
  CHECK_MESSAGE(info.exit_code == 0, info.output);
  CHECK(info.output.find("\"parallelism\":2") != std::string::npos);
  CHECK(info.output.find("warning") == std::string::npos);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}
