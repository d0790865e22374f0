#pragma once

// Helpers for tests that run the cluster as processes: `sluice jobmanager`,
// `sluice taskmanager` and the `sluice` client commands as children on
// loopback (membership.test.cpp, cluster_cli.test.cpp,
// cluster_processes.test.cpp). SLUICE_BINARY names the sluice binary.

#include "child_process.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::test {

/// Waits until `pred` holds, asking every 20 ms; false after `limit`.
template <class Pred>
bool poll(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

/// The JSON body of `GET path` from the REST API on loopback `port`; fails
/// the test unless 200.
inline nlohmann::json get_json(int port, const std::string& path) {
  auto [status, body] = http_get(port, path);
  REQUIRE_MESSAGE(status == 200, path << ": " << status << " " << body);
  return nlohmann::json::parse(body);
}

/// Checks the finished parts in `dir` of test_jobs' bounded_counts_main over
/// `records` records: each key k0..k9 committed its running sums 1..records/10,
/// each exactly once.
inline void check_counts_exactly_once(const std::filesystem::path& dir, long records) {
  std::map<std::string, std::map<long, int>> seen;
  std::string all;
  if (std::filesystem::exists(dir))
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
      if (f.path().filename().string().front() == '.')
        continue;
      std::ifstream in(f.path());
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  std::regex line(R"(\((k[0-9]),([0-9]+)\))");
  for (std::sregex_iterator i(all.begin(), all.end(), line), end; i != end; ++i)
    ++seen[(*i)[1].str()][std::stol((*i)[2].str())];
  REQUIRE(seen.size() == 10);
  for (const auto& [key, values] : seen) {
    CHECK_MESSAGE(values.size() == static_cast<size_t>(records / 10), key);
    long duplicated = 0;
    for (const auto& [v, n] : values)
      duplicated += n != 1;
    CHECK_MESSAGE(duplicated == 0, key << " has " << duplicated << " values committed twice");
    CHECK(values.begin()->first == 1);
    CHECK(values.rbegin()->first == records / 10);
  }
}

/// `s` quoted for /bin/sh.
inline std::string sh_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// `args` run by the shell with stderr on stdout; `exec`, so the child's pid
/// is the program's. `env` (e.g. "SLUICE_CONF_DIR= ") prefixes the command.
inline std::unique_ptr<child_process> spawn_shell(const std::vector<std::string>& args,
                                                  const std::string& env = "") {
  std::string cmd = env + "exec";
  for (const auto& a : args)
    cmd += " " + sh_quoted(a);
  return std::make_unique<child_process>(
    std::vector<std::string>{"/bin/sh", "-c", cmd + " 2>&1"});
}

/// A command's exit code and its stdout and stderr, interleaved.
struct cli_result {
  int exit_code = -1;
  std::string output;
};

/// Runs `command` with the shell to its end, stderr on stdout.
inline cli_result run_shell(const std::string& command) {
  cli_result r;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    r.output.append(buf, n);
  int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

/// Runs `sluice <args>` to its end; `env` (e.g. "SLUICE_CONF_DIR=/x ")
/// prefixes the shell command.
inline cli_result sluice_cli(const std::string& args, const std::string& env = "") {
  return run_shell(env + std::string(SLUICE_BINARY) + " " + args);
}

/// The job id in "Job has been submitted with JobID <id>".
inline std::string submitted_id(const std::string& output) {
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(output, m, std::regex("submitted with JobID ([0-9a-f]{32})")),
                  output);
  return m[1].str();
}

/// Every line of the finished part files in `dir` (hidden parts skipped).
inline std::string finished_parts(const std::filesystem::path& dir) {
  std::string all;
  if (!std::filesystem::exists(dir))
    return all;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().filename().string().front() == '.')
      continue;
    std::ifstream in(f.path());
    all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return all;
}

/// The final count per word in "(word,count)" lines (an optional "N> "
/// subtask prefix is skipped): the largest count seen.
inline std::map<std::string, long> final_counts(const std::string& lines) {
  std::map<std::string, long> out;
  std::regex line(R"(\(([a-z0-9]+),([0-9]+)\))");
  for (std::sregex_iterator i(lines.begin(), lines.end(), line), end; i != end; ++i) {
    auto& c = out[(*i)[1].str()];
    c = std::max(c, std::stol((*i)[2].str()));
  }
  return out;
}

/// A JobManager on a free REST port and the given RPC port (0 = any), with
/// short heartbeats (200 ms, timeout 1 s) and `extra` -D settings.
struct job_manager_process {
  std::unique_ptr<child_process> proc;
  int rest_port = 0;
  int rpc_port = 0;
  std::filesystem::path uploads;

  explicit job_manager_process(int rpc, const std::vector<std::string>& extra = {}) {
    using namespace std::chrono_literals;
    char pattern[] = "/tmp/sluice-jobmanager-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    uploads = pattern;
    std::vector<std::string> args{SLUICE_BINARY,
                                  "jobmanager",
                                  "--rest-port",
                                  "0",
                                  "-D",
                                  "jobmanager.rpc.port=" + std::to_string(rpc),
                                  "-D",
                                  "heartbeat.interval=200 ms",
                                  "-D",
                                  "heartbeat.timeout=1 s",
                                  "-D",
                                  "web.upload.dir=" + uploads.string()};
    for (const auto& e : extra) {
      args.push_back("-D");
      args.push_back(e);
    }
    proc = spawn_shell(args, "SLUICE_CONF_DIR= ");
    auto rest = proc->wait_for_line("REST API on http://127.0.0.1:", 30s);
    REQUIRE_MESSAGE(rest, "the jobmanager did not start");
    rest_port = number_after(*rest, "127.0.0.1:");
    auto rpc_line = proc->wait_for_line("TaskManagers register at ", 10s);
    REQUIRE(rpc_line);
    // "... register at <address>:<port>"
    rpc_port = std::stoi(rpc_line->substr(rpc_line->rfind(':') + 1));
  }
  ~job_manager_process() {
    using namespace std::chrono_literals;
    if (proc->pid() > 0)
      CHECK(proc->stop(SIGTERM, 30s) == 0);
    std::error_code ec;
    std::filesystem::remove_all(uploads, ec);
  }
  /// `-m` for the client commands.
  std::string m() const { return "-m 127.0.0.1:" + std::to_string(rest_port) + " "; }
};

/// A TaskManager registering at `rpc_port` as `id` with `slots` slots, the
/// heartbeats of job_manager_process and `extra` -D settings; waits until it
/// starts registering.
inline std::unique_ptr<child_process> task_manager_process(
  int rpc_port, const std::string& id, int slots, const std::vector<std::string>& extra = {}) {
  using namespace std::chrono_literals;
  std::vector<std::string> args{SLUICE_BINARY, "taskmanager", "-D",
                                "jobmanager.rpc.port=" + std::to_string(rpc_port), "-D",
                                "taskmanager.resource-id=" + id, "-D",
                                "taskmanager.numberOfTaskSlots=" + std::to_string(slots), "-D",
                                "heartbeat.interval=200 ms", "-D", "heartbeat.timeout=1 s"};
  for (const auto& e : extra) {
    args.push_back("-D");
    args.push_back(e);
  }
  auto tm = spawn_shell(args, "SLUICE_CONF_DIR= ");
  REQUIRE_MESSAGE(tm->wait_for_line("registering at the JobManager", 30s),
                  "the taskmanager did not start");
  return tm;
}

} // namespace sluice::test
