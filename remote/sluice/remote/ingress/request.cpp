#include "sluice/remote/ingress/request.hpp"

#include "sluice/remote/rest/router.hpp"

#include <algorithm>
#include <cctype>
#include <map>

namespace sluice::remote::ingress {

namespace {

constexpr std::string_view prefix = "/functions/";
constexpr std::string_view vnd = "application/vnd.";
constexpr std::string_view text_plain = "text/plain";
constexpr std::string_view plain_charset = "text/plain; charset=utf-8";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool starts_with_nocase(std::string_view s, std::string_view head) {
  return s.size() >= head.size() && lower(s.substr(0, head.size())) == head;
}

ingress_rejection reject(unsigned status, std::string message) {
  return ingress_rejection{status, std::move(message)};
}

/// The value of a body by its content type; a rejection for an unknown one.
std::variant<functions::typed_value, ingress_rejection>
value_of(std::string_view content_type, std::string body, std::string_view default_type) {
  auto semicolon = content_type.find(';');
  auto media = trim(content_type.substr(0, semicolon));
  auto params = semicolon == std::string_view::npos ? std::string_view{}
                                                    : content_type.substr(semicolon + 1);
  const std::string accepted = "(accepted: text/plain, application/vnd.<namespace>/<name>)";
  if (media.empty()) {
    if (default_type == functions::type_names::string)
      return functions::make_typed(body);
    return functions::typed_value{std::string{default_type}, std::move(body)};
  }
  if (lower(media) == text_plain) {
    // Only charset parameters that mean UTF-8 text are understood.
    for (auto rest = params; !rest.empty();) {
      auto end = rest.find(';');
      auto param = trim(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
      if (param.empty())
        continue;
      auto eq = param.find('=');
      auto name = lower(trim(param.substr(0, eq)));
      auto value = eq == std::string_view::npos ? std::string{} : lower(trim(param.substr(eq + 1)));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
        value = value.substr(1, value.size() - 2);
      if (name == "charset" && value != "utf-8" && value != "utf8" && value != "us-ascii")
        return reject(415, "unsupported charset '" + value + "' for text/plain (use utf-8)");
    }
    return functions::make_typed(body);
  }
  if (starts_with_nocase(media, vnd)) {
    auto type_name = std::string{media.substr(vnd.size())};
    auto parsed = functions::function_type::parse(type_name);
    if (!parsed || parsed->ns.empty() || parsed->name.empty())
      return reject(415, "content type '" + std::string{media} +
                             "' does not name a type: expected application/vnd.<namespace>/<name>");
    return functions::typed_value{std::move(type_name), std::move(body)};
  }
  return reject(415, "unsupported content type '" + std::string{media} + "' " + accepted);
}

} // namespace

std::variant<ingress_request, ingress_rejection>
parse_ingress_request(std::string_view method, std::string_view target,
                      std::string_view content_type, std::string body,
                      std::string_view default_value_type) {
  std::string path;
  std::map<std::string, std::string> query;
  if (!rest::parse_target(target, path, query))
    return reject(400, "malformed request target '" + std::string{target} + "'");
  if (path.compare(0, prefix.size(), prefix) != 0)
    return reject(404, "no such path '" + path +
                           "': messages go to /functions/<namespace>/<type>/<id>");
  if (method != "POST" && method != "PUT")
    return reject(405, "method " + std::string{method} + " not allowed (use POST)");
  auto rest = std::string_view{path}.substr(prefix.size());
  auto first = rest.find('/');
  auto second = first == std::string_view::npos ? first : rest.find('/', first + 1);
  if (second == std::string_view::npos)
    return reject(400, "malformed path '" + path +
                           "': expected /functions/<namespace>/<type>/<id>");
  ingress_request req;
  req.target.type.ns = std::string{rest.substr(0, first)};
  req.target.type.name = std::string{rest.substr(first + 1, second - first - 1)};
  req.target.id = std::string{rest.substr(second + 1)};
  if (req.target.type.ns.empty() || req.target.type.name.empty())
    return reject(400, "malformed path '" + path + "': empty function namespace or type");
  if (req.target.id.empty())
    return reject(400, "malformed path '" + path + "': empty function id");
  for (auto& [key, value] : query) {
    if (key != "reply")
      return reject(400, "unknown query parameter '" + key + "' (known: reply)");
    if (value == "true")
      req.wants_reply = true;
    else if (value != "false")
      return reject(400, "reply must be true or false, not '" + value + "'");
  }
  auto value = value_of(content_type, std::move(body), default_value_type);
  if (auto* r = std::get_if<ingress_rejection>(&value))
    return std::move(*r);
  req.value = std::move(std::get<functions::typed_value>(value));
  return req;
}

encoded_reply encode_reply(const functions::typed_value& value) {
  if (value.type_name == functions::type_names::string) {
    if (auto text = functions::typed_as<std::string>(value))
      return {std::string{plain_charset}, std::move(*text)};
  }
  return {std::string{vnd} + value.type_name, value.bytes};
}

} // namespace sluice::remote::ingress
