#include "sluice/remote/cluster/job_library.hpp"

#include "sluice/job.hpp"
#include "sluice/remote/errors.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include <dlfcn.h>

namespace sluice::remote::cluster {

namespace {

namespace fs = std::filesystem;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string random_hex32() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(now_ms()));
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

/// Stands in for the executor while the entry runs: a library that calls
/// execute() itself would run its job outside the cluster's control.
class refusing_executor final : public runtime::job_executor {
public:
  std::shared_ptr<runtime::job_client> submit(std::shared_ptr<const runtime::job_graph>,
                                              const runtime::configuration&) override {
    throw std::logic_error("the entry called execute(); a job library only builds its "
                           "pipeline and returns 0, the cluster runs it");
  }
};

} // namespace

caf::expected<jar_info> jar_store::add(const std::string& file_name, const std::string& bytes) {
  auto name = fs::path(file_name).filename().string();
  if (name.empty() || name == "." || name == ".." || name.size() < 4 ||
      name.compare(name.size() - 3, 3, ".so") != 0)
    return make_error(remote_errc::invalid_request,
                      "a job library's file name must end in .so, got '" + file_name + "'");
  if (bytes.empty())
    return make_error(remote_errc::invalid_request, "the uploaded job library '" + name +
                                                      "' is empty");
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec)
    return make_error(remote_errc::invalid_request,
                      "cannot create the upload directory '" + directory_ + "': " + ec.message());
  jar_info info;
  info.id = random_hex32() + "_" + name;
  info.name = name;
  info.uploaded_ms = now_ms();
  info.path = (fs::path(directory_) / info.id).string();
  {
    std::ofstream out(info.path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out)
      return make_error(remote_errc::invalid_request, "cannot write '" + info.path + "'");
  }
  std::lock_guard<std::mutex> guard{mtx_};
  jars_.push_back(info);
  return info;
}

std::vector<jar_info> jar_store::list() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return jars_;
}

std::optional<jar_info> jar_store::find(const std::string& id) const {
  std::lock_guard<std::mutex> guard{mtx_};
  for (const auto& j : jars_)
    if (j.id == id)
      return j;
  return std::nullopt;
}

bool jar_store::remove(const std::string& id) {
  std::lock_guard<std::mutex> guard{mtx_};
  for (auto i = jars_.begin(); i != jars_.end(); ++i)
    if (i->id == id) {
      std::error_code ec;
      fs::remove(i->path, ec);
      jars_.erase(i);
      return true;
    }
  return false;
}

caf::expected<built_job> build_job_library(const std::string& path,
                                          const std::string& display_name,
                                          const job_run_request& request,
                                          const runtime::configuration& cluster_config) {
  auto failed = [&](const std::string& what) {
    return make_error(remote_errc::invalid_request, "job library '" + display_name + "': " + what);
  };
  // RTLD_NODELETE: subtasks run the library's code (and static objects of it
  // may be registered in the process), so it is never unmapped.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!handle) {
    const char* why = dlerror();
    return failed(std::string("cannot be loaded: ") + (why ? why : "unknown reason"));
  }
  auto entry_name = request.entry.empty() ? std::string(default_job_entry) : request.entry;
  dlerror();
  void* symbol = dlsym(handle, entry_name.c_str());
  if (!symbol)
    return failed("has no entry symbol '" + entry_name +
                  "' (define extern \"C\" int " + entry_name +
                  "(int, char**, sluice::job_context&), see sluice/job.hpp)");
  auto* entry = reinterpret_cast<job_main_function*>(symbol);

  auto config = cluster_config;
  if (request.parallelism > 0)
    config.parallelism = request.parallelism;
  if (!request.savepoint_path.empty()) {
    // Flink prints savepoint locations as file: URIs; take those as paths.
    auto path_of = [](std::string p) {
      if (p.rfind("file://", 0) == 0)
        return p.substr(7);
      if (p.rfind("file:", 0) == 0)
        return p.substr(5);
      return p;
    };
    config.restore.path = path_of(request.savepoint_path);
    config.restore.allow_non_restored_state = request.allow_non_restored_state;
  }
  stream_environment env(config);
  env.set_executor(std::make_shared<refusing_executor>());
  job_context ctx(env, display_name);
  std::vector<std::string> args;
  args.push_back(display_name);
  args.insert(args.end(), request.args.begin(), request.args.end());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = 0;
  try {
    rc = entry(static_cast<int>(args.size()), argv.data(), ctx);
  } catch (const std::exception& e) {
    return failed(std::string("failed while building its pipeline: ") + e.what());
  } catch (...) {
    return failed("failed while building its pipeline (an exception that is not a "
                  "std::exception)");
  }
  if (rc != 0)
    return failed("entry '" + entry_name + "' returned " + std::to_string(rc) +
                  (ctx.failure().empty() ? std::string() : ": " + ctx.failure()));
  try {
    return built_job{env.job(ctx.job_name()), env.config()};
  } catch (const std::exception& e) {
    return failed(std::string("its pipeline cannot run: ") + e.what());
  }
}

caf::expected<std::shared_ptr<runtime::job_client>>
run_job_library(const std::string& path, const std::string& display_name,
                const job_run_request& request, const runtime::configuration& cluster_config,
                std::shared_ptr<runtime::job_executor> executor) {
  auto job = build_job_library(path, display_name, request, cluster_config);
  if (!job)
    return job.error();
  try {
    return executor->submit(job->graph, job->config);
  } catch (const std::exception& e) {
    return make_error(remote_errc::invalid_request, "job library '" + display_name +
                                                      "': its pipeline cannot run: " + e.what());
  }
}

std::vector<std::string> split_program_args(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  bool in_arg = false;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote)
        quote = 0;
      else
        current += c;
    } else if (c == '"' || c == '\'') {
      quote = c;
      in_arg = true;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (in_arg)
        out.push_back(std::move(current));
      current.clear();
      in_arg = false;
    } else {
      current += c;
      in_arg = true;
    }
  }
  if (in_arg)
    out.push_back(std::move(current));
  return out;
}

} // namespace sluice::remote::cluster
