#include "sluice/remote/settings_file.hpp"

#include "sluice/remote/errors.hpp"

#include <doctest/doctest.h>

using namespace sluice::remote;

TEST_SUITE("remote.settings_file") {

TEST_CASE("flat and nested keys flatten to Flink's dotted keys") {
  auto s = parse_settings("parallelism.default: 4\n"
                          "execution:\n"
                          "  checkpointing:\n"
                          "    interval: 10 s\n"
                          "    mode: EXACTLY_ONCE\n"
                          "state.backend.type: rocksdb\n",
                          "conf.yaml");
  REQUIRE(s);
  CHECK(s->size() == 4);
  CHECK(s->at("parallelism.default") == "4");
  CHECK(s->at("execution.checkpointing.interval") == "10 s");
  CHECK(s->at("execution.checkpointing.mode") == "EXACTLY_ONCE");
  CHECK(s->at("state.backend.type") == "rocksdb");
  auto empty = parse_settings("", "empty.yaml");
  REQUIRE(empty);
  CHECK(empty->empty());
}

TEST_CASE("bad settings files are refused with the line") {
  auto error_of = [](const std::string& yaml) {
    auto s = parse_settings(yaml, "conf.yaml");
    REQUIRE_FALSE(s);
    return describe(s.error());
  };
  CHECK(error_of("a.b: 1\na:\n  b: 2\n") == "conf.yaml:3:3: 'a.b' is set twice");
  CHECK(error_of("hosts:\n  - a\n  - b\n").rfind("conf.yaml:2:3: 'hosts': lists", 0) == 0);
  CHECK(error_of("x: [1, 2").find("conf.yaml:1:") == 0);
  CHECK(error_of("- 1\n- 2\n") == "conf.yaml:1:1: settings must be a map of keys to values");
  CHECK(error_of("rest.port:\n") == "conf.yaml:1:1: 'rest.port' has no value");
}

TEST_CASE("-D overrides split at the first '='") {
  auto kv = parse_setting_override("restart-strategy.fixed-delay.delay=10 s");
  REQUIRE(kv);
  CHECK(kv->first == "restart-strategy.fixed-delay.delay");
  CHECK(kv->second == "10 s");
  CHECK_FALSE(parse_setting_override("novalue"));
  CHECK_FALSE(parse_setting_override("=x"));
}

TEST_CASE("a process takes its own keys out of the settings and leaves the rest") {
  std::map<std::string, std::string> settings{{"taskmanager.numberOfTaskSlots", "4"},
                                              {"parallelism.default", "2"}};
  CHECK(take_setting(settings, "taskmanager.numberOfTaskSlots") == std::optional<std::string>("4"));
  CHECK_FALSE(take_setting(settings, "taskmanager.numberOfTaskSlots"));
  CHECK(settings == std::map<std::string, std::string>{{"parallelism.default", "2"}});
}

}
