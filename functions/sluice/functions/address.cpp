#include "sluice/functions/address.hpp"

namespace sluice::functions {

std::optional<function_type> function_type::parse(std::string_view text) {
  auto slash = text.rfind('/');
  if (slash == std::string_view::npos || slash == 0
      || slash + 1 == text.size())
    return std::nullopt;
  auto ns = text.substr(0, slash);
  if (ns.find('/') != std::string_view::npos)
    return std::nullopt;
  return function_type{std::string{ns}, std::string{text.substr(slash + 1)}};
}

std::optional<address> address::parse(std::string_view text) {
  auto first = text.find('/');
  if (first == std::string_view::npos)
    return std::nullopt;
  auto second = text.find('/', first + 1);
  if (second == std::string_view::npos || second + 1 == text.size())
    return std::nullopt;
  auto type = function_type::parse(text.substr(0, second));
  if (!type)
    return std::nullopt;
  return address{std::move(*type), std::string{text.substr(second + 1)}};
}

} // namespace sluice::functions
