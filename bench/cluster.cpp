// Startup, idle memory and loss detection of the standalone cluster's
// daemons: `sluice jobmanager` and one `sluice taskmanager` as child
// processes on loopback (heartbeat.interval 200 ms, timeout 1 s). Prints:
//   startup jobmanager: T ms    process start to REST answering
//   startup taskmanager: T ms   process start to listed by GET /taskmanagers
//   startup: T ms               the larger of the two
//   idle rss jobmanager: N MB   VmRSS after 2 s idle
//   idle rss taskmanager: N MB
//   detection: T ms             kill -9 of the TaskManager to its disappearance
//   detection hung: T ms        SIGSTOP of a TaskManager to its disappearance
//                               (no closed connection: the heartbeat timeout)
//   in-process: N records/s     bench/cluster_job (keyed sums, parallelism 4)
//                               on the JobManager's own mini-cluster (no
//                               TaskManager registered)
//   cross-process: N records/s  the same job on two TaskManagers of 2 slots
//   recovery: T ms              kill -9 of a TaskManager running the job to
//                               the job's next completed checkpoint (200 ms
//                               interval) on the remaining TaskManagers
// Usage: cluster [records] (default 20000000).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

/// Starts `args` with its output appended to `log`.
pid_t start(std::vector<std::string> args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    unsetenv("SLUICE_CONF_DIR");
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

/// The body of GET `path`, empty unless 200.
std::string get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0)
        reply.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  auto body = reply.find("\r\n\r\n");
  if (reply.rfind("HTTP/1.1 200", 0) != 0 || body == std::string::npos)
    return {};
  return reply.substr(body + 4);
}

/// Milliseconds from `since` until `done()` holds (polled every ms), or -1
/// after 20 s.
template <class Pred>
double until(steady::time_point since, Pred done) {
  while (!done()) {
    if (steady::now() - since > 20s)
      return -1;
    std::this_thread::sleep_for(1ms);
  }
  return std::chrono::duration<double, std::milli>(steady::now() - since).count();
}

double rss_mb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      status >> kb;
      return kb / 1024;
    }
    std::getline(status, key);
  }
  return -1;
}

void stop(pid_t pid, int sig) {
  kill(pid, sig);
  waitpid(pid, nullptr, 0);
}

/// What `command` printed on stdout.
std::string output_of(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (!p)
    return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  pclose(p);
  return out;
}

/// The number after `"key":` in a JSON body, or -1.
double json_number(const std::string& body, const std::string& key) {
  auto at = body.find("\"" + key + "\":");
  return at == std::string::npos ? -1 : std::atof(body.c_str() + at + key.size() + 3);
}

/// The job id `sluice run -d` printed, or "".
std::string submit(const std::string& bin, int rest, const std::string& args) {
  auto out = output_of(bin + " run -d -m 127.0.0.1:" + std::to_string(rest) + " " + args +
                       " 2>&1");
  auto at = out.find("JobID ");
  return at == std::string::npos ? std::string() : out.substr(at + 6, 32);
}

/// Runs bench/cluster_job with `records` at parallelism 4 to its end:
/// records/s over the job's duration, or -1.
double keyed_throughput(const std::string& bin, int rest, uint64_t records) {
  auto id = submit(bin, rest, "-p 4 " + std::string(CLUSTER_JOB) + " --records " +
                                std::to_string(records));
  if (id.empty())
    return -1;
  std::string job;
  auto t0 = steady::now();
  while ((job = get(rest, "/jobs/" + id)).find("\"state\":\"FINISHED\"") == std::string::npos) {
    if (job.find("\"state\":\"FAILED\"") != std::string::npos || steady::now() - t0 > 300s)
      return -1;
    std::this_thread::sleep_for(20ms);
  }
  double ms = json_number(job, "duration");
  return ms > 0 ? static_cast<double>(records) * 1000.0 / ms : -1;
}

} // namespace

int main(int argc, char** argv) {
  const std::string bin = SLUICE_BINARY;
  const uint64_t records = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20000000;
  const std::vector<std::string> hb = {"-D", "heartbeat.interval=200 ms", "-D",
                                       "heartbeat.timeout=1 s"};
  int rest = free_port(), rpc = free_port();
  char dir[] = "/tmp/sluice-bench-cluster-XXXXXX";
  if (!mkdtemp(dir))
    return 1;
  std::vector<std::string> jm_args = {bin, "jobmanager", "--rest-port", std::to_string(rest), "-D",
                                      "jobmanager.rpc.port=" + std::to_string(rpc), "-D",
                                      std::string("web.upload.dir=") + dir, "-D",
                                      std::string("state.checkpoints.dir=") + dir + "/chk", "-D",
                                      "restart-strategy.type=fixed-delay", "-D",
                                      "restart-strategy.fixed-delay.delay=0 ms", "-D",
                                      "state.backend=hashmap"};
  jm_args.insert(jm_args.end(), hb.begin(), hb.end());
  auto log = [&](const std::string& name) { return std::string(dir) + "/" + name + ".log"; };
  auto tm_args = [&](const std::string& id, int slots = 1) {
    std::vector<std::string> a = {bin, "taskmanager", "-D",
                                  "jobmanager.rpc.port=" + std::to_string(rpc), "-D",
                                  "taskmanager.resource-id=" + id, "-D",
                                  "taskmanager.numberOfTaskSlots=" + std::to_string(slots)};
    a.insert(a.end(), hb.begin(), hb.end());
    return a;
  };
  auto listed = [&](const std::string& id) {
    return get(rest, "/taskmanagers").find("\"id\":\"" + id + "\"") != std::string::npos;
  };

  auto t0 = steady::now();
  pid_t jm = start(jm_args, log("jobmanager"));
  double jm_ms = until(t0, [&] { return !get(rest, "/overview").empty(); });
  auto t1 = steady::now();
  pid_t tm = start(tm_args("bench-tm"), log("bench-tm"));
  double tm_ms = until(t1, [&] { return listed("bench-tm"); });
  std::printf("startup jobmanager: %.1f ms\n", jm_ms);
  std::printf("startup taskmanager: %.1f ms\n", tm_ms);
  std::printf("startup: %.1f ms\n", std::max(jm_ms, tm_ms));

  std::this_thread::sleep_for(2s);
  std::printf("idle rss jobmanager: %.1f MB\n", rss_mb(jm));
  std::printf("idle rss taskmanager: %.1f MB\n", rss_mb(tm));

  auto t2 = steady::now();
  kill(tm, SIGKILL);
  double detect = until(t2, [&] { return !listed("bench-tm"); });
  waitpid(tm, nullptr, 0);
  std::printf("detection: %.1f ms\n", detect);

  pid_t hung = start(tm_args("bench-hung"), log("bench-hung"));
  until(steady::now(), [&] { return listed("bench-hung"); });
  auto t3 = steady::now();
  kill(hung, SIGSTOP);
  double hung_ms = until(t3, [&] { return !listed("bench-hung"); });
  std::printf("detection hung: %.1f ms\n", hung_ms);
  kill(hung, SIGKILL);
  kill(hung, SIGCONT);
  waitpid(hung, nullptr, 0);
  until(steady::now(), [&] { return !listed("bench-hung"); });

  // No TaskManager is registered: the job runs inside the JobManager.
  bool failed = false;
  auto report = [&](const char* label, double value, const char* unit) {
    failed = failed || value < 0;
    std::printf("%s: %.*f %s\n", label, unit[0] == 'm' ? 1 : 0, value, unit);
  };
  report("in-process", keyed_throughput(bin, rest, records), "records/s");
  pid_t a = start(tm_args("bench-a", 2), log("bench-a"));
  pid_t b = start(tm_args("bench-b", 2), log("bench-b"));
  until(steady::now(), [&] { return listed("bench-a") && listed("bench-b"); });
  report("cross-process", keyed_throughput(bin, rest, records), "records/s");

  // Recovery: an endless checkpointed job on bench-a and bench-b, bench-c
  // standing by; bench-a is killed after three checkpoints.
  pid_t c = start(tm_args("bench-c", 2), log("bench-c"));
  until(steady::now(), [&] { return listed("bench-c"); });
  auto id = submit(bin, rest, "-p 4 " + std::string(CLUSTER_JOB) + " --records " +
                                std::to_string(~uint64_t{0} >> 1) + " --interval 200");
  auto completed = [&] {
    return json_number(get(rest, "/jobs/" + id + "/checkpoints"), "completed");
  };
  double recovery = -1;
  if (!id.empty() && until(steady::now(), [&] { return completed() >= 3; }) >= 0) {
    double before = completed();
    auto t4 = steady::now();
    stop(a, SIGKILL);
    recovery = until(t4, [&] { return completed() > before; });
  } else {
    stop(a, SIGKILL);
  }
  report("recovery", recovery, "ms");
  output_of(bin + " cancel -m 127.0.0.1:" + std::to_string(rest) + " " + id + " 2>&1");
  stop(b, SIGTERM);
  stop(c, SIGTERM);
  stop(jm, SIGTERM);
  if (failed) {
    std::printf("failed: the daemons' logs are in %s\n", dir);
    return 1;
  }
  std::string rm = std::string("rm -rf ") + dir;
  return std::system(rm.c_str()) == 0 ? 0 : 1;
}
