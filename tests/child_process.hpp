#pragma once

// A program run as a child process by a test: started with its stdout on a
// pipe, read line by line with a deadline, and killed when the test is done.

#include <doctest/doctest.h>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

class child_process {
public:
  /// Starts `argv[0]` (looked up in PATH) in directory `dir` ("" = here).
  child_process(std::vector<std::string> argv, const std::string& dir = "") {
    int out[2];
    REQUIRE(pipe(out) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      if (!dir.empty() && chdir(dir.c_str()) != 0)
        _exit(126);
      std::vector<char*> args;
      for (auto& a : argv)
        args.push_back(a.data());
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    close(out[1]);
    out_ = out[0];
  }

  ~child_process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (out_ >= 0)
      close(out_);
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// The first line of output (from now on) that contains `marker`, or
  /// nothing if the program exits or `timeout` passes first.
  std::optional<std::string> wait_for_line(const std::string& marker,
                                           std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto nl = buffer_.find('\n');
      while (nl != std::string::npos) {
        auto line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.find(marker) != std::string::npos)
          return line;
        nl = buffer_.find('\n');
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
      if (left <= 0)
        return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0)
        continue;
      char buf[512];
      auto n = ::read(out_, buf, sizeof(buf));
      if (n <= 0)
        return std::nullopt; // exited
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  /// The process id (-1 once it has been waited for).
  pid_t pid() const noexcept { return pid_; }

  /// Everything the program writes until it closes its output (exits), or
  /// nothing if `timeout` passes first.
  std::optional<std::string> read_all(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string out = std::move(buffer_);
    buffer_.clear();
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
      if (left <= 0)
        return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0)
        continue;
      char buf[4096];
      auto n = ::read(out_, buf, sizeof(buf));
      if (n <= 0)
        return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }

  /// Sends `sig` and waits for the exit; the exit code (128 + signal when
  /// killed by one), or nothing after `timeout` (then it is killed).
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout) {
    if (pid_ <= 0)
      return std::nullopt;
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      auto r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        if (WIFEXITED(status))
          return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() > deadline)
        return std::nullopt;
      usleep(10 * 1000);
    }
  }

private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
};

/// The number after `marker` in `line` (e.g. a port after "listening on ").
inline int number_after(const std::string& line, const std::string& marker) {
  auto pos = line.find(marker);
  REQUIRE_MESSAGE(pos != std::string::npos, line);
  return std::stoi(line.substr(pos + marker.size()));
}

} // namespace sluice::test
