// The main of every doctest binary: doctest's own, plus a watchdog.
//
// ctest kills a test that outlives its TIMEOUT and shows nothing of where it
// hung. The watchdog fires first (SLUICE_TEST_WATCHDOG_S seconds, 100 by
// default, below the shortest TIMEOUT of 120; 0 turns it off): it names the running test
// case, prints every thread's stack (through gdb, when installed) to stderr,
// and aborts, so a hang on a CI machine leaves its stacks in the log.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>

namespace {

std::mutex current_mtx;
std::string current_test = "(none started)";

struct watchdog_listener : doctest::IReporter {
  explicit watchdog_listener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData& tc) override {
    std::lock_guard<std::mutex> guard(current_mtx);
    current_test = tc.m_name;
  }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("sluice-watchdog", 1, watchdog_listener);

void start_watchdog() {
  long seconds = 100;
  if (const char* s = std::getenv("SLUICE_TEST_WATCHDOG_S")) {
    char* end = nullptr;
    long v = std::strtol(s, &end, 10);
    if (end == s || *end != '\0')
      std::fprintf(stderr, "watchdog: SLUICE_TEST_WATCHDOG_S='%s' is not a number of seconds; "
                           "using %ld\n", s, seconds);
    else
      seconds = v; // 0 or less: no watchdog
  }
  if (seconds <= 0)
    return;
  std::thread([seconds] {
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    std::string name;
    {
      std::lock_guard<std::mutex> guard(current_mtx);
      name = current_test;
    }
    std::fprintf(stderr, "\nwatchdog: still running after %ld s in test case \"%s\"; stacks:\n",
                 seconds, name.c_str());
    std::fflush(stderr);
    auto cmd = "command -v gdb >/dev/null && gdb -p " + std::to_string(::getpid()) +
               " -batch -nx -ex 'set pagination off' -ex 'thread apply all bt' 1>&2 2>/dev/null";
    if (std::system(cmd.c_str()) != 0)
      std::fprintf(stderr, "watchdog: (no stacks: gdb is missing or cannot attach)\n");
    std::fflush(stderr);
    std::abort();
  }).detach();
}

} // namespace

int main(int argc, char** argv) {
  start_watchdog();
  doctest::Context context(argc, argv);
  return context.run();
}
