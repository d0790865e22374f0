#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::remote {

/// A parsed function endpoint URL (`scheme://host[:port]/path`). The schemes
/// StateFun accepts are `http`, `https`, `http+unix` and `https+unix`; sluice
/// parses all four but the client speaks only `http`.
struct http_url {
  std::string scheme;
  std::string host;
  uint16_t port = 0;
  /// The path and query, starting with '/'; may hold `{function.name}`.
  std::string target;

  /// `host:port`, the key of a connection pool.
  std::string authority() const { return host + ":" + std::to_string(port); }
  /// The URL as text.
  std::string to_string() const { return scheme + "://" + authority() + target; }
};

/// Parses a URL with one of the StateFun schemes. For the unix schemes the
/// socket path is kept in `host` and the port is 0.
[[nodiscard]] caf::expected<http_url> parse_url(std::string_view text);

/// `template_path` with every `{function.name}` replaced by `function_name`
/// (the only placeholder StateFun knows).
std::string substitute_function_name(std::string_view template_path,
                                     std::string_view function_name);

} // namespace sluice::remote
