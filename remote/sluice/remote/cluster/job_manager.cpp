#include "sluice/remote/cluster/job_manager.hpp"

#include "sluice/actors/cluster.hpp"
#include "sluice/actors/distributed.hpp"
#include "sluice/job.hpp"
#include "sluice/remote/cluster/job_spec.hpp"
#include "sluice/remote/cluster/membership.hpp"
#include "sluice/remote/cluster/multipart.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/runtime/restart_strategy.hpp"
#include "sluice/remote/settings_file.hpp"
#include "sluice/runtime/settings.hpp"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include <arpa/inet.h>

namespace sluice::remote::cluster {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

/// The keys the JobManager takes out before the rest go to apply_settings.
job_manager_settings read_cluster_keys(std::map<std::string, std::string>& rest) {
  job_manager_settings s;
  auto take = [&](const char* key) { return take_setting(rest, key); };
  auto path = [](const char* key, const std::string& v) {
    // Flink writes directories as file: URIs; other schemes are not local.
    auto p = v;
    if (p.rfind("file://", 0) == 0)
      p = p.substr(7);
    else if (p.rfind("file:", 0) == 0)
      p = p.substr(5);
    if (p.empty() || p.find("://") != std::string::npos)
      throw std::invalid_argument(std::string(key) + ": '" + v +
                                  "' is not a local directory (a path or a file: URI)");
    return p;
  };
  auto address = [](const char* key, const std::string& v) {
    if (v.empty() || v.find_first_of(" \t/") != std::string::npos)
      throw std::invalid_argument(std::string(key) + ": '" + v + "' is not a host name or address");
    return v;
  };
  // The server binds an IP address; localhost is the one name it knows.
  auto bind_address = [](const char* key, const std::string& v) {
    if (v == "localhost")
      return std::string("127.0.0.1");
    in6_addr ip{};
    if (inet_pton(AF_INET, v.c_str(), &ip) != 1 && inet_pton(AF_INET6, v.c_str(), &ip) != 1)
      throw std::invalid_argument(std::string(key) + ": '" + v +
                                  "' is not an IP address or localhost");
    return v;
  };
  // rest.address is where clients connect; rest.bind-address, when given,
  // is where the server listens.
  if (auto v = take("rest.address"))
    s.rest_address = bind_address("rest.address", *v);
  if (auto v = take("rest.bind-address"))
    s.rest_address = bind_address("rest.bind-address", *v);
  if (auto v = take("rest.port"))
    s.rest_port = static_cast<uint16_t>(runtime::parse_setting_int("rest.port", *v, 0, 65535));
  if (auto v = take("rest.server.max-content-length"))
    s.max_content_length = runtime::parse_memory_size("rest.server.max-content-length", *v);
  if (auto v = take("security.ssl.rest.enabled"))
    s.rest_tls = runtime::parse_setting_bool("security.ssl.rest.enabled", *v);
  if (auto v = take("security.ssl.rest.cert-file"))
    s.rest_tls_certificate_file = *v;
  if (auto v = take("security.ssl.rest.key-file"))
    s.rest_tls_private_key_file = *v;
  // The CLI's key: a settings file shared with the clients may hold it.
  take("security.ssl.rest.trust-cert-file");
  // The files are read (and matched) when the server starts; here only what
  // can be told from the settings alone.
  if (s.rest_tls && s.rest_tls_certificate_file.empty())
    throw std::invalid_argument(
      "security.ssl.rest.enabled is true but security.ssl.rest.cert-file is not set");
  if (s.rest_tls && s.rest_tls_private_key_file.empty())
    throw std::invalid_argument(
      "security.ssl.rest.enabled is true but security.ssl.rest.key-file is not set");
  if (auto v = take("web.upload.dir"))
    s.upload_dir = path("web.upload.dir", *v);
  if (auto v = take("state.savepoints.dir"))
    s.savepoints_dir = path("state.savepoints.dir", *v);
  if (auto v = take("jobmanager.rpc.address"))
    s.rpc_address = address("jobmanager.rpc.address", *v);
  if (auto v = take("jobmanager.rpc.port"))
    s.rpc_port =
      static_cast<uint16_t>(runtime::parse_setting_int("jobmanager.rpc.port", *v, 0, 65535));
  if (auto v = take("sluice.cluster.placement")) {
    if (*v == "auto")
      s.placement = job_placement::automatic;
    else if (*v == "local")
      s.placement = job_placement::local;
    else if (*v == "taskmanagers")
      s.placement = job_placement::task_managers;
    else
      throw std::invalid_argument("sluice.cluster.placement: '" + *v +
                                  "' is not auto, local or taskmanagers");
  }
  if (auto v = take("slot.request.timeout"))
    s.slot_request_timeout = actors::slot_request_timeout({{"slot.request.timeout", *v}});
  auto hb = take_heartbeat_settings(rest);
  s.heartbeat_interval = hb.interval;
  s.heartbeat_timeout = hb.timeout;
  return s;
}

const std::vector<std::string> cluster_keys = {
  "heartbeat.interval",   "heartbeat.timeout",    "jobmanager.rpc.address",
  "jobmanager.rpc.port",  "rest.address",         "rest.bind-address",
  "rest.port",            "rest.server.max-content-length",
  "state.savepoints.dir", "web.upload.dir",       "sluice.cluster.placement",
  "slot.request.timeout", "security.ssl.rest.enabled", "security.ssl.rest.cert-file",
  "security.ssl.rest.key-file", "security.ssl.rest.trust-cert-file"};

rest::rest_response jar_error(const caf::error& err) {
  return rest::error_response(400, describe(err));
}

} // namespace

const std::vector<std::string>& job_manager_keys() {
  return cluster_keys;
}

caf::expected<std::unique_ptr<job_manager>>
job_manager::start(const std::map<std::string, std::string>& settings) {
  auto rest = settings;
  job_manager_settings cluster;
  runtime::configuration config;
  std::vector<std::string> warnings;
  try {
    cluster = read_cluster_keys(rest);
    warnings = runtime::apply_settings(config, rest);
  } catch (const std::exception& e) {
    return make_error(remote_errc::invalid_configuration, e.what());
  }
  bool made = false;
  if (cluster.upload_dir.empty()) {
    auto pattern = (fs::temp_directory_path() / "sluice-jobmanager-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
      return make_error(remote_errc::invalid_configuration,
                        "cannot make an upload directory under " +
                          fs::temp_directory_path().string());
    cluster.upload_dir = pattern;
    made = true;
  } else {
    std::error_code ec;
    fs::create_directories(cluster.upload_dir, ec);
    if (ec)
      return make_error(remote_errc::invalid_configuration,
                        "web.upload.dir: cannot create '" + cluster.upload_dir +
                          "': " + ec.message());
  }
  std::unique_ptr<job_manager> jm{
    new job_manager(cluster, config, std::move(rest), std::move(warnings))};
  jm->made_upload_dir_ = made;
  rest::rest_config rc;
  rc.bind_address = cluster.rest_address;
  rc.port = cluster.rest_port;
  rc.max_body_bytes = cluster.max_content_length;
  if (cluster.rest_tls) {
    rc.tls_certificate_file = cluster.rest_tls_certificate_file;
    rc.tls_private_key_file = cluster.rest_tls_private_key_file;
  }
  rc.default_savepoint_directory = cluster.savepoints_dir;
  // Running a library loads it and starts its mini-cluster on an I/O
  // thread; a second thread keeps the API answering meanwhile.
  rc.threads = 2;
  auto members = membership_service::start(
    cluster.rpc_address, cluster.rpc_port, {cluster.heartbeat_interval, cluster.heartbeat_timeout},
    [](const std::string& line) {
      // One write per line: the membership actor and the main thread both log.
      std::cerr << ("sluice: " + line + "\n") << std::flush;
    },
    cluster.slot_request_timeout);
  if (!members)
    return members.error();
  jm->members_ = std::move(*members);
  auto view = std::make_shared<session_cluster_view>(
    actors::local_job_registry::global(), jm->members_->registry(), jm->members_->slots());
  auto* self = jm.get();
  auto server =
    rest::rest_server::start(view, rc, [self](rest::router& r) { self->add_routes(r); });
  if (!server && is(server.error(), remote_errc::invalid_configuration))
    return server.error(); // a TLS file that does not do: names its key
  if (!server)
    return make_error(remote_errc::server_failed,
                      "cannot serve REST on " + cluster.rest_address + ":" +
                        std::to_string(cluster.rest_port) + ": " + describe(server.error()));
  jm->rest_ = std::move(*server);
  return jm;
}

job_manager::job_manager(job_manager_settings settings, runtime::configuration job_config,
                         std::map<std::string, std::string> job_settings,
                         std::vector<std::string> warnings)
    : settings_(std::move(settings))
    , job_config_(std::move(job_config))
    , job_settings_(std::move(job_settings))
    , warnings_(std::move(warnings))
    , jars_(settings_.upload_dir)
    , executor_(std::make_shared<actors::local_executor>())
    , reaper_([this] { reap(); }) {}

job_manager::~job_manager() {
  stop();
}

uint16_t job_manager::rest_port() const {
  return rest_ ? rest_->port() : 0;
}

uint16_t job_manager::rpc_port() const {
  return members_ ? members_->port() : 0;
}

caf::expected<std::string> job_manager::run(const std::string& jar_id,
                                            const job_run_request& request) {
  auto jar = jars_.find(jar_id);
  if (!jar)
    return make_error(remote_errc::invalid_request, "unknown jar id '" + jar_id + "'");
  auto client = on_task_managers() ? run_on_task_managers(*jar, request)
                                   : run_job_library(jar->path, jar->name, request, job_config_,
                                                     executor_);
  if (!client)
    return client.error();
  // A job the executor refused (bad savepoint, bad settings) is FAILED
  // already: say why instead of handing out its id.
  if (auto ended = (*client)->wait_for(std::chrono::milliseconds(0));
      ended && ended->status == runtime::job_status::failed)
    return make_error(remote_errc::invalid_request,
                      "job library '" + jar->name + "': " + ended->error);
  auto id = (*client)->job_id();
  std::lock_guard<std::mutex> guard{mtx_};
  jobs_[id] = std::move(*client);
  return id;
}

bool job_manager::on_task_managers() const {
  switch (settings_.placement) {
    case job_placement::local:
      return false;
    case job_placement::task_managers:
      return true;
    case job_placement::automatic:
      break;
  }
  return members_ && members_->registry()->size() > 0;
}

caf::expected<std::shared_ptr<runtime::job_client>>
job_manager::run_on_task_managers(const jar_info& jar, const job_run_request& request) {
  auto built = build_job_library(jar.path, jar.name, request, job_config_);
  if (!built)
    return built.error();
  job_spec spec;
  spec.library_name = jar.name;
  {
    std::ifstream in(jar.path, std::ios::binary);
    spec.library.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof())
      return make_error(remote_errc::invalid_request,
                        "job library '" + jar.name + "': cannot be read from " + jar.path);
  }
  spec.request = request;
  // What to restore reaches each subtask through its deployment.
  spec.request.savepoint_path.clear();
  spec.settings = job_settings_;
  for (const auto& v : built->graph->vertices())
    spec.vertex_ids.push_back(v.hex_id);
  auto executor = std::make_shared<actors::cluster_executor>(
    members_->system(), members_->dispatcher(), encode_job_spec(spec), members_->slots());
  try {
    return executor->submit(built->graph, built->config);
  } catch (const std::exception& e) {
    return make_error(remote_errc::invalid_request,
                      "job library '" + jar.name + "': its pipeline cannot run: " + e.what());
  }
}

size_t job_manager::held_jobs() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return jobs_.size();
}

void job_manager::reap() {
  std::unique_lock<std::mutex> lock{mtx_};
  while (!stopping_) {
    // Polled: a job's end is signalled on its own board, and a 100 ms delay
    // in giving back an ended job's threads costs nothing.
    reap_cv_.wait_for(lock, std::chrono::milliseconds(100));
    std::vector<std::shared_ptr<runtime::job_client>> ended;
    for (auto i = jobs_.begin(); i != jobs_.end();) {
      if (runtime::is_globally_terminal(i->second->status())) {
        ended.push_back(std::move(i->second));
        i = jobs_.erase(i);
      } else {
        ++i;
      }
    }
    // Tearing a mini-cluster down joins its threads: not under the lock
    // the REST handlers take. A REST operation may still hold a client for
    // a moment; then the last reference goes on that (non-CAF) thread.
    lock.unlock();
    ended.clear();
    lock.lock();
  }
}

void job_manager::stop() {
  // The REST threads go first: no request can start a job or hold a client
  // once they are joined.
  if (rest_)
    rest_->stop();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  reap_cv_.notify_all();
  if (reaper_.joinable())
    reaper_.join();
  std::map<std::string, std::shared_ptr<runtime::job_client>> jobs;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    jobs.swap(jobs_);
  }
  for (auto& [id, client] : jobs)
    if (!runtime::is_globally_terminal(client->status()))
      client->cancel();
  for (auto& [id, client] : jobs)
    (void) client->wait_for(std::chrono::seconds(10));
  jobs.clear();
  // Last, as jobs on TaskManager processes have their JobMasters in its
  // actor system: TaskManagers see the connection close and start asking
  // to register again.
  if (members_)
    members_->stop();
  if (made_upload_dir_) {
    std::error_code ec;
    fs::remove_all(settings_.upload_dir, ec);
    made_upload_dir_ = false;
  }
}

void job_manager::add_routes(rest::router& r) {
  r.add("POST", "/jars/upload", [this](const rest::rest_request& req) {
    std::string name;
    std::string bytes;
    if (req.content_type.rfind("multipart/", 0) == 0) {
      auto file = parse_form_file(req.content_type, req.body, "jarfile");
      if (!file)
        return jar_error(file.error());
      name = file->file_name;
      bytes = std::move(file->bytes);
    } else {
      // A raw body: the file name comes in ?filename=.
      auto i = req.query.find("filename");
      name = i == req.query.end() ? std::string("job.so") : i->second;
      bytes = req.body;
    }
    auto jar = jars_.add(name, bytes);
    if (!jar)
      return jar_error(jar.error());
    return rest::json_response(200,
                               json{{"filename", jar->path}, {"status", "success"}}.dump());
  });
  r.add("GET", "/jars", [this](const rest::rest_request&) {
    json files = json::array();
    for (const auto& j : jars_.list())
      files.push_back({{"id", j.id},
                       {"name", j.name},
                       {"uploaded", j.uploaded_ms},
                       {"entry", json::array({{{"name", std::string(default_job_entry)},
                                               {"description", nullptr}}})}});
    return rest::json_response(
      200, json{{"address", (settings_.rest_tls ? "https://" : "http://") +
                                settings_.rest_address + ":" + std::to_string(rest_port())},
                {"files", files}}
             .dump());
  });
  r.add("DELETE", "/jars/:jarid", [this](const rest::rest_request& req) {
    if (!jars_.remove(req.params.at("jarid")))
      return rest::error_response(404, "unknown jar id '" + req.params.at("jarid") + "'");
    return rest::json_response(200, "{}");
  });
  r.add("POST", "/jars/:jarid/run", [this](const rest::rest_request& req) {
    const auto& id = req.params.at("jarid");
    if (!jars_.find(id))
      return rest::error_response(404, "unknown jar id '" + id + "'");
    job_run_request run;
    if (!req.body.empty()) {
      json body;
      try {
        body = json::parse(req.body);
      } catch (const std::exception& e) {
        return rest::error_response(400, std::string("malformed JSON body: ") + e.what());
      }
      if (!body.is_object())
        return rest::error_response(400, "the run request must be a JSON object");
      try {
        auto text = [&](const char* key) -> std::string {
          auto i = body.find(key);
          if (i == body.end() || i->is_null())
            return {};
          if (!i->is_string())
            throw std::invalid_argument(std::string("'") + key + "' must be a string");
          return i->get<std::string>();
        };
        run.entry = text("entryClass");
        run.savepoint_path = text("savepointPath");
        if (auto list = body.find("programArgsList"); list != body.end() && !list->is_null()) {
          if (!list->is_array())
            throw std::invalid_argument("'programArgsList' must be an array of strings");
          for (const auto& a : *list) {
            if (!a.is_string())
              throw std::invalid_argument("'programArgsList' must be an array of strings");
            run.args.push_back(a.get<std::string>());
          }
        } else {
          run.args = split_program_args(text("programArgs"));
        }
        if (auto p = body.find("parallelism"); p != body.end() && !p->is_null()) {
          if (!p->is_number_integer() || p->get<int64_t>() < 1 || p->get<int64_t>() > 32768)
            throw std::invalid_argument("'parallelism' must be an integer from 1 to 32768");
          run.parallelism = p->get<int32_t>();
        }
        if (auto a = body.find("allowNonRestoredState"); a != body.end() && !a->is_null()) {
          if (!a->is_boolean())
            throw std::invalid_argument("'allowNonRestoredState' must be true or false");
          run.allow_non_restored_state = a->get<bool>();
        }
      } catch (const std::exception& e) {
        return rest::error_response(400, e.what());
      }
    }
    auto job = this->run(id, run);
    if (!job)
      return rest::error_response(400, describe(job.error()));
    return rest::json_response(200, json{{"jobid", *job}}.dump());
  });
}

} // namespace sluice::remote::cluster
