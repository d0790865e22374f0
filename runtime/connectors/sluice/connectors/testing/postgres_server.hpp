#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>

/// Test support: a throwaway PostgreSQL server for connector and
/// integration tests. Header-only, so the connectors library does not carry
/// it.
namespace sluice::connectors::testing {

/// A PostgreSQL server of its own, started in a temporary directory on
/// 127.0.0.1 and a free port, with trust authentication for user
/// "postgres" and prepared transactions enabled; stopped and removed when
/// the object goes away.
///
/// PostgreSQL refuses to run as root: as root the directory is given to the
/// "postgres" user and the server binaries run through `runuser -u postgres`.
/// Binaries come from $SLUICE_PG_BIN or /usr/lib/postgresql/15/bin.
/// Servers live in $SLUICE_PG_TMPDIR, /dev/shm or the temp directory; the
/// data directory is a copy of a cluster initialized once and kept there as
/// sluice-pg-template-<uid>-<hash> (about 30 MB) for later runs.
/// Not thread-safe; one object per server.
class postgres_server {
public:
  /// The directory holding initdb, pg_ctl and postgres.
  static std::string bin_dir() {
    const char* env = std::getenv("SLUICE_PG_BIN");
    return env != nullptr && *env != '\0' ? env : "/usr/lib/postgresql/15/bin";
  }
  /// True when the server binaries are installed (tests skip otherwise).
  static bool available() {
    namespace fs = std::filesystem;
    auto bin = fs::path(bin_dir());
    return fs::exists(bin / "initdb") && fs::exists(bin / "pg_ctl") && fs::exists(bin / "postgres");
  }

  /// initdb and start; throws std::runtime_error with the server's log on
  /// failure.
  explicit postgres_server(int max_prepared_transactions = 64)
      : max_prepared_(max_prepared_transactions) {
    std::string tmpl = (scratch_dir() / "sluice-pg-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr)
      throw std::runtime_error("postgres_server: cannot create a temporary directory");
    dir_ = tmpl;
    as_root_ = geteuid() == 0;
    if (as_root_) {
      const passwd* pw = getpwnam("postgres");
      if (pw == nullptr) {
        remove_dir();
        throw std::runtime_error("postgres_server: running as root needs a 'postgres' user");
      }
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        remove_dir();
        throw std::runtime_error("postgres_server: cannot chown " + dir_);
      }
    }
    try {
      // initdb takes most of a second (several on a busy machine); copying
      // a cluster initialized once takes a tenth of that.
      auto from = template_cluster();
      if (from.empty() || run_quietly("cp -a " + quote(from) + " " + quote(data_dir())) != 0)
        run("initdb", initdb_command(data_dir()));
      // The port is free when picked; another process may take it before
      // the server binds it, so try a few.
      for (int attempt = 0;; ++attempt) {
        port_ = free_port();
        try {
          start();
          break;
        } catch (const std::runtime_error&) {
          if (attempt == 2)
            throw;
        }
      }
    } catch (...) {
      remove_dir();
      throw;
    }
  }

  ~postgres_server() {
    if (running_)
      run_quietly(bin("pg_ctl") + " -D " + quote(data_dir()) + " -m immediate -w stop");
    remove_dir();
  }
  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] const std::string& directory() const noexcept { return dir_; }
  /// A libpq connection string for `dbname` as user postgres over TCP.
  [[nodiscard]] std::string connection(const std::string& dbname = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname +
           " user=postgres connect_timeout=10";
  }

  /// Fast shutdown and start again on the same port (prepared transactions
  /// survive it, as they survive a crash).
  void restart() {
    run("pg_ctl stop", bin("pg_ctl") + " -D " + quote(data_dir()) + " -m fast -w stop");
    running_ = false;
    start();
  }

private:
  std::string data_dir() const { return dir_ + "/data"; }
  std::string log_file() const { return dir_ + "/server.log"; }
  static std::string bin(const std::string& name) { return quote(bin_dir() + "/" + name); }
  static std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s)
      out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }

  /// Where servers live: $SLUICE_PG_TMPDIR, else /dev/shm (memory: a
  /// cluster copies in a tenth of the time it takes on disk), else the
  /// temp directory.
  static std::filesystem::path scratch_dir() {
    namespace fs = std::filesystem;
    if (const char* env = std::getenv("SLUICE_PG_TMPDIR"); env != nullptr && *env != '\0')
      return env;
    std::error_code ec;
    if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK | X_OK) == 0)
      return "/dev/shm";
    return fs::temp_directory_path();
  }

  static std::string initdb_command(const std::string& data) {
    return bin("initdb") + " -D " + quote(data) +
           " -U postgres --auth=trust -E UTF8 --no-sync --no-instructions --wal-segsize=1";
  }

  /// A freshly initialized, never started cluster to copy, made once per
  /// user and binary directory under the temp directory and shared by all
  /// test processes (a lock file serializes its creation); "" if it cannot
  /// be made.
  std::string template_cluster() const {
    namespace fs = std::filesystem;
    auto base = scratch_dir() / ("sluice-pg-template-" + std::to_string(geteuid()) + "-" +
                                 std::to_string(std::hash<std::string>{}(bin_dir())));
    int lock = ::open((base.string() + ".lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (lock < 0)
      return "";
    ::flock(lock, LOCK_EX);
    std::string out;
    std::error_code ec;
    if (fs::exists(base / "ready", ec)) {
      out = (base / "data").string();
    } else {
      fs::remove_all(base, ec);
      fs::create_directory(base, ec);
      bool owned = !ec;
      if (owned && as_root_) {
        const passwd* pw = getpwnam("postgres");
        owned = pw != nullptr && chown(base.c_str(), pw->pw_uid, pw->pw_gid) == 0;
      }
      if (owned && run_quietly(initdb_command((base / "data").string())) == 0) {
        std::ofstream(base / "ready") << "initdb done\n";
        out = (base / "data").string();
      }
    }
    ::flock(lock, LOCK_UN);
    ::close(lock);
    return out;
  }

  void start() {
    std::string opts = "-c listen_addresses=127.0.0.1 -c port=" + std::to_string(port_) +
                       " -c unix_socket_directories=" + dir_ +
                       " -c max_prepared_transactions=" + std::to_string(max_prepared_) +
                       " -c max_connections=40 -c shared_buffers=16MB -c fsync=off";
    run("pg_ctl start", bin("pg_ctl") + " -D " + quote(data_dir()) + " -l " + quote(log_file()) +
                            " -w -t 30 -o " + quote(opts) + " start");
    running_ = true;
  }

  /// Runs `cmd` (as postgres when root), output into <dir>/commands.log.
  int run_quietly(const std::string& cmd) const {
    std::string full = as_root_ ? "runuser -u postgres -- " + cmd : cmd;
    return std::system((full + " >>" + quote(dir_ + "/commands.log") + " 2>&1").c_str());
  }
  void run(const std::string& what, const std::string& cmd) const {
    if (run_quietly(cmd) != 0)
      throw std::runtime_error("postgres_server: " + what + " failed:\n" +
                               tail(dir_ + "/commands.log") + tail(log_file()));
  }
  static std::string tail(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto s = ss.str();
    return s.size() > 2000 ? s.substr(s.size() - 2000) : s;
  }

  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
      throw std::runtime_error("postgres_server: socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("postgres_server: cannot find a free port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  void remove_dir() noexcept {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  int max_prepared_;
  std::string dir_;
  bool as_root_ = false;
  bool running_ = false;
  int port_ = 0;
};

} // namespace sluice::connectors::testing
