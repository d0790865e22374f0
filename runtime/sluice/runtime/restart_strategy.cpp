#include "sluice/runtime/restart_strategy.hpp"

#include "sluice/runtime/internal/setting_text.hpp"
#include "sluice/runtime/settings.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <utility>

namespace sluice::runtime {

namespace {

using internal::bad_value;
using internal::lower;
using internal::trim;

using std::chrono::milliseconds;
using time_point = std::chrono::steady_clock::time_point;

constexpr std::string_view prefix = "restart-strategy.";
constexpr std::string_view key_type = "restart-strategy.type";
constexpr std::string_view key_legacy_type = "restart-strategy";
constexpr std::string_view key_fd_attempts = "restart-strategy.fixed-delay.attempts";
constexpr std::string_view key_fd_delay = "restart-strategy.fixed-delay.delay";
constexpr std::string_view key_fr_max = "restart-strategy.failure-rate.max-failures-per-interval";
constexpr std::string_view key_fr_interval = "restart-strategy.failure-rate.failure-rate-interval";
constexpr std::string_view key_fr_delay = "restart-strategy.failure-rate.delay";
constexpr std::string_view key_ed_initial = "restart-strategy.exponential-delay.initial-backoff";
constexpr std::string_view key_ed_max = "restart-strategy.exponential-delay.max-backoff";
constexpr std::string_view key_ed_multiplier =
    "restart-strategy.exponential-delay.backoff-multiplier";
constexpr std::string_view key_ed_threshold =
    "restart-strategy.exponential-delay.reset-backoff-threshold";
constexpr std::string_view key_ed_jitter = "restart-strategy.exponential-delay.jitter-factor";
constexpr std::string_view key_ed_attempts =
    "restart-strategy.exponential-delay.attempts-before-reset-backoff";

[[noreturn]] void out_of_range(std::string_view key, const std::string& value,
                               std::string_view rule) {
  throw std::invalid_argument("'" + std::string(key) + "' is " + value + ", but must be " +
                              std::string(rule));
}

std::string ms_string(milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

int parse_int(std::string_view key, std::string_view raw) {
  return static_cast<int>(parse_setting_int(key, raw, std::numeric_limits<int>::min(),
                                            std::numeric_limits<int>::max()));
}

restart_strategy_type parse_type(std::string_view key, std::string_view raw) {
  auto name = lower(trim(raw));
  if (name == "none" || name == "off" || name == "disable")
    return restart_strategy_type::none;
  if (name == "fixed-delay" || name == "fixeddelay")
    return restart_strategy_type::fixed_delay;
  if (name == "failure-rate" || name == "failurerate")
    return restart_strategy_type::failure_rate;
  if (name == "exponential-delay" || name == "exponentialdelay")
    return restart_strategy_type::exponential_delay;
  bad_value(key, raw,
            "unknown restart strategy (expected none, off, disable, fixed-delay, fixeddelay, "
            "failure-rate, failurerate, exponential-delay or exponentialdelay)");
}

/// Nanoseconds per unit, for Flink's duration unit names (TimeUtils).
std::optional<std::int64_t> unit_in_ns(const std::string& unit) {
  if (unit.empty() || unit == "ms" || unit == "milli" || unit == "millis" ||
      unit == "millisecond" || unit == "milliseconds")
    return 1'000'000;
  if (unit == "ns" || unit == "nano" || unit == "nanos" || unit == "nanosecond" ||
      unit == "nanoseconds")
    return 1;
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "micro" || unit == "micros" ||
      unit == "microsecond" || unit == "microseconds")
    return 1'000;
  if (unit == "s" || unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds")
    return 1'000'000'000;
  if (unit == "m" || unit == "min" || unit == "minute" || unit == "minutes")
    return 60'000'000'000;
  if (unit == "h" || unit == "hour" || unit == "hours")
    return 3'600'000'000'000;
  if (unit == "d" || unit == "day" || unit == "days")
    return 86'400'000'000'000;
  return std::nullopt;
}

} // namespace

jitter_source seeded_jitter(std::uint64_t seed) {
  auto engine = std::make_shared<std::mt19937_64>(seed);
  return [engine](std::int64_t bound) {
    std::uniform_int_distribution<std::int64_t> dist(-bound, bound);
    return dist(*engine);
  };
}

std::string_view to_string(restart_strategy_type type) noexcept {
  switch (type) {
    case restart_strategy_type::none:
      return "none";
    case restart_strategy_type::fixed_delay:
      return "fixed-delay";
    case restart_strategy_type::failure_rate:
      return "failure-rate";
    case restart_strategy_type::exponential_delay:
      return "exponential-delay";
  }
  return "unknown";
}

milliseconds parse_flink_duration(std::string_view raw, std::string_view key) {
  auto text = trim(raw);
  if (!text.empty() && text.front() == '-')
    bad_value(key, raw, "a duration must not be negative");
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0)
    bad_value(key, raw, "a duration is a whole number with an optional unit, e.g. '10 s'");
  std::int64_t amount = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, amount);
  if (ec != std::errc() || end != text.data() + digits)
    bad_value(key, raw, "the number is too large");
  auto unit = lower(trim(text.substr(digits)));
  auto ns_per_unit = unit_in_ns(unit);
  if (!ns_per_unit)
    bad_value(key, raw,
              "unknown time unit '" + unit +
                  "' (use d, h, min, s, ms, us or ns, or their long names)");
  if (amount > std::numeric_limits<std::int64_t>::max() / *ns_per_unit)
    bad_value(key, raw, "the duration is too large");
  return std::chrono::duration_cast<milliseconds>(std::chrono::nanoseconds(amount * *ns_per_unit));
}

restart_config parse_restart_config(const std::map<std::string, std::string>& settings) {
  restart_config config;
  for (const auto& [key, value] : settings) {
    if (key == key_type) {
      config.type = parse_type(key, value);
    } else if (key == key_legacy_type) {
      if (settings.count(std::string(key_type)) == 0)
        config.type = parse_type(key, value);
    } else if (key.compare(0, prefix.size(), prefix) != 0) {
      continue; // not ours
    } else if (key == key_fd_attempts) {
      config.fixed_delay.attempts = parse_int(key, value);
    } else if (key == key_fd_delay) {
      config.fixed_delay.delay = parse_flink_duration(value, key);
    } else if (key == key_fr_max) {
      config.failure_rate.max_failures_per_interval = parse_int(key, value);
    } else if (key == key_fr_interval) {
      config.failure_rate.failure_rate_interval = parse_flink_duration(value, key);
    } else if (key == key_fr_delay) {
      config.failure_rate.delay = parse_flink_duration(value, key);
    } else if (key == key_ed_initial) {
      config.exponential_delay.initial_backoff = parse_flink_duration(value, key);
    } else if (key == key_ed_max) {
      config.exponential_delay.max_backoff = parse_flink_duration(value, key);
    } else if (key == key_ed_multiplier) {
      config.exponential_delay.backoff_multiplier = parse_setting_double(key, value);
    } else if (key == key_ed_threshold) {
      config.exponential_delay.reset_backoff_threshold = parse_flink_duration(value, key);
    } else if (key == key_ed_jitter) {
      config.exponential_delay.jitter_factor = parse_setting_double(key, value);
    } else if (key == key_ed_attempts) {
      config.exponential_delay.attempts_before_reset_backoff = parse_int(key, value);
    } else {
      // A misspelt key would otherwise silently fall back to a default.
      throw std::invalid_argument("unknown restart strategy option '" + key + "' (value '" + value +
                                  "')");
    }
  }
  // Every strategy's settings are checked, not only the chosen one's: a value
  // that is wrong now would surface only when someone switches the type.
  restart_config all = config;
  for (auto type : {restart_strategy_type::fixed_delay, restart_strategy_type::failure_rate,
                    restart_strategy_type::exponential_delay}) {
    all.type = type;
    validate(all);
  }
  return config;
}

void validate(const restart_config& config) {
  if (!config.type)
    return validate(restart_config{restart_strategy_type::exponential_delay, config.fixed_delay,
                                   config.failure_rate, config.exponential_delay});
  switch (*config.type) {
    case restart_strategy_type::none:
      return;
    case restart_strategy_type::fixed_delay: {
      const auto& c = config.fixed_delay;
      if (c.attempts < 0)
        out_of_range(key_fd_attempts, std::to_string(c.attempts), ">= 0");
      if (c.delay.count() < 0)
        out_of_range(key_fd_delay, ms_string(c.delay), ">= 0 ms");
      return;
    }
    case restart_strategy_type::failure_rate: {
      const auto& c = config.failure_rate;
      if (c.max_failures_per_interval <= 0)
        out_of_range(key_fr_max, std::to_string(c.max_failures_per_interval), "> 0");
      if (c.failure_rate_interval.count() <= 0)
        out_of_range(key_fr_interval, ms_string(c.failure_rate_interval), "> 0 ms");
      if (c.delay.count() < 0)
        out_of_range(key_fr_delay, ms_string(c.delay), ">= 0 ms");
      return;
    }
    case restart_strategy_type::exponential_delay: {
      const auto& c = config.exponential_delay;
      if (c.initial_backoff.count() < 1)
        out_of_range(key_ed_initial, ms_string(c.initial_backoff), ">= 1 ms");
      if (c.max_backoff < c.initial_backoff)
        out_of_range(key_ed_max, ms_string(c.max_backoff),
                     ">= the initial backoff (" + ms_string(c.initial_backoff) + ")");
      if (!(c.backoff_multiplier > 1.0) || !std::isfinite(c.backoff_multiplier))
        out_of_range(key_ed_multiplier, std::to_string(c.backoff_multiplier), "> 1");
      if (c.reset_backoff_threshold.count() < 1)
        out_of_range(key_ed_threshold, ms_string(c.reset_backoff_threshold), ">= 1 ms");
      if (!(c.jitter_factor >= 0.0 && c.jitter_factor <= 1.0))
        out_of_range(key_ed_jitter, std::to_string(c.jitter_factor), "in [0, 1]");
      if (c.attempts_before_reset_backoff < 1)
        out_of_range(key_ed_attempts, std::to_string(c.attempts_before_reset_backoff), ">= 1");
      return;
    }
  }
}

std::unique_ptr<restart_strategy> make_restart_strategy(const restart_config& config,
                                                        bool checkpointing_enabled,
                                                        jitter_source jitter) {
  auto type = config.type.value_or(checkpointing_enabled ? restart_strategy_type::exponential_delay
                                                         : restart_strategy_type::none);
  switch (type) {
    case restart_strategy_type::none:
      return std::make_unique<no_restart_strategy>();
    case restart_strategy_type::fixed_delay:
      return std::make_unique<fixed_delay_restart_strategy>(config.fixed_delay);
    case restart_strategy_type::failure_rate:
      return std::make_unique<failure_rate_restart_strategy>(config.failure_rate);
    case restart_strategy_type::exponential_delay:
      if (!jitter)
        jitter = seeded_jitter(std::random_device{}());
      return std::make_unique<exponential_delay_restart_strategy>(config.exponential_delay,
                                                                  std::move(jitter));
  }
  throw std::invalid_argument("unknown restart strategy type");
}

// -- none ---------------------------------------------------------------------

restart_decision no_restart_strategy::on_failure(time_point) {
  return {false, milliseconds{0}, "restart strategy 'none' never restarts a failed job"};
}

std::string no_restart_strategy::describe() const {
  return "none (no restarts)";
}

// -- fixed-delay --------------------------------------------------------------

fixed_delay_restart_strategy::fixed_delay_restart_strategy(fixed_delay_config config)
    : config_(config) {
  validate(restart_config{restart_strategy_type::fixed_delay, config_, {}, {}});
}

restart_decision fixed_delay_restart_strategy::on_failure(time_point) {
  // Failure n is followed by restart n; the one after the last allowed
  // restart fails the job.
  if (failures_ < std::numeric_limits<int>::max())
    ++failures_;
  if (failures_ <= config_.attempts)
    return {true, config_.delay, {}};
  return {false, milliseconds{0},
          "fixed-delay: all " + std::to_string(config_.attempts) +
              " restart attempts are used up (" + std::string(key_fd_attempts) + ")"};
}

std::string fixed_delay_restart_strategy::describe() const {
  return "fixed-delay (attempts=" + std::to_string(config_.attempts) +
         ", delay=" + ms_string(config_.delay) + ")";
}

// -- failure-rate -------------------------------------------------------------

failure_rate_restart_strategy::failure_rate_restart_strategy(failure_rate_config config)
    : config_(config) {
  validate(restart_config{restart_strategy_type::failure_rate, {}, config_, {}});
}

restart_decision failure_rate_restart_strategy::on_failure(time_point now) {
  // Keep the last max + 1 failures: the rate is exceeded when all of them,
  // this one included, fall within one interval.
  auto limit = static_cast<std::size_t>(config_.max_failures_per_interval);
  failures_.push_back(now);
  if (failures_.size() > limit + 1)
    failures_.pop_front();
  if (failures_.size() <= limit || now - failures_.front() > config_.failure_rate_interval)
    return {true, config_.delay, {}};
  return {false, milliseconds{0},
          "failure-rate: " + std::to_string(failures_.size()) + " failures within " +
              ms_string(config_.failure_rate_interval) + " exceed the limit of " +
              std::to_string(config_.max_failures_per_interval) + " per interval (" +
              std::string(key_fr_max) + ", " + std::string(key_fr_interval) + ")"};
}

std::string failure_rate_restart_strategy::describe() const {
  return "failure-rate (max-failures-per-interval=" +
         std::to_string(config_.max_failures_per_interval) +
         ", failure-rate-interval=" + ms_string(config_.failure_rate_interval) +
         ", delay=" + ms_string(config_.delay) + ")";
}

// -- exponential-delay --------------------------------------------------------

exponential_delay_restart_strategy::exponential_delay_restart_strategy(
    exponential_delay_config config, jitter_source jitter)
    : config_(config)
    , jitter_(std::move(jitter)) {
  validate(restart_config{restart_strategy_type::exponential_delay, {}, {}, config_});
  if (!jitter_)
    throw std::invalid_argument("exponential-delay needs a jitter source");
}

restart_decision exponential_delay_restart_strategy::on_failure(time_point now) {
  using std::chrono::duration_cast;
  if (next_restart_ && now <= *next_restart_) {
    // A restart is already pending: this failure (typically another task of
    // the same failed job) joins it and does not count as an attempt.
    return {true, duration_cast<milliseconds>(*next_restart_ - now), {}};
  }
  if (!next_restart_ || now - *next_restart_ >= config_.reset_backoff_threshold)
    attempt_ = 0;
  if (attempt_ >= config_.attempts_before_reset_backoff) {
    return {false, milliseconds{0},
            "exponential-delay: all " + std::to_string(config_.attempts_before_reset_backoff) +
                " restart attempts before a backoff reset are used up (" +
                std::string(key_ed_attempts) + ")"};
  }
  // As in Flink, the jitter is taken from the uncapped backoff and only the
  // sum is capped, so once the backoff passes the cap the wait is the cap. The
  // backoff is bounded (about 30,000 years) only to keep the sum in range.
  constexpr double backoff_bound_ms = 1e15;
  auto initial = static_cast<double>(config_.initial_backoff.count());
  double base =
      std::min(initial * std::pow(config_.backoff_multiplier, attempt_), backoff_bound_ms);
  auto base_ms = static_cast<std::int64_t>(base);
  auto bound = static_cast<std::int64_t>(static_cast<double>(base_ms) * config_.jitter_factor);
  std::int64_t offset = bound == 0 ? 0 : std::clamp(jitter_(bound), -bound, bound);
  auto delay = milliseconds{
      std::clamp(base_ms + offset, config_.initial_backoff.count(), config_.max_backoff.count())};
  ++attempt_;
  next_restart_ = now + delay;
  return {true, delay, {}};
}

std::string exponential_delay_restart_strategy::describe() const {
  std::string attempts = config_.attempts_before_reset_backoff == std::numeric_limits<int>::max()
                             ? "unlimited"
                             : std::to_string(config_.attempts_before_reset_backoff);
  return "exponential-delay (initial-backoff=" + ms_string(config_.initial_backoff) +
         ", max-backoff=" + ms_string(config_.max_backoff) +
         ", backoff-multiplier=" + std::to_string(config_.backoff_multiplier) +
         ", reset-backoff-threshold=" + ms_string(config_.reset_backoff_threshold) +
         ", jitter-factor=" + std::to_string(config_.jitter_factor) +
         ", attempts-before-reset-backoff=" + attempts + ")";
}

} // namespace sluice::runtime
