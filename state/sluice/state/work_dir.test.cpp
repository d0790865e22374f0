#include "sluice/state/work_dir.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

using namespace sluice::state;
namespace fs = std::filesystem;

namespace {

/// A pid no process has any more: a child's, after it exited and was reaped.
pid_t dead_pid() {
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0)
    ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

/// `<prefix>-<host>-` as process_dir_name spells it for this host.
std::string host_start(const std::string& prefix) {
  auto mine = process_dir_name(prefix);
  return mine.substr(0, mine.rfind('-') + 1);
}

void make_dir_with_file(const fs::path& dir) {
  fs::create_directories(dir / "instance");
  std::ofstream(dir / "instance" / "000001.sst") << "data";
}

struct temp_root {
  fs::path path =
      fs::temp_directory_path() / ("sluice-work-dir-test-" + std::to_string(::getpid()));
  temp_root() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_root() { fs::remove_all(path); }
};

} // namespace

TEST_CASE("a process directory names the prefix, this host and this pid") {
  auto name = process_dir_name("sluice-rocksdb");
  CHECK(name.rfind("sluice-rocksdb-", 0) == 0);
  auto pid = "-" + std::to_string(::getpid());
  CHECK(name.size() > pid.size());
  CHECK(name.compare(name.size() - pid.size(), pid.size(), pid) == 0);
  auto host = name.substr(std::string("sluice-rocksdb-").size(),
                          name.size() - pid.size() - std::string("sluice-rocksdb-").size());
  CHECK_FALSE(host.empty());
  CHECK(host.find('-') == std::string::npos);
}

TEST_CASE("only directories of gone processes on this host are removed") {
  temp_root root;
  auto start = host_start("sluice-test");
  auto dead = std::to_string(dead_pid());
  make_dir_with_file(root.path / (start + dead));
  make_dir_with_file(root.path / (start + dead + "-XyZ123"));        // a suffix, as mkdtemp adds
  make_dir_with_file(root.path / process_dir_name("sluice-test"));   // this process
  make_dir_with_file(root.path / (start + "1"));                     // pid 1 is alive
  make_dir_with_file(root.path / ("sluice-test-otherhost-" + dead)); // another host
  make_dir_with_file(root.path / ("sluice-other-" + start.substr(12) + dead)); // another prefix
  make_dir_with_file(root.path / (start + dead + "x"));                        // not a pid
  make_dir_with_file(root.path / (start + "-" + dead));
  std::ofstream(root.path / (start + "2")) << "a file, not a directory";

  CHECK(remove_stale_process_dirs(root.path, "sluice-test") == 2);
  CHECK_FALSE(fs::exists(root.path / (start + dead)));
  CHECK_FALSE(fs::exists(root.path / (start + dead + "-XyZ123")));
  CHECK(fs::exists(root.path / process_dir_name("sluice-test") / "instance" / "000001.sst"));
  CHECK(fs::exists(root.path / (start + "1")));
  CHECK(fs::exists(root.path / ("sluice-test-otherhost-" + dead)));
  CHECK(fs::exists(root.path / ("sluice-other-" + start.substr(12) + dead)));
  CHECK(fs::exists(root.path / (start + dead + "x")));
  CHECK(fs::exists(root.path / (start + "-" + dead)));
  CHECK(fs::exists(root.path / (start + "2")));
  CHECK(remove_stale_process_dirs(root.path / "missing", "sluice-test") == 0);
}

TEST_CASE("a directory whose LOCK a live process holds is kept, whatever its pid") {
  // A live process in another PID namespace shows up as a pid that does
  // not exist here; its RocksDB instances hold their LOCK files.
  temp_root root;
  auto dir = root.path / (host_start("sluice-test") + std::to_string(dead_pid()));
  make_dir_with_file(dir);
  auto lock_file = dir / "instance" / "LOCK";
  std::ofstream(lock_file).flush();
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t holder = ::fork();
  REQUIRE(holder >= 0);
  if (holder == 0) {
    int fd = ::open(lock_file.c_str(), O_RDWR);
    struct flock l = {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    char ok = (fd >= 0 && ::fcntl(fd, F_SETLK, &l) == 0) ? '1' : '0';
    (void)::write(ready[1], &ok, 1);
    for (;;)
      ::pause();
  }
  char ok = '0';
  REQUIRE(::read(ready[0], &ok, 1) == 1);
  ::close(ready[0]);
  ::close(ready[1]);
  REQUIRE(ok == '1');
  CHECK(remove_stale_process_dirs(root.path, "sluice-test") == 0);
  CHECK(fs::exists(lock_file));
  ::kill(holder, SIGKILL);
  int status = 0;
  ::waitpid(holder, &status, 0);
  CHECK(remove_stale_process_dirs(root.path, "sluice-test") == 1);
  CHECK_FALSE(fs::exists(dir));
}

TEST_CASE("make_process_dir sweeps, then makes a fresh directory of this process") {
  temp_root root;
  auto start = host_start("sluice-test");
  auto stale = root.path / (start + std::to_string(dead_pid()) + "-abcdef");
  make_dir_with_file(stale);
  std::error_code ec;
  auto under = root.path / "not" / "yet";
  auto a = make_process_dir(under, "sluice-test", ec);
  REQUIRE_FALSE(ec);
  auto b = make_process_dir(root.path, "sluice-test", ec);
  REQUIRE_FALSE(ec);
  CHECK(fs::is_directory(a));
  CHECK(a.parent_path() == under);
  CHECK(a.filename().string().rfind(process_dir_name("sluice-test") + "-", 0) == 0);
  CHECK(b.filename().string().rfind(process_dir_name("sluice-test") + "-", 0) == 0);
  CHECK(a.filename() != b.filename());
  CHECK_FALSE(fs::exists(stale));
  // A root that cannot be made: an empty path and the reason.
  auto bad = make_process_dir("/proc/sluice-no-such-root", "sluice-test", ec);
  CHECK(bad.empty());
  CHECK(static_cast<bool>(ec));
}
