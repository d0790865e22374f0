#pragma once

#include <caf/expected.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

/// sluice-conf.yaml: Flink-style settings in a YAML file, and `-D key=value`
/// overrides, as the keys runtime::apply_settings reads.
namespace sluice::remote {

/// Reads settings YAML: Flink's flat keys (`parallelism.default: 4`) and
/// nested maps (`parallelism: {default: 4}`, Flink 1.19's config.yaml),
/// flattened with dots; values are scalars. Errors (`invalid_configuration`)
/// read `source:line:column: what` (a list value, a key given twice, bad
/// YAML). An empty file is no settings.
[[nodiscard]] caf::expected<std::map<std::string, std::string>>
parse_settings(std::string_view yaml, std::string_view source);

/// Reads and parses a settings file.
[[nodiscard]] caf::expected<std::map<std::string, std::string>>
load_settings(const std::string& path);

/// Splits a `-D key=value` override; fails without '=' or with an empty key.
[[nodiscard]] caf::expected<std::pair<std::string, std::string>>
parse_setting_override(std::string_view text);

/// Removes `key` from `settings` and returns its value, or nullopt: a
/// process reads its own keys this way and hands the rest on.
std::optional<std::string> take_setting(std::map<std::string, std::string>& settings,
                                        const std::string& key);

} // namespace sluice::remote
