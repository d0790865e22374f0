#include "sluice/remote/settings_file.hpp"

#include "sluice/remote/errors.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

namespace sluice::remote {

namespace {

struct settings_error {
  YAML::Mark mark;
  std::string what;
};

std::string where(std::string_view source, const YAML::Mark& m) {
  if (m.is_null())
    return std::string(source);
  return std::string(source) + ":" + std::to_string(m.line + 1) + ":" +
         std::to_string(m.column + 1);
}

void flatten(const YAML::Node& node, const std::string& prefix,
             std::map<std::string, std::string>& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    // Copies: the iterator's pair is a temporary.
    YAML::Node name = it->first;
    YAML::Node value = it->second;
    if (!name.IsScalar())
      throw settings_error{name.Mark(), "a key must be a plain word"};
    auto key = prefix.empty() ? name.Scalar() : prefix + "." + name.Scalar();
    if (value.IsMap()) {
      flatten(value, key, out);
    } else if (value.IsScalar()) {
      if (!out.emplace(key, value.Scalar()).second)
        throw settings_error{name.Mark(), "'" + key + "' is set twice"};
    } else if (value.IsNull()) {
      throw settings_error{name.Mark(), "'" + key + "' has no value"};
    } else {
      throw settings_error{value.Mark(), "'" + key + "': lists are not supported, give one value"};
    }
  }
}

} // namespace

caf::expected<std::map<std::string, std::string>> parse_settings(std::string_view yaml,
                                                                 std::string_view source) {
  std::map<std::string, std::string> out;
  try {
    auto root = YAML::Load(std::string{yaml});
    if (root.IsNull())
      return out;
    if (!root.IsMap())
      return make_error(remote_errc::invalid_configuration,
                        where(source, root.Mark()) + ": settings must be a map of keys to values");
    flatten(root, "", out);
  } catch (const settings_error& e) {
    return make_error(remote_errc::invalid_configuration, where(source, e.mark) + ": " + e.what);
  } catch (const YAML::Exception& e) {
    return make_error(remote_errc::invalid_configuration,
                      where(source, e.mark) + ": invalid YAML: " + e.msg);
  }
  return out;
}

caf::expected<std::map<std::string, std::string>> load_settings(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return make_error(remote_errc::invalid_configuration,
                      "cannot read configuration file '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return parse_settings(text.str(), path);
}

caf::expected<std::pair<std::string, std::string>> parse_setting_override(std::string_view text) {
  auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0)
    return make_error(remote_errc::invalid_configuration,
                      "-D expects key=value, got '" + std::string(text) + "'");
  return std::make_pair(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
}

std::optional<std::string> take_setting(std::map<std::string, std::string>& settings,
                                        const std::string& key) {
  auto i = settings.find(key);
  if (i == settings.end())
    return std::nullopt;
  auto v = std::move(i->second);
  settings.erase(i);
  return v;
}

} // namespace sluice::remote
