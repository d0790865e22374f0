#pragma once

// Files compiled into the binary by cmake/embed_files.cmake.

#include <string_view>
#include <vector>

namespace sluice::remote::internal {

/// One embedded file: its name inside the embedded folder and its bytes,
/// which live as long as the program.
struct embedded_file {
  std::string_view name;
  std::string_view bytes;
};

/// The files of remote/sluice/remote/rest/web (the web dashboard), sorted by
/// name.
extern const std::vector<embedded_file> dashboard_files;
/// A hash of all of `dashboard_files`: changes whenever one of them does.
extern const std::string_view dashboard_files_version;

} // namespace sluice::remote::internal
