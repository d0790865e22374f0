#pragma once

#include "sluice/runtime/job.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

/// Flink-style configuration keys (`parallelism.default`,
/// `execution.checkpointing.interval`, `state.backend.type`,
/// `restart-strategy.*`, ...) applied to a `configuration`: what a
/// sluice-conf.yaml file and `-D key=value` set.
namespace sluice::runtime {

/// Applies `settings` (key -> value, as written) on top of `config`, in key
/// order. Values keep Flink's formats: durations "10 s", "500ms", "1 min"
/// (a bare number is ms), memory sizes "256mb", "1 gb" (a bare number is
/// bytes), booleans true/false, enums as Flink spells them. Returns one
/// warning per key it does not know (ignored). Throws std::invalid_argument
/// naming the key and the value for a malformed or out-of-range value, and
/// for settings that do not work together (e.g. unaligned checkpoints in
/// at-least-once mode).
[[nodiscard]] std::vector<std::string>
apply_settings(configuration& config, const std::map<std::string, std::string>& settings);

/// The keys apply_settings knows (restart-strategy.* included), sorted.
[[nodiscard]] const std::vector<std::string>& known_setting_keys();

/// Parses an integer setting in [min, max]; throws std::invalid_argument
/// naming `key`.
[[nodiscard]] int64_t parse_setting_int(std::string_view key, std::string_view value, int64_t min,
                                        int64_t max);
/// Parses a finite floating-point setting; throws naming `key`.
[[nodiscard]] double parse_setting_double(std::string_view key, std::string_view value);
/// Parses true/false (any case); throws naming `key`.
[[nodiscard]] bool parse_setting_bool(std::string_view key, std::string_view value);
/// Parses a memory size as Flink writes them ("64mb", "1 gb", "512k", a
/// bare number = bytes); throws naming `key`.
[[nodiscard]] uint64_t parse_memory_size(std::string_view key, std::string_view value);

} // namespace sluice::runtime
