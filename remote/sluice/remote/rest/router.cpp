#include "sluice/remote/rest/router.hpp"

#include <nlohmann/json.hpp>

#include <exception>

namespace sluice::remote::rest {

rest_response json_response(unsigned status, std::string body) {
  rest_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

rest_response error_response(unsigned status, const std::string& message) {
  nlohmann::json j = {{"errors", nlohmann::json::array({message})}};
  return json_response(status, j.dump());
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    auto j = path.find('/', i);
    if (j == std::string_view::npos)
      j = path.size();
    if (j > i)
      out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size())
        return false;
      int hi = hex_value(in[i + 1]);
      int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0)
        return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

} // namespace

bool parse_target(std::string_view target, std::string& path,
                  std::map<std::string, std::string>& query, std::vector<std::string>* segments) {
  if (target.empty() || target.front() != '/')
    return false;
  auto q = target.find('?');
  if (!percent_decode(target.substr(0, q), path, false))
    return false;
  if (segments) {
    *segments = split_path(target.substr(0, q));
    std::string decoded;
    for (auto& seg : *segments) {
      if (!percent_decode(seg, decoded, false))
        return false;
      seg = decoded;
    }
  }
  query.clear();
  if (q == std::string_view::npos)
    return true;
  auto rest = target.substr(q + 1);
  size_t i = 0;
  while (i <= rest.size()) {
    auto j = rest.find('&', i);
    if (j == std::string_view::npos)
      j = rest.size();
    auto pair = rest.substr(i, j - i);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      std::string key, value;
      if (!percent_decode(pair.substr(0, eq), key, true))
        return false;
      if (eq != std::string_view::npos && !percent_decode(pair.substr(eq + 1), value, true))
        return false;
      query[key] = value;
    }
    i = j + 1;
  }
  return true;
}

void router::add(std::string method, std::string_view pattern, rest_handler handler,
                 route_access access) {
  routes_.push_back({std::move(method), split_path(pattern), std::move(handler), access});
}

bool router::needs_token(std::string_view method, std::string_view path) const {
  auto segments = split_path(path);
  for (const auto& r : routes_)
    if (r.method == method && match(r, segments, nullptr))
      return r.access == route_access::token;
  return true;
}

bool router::match(const route& r, const std::vector<std::string>& path,
                   std::map<std::string, std::string>* params) {
  if (r.segments.size() != path.size())
    return false;
  for (size_t i = 0; i < path.size(); ++i) {
    const auto& seg = r.segments[i];
    if (!seg.empty() && seg.front() == ':') {
      if (params)
        (*params)[seg.substr(1)] = path[i];
    } else if (seg != path[i]) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> router::allowed_methods(std::string_view path) const {
  auto segments = split_path(path);
  std::vector<std::string> out;
  for (const auto& r : routes_)
    if (match(r, segments, nullptr))
      out.push_back(r.method);
  return out;
}

rest_response router::handle(rest_request req) const {
  auto segments = req.segments.empty() ? split_path(req.path) : req.segments;
  bool path_known = false;
  for (const auto& r : routes_) {
    if (!match(r, segments, nullptr))
      continue;
    path_known = true;
    if (r.method != req.method)
      continue;
    match(r, segments, &req.params);
    try {
      return r.handler(req);
    } catch (const std::exception& e) {
      return error_response(500, std::string("internal error: ") + e.what());
    } catch (...) {
      return error_response(500, "internal error");
    }
  }
  if (path_known) {
    std::string allowed;
    for (const auto& m : allowed_methods(req.path))
      allowed += (allowed.empty() ? "" : ", ") + m;
    return error_response(405, "method " + req.method + " not allowed on " + req.path +
                                 " (allowed: " + allowed + ")");
  }
  return error_response(404, "not found: " + req.path);
}

} // namespace sluice::remote::rest
