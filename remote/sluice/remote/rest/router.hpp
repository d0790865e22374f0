#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// The HTTP-independent part of the REST API: requests, responses, Flink's
/// error shape, and a router from method + path pattern to handler.
namespace sluice::remote::rest {

/// One HTTP request as a handler sees it.
struct rest_request {
  std::string method; ///< upper case: GET, POST, PATCH...
  std::string path;   ///< without the query string, percent-decoded
  /// The path's segments, each percent-decoded on its own, so an escaped
  /// '/' (%2F) stays inside its segment (a key in a path parameter). Empty:
  /// the router splits `path`.
  std::vector<std::string> segments;
  std::map<std::string, std::string> query;
  /// Values of the pattern's `:name` segments.
  std::map<std::string, std::string> params;
  /// The Content-Type header (empty if none).
  std::string content_type;
  std::string body;
};

/// What a handler answers.
struct rest_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  /// Further header fields (name, value), e.g. Cache-Control.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// A JSON response with status `status`.
rest_response json_response(unsigned status, std::string body);
/// Flink's error shape: `{"errors": [message]}` with status `status`.
rest_response error_response(unsigned status, const std::string& message);

using rest_handler = std::function<rest_response(const rest_request&)>;

/// Whether a route needs the server's bearer token (when one is set).
enum class route_access {
  token, ///< the API: 401 without the token
  open,  ///< static files of the dashboard, which carry no data
};

/// Maps (method, path) to handlers. Patterns are paths whose segments may be
/// `:name` (matches one non-empty segment, stored in `params`). A path that
/// matches some pattern but none with the request's method gets 405; a path
/// that matches nothing gets 404. Build it before serving; `handle` is then
/// safe to call from several threads.
class router {
public:
  /// Adds a route; later routes do not override earlier ones.
  void add(std::string method, std::string_view pattern, rest_handler handler,
           route_access access = route_access::token);
  /// Routes `req` (its `params` are filled) and runs the handler. Handler
  /// exceptions become 500 with the exception's message.
  rest_response handle(rest_request req) const;
  /// The methods allowed on `path` (empty if no pattern matches).
  std::vector<std::string> allowed_methods(std::string_view path) const;
  /// Whether a request needs the bearer token: false only if the route that
  /// `handle` would run for it is `route_access::open`.
  bool needs_token(std::string_view method, std::string_view path) const;

private:
  struct route {
    std::string method;
    std::vector<std::string> segments;
    rest_handler handler;
    route_access access = route_access::token;
  };
  static bool match(const route& r, const std::vector<std::string>& path,
                    std::map<std::string, std::string>* params);
  std::vector<route> routes_;
};

/// Splits "/a/b/" into {"a", "b"} (empty segments dropped).
std::vector<std::string> split_path(std::string_view path);
/// Splits a request target into its percent-decoded path and query
/// parameters, and, if `segments` is given, the path's segments decoded one
/// by one; false if the target is malformed (bad percent escape, not
/// starting with '/').
[[nodiscard]] bool parse_target(std::string_view target, std::string& path,
                                std::map<std::string, std::string>& query,
                                std::vector<std::string>* segments = nullptr);

} // namespace sluice::remote::rest
