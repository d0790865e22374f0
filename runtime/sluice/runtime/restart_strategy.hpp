#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

/// Restart strategies: after a job fails, whether to restart it and after how
/// long, with Flink's strategies, defaults and configuration keys
/// (`restart-strategy.type`, `restart-strategy.fixed-delay.attempts`, ...).
/// Self-contained: the JobMaster asks `on_failure()` once per failure.
namespace sluice::runtime {

/// What a restart strategy says about one failure.
struct restart_decision {
  /// True if the job should be restarted.
  bool restart = false;
  /// How long to wait before restarting (meaningful only if `restart`).
  std::chrono::milliseconds delay{0};
  /// Why the job must fail instead, naming the limit; empty if `restart`.
  std::string reason_if_not;
};

/// Decides, failure by failure, whether a job restarts. One instance per job,
/// owned and called by the job's master only (not thread-safe).
class restart_strategy {
public:
  virtual ~restart_strategy() = default;

  /// Records a failure at `now` and says whether and when to restart.
  /// `now` must not go back between calls.
  [[nodiscard]] virtual restart_decision on_failure(std::chrono::steady_clock::time_point now) = 0;

  /// A one-line description with the strategy's settings, for logs and the UI.
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// Returns a random jitter offset, uniform in [-bound, bound] (bound >= 0).
/// Injected so tests are deterministic.
using jitter_source = std::function<std::int64_t(std::int64_t bound)>;

/// A jitter source drawing from a Mersenne twister seeded with `seed`: the same
/// seed gives the same offsets (with the same standard library).
[[nodiscard]] jitter_source seeded_jitter(std::uint64_t seed);

/// The restart strategies Flink offers.
enum class restart_strategy_type { none, fixed_delay, failure_rate, exponential_delay };

/// Flink's name of a strategy type: "none", "fixed-delay", ...
[[nodiscard]] std::string_view to_string(restart_strategy_type type) noexcept;

/// Settings of `fixed-delay` (`restart-strategy.fixed-delay.*`).
struct fixed_delay_config {
  /// Restarts allowed before the job fails (`attempts`, >= 0).
  int attempts = 1;
  /// Wait before each restart (`delay`, >= 0).
  std::chrono::milliseconds delay = std::chrono::seconds(1);
};

/// Settings of `failure-rate` (`restart-strategy.failure-rate.*`).
struct failure_rate_config {
  /// Failures allowed within one interval (`max-failures-per-interval`, > 0).
  int max_failures_per_interval = 1;
  /// Length of the sliding interval (`failure-rate-interval`, > 0).
  std::chrono::milliseconds failure_rate_interval = std::chrono::minutes(1);
  /// Wait before each restart (`delay`, >= 0).
  std::chrono::milliseconds delay = std::chrono::seconds(1);
};

/// Settings of `exponential-delay` (`restart-strategy.exponential-delay.*`).
struct exponential_delay_config {
  /// Wait before the first restart (`initial-backoff`, >= 1 ms).
  std::chrono::milliseconds initial_backoff = std::chrono::seconds(1);
  /// Cap on the wait (`max-backoff`, >= initial backoff).
  std::chrono::milliseconds max_backoff = std::chrono::minutes(5);
  /// Factor applied to the wait per restart (`backoff-multiplier`, > 1).
  double backoff_multiplier = 2.0;
  /// Failure-free running time after a restart that resets the backoff to its
  /// initial value and the attempt count to 0 (`reset-backoff-threshold`, >= 1 ms).
  std::chrono::milliseconds reset_backoff_threshold = std::chrono::hours(1);
  /// Random part of the wait, as a fraction of it, plus or minus
  /// (`jitter-factor`, in [0, 1]).
  double jitter_factor = 0.1;
  /// Restarts allowed between two resets of the backoff
  /// (`attempts-before-reset-backoff`, >= 1; unlimited by default).
  int attempts_before_reset_backoff = std::numeric_limits<int>::max();
};

/// The restart configuration of a job. Fields of the strategies not chosen are
/// ignored.
struct restart_config {
  /// The chosen strategy; unset = Flink's default (see make_restart_strategy).
  std::optional<restart_strategy_type> type;
  fixed_delay_config fixed_delay;
  failure_rate_config failure_rate;
  exponential_delay_config exponential_delay;
};

/// Reads the `restart-strategy.*` keys of a Flink-style configuration; other
/// keys are ignored. Durations are Flink duration strings ("10 s", "1 min",
/// "500 ms", "2h"; a bare number is milliseconds). Accepts the pre-1.19 key
/// `restart-strategy` as the type when `restart-strategy.type` is absent.
/// Throws std::invalid_argument naming the key and the value for an unknown
/// type or key, a malformed or out-of-range number or duration.
[[nodiscard]] restart_config
parse_restart_config(const std::map<std::string, std::string>& settings);

/// Parses a Flink duration string ("10 s", "1 min", "500 ms", "3 days"; no unit
/// = milliseconds), truncated to milliseconds. Throws std::invalid_argument
/// naming `key` for a malformed, negative or overflowing duration.
[[nodiscard]] std::chrono::milliseconds parse_flink_duration(std::string_view text,
                                                             std::string_view key);

/// Throws std::invalid_argument naming the Flink key of the first setting of
/// the chosen strategy that is out of range.
void validate(const restart_config& config);

/// Builds the configured strategy. With no type set, Flink's default (1.19+):
/// `none` without checkpointing, `exponential-delay` with its configured (by
/// default, default) settings when checkpointing is enabled. `jitter` is used by
/// exponential-delay; empty = seeded from std::random_device. Throws
/// std::invalid_argument if the settings are out of range.
[[nodiscard]] std::unique_ptr<restart_strategy> make_restart_strategy(const restart_config& config,
                                                                      bool checkpointing_enabled,
                                                                      jitter_source jitter = {});

/// `none`: never restarts; the job fails on its first failure.
class no_restart_strategy final : public restart_strategy {
public:
  restart_decision on_failure(std::chrono::steady_clock::time_point now) override;
  std::string describe() const override;
};

/// `fixed-delay`: restarts up to `attempts` times, each after `delay`; the
/// failure after the last allowed restart fails the job.
class fixed_delay_restart_strategy final : public restart_strategy {
public:
  /// Throws std::invalid_argument for negative attempts or delay.
  explicit fixed_delay_restart_strategy(fixed_delay_config config);
  restart_decision on_failure(std::chrono::steady_clock::time_point now) override;
  std::string describe() const override;

private:
  fixed_delay_config config_;
  int failures_ = 0;
};

/// `failure-rate`: restarts after `delay` unless more than
/// `max_failures_per_interval` failures fall within one sliding
/// `failure_rate_interval`.
class failure_rate_restart_strategy final : public restart_strategy {
public:
  /// Throws std::invalid_argument for a non-positive limit or interval or a
  /// negative delay.
  explicit failure_rate_restart_strategy(failure_rate_config config);
  restart_decision on_failure(std::chrono::steady_clock::time_point now) override;
  std::string describe() const override;

private:
  failure_rate_config config_;
  /// The last max_failures_per_interval + 1 failure times, oldest first.
  std::deque<std::chrono::steady_clock::time_point> failures_;
};

/// `exponential-delay`: the wait is initial_backoff * multiplier^n (n = restarts
/// since the last reset) plus jitter, capped at max_backoff. Failures up to the
/// scheduled restart time are merged into the pending restart (as Flink does
/// since 1.19, so a burst of task failures counts once). A failure more than
/// reset_backoff_threshold after the last restart resets n to 0.
class exponential_delay_restart_strategy final : public restart_strategy {
public:
  /// Throws std::invalid_argument for settings out of range.
  exponential_delay_restart_strategy(exponential_delay_config config, jitter_source jitter);
  restart_decision on_failure(std::chrono::steady_clock::time_point now) override;
  std::string describe() const override;

private:
  exponential_delay_config config_;
  jitter_source jitter_;
  /// Restarts since the backoff was last reset.
  int attempt_ = 0;
  /// When the pending or last restart happens; unset before the first failure.
  std::optional<std::chrono::steady_clock::time_point> next_restart_;
};

} // namespace sluice::runtime
