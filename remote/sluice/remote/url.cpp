#include "sluice/remote/url.hpp"

#include "sluice/remote/errors.hpp"

#include <cctype>
#include <charconv>

namespace sluice::remote {

caf::expected<http_url> parse_url(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return make_error(remote_errc::invalid_request,
                      "invalid URL '" + std::string{text} + "': " + why);
  };
  auto sep = text.find("://");
  if (sep == std::string_view::npos)
    return bad("expected scheme://host[:port]/path");
  http_url url;
  url.scheme = std::string{text.substr(0, sep)};
  for (auto& c : url.scheme)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto rest = text.substr(sep + 3);
  if (url.scheme == "http+unix" || url.scheme == "https+unix") {
    // http+unix:///path/to/socket.sock/http/path: the socket path ends at
    // the first segment ending in ".sock" (StateFun's convention).
    auto sock = rest.find(".sock");
    if (sock == std::string_view::npos)
      return bad("a unix-socket URL needs a path ending in .sock");
    url.host = std::string{rest.substr(0, sock + 5)};
    auto path = rest.substr(sock + 5);
    url.target = path.empty() ? "/" : std::string{path};
    return url;
  }
  if (url.scheme != "http" && url.scheme != "https")
    return bad("unknown scheme '" + url.scheme +
               "' (expected http, https, http+unix or https+unix)");
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  url.target = slash == std::string_view::npos ? "/" : std::string{rest.substr(slash)};
  if (authority.empty())
    return bad("no host");
  url.port = url.scheme == "https" ? 443 : 80;
  std::string_view host = authority;
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return bad("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':')
      return bad("junk after IPv6 address");
  } else {
    auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    authority = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
  }
  if (!authority.empty()) {
    auto digits = authority.substr(1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || end != digits.data() + digits.size() || value == 0 || value > 65535)
      return bad("bad port '" + std::string{digits} + "'");
    url.port = static_cast<uint16_t>(value);
  }
  if (host.empty())
    return bad("no host");
  url.host = std::string{host};
  return url;
}

std::string substitute_function_name(std::string_view template_path,
                                     std::string_view function_name) {
  static constexpr std::string_view placeholder = "{function.name}";
  std::string out;
  out.reserve(template_path.size() + function_name.size());
  size_t pos = 0;
  for (;;) {
    auto hit = template_path.find(placeholder, pos);
    if (hit == std::string_view::npos) {
      out.append(template_path.substr(pos));
      return out;
    }
    out.append(template_path.substr(pos, hit - pos));
    out.append(function_name);
    pos = hit + placeholder.size();
  }
}

} // namespace sluice::remote
