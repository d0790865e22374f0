#pragma once

// tests/compat/js/server.js, a remote-function server on the official
// StateFun JS SDK, run with node for the duration of a test.

#include "child_process.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>

namespace sluice::test {

class js_server {
public:
  js_server() {
    auto line = node_.wait_for_line("listening on ", std::chrono::seconds{30});
    REQUIRE_MESSAGE(line, "node did not report its port in 30 s (is node installed? is the JS SDK "
                          "in tests/compat/js/node_modules? run scripts/setup.sh)");
    port_ = static_cast<uint16_t>(number_after(*line, "listening on "));
  }

  uint16_t port() const { return port_; }

private:
  static std::string checked_dir() {
    std::string dir = SLUICE_COMPAT_JS_DIR;
    REQUIRE_MESSAGE(std::filesystem::exists(dir + "/node_modules/apache-flink-statefun"),
                    "the JS SDK is not installed: run scripts/setup.sh");
    return dir;
  }

  child_process node_{{"node", "server.js", "0"}, checked_dir()};
  uint16_t port_ = 0;
};

} // namespace sluice::test
