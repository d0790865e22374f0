#include "sluice/remote/cluster/job_spec.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/runtime/job_graph.hpp"
#include "sluice/runtime/settings.hpp"
#include "sluice/state/serializer.hpp"

#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace sluice::remote::cluster {

namespace {

namespace fs = std::filesystem;

constexpr uint32_t spec_magic = 0x534a5350; // "SJSP"
constexpr uint8_t spec_version = 1;

template <class T>
void put(state::byte_writer& w, const T& v) {
  state::serializer<T>::write(w, v);
}

template <class T>
T get(state::byte_reader& r) {
  return state::serializer<T>::read(r);
}

/// FNV-1a over the library's bytes: names its file in the cache, so one
/// content is stored and loaded once however many jobs use it.
std::string content_hash(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

} // namespace

std::string encode_job_spec(const job_spec& spec) {
  std::string out;
  out.reserve(spec.library.size() + 1024);
  state::byte_writer w{out};
  w.write_u32(spec_magic);
  w.write_u8(spec_version);
  put(w, spec.library_name);
  put(w, spec.library);
  put(w, spec.request.entry);
  put(w, spec.request.args);
  put(w, spec.request.parallelism);
  put(w, spec.settings);
  put(w, spec.vertex_ids);
  return out;
}

job_spec decode_job_spec(const std::string& bytes) {
  try {
    state::byte_reader r{bytes};
    if (r.read_u32() != spec_magic)
      throw std::invalid_argument("not a job spec");
    if (auto v = r.read_u8(); v != spec_version)
      throw std::invalid_argument("job spec version " + std::to_string(v) + ", this build reads " +
                                  std::to_string(spec_version));
    job_spec s;
    s.library_name = get<std::string>(r);
    s.library = get<std::string>(r);
    s.request.entry = get<std::string>(r);
    s.request.args = get<std::vector<std::string>>(r);
    s.request.parallelism = get<int32_t>(r);
    s.settings = get<std::map<std::string, std::string>>(r);
    s.vertex_ids = get<std::vector<std::string>>(r);
    if (!r.at_end())
      throw std::invalid_argument("trailing bytes after a job spec");
    return s;
  } catch (const state::serialization_error& e) {
    throw std::invalid_argument(std::string("malformed job spec: ") + e.what());
  }
}

built_job job_library_cache::resolve(const std::string& job_id, const std::string& spec_bytes) {
  auto fail = [&](const std::string& what) -> std::runtime_error {
    return std::runtime_error("cannot rebuild job " + job_id + " on this TaskManager: " + what);
  };
  job_spec spec;
  try {
    spec = decode_job_spec(spec_bytes);
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
  fs::path path;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    std::error_code ec;
    fs::create_directories(directory_, ec);
    if (ec)
      throw fail("cannot create the library directory " + directory_ + ": " + ec.message());
    // The content hash names the file; a file of that name holds that
    // content (it is renamed into place only once complete).
    path = fs::path(directory_) / (content_hash(spec.library) + "-" +
                                   fs::path(spec.library_name).filename().string());
    if (!fs::exists(path)) {
      auto tmp = path;
      tmp += ".part";
      {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(spec.library.data(), static_cast<std::streamsize>(spec.library.size()));
        if (!out)
          throw fail("cannot write " + tmp.string());
      }
      fs::rename(tmp, path, ec);
      if (ec)
        throw fail("cannot store " + path.string() + ": " + ec.message());
    }
  }
  runtime::configuration config;
  try {
    (void) runtime::apply_settings(config, spec.settings);
  } catch (const std::exception& e) {
    throw fail(std::string("the JobManager's settings do not apply here: ") + e.what());
  }
  auto built = build_job_library(path.string(), spec.library_name, spec.request, config);
  if (!built)
    throw fail(describe(built.error()));
  const auto& vertices = built->graph->vertices();
  bool same = vertices.size() == spec.vertex_ids.size();
  for (size_t i = 0; same && i < vertices.size(); ++i)
    same = vertices[i].hex_id == spec.vertex_ids[i];
  if (!same)
    throw fail("the library built a different job graph here than on the JobManager (its entry "
               "must build the same pipeline from the same arguments)");
  return std::move(*built);
}

} // namespace sluice::remote::cluster
