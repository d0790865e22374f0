#include "sluice/remote/cluster/multipart.hpp"

#include "sluice/remote/errors.hpp"

#include <cctype>
#include <random>

namespace sluice::remote::cluster {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

/// The value of `key=` in a header's parameters (quoted or not).
std::string header_param(std::string_view header, std::string_view key) {
  auto low = lower(header);
  size_t pos = 0;
  auto wanted = lower(key) + "=";
  while ((pos = low.find(wanted, pos)) != std::string::npos) {
    // A whole parameter name only: "name=" must not match "filename=".
    if (pos > 0 && low[pos - 1] != ';' && low[pos - 1] != ' ' && low[pos - 1] != '\t') {
      pos += wanted.size();
      continue;
    }
    auto v = header.substr(pos + wanted.size());
    if (!v.empty() && v.front() == '"') {
      auto end = v.find('"', 1);
      return std::string(v.substr(1, end == std::string_view::npos ? v.size() - 1 : end - 1));
    }
    auto end = v.find_first_of("; \t");
    return std::string(v.substr(0, end));
  }
  return {};
}

} // namespace

caf::expected<form_file> parse_form_file(std::string_view content_type, std::string_view body,
                                         std::string_view field) {
  auto bad = [](const std::string& what) {
    return make_error(remote_errc::invalid_request, what);
  };
  if (lower(content_type).rfind("multipart/form-data", 0) != 0)
    return bad("expected a multipart/form-data upload, got Content-Type '" +
               std::string(content_type) + "'");
  auto boundary = header_param(content_type, "boundary");
  if (boundary.empty())
    return bad("the multipart Content-Type has no boundary");
  auto delimiter = "--" + boundary;
  auto pos = body.find(delimiter);
  while (pos != std::string_view::npos) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--")
      break; // the closing delimiter
    if (body.substr(pos, 2) == "\r\n")
      pos += 2;
    auto headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos)
      return bad("a multipart part has no end of headers");
    auto headers = body.substr(pos, headers_end - pos);
    auto content_begin = headers_end + 4;
    auto next = body.find("\r\n" + delimiter, content_begin);
    if (next == std::string_view::npos)
      return bad("a multipart part is not closed by its boundary");
    std::string disposition;
    size_t line_begin = 0;
    while (line_begin <= headers.size()) {
      auto line_end = headers.find("\r\n", line_begin);
      auto line = headers.substr(line_begin, line_end == std::string_view::npos
                                               ? std::string_view::npos
                                               : line_end - line_begin);
      if (lower(line).rfind("content-disposition:", 0) == 0)
        disposition = std::string(line);
      if (line_end == std::string_view::npos)
        break;
      line_begin = line_end + 2;
    }
    if (header_param(disposition, "name") == field) {
      form_file f;
      f.field = std::string(field);
      f.file_name = header_param(disposition, "filename");
      f.bytes = std::string(body.substr(content_begin, next - content_begin));
      return f;
    }
    pos = next + 2;
  }
  return bad("the upload has no form field '" + std::string(field) + "'");
}

std::string encode_form_file(const form_file& file, std::string& content_type) {
  std::random_device rd;
  std::string boundary = "sluice-boundary-" + std::to_string(rd()) + std::to_string(rd());
  content_type = "multipart/form-data; boundary=" + boundary;
  std::string body;
  body.reserve(file.bytes.size() + 256);
  body += "--" + boundary + "\r\n";
  body += "Content-Disposition: form-data; name=\"" + file.field + "\"; filename=\"" +
          file.file_name + "\"\r\n";
  body += "Content-Type: application/octet-stream\r\n\r\n";
  body += file.bytes;
  body += "\r\n--" + boundary + "--\r\n";
  return body;
}

} // namespace sluice::remote::cluster
