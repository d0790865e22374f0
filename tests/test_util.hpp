#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace sluice::test {

/// `v` sorted: compares collected outputs whose order across subtasks varies.
template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// A fresh directory under /tmp, removed when the object goes.
class temp_dir {
public:
  temp_dir() {
    char tmpl[] = "/tmp/sluice-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~temp_dir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

/// Waits until `pred` holds, polling; false after `timeout`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// A "Vm...:" figure of this process from /proc/self/status, in KiB.
inline long proc_status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  return -1;
}

/// Peak resident set size of this process in KiB.
inline long peak_rss_kib() { return proc_status_kib("VmHWM"); }

/// Current resident set size of this process in KiB.
inline long rss_kib() { return proc_status_kib("VmRSS"); }

} // namespace sluice::test
