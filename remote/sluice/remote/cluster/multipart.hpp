#pragma once

#include <caf/expected.hpp>

#include <string>
#include <string_view>

/// multipart/form-data with one file, as `POST /jars/upload` takes it (Flink's
/// `jarfile` field; `curl -F jarfile=@job.so`).
namespace sluice::remote::cluster {

/// One file of a form.
struct form_file {
  /// The form field's name.
  std::string field;
  /// The `filename` the client gave.
  std::string file_name;
  /// The file's bytes.
  std::string bytes;
};

/// Finds the part of field `field` in a multipart/form-data `body` whose
/// Content-Type header is `content_type` (it carries the boundary). Errors
/// (`invalid_request`): not multipart/form-data, no boundary, no such field,
/// a part without its closing boundary.
[[nodiscard]] caf::expected<form_file>
parse_form_file(std::string_view content_type, std::string_view body, std::string_view field);

/// Encodes one file as a multipart/form-data body; returns the body and
/// sets `content_type` (with the boundary it chose).
[[nodiscard]] std::string encode_form_file(const form_file& file, std::string& content_type);

} // namespace sluice::remote::cluster
