#include "sluice/runtime/checkpointing.hpp"

#include <doctest/doctest.h>

using namespace sluice::runtime;
using namespace std::chrono_literals;

TEST_SUITE("runtime.checkpointing") {

TEST_CASE("checkpoint settings out of range name the key and value") {
  checkpoint_settings ok;
  CHECK_NOTHROW(validate(ok));
  ok.interval = 1s;
  CHECK_NOTHROW(validate(ok));
  auto bad = [](auto change) {
    checkpoint_settings s;
    change(s);
    return s;
  };
  CHECK_THROWS_WITH_AS(validate(bad([](auto& s) { s.interval = -5ms; })),
                       "invalid checkpoint setting execution.checkpointing.interval = -5: must "
                       "be >= 0 ms (0 = off)",
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(validate(bad([](auto& s) { s.timeout = 0ms; })),
                       doctest::Contains("execution.checkpointing.timeout = 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(validate(bad([](auto& s) { s.max_concurrent = 0; })),
                       doctest::Contains("max-concurrent-checkpoints = 0"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(validate(bad([](auto& s) { s.tolerable_failed = -1; })),
                       doctest::Contains("tolerable-failed-checkpoints = -1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(validate(bad([](auto& s) { s.num_retained = 0; })),
                       doctest::Contains("state.checkpoints.num-retained = 0"),
                       std::invalid_argument);
  CHECK_THROWS_AS(validate(bad([](auto& s) { s.min_pause = -1ms; })), std::invalid_argument);
  CHECK_THROWS_AS(validate(bad([](auto& s) { s.aligned_checkpoint_timeout = -1ms; })),
                  std::invalid_argument);
}

} // TEST_SUITE
