#pragma once

// Text helpers of the configuration parsers (settings.cpp, restart_strategy.cpp).

#include <cctype>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice::runtime::internal {

/// `s` without leading and trailing white space.
inline std::string_view trim(std::string_view s) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && is_space(s.back()))
    s.remove_suffix(1);
  return s;
}

/// `s` in ASCII lower case.
inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// Throws std::invalid_argument: "invalid value '<value>' for '<key>': <why>".
[[noreturn]] inline void bad_value(std::string_view key, std::string_view value,
                                   std::string_view why) {
  throw std::invalid_argument("invalid value '" + std::string(value) + "' for '" +
                              std::string(key) + "': " + std::string(why));
}

} // namespace sluice::runtime::internal
