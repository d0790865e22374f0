#include "sluice/runtime/restart_strategy.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

using namespace sluice::runtime;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

/// A fixed start for the injected clock: tests pass `t0 + offset` as `now`.
const std::chrono::steady_clock::time_point t0{std::chrono::hours(1000)};

/// A jitter source that always returns `sign * bound`.
jitter_source extreme_jitter(int sign) {
  return [sign](std::int64_t bound) { return sign * bound; };
}

exponential_delay_config no_jitter(milliseconds initial, milliseconds max, double multiplier) {
  exponential_delay_config c;
  c.initial_backoff = initial;
  c.max_backoff = max;
  c.backoff_multiplier = multiplier;
  c.jitter_factor = 0.0;
  return c;
}

/// Fails the job each time 1 ms after its restart, returning the delays.
std::vector<milliseconds> delays_of_back_to_back_failures(restart_strategy& s, int n) {
  std::vector<milliseconds> out;
  auto now = t0;
  for (int i = 0; i < n; ++i) {
    auto d = s.on_failure(now);
    REQUIRE(d.restart);
    out.push_back(d.delay);
    now += d.delay + 1ms;
  }
  return out;
}

/// The message of the std::invalid_argument that parsing `settings` throws.
std::string parse_error(const std::map<std::string, std::string>& settings) {
  try {
    (void)parse_restart_config(settings);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("parsing did not throw");
  return {};
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

} // namespace

TEST_SUITE("runtime.restart_strategy") {

  TEST_CASE("none refuses the first failure and says why") {
    no_restart_strategy s;
    auto d = s.on_failure(t0);
    CHECK_FALSE(d.restart);
    CHECK(contains(d.reason_if_not, "none"));
  }

  TEST_CASE("fixed-delay restarts attempts times after the delay, then refuses naming the limit") {
    fixed_delay_restart_strategy s({3, 10s});
    for (int i = 0; i < 3; ++i) {
      auto d = s.on_failure(t0 + i * 1min);
      CHECK(d.restart);
      CHECK(d.delay == 10s);
      CHECK(d.reason_if_not.empty());
    }
    auto refused = s.on_failure(t0 + 3min);
    CHECK_FALSE(refused.restart);
    CHECK(contains(refused.reason_if_not, "3 restart attempts"));
    CHECK(contains(refused.reason_if_not, "restart-strategy.fixed-delay.attempts"));
  }

  TEST_CASE("fixed-delay with zero attempts refuses the first failure") {
    fixed_delay_restart_strategy s({0, 1s});
    CHECK_FALSE(s.on_failure(t0).restart);
  }

  TEST_CASE("failure-rate refuses a failure beyond the limit within one interval") {
    failure_rate_restart_strategy s({2, 60s, 5s});
    auto first = s.on_failure(t0);
    CHECK(first.restart);
    CHECK(first.delay == 5s);
    CHECK(s.on_failure(t0 + 10s).restart);
    auto refused = s.on_failure(t0 + 20s);
    CHECK_FALSE(refused.restart);
    CHECK(contains(refused.reason_if_not, "limit of 2 per interval"));
    CHECK(
        contains(refused.reason_if_not, "restart-strategy.failure-rate.max-failures-per-interval"));
  }

  TEST_CASE("failure-rate counts failures in a sliding interval") {
    failure_rate_restart_strategy s({2, 60s, 1s});
    CHECK(s.on_failure(t0).restart);
    CHECK(s.on_failure(t0 + 10s).restart);
    // The failure at t0 has slid out of the interval ending at 61 s.
    CHECK(s.on_failure(t0 + 61s).restart);
    // 10 s, 61 s and 65 s are three failures within 60 s.
    CHECK_FALSE(s.on_failure(t0 + 65s).restart);
  }

  TEST_CASE("failure-rate treats failures exactly one interval apart as within it") {
    failure_rate_restart_strategy s({1, 60s, 1s});
    CHECK(s.on_failure(t0).restart);
    CHECK_FALSE(s.on_failure(t0 + 60s).restart);
    failure_rate_restart_strategy later({1, 60s, 1s});
    CHECK(later.on_failure(t0).restart);
    CHECK(later.on_failure(t0 + 60s + 1ms).restart);
  }

  TEST_CASE("exponential-delay multiplies the backoff per restart up to the cap") {
    exponential_delay_restart_strategy s(no_jitter(1s, 10s, 2.0), extreme_jitter(1));
    std::vector<milliseconds> expected = {1s, 2s, 4s, 8s, 10s, 10s};
    CHECK(delays_of_back_to_back_failures(s, 6) == expected);
  }

  TEST_CASE("exponential-delay with a fractional multiplier truncates to milliseconds") {
    exponential_delay_restart_strategy s(no_jitter(1s, 1min, 1.5), extreme_jitter(1));
    std::vector<milliseconds> expected = {1000ms, 1500ms, 2250ms, 3375ms};
    CHECK(delays_of_back_to_back_failures(s, 4) == expected);
  }

  TEST_CASE("exponential-delay merges failures before the pending restart into it") {
    exponential_delay_restart_strategy s(no_jitter(1s, 1min, 2.0), extreme_jitter(1));
    CHECK(s.on_failure(t0).delay == 1s);
    auto merged = s.on_failure(t0 + 300ms);
    CHECK(merged.restart);
    CHECK(merged.delay == 700ms);
    CHECK(s.on_failure(t0 + 1s).delay == 0ms);
    // The merged failures did not count: the next restart is the second.
    CHECK(s.on_failure(t0 + 1s + 1ms).delay == 2s);
  }

  TEST_CASE("exponential-delay resets the backoff after running failure-free for the threshold") {
    auto config = no_jitter(1s, 1min, 2.0);
    config.reset_backoff_threshold = 10min;
    exponential_delay_restart_strategy s(config, extreme_jitter(1));
    CHECK(s.on_failure(t0).delay == 1s);      // restart at t0 + 1 s
    CHECK(s.on_failure(t0 + 2s).delay == 2s); // restart at t0 + 4 s
    // Just short of 10 min after that restart: the backoff keeps growing.
    auto third = t0 + 4s + 10min - 1ms;
    CHECK(s.on_failure(third).delay == 4s);
    auto third_restart = third + 4s;
    // Ran exactly the threshold after the third restart without failing.
    CHECK(s.on_failure(third_restart + 10min).delay == 1s);
    CHECK(s.on_failure(third_restart + 10min + 2s).delay == 2s);
  }

  TEST_CASE("exponential-delay jitter stays within the factor of the backoff") {
    exponential_delay_config config = no_jitter(1s, 5min, 2.0);
    config.jitter_factor = 0.25;
    SUBCASE("the largest positive jitter") {
      exponential_delay_restart_strategy s(config, extreme_jitter(1));
      std::vector<milliseconds> expected = {1250ms, 2500ms, 5000ms};
      CHECK(delays_of_back_to_back_failures(s, 3) == expected);
    }
    SUBCASE("the largest negative jitter, never below the initial backoff") {
      exponential_delay_restart_strategy s(config, extreme_jitter(-1));
      std::vector<milliseconds> expected = {1000ms, 1500ms, 3000ms};
      CHECK(delays_of_back_to_back_failures(s, 3) == expected);
    }
    SUBCASE("a seeded source") {
      for (std::uint64_t seed = 0; seed < 50; ++seed) {
        exponential_delay_restart_strategy s(config, seeded_jitter(seed));
        auto delays = delays_of_back_to_back_failures(s, 4);
        for (std::size_t i = 0; i < delays.size(); ++i) {
          auto base = milliseconds{1000 << i};
          CHECK(delays[i] >= std::max(base - base / 4, milliseconds{1s}));
          CHECK(delays[i] <= base + base / 4);
        }
      }
    }
  }

  TEST_CASE("a seeded jitter source gives the same delays for the same seed") {
    exponential_delay_config config;
    exponential_delay_restart_strategy a(config, seeded_jitter(42));
    exponential_delay_restart_strategy b(config, seeded_jitter(42));
    CHECK(delays_of_back_to_back_failures(a, 8) == delays_of_back_to_back_failures(b, 8));
  }

  TEST_CASE("exponential-delay never exceeds the cap even with jitter") {
    exponential_delay_config config = no_jitter(1s, 3s, 2.0);
    config.jitter_factor = 1.0;
    exponential_delay_restart_strategy s(config, extreme_jitter(1));
    std::vector<milliseconds> expected = {2s, 3s, 3s, 3s};
    CHECK(delays_of_back_to_back_failures(s, 4) == expected);
  }

  TEST_CASE("exponential-delay survives many restarts without overflow") {
    exponential_delay_config config;
    exponential_delay_restart_strategy s(config, extreme_jitter(1));
    auto delays = delays_of_back_to_back_failures(s, 200);
    CHECK(delays.back() == 5min);
  }

  TEST_CASE("exponential-delay refuses the attempt after the limit before a reset") {
    auto config = no_jitter(1s, 1min, 2.0);
    config.attempts_before_reset_backoff = 3;
    exponential_delay_restart_strategy s(config, extreme_jitter(1));
    CHECK(delays_of_back_to_back_failures(s, 3).size() == 3);
    auto refused = s.on_failure(t0 + 1h - 1min); // well after restart 3, below the threshold
    CHECK_FALSE(refused.restart);
    CHECK(contains(refused.reason_if_not, "3 restart attempts"));
    CHECK(contains(refused.reason_if_not,
                   "restart-strategy.exponential-delay.attempts-before-reset-backoff"));
  }

  TEST_CASE("the default is none without checkpointing and exponential-delay with it") {
    restart_config config;
    CHECK(make_restart_strategy(config, false)->describe() == "none (no restarts)");
    CHECK(make_restart_strategy(config, true)->describe() ==
          "exponential-delay (initial-backoff=1000 ms, max-backoff=300000 ms, "
          "backoff-multiplier=2.000000, reset-backoff-threshold=3600000 ms, "
          "jitter-factor=0.100000, attempts-before-reset-backoff=unlimited)");
    config.type = restart_strategy_type::fixed_delay;
    CHECK(make_restart_strategy(config, true)->describe() ==
          "fixed-delay (attempts=1, delay=1000 ms)");
    config.type = restart_strategy_type::failure_rate;
    CHECK(make_restart_strategy(config, false)->describe() ==
          "failure-rate (max-failures-per-interval=1, failure-rate-interval=60000 ms, "
          "delay=1000 ms)");
    config.type = restart_strategy_type::none;
    CHECK_FALSE(make_restart_strategy(config, true)->on_failure(t0).restart);
  }

  TEST_CASE("the default exponential-delay starts at one second and grows by two") {
    auto s = make_restart_strategy({}, true, extreme_jitter(0));
    std::vector<milliseconds> expected = {1s, 2s, 4s, 8s};
    CHECK(delays_of_back_to_back_failures(*s, 4) == expected);
  }

  TEST_CASE("strategies reject settings out of range") {
    CHECK_THROWS_AS(fixed_delay_restart_strategy({-1, 1s}), std::invalid_argument);
    CHECK_THROWS_AS(failure_rate_restart_strategy({0, 1s, 1s}), std::invalid_argument);
    CHECK_THROWS_AS(failure_rate_restart_strategy({1, 0s, 1s}), std::invalid_argument);
    CHECK_THROWS_AS(exponential_delay_restart_strategy(no_jitter(2s, 1s, 2.0), seeded_jitter(1)),
                    std::invalid_argument);
    CHECK_THROWS_AS(exponential_delay_restart_strategy(no_jitter(1s, 2s, 1.0), seeded_jitter(1)),
                    std::invalid_argument);
  }

  TEST_CASE("parsing accepts every Flink name of each strategy type") {
    std::vector<std::pair<std::string, restart_strategy_type>> names = {
        {"none", restart_strategy_type::none},
        {"off", restart_strategy_type::none},
        {"disable", restart_strategy_type::none},
        {"fixed-delay", restart_strategy_type::fixed_delay},
        {"fixeddelay", restart_strategy_type::fixed_delay},
        {"failure-rate", restart_strategy_type::failure_rate},
        {"failurerate", restart_strategy_type::failure_rate},
        {"exponential-delay", restart_strategy_type::exponential_delay},
        {"exponentialdelay", restart_strategy_type::exponential_delay},
        {" Fixed-Delay ", restart_strategy_type::fixed_delay},
    };
    for (const auto& [name, type] : names) {
      CAPTURE(name);
      CHECK(parse_restart_config({{"restart-strategy.type", name}}).type == type);
    }
  }

  TEST_CASE("parsing leaves the type unset when it is not configured") {
    auto config = parse_restart_config({{"parallelism.default", "4"}});
    CHECK_FALSE(config.type.has_value());
  }

  TEST_CASE("parsing takes the pre-1.19 key when restart-strategy.type is absent") {
    CHECK(parse_restart_config({{"restart-strategy", "fixed-delay"}}).type ==
          restart_strategy_type::fixed_delay);
    CHECK(parse_restart_config(
              {{"restart-strategy", "fixed-delay"}, {"restart-strategy.type", "failure-rate"}})
              .type == restart_strategy_type::failure_rate);
  }

  TEST_CASE("parsing reads every strategy's settings") {
    auto config = parse_restart_config({
        {"restart-strategy.type", "exponential-delay"},
        {"restart-strategy.fixed-delay.attempts", "5"},
        {"restart-strategy.fixed-delay.delay", "10 s"},
        {"restart-strategy.failure-rate.max-failures-per-interval", "3"},
        {"restart-strategy.failure-rate.failure-rate-interval", "5 min"},
        {"restart-strategy.failure-rate.delay", "500 ms"},
        {"restart-strategy.exponential-delay.initial-backoff", "250"},
        {"restart-strategy.exponential-delay.max-backoff", "2h"},
        {"restart-strategy.exponential-delay.backoff-multiplier", "1.5"},
        {"restart-strategy.exponential-delay.reset-backoff-threshold", "1 d"},
        {"restart-strategy.exponential-delay.jitter-factor", "0"},
        {"restart-strategy.exponential-delay.attempts-before-reset-backoff", "7"},
    });
    CHECK(config.type == restart_strategy_type::exponential_delay);
    CHECK(config.fixed_delay.attempts == 5);
    CHECK(config.fixed_delay.delay == 10s);
    CHECK(config.failure_rate.max_failures_per_interval == 3);
    CHECK(config.failure_rate.failure_rate_interval == 5min);
    CHECK(config.failure_rate.delay == 500ms);
    CHECK(config.exponential_delay.initial_backoff == 250ms);
    CHECK(config.exponential_delay.max_backoff == 2h);
    CHECK(config.exponential_delay.backoff_multiplier == doctest::Approx(1.5));
    CHECK(config.exponential_delay.reset_backoff_threshold == 24h);
    CHECK(config.exponential_delay.jitter_factor == 0.0);
    CHECK(config.exponential_delay.attempts_before_reset_backoff == 7);
  }

  TEST_CASE("Flink duration strings parse to milliseconds") {
    CHECK(parse_flink_duration("10 s", "k") == 10s);
    CHECK(parse_flink_duration("1 min", "k") == 1min);
    CHECK(parse_flink_duration("1m", "k") == 1min);
    CHECK(parse_flink_duration("500 ms", "k") == 500ms);
    CHECK(parse_flink_duration("750", "k") == 750ms);
    CHECK(parse_flink_duration("3 hours", "k") == 3h);
    CHECK(parse_flink_duration("2 days", "k") == 48h);
    CHECK(parse_flink_duration("20 SECONDS", "k") == 20s);
    CHECK(parse_flink_duration("1500 us", "k") == 1ms);
    CHECK(parse_flink_duration("0 s", "k") == 0ms);
  }

  TEST_CASE("parsing names the key and the value of a bad setting") {
    auto e = parse_error({{"restart-strategy.type", "sometimes"}});
    CHECK(contains(e, "restart-strategy.type"));
    CHECK(contains(e, "sometimes"));

    e = parse_error({{"restart-strategy.fixed-delay.attempts", "-1"}});
    CHECK(contains(e, "restart-strategy.fixed-delay.attempts"));
    CHECK(contains(e, "-1"));

    e = parse_error({{"restart-strategy.fixed-delay.attempts", "three"}});
    CHECK(contains(e, "restart-strategy.fixed-delay.attempts"));
    CHECK(contains(e, "three"));

    e = parse_error({{"restart-strategy.fixed-delay.attempts", "99999999999"}});
    CHECK(contains(e, "99999999999"));

    e = parse_error({{"restart-strategy.fixed-delay.delay", "-5 s"}});
    CHECK(contains(e, "restart-strategy.fixed-delay.delay"));
    CHECK(contains(e, "-5 s"));
    CHECK(contains(e, "negative"));

    e = parse_error({{"restart-strategy.failure-rate.delay", "10 parsecs"}});
    CHECK(contains(e, "restart-strategy.failure-rate.delay"));
    CHECK(contains(e, "parsecs"));

    e = parse_error({{"restart-strategy.failure-rate.failure-rate-interval", "ten s"}});
    CHECK(contains(e, "restart-strategy.failure-rate.failure-rate-interval"));
    CHECK(contains(e, "ten s"));

    e = parse_error({{"restart-strategy.failure-rate.failure-rate-interval", "0 s"}});
    CHECK(contains(e, "restart-strategy.failure-rate.failure-rate-interval"));

    e = parse_error({{"restart-strategy.exponential-delay.max-backoff", "999999999999 d"}});
    CHECK(contains(e, "too large"));

    e = parse_error({{"restart-strategy.exponential-delay.backoff-multiplier", "1"}});
    CHECK(contains(e, "restart-strategy.exponential-delay.backoff-multiplier"));

    e = parse_error({{"restart-strategy.exponential-delay.backoff-multiplier", "2x"}});
    CHECK(contains(e, "2x"));

    e = parse_error({{"restart-strategy.exponential-delay.jitter-factor", "1.5"}});
    CHECK(contains(e, "restart-strategy.exponential-delay.jitter-factor"));

    e = parse_error({{"restart-strategy.exponential-delay.initial-backoff", "10 min"}});
    CHECK(contains(e, "restart-strategy.exponential-delay.max-backoff"));

    e = parse_error({{"restart-strategy.fixed-delay.attempt", "3"}});
    CHECK(contains(e, "restart-strategy.fixed-delay.attempt"));
    CHECK(contains(e, "unknown"));
  }
}
