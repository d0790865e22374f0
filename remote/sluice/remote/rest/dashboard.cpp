#include "sluice/remote/rest/dashboard.hpp"

#include "sluice/remote/internal/embedded_file.hpp"

#include <string>

namespace sluice::remote::rest {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

const internal::embedded_file* find_file(std::string_view name) {
  for (const auto& f : internal::dashboard_files)
    if (f.name == name)
      return &f;
  return nullptr;
}

/// index.html names its assets `/web/<file>?v=@VERSION@`: filled in once, so
/// a browser never pairs a new page with a cached old script.
const std::string& index_html() {
  static const std::string page = [] {
    const auto* f = find_file("index.html");
    std::string out = f ? std::string(f->bytes) : std::string();
    const std::string placeholder = "@VERSION@";
    for (auto pos = out.find(placeholder); pos != std::string::npos;
         pos = out.find(placeholder, pos))
      out.replace(pos, placeholder.size(), internal::dashboard_files_version);
    return out;
  }();
  return page;
}

rest_response page_response() {
  rest_response res;
  res.content_type = std::string(dashboard_content_type("index.html"));
  res.body = index_html();
  res.headers = {{"Cache-Control", "no-cache"},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Referrer-Policy", "no-referrer"},
                 // Scripts and styles only from this server; no inline code.
                 {"Content-Security-Policy",
                  "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}};
  return res;
}

} // namespace

std::string_view dashboard_content_type(std::string_view name) {
  if (ends_with(name, ".html"))
    return "text/html; charset=utf-8";
  if (ends_with(name, ".js"))
    return "text/javascript; charset=utf-8";
  if (ends_with(name, ".css"))
    return "text/css; charset=utf-8";
  if (ends_with(name, ".svg"))
    return "image/svg+xml";
  if (ends_with(name, ".png"))
    return "image/png";
  if (ends_with(name, ".ico"))
    return "image/x-icon";
  return "application/octet-stream";
}

rest_response dashboard_file(std::string_view name, std::string_view version) {
  if (name == "index.html")
    return page_response();
  const auto* f = find_file(name);
  if (!f)
    return error_response(404, "no dashboard file " + std::string(name));
  rest_response res;
  res.content_type = std::string(dashboard_content_type(name));
  res.body = std::string(f->bytes);
  bool current = version == internal::dashboard_files_version;
  res.headers = {{"Cache-Control", current ? "public, max-age=31536000, immutable" : "no-cache"},
                 {"X-Content-Type-Options", "nosniff"}};
  return res;
}

void add_dashboard_routes(router& r) {
  r.add(
      "GET", "/", [](const rest_request&) { return page_response(); }, route_access::open);
  r.add(
      "GET", "/web/:file",
      [](const rest_request& req) {
        auto v = req.query.find("v");
        return dashboard_file(req.params.at("file"), v == req.query.end() ? "" : v->second);
      },
      route_access::open);
}

} // namespace sluice::remote::rest
