#include "sluice/runtime/settings.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using namespace sluice::runtime;
using namespace std::chrono_literals;

TEST_SUITE("runtime.settings") {

TEST_CASE("Flink keys set the configuration in Flink's value formats") {
  configuration c;
  auto warnings = apply_settings(c, {{"parallelism.default", "3"},
                                     {"pipeline.max-parallelism", "256"},
                                     {"execution.buffer-timeout.interval", "5 ms"},
                                     {"state.backend.type", "hashmap"},
                                     {"state.backend.incremental", "false"},
                                     {"state.backend.rocksdb.memory.fixed-per-tm", "64mb"},
                                     {"state.checkpoints.dir", "/tmp/chk"},
                                     {"state.checkpoints.num-retained", "3"},
                                     {"execution.checkpointing.interval", "10 s"},
                                     {"execution.checkpointing.timeout", "2 min"},
                                     {"execution.checkpointing.mode", "AT_LEAST_ONCE"},
                                     {"execution.checkpointing.externalized-checkpoint-retention",
                                      "RETAIN_ON_CANCELLATION"},
                                     {"taskmanager.numberOfTaskSlots", "4"},
                                     {"restart-strategy.type", "fixed-delay"},
                                     {"restart-strategy.fixed-delay.attempts", "7"},
                                     {"restart-strategy.fixed-delay.delay", "250 ms"},
                                     {"sluice.state.rocksdb.snapshot-cut", "Flush"},
                                     {"sluice.state.rocksdb.compaction.level0-file-num-trigger", "6"}});
  CHECK(warnings.empty());
  CHECK(c.state.rocksdb.level0_compaction_trigger == 6);
  (void)apply_settings(c, {{"sluice.state.rocksdb.compaction.level0-file-num-trigger", "Auto"}});
  CHECK(c.state.rocksdb.level0_compaction_trigger == 0);
  CHECK(c.state.rocksdb.cut == sluice::state::rocksdb_config::snapshot_cut::flush);
  CHECK(c.parallelism == 3);
  CHECK(c.max_parallelism == 256);
  CHECK(c.buffer_timeout == 5ms);
  CHECK(c.state.backend == sluice::state::backend_kind::heap);
  CHECK_FALSE(c.checkpoints.incremental);
  CHECK(c.state.rocksdb.managed_memory_bytes == 64u << 20);
  CHECK(c.checkpoints.directory == "/tmp/chk");
  CHECK(c.checkpoints.num_retained == 3);
  CHECK(c.checkpoints.interval == 10s);
  CHECK(c.checkpoints.timeout == 2min);
  CHECK(c.checkpoints.mode == checkpointing_mode::at_least_once);
  CHECK(c.checkpoints.retention == externalized_retention::retain_on_cancellation);
  CHECK(c.slots_per_taskmanager == 4);
  REQUIRE(c.restart.type);
  CHECK(*c.restart.type == restart_strategy_type::fixed_delay);
  CHECK(c.restart.fixed_delay.attempts == 7);
  CHECK(c.restart.fixed_delay.delay == 250ms);
}

TEST_CASE("unknown keys warn and change nothing") {
  configuration c;
  auto warnings = apply_settings(c, {{"parallelism.defualt", "9"}});
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0] == "unknown configuration key 'parallelism.defualt' (ignored)");
  CHECK(c.parallelism == configuration{}.parallelism);
}

TEST_CASE("invalid values fail naming the key and the value") {
  auto fails_with = [](std::map<std::string, std::string> s, const std::string& part) {
    configuration c;
    try {
      (void)apply_settings(c, s);
      FAIL("accepted " << s.begin()->first);
    } catch (const std::invalid_argument& e) {
      CHECK_MESSAGE(std::string(e.what()).find(part) != std::string::npos, e.what());
    }
  };
  fails_with({{"parallelism.default", "two"}}, "invalid value 'two' for 'parallelism.default'");
  fails_with({{"parallelism.default", "0"}}, "must be in [1, 32768]");
  fails_with({{"execution.checkpointing.interval", "10 parsecs"}}, "unknown time unit");
  fails_with({{"state.backend.type", "memory"}}, "use hashmap (heap) or rocksdb");
  fails_with({{"state.backend.incremental", "yes"}}, "use true or false");
  fails_with({{"state.backend.rocksdb.memory.fixed-per-tm", "12 furlongs"}}, "unknown unit");
  fails_with({{"execution.checkpointing.mode", "SOMETIMES"}}, "EXACTLY_ONCE");
  fails_with({{"restart-strategy.type", "sometimes"}}, "unknown restart strategy");
  fails_with({{"sluice.state.rocksdb.snapshot-cut", "snip"}}, "use log or flush");
  fails_with({{"sluice.state.rocksdb.compaction.level0-file-num-trigger", "0"}}, "must be in [1, 16]");
  // Settings that do not work together.
  fails_with({{"execution.checkpointing.interval", "1 s"},
              {"execution.checkpointing.mode", "AT_LEAST_ONCE"},
              {"execution.checkpointing.unaligned.enabled", "true"}},
             "EXACTLY_ONCE");
}

TEST_CASE("memory sizes read Flink's units") {
  CHECK(parse_memory_size("k", "1024") == 1024);
  CHECK(parse_memory_size("k", "512 kb") == 512u << 10);
  CHECK(parse_memory_size("k", "2g") == uint64_t{2} << 30);
  CHECK_THROWS_AS((void)parse_memory_size("k", "-1mb"), std::invalid_argument);
}

}
