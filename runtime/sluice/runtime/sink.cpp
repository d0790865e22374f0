#include "sluice/runtime/sink.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <sys/stat.h>

namespace sluice::runtime::internal {

std::FILE* open_text_sink_file(const std::string& path, const runtime_context& ctx) {
  std::string file = path;
  if (ctx.parallelism() > 1) {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create output directory '" + path +
                               "': " + std::strerror(errno));
    file = path + "/" + std::to_string(ctx.subtask_index() + 1);
  }
  auto* f = std::fopen(file.c_str(), "w");
  if (f == nullptr)
    throw std::runtime_error("cannot open output file '" + file + "': " + std::strerror(errno));
  return f;
}

void write_text_sink(std::FILE* f, const std::string& path, const std::string& data) {
  if (std::fwrite(data.data(), 1, data.size(), f) != data.size())
    throw std::runtime_error("cannot write output file '" + path + "': " + std::strerror(errno));
}

} // namespace sluice::runtime::internal
