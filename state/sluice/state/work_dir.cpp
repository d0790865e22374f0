#include "sluice/state/work_dir.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <system_error>
#include <fcntl.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

namespace sluice::state {

namespace {

std::string host_part() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0')
    return "localhost";
  std::string host(buf);
  for (auto& c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_')
      c = '_';
  return host;
}

/// The pid in `name` when it is `<start><digits>` or `<start><digits>-...`,
/// else 0.
pid_t pid_in(const std::string& name, const std::string& start) {
  if (name.size() <= start.size() || name.compare(0, start.size(), start) != 0)
    return 0;
  size_t end = start.size();
  while (end < name.size() && std::isdigit(static_cast<unsigned char>(name[end])))
    ++end;
  if (end == start.size() || end - start.size() > 9 || (end < name.size() && name[end] != '-'))
    return 0;
  return static_cast<pid_t>(std::strtol(name.c_str() + start.size(), nullptr, 10));
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

/// Whether some process holds a lock on `file`, or it cannot be checked.
bool locked(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno != ENOENT;
  struct flock probe = {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  bool held = ::fcntl(fd, F_GETLK, &probe) != 0 || probe.l_type != F_UNLCK;
  ::close(fd);
  return held;
}

bool any_lock_held(const std::filesystem::path& dir) {
  std::error_code ec;
  if (locked(dir / "LOCK"))
    return true;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_directory(ec) && !e.is_symlink(ec) && locked(e.path() / "LOCK"))
      return true;
  return static_cast<bool>(ec); // unreadable: keep it
}

} // namespace

std::string process_dir_name(std::string_view prefix) {
  return std::string(prefix) + "-" + host_part() + "-" + std::to_string(::getpid());
}

std::size_t remove_stale_process_dirs(const std::filesystem::path& root, std::string_view prefix) {
  auto start = std::string(prefix) + "-" + host_part() + "-";
  std::size_t removed = 0;
  std::error_code ec;
  std::filesystem::directory_iterator it(root, ec);
  if (ec)
    return 0;
  for (const auto& e : it) {
    std::error_code entry_ec;
    if (!e.is_directory(entry_ec) || e.is_symlink(entry_ec))
      continue;
    auto pid = pid_in(e.path().filename().string(), start);
    if (pid <= 0 || pid == ::getpid() || process_exists(pid) || any_lock_held(e.path()))
      continue;
    std::filesystem::remove_all(e.path(), entry_ec);
    if (!entry_ec)
      ++removed;
  }
  return removed;
}

std::filesystem::path make_process_dir(const std::filesystem::path& root,
                                       std::string_view prefix, std::error_code& ec) {
  ec.clear();
  std::filesystem::create_directories(root, ec);
  if (ec)
    return {};
  (void)remove_stale_process_dirs(root, prefix);
  auto pattern = (root / (process_dir_name(prefix) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    ec = std::error_code(errno, std::generic_category());
    return {};
  }
  return pattern;
}

} // namespace sluice::state
