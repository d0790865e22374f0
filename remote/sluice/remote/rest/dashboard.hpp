#pragma once

#include "sluice/remote/rest/router.hpp"

#include <string_view>

/// The web dashboard: plain HTML, JS and CSS (sluice/remote/rest/web),
/// compiled into the binary and served next to the REST API it reads.
namespace sluice::remote::rest {

/// The Content-Type of a dashboard file, from its extension
/// (application/octet-stream when unknown).
std::string_view dashboard_content_type(std::string_view file_name);

/// The response for GET /web/<file_name>: the embedded file with its
/// Content-Type and cache headers, or 404 in the REST error shape. Only
/// names of embedded files match, so no path reaches the file system.
/// `version` is the `v` query parameter: assets asked for with the current
/// version may be cached for good (index.html asks for them that way).
rest_response dashboard_file(std::string_view file_name, std::string_view version = {});

/// Adds GET / (the page) and GET /web/:file to `r`, as
/// `route_access::open` routes: the files carry no data, and the page sends
/// the bearer token with its API calls (see remote/README.md).
void add_dashboard_routes(router& r);

} // namespace sluice::remote::rest
