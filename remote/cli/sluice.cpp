// The `sluice` command line: `sluice functions run module.yaml`, which runs
// a stateful-functions application from a StateFun module file alone (remote
// functions, HTTP ingress, egresses) until SIGINT or SIGTERM; `sluice
// jobmanager` and `sluice taskmanager`, a session cluster's daemons; the client commands run, list,
// cancel, stop and savepoint against its REST API; and the local commands
// info (a job library's execution plan) and savepoint -d (dispose).

#include "cluster_commands.hpp"

#include "sluice/remote/app/functions_app.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/remote/settings_file.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <signal.h>

namespace {

using namespace sluice;

int run_functions(const std::string& module_file, remote::app::functions_app_options options) {
  auto declarations = remote::load_module(module_file);
  if (!declarations) {
    std::cerr << "sluice: " << remote::describe(declarations.error()) << "\n";
    return 2;
  }
  // Signals are taken synchronously below, not by a handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto app = remote::app::functions_app::start(*declarations, options);
  if (!app) {
    std::cerr << "sluice: " << remote::describe(app.error()) << "\n";
    return 1;
  }
  for (auto& w : (*app)->warnings())
    std::cerr << "sluice: warning: " << w << "\n";
  std::cout << "sluice: running " << declarations->endpoints.size() << " function endpoint(s) from "
            << module_file << "\n"
            << "sluice: HTTP ingress on http://" << options.bind_address.value_or("127.0.0.1") << ":"
            << (*app)->port() << "/functions/<namespace>/<type>/<id> (add ?reply=true to wait)\n";
  if (!(*app)->checkpoint_dir().empty())
    std::cout << "sluice: checkpoints in " << (*app)->checkpoint_dir() << "\n";
  std::cout << std::flush;

  timespec tick{0, 200 * 1000 * 1000};
  for (;;) {
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cout << "sluice: stopping\n" << std::flush;
      (*app)->stop();
      return 0;
    }
    if (auto result = (*app)->job().wait_for(std::chrono::milliseconds(0))) {
      std::cerr << "sluice: the functions job ended: " << runtime::to_string(result->status)
                << (result->error.empty() ? "" : ": " + result->error) << "\n";
      (*app)->stop();
      return result->ok() ? 0 : 1;
    }
  }
}

/// Reads `--config FILE` then the `-D key=value` overrides into `settings`;
/// prints the error and returns false on bad input.
bool load_cli_settings(const std::string& config_file, const std::vector<std::string>& overrides,
                       std::map<std::string, std::string>& settings) {
  if (!config_file.empty()) {
    auto file = remote::load_settings(config_file);
    if (!file) {
      std::cerr << "sluice: " << remote::describe(file.error()) << "\n";
      return false;
    }
    settings = std::move(*file);
  }
  for (auto& o : overrides) {
    auto kv = remote::parse_setting_override(o);
    if (!kv) {
      std::cerr << "sluice: " << remote::describe(kv.error()) << "\n";
      return false;
    }
    settings[kv->first] = kv->second;
  }
  return true;
}

} // namespace

/// The settings file a cluster command reads: `--config` (a file, or a
/// directory holding sluice-conf.yaml), else sluice-conf.yaml in
/// $SLUICE_CONF_DIR, else none (""). Prints the error and returns false when
/// the file named that way is missing.
bool find_conf_file(const std::string& config_option, std::string& file) {
  namespace fs = std::filesystem;
  constexpr const char* conf_name = "sluice-conf.yaml";
  std::error_code ec;
  if (!config_option.empty()) {
    file = fs::is_directory(config_option, ec) ? (fs::path(config_option) / conf_name).string()
                                                : config_option;
    if (!fs::is_regular_file(file, ec)) {
      std::cerr << "sluice: --config " << config_option << ": no " << conf_name << " in it\n";
      return false;
    }
    return true;
  }
  const char* dir = std::getenv("SLUICE_CONF_DIR");
  if (dir == nullptr || *dir == '\0') {
    file.clear();
    return true;
  }
  file = (fs::path(dir) / conf_name).string();
  if (!fs::is_regular_file(file, ec)) {
    std::cerr << "sluice: SLUICE_CONF_DIR=" << dir << ": no " << conf_name << " there\n";
    return false;
  }
  return true;
}

int main(int argc, char** argv) {
  CLI::App cli{"sluice: stream processing and stateful functions"};
  cli.require_subcommand(1);
  auto* functions = cli.add_subcommand("functions", "stateful-functions applications");
  functions->require_subcommand(1);
  auto* run = functions->add_subcommand(
    "run", "run the functions of a StateFun module file (remote endpoints, HTTP ingress, "
           "egresses) until interrupted");
  std::string module_file;
  run->add_option("module", module_file, "module YAML file")->required()->check(CLI::ExistingFile);
  sluice::remote::app::functions_app_options options;
  int port = -1;
  run->add_option("--port,-p", port,
                  "HTTP ingress port on 127.0.0.1 (default: the module's, else 8090; 0 = any)")
    ->check(CLI::Range(0, 65535));
  std::string bind;
  run->add_option("--bind", bind, "HTTP ingress bind address (default 127.0.0.1)");
  std::string config_file;
  run->add_option("--config,-c", config_file,
                  "settings YAML with Flink keys (parallelism.default, state.backend.type, "
                  "execution.checkpointing.*, restart-strategy.*, ...)")
    ->check(CLI::ExistingFile);
  std::vector<std::string> overrides;
  run->add_option("-D", overrides, "a setting key=value, over the file's");
  // Flags for the common settings; they win over the file and -D.
  std::map<std::string, std::string> flags;
  std::string parallelism, interval, dir, backend;
  run->add_option("--parallelism", parallelism, "dispatcher parallelism (parallelism.default, 2)");
  run->add_option("--checkpoint-interval", interval,
                  "time between checkpoints, e.g. 500 ms, 10 s; 0 = off "
                  "(execution.checkpointing.interval, 1 s)");
  run->add_option("--checkpoint-dir", dir,
                  "checkpoint directory (state.checkpoints.dir; default: a new one under /tmp)");
  run->add_option("--state-backend", backend,
                  "function state: rocksdb or hashmap (state.backend.type, rocksdb)");

  // The session cluster: the JobManager daemon and the REST client commands.
  auto* jobmanager = cli.add_subcommand(
    "jobmanager", "run a JobManager (REST API, job libraries, TaskManager membership; jobs run on "
                  "in-process TaskManagers) until interrupted");
  std::string jm_config;
  jobmanager->add_option("--config,-c", jm_config,
                         "settings YAML, or a directory holding sluice-conf.yaml (default: "
                         "$SLUICE_CONF_DIR/sluice-conf.yaml; see conf/sluice-conf.yaml)")
    ->check(CLI::ExistingPath);
  std::vector<std::string> jm_overrides;
  jobmanager->add_option("-D", jm_overrides, "a setting key=value, over the file's");
  int rest_port = -1;
  jobmanager->add_option("--rest-port", rest_port, "REST port (rest.port, 8081; 0 = any free)")
    ->check(CLI::Range(0, 65535));

  auto* taskmanager = cli.add_subcommand(
    "taskmanager", "run a TaskManager process that registers with the JobManager at "
                   "jobmanager.rpc.address:port and runs subtasks in its slots "
                   "until interrupted");
  std::string tm_config;
  taskmanager->add_option("--config,-c", tm_config,
                          "settings YAML, or a directory holding sluice-conf.yaml (default: "
                          "$SLUICE_CONF_DIR/sluice-conf.yaml)")
    ->check(CLI::ExistingPath);
  std::vector<std::string> tm_overrides;
  taskmanager->add_option("-D", tm_overrides, "a setting key=value, over the file's");

  sluice::cli::job_manager_target job_manager;
  std::vector<std::string> client_overrides;
  auto add_address = [&](CLI::App* c) {
    c->add_option("-m,--jobmanager", job_manager.address,
                  "the JobManager's REST address host:port, or https://host:port for TLS "
                  "(127.0.0.1:8081)");
    c->add_option("-D", client_overrides,
                  "a setting key=value over $SLUICE_CONF_DIR/sluice-conf.yaml's "
                  "(security.ssl.rest.trust-cert-file)");
  };
  auto* run_cmd = cli.add_subcommand(
    "run", "upload a job library (job.so) to the JobManager and run it: sluice run [options] "
           "job.so [args...]");
  sluice::cli::run_options run_opts;
  add_address(run_cmd);
  run_cmd->add_flag("-d,--detached", run_opts.detached, "return once the job is submitted");
  run_cmd->add_option("-p,--parallelism", run_opts.parallelism, "the job's default parallelism")
    ->check(CLI::Range(1, 32768));
  run_cmd->add_option("-s,--fromSavepoint", run_opts.savepoint,
                      "start from this savepoint (or retained checkpoint) directory");
  run_cmd->add_flag("-n,--allowNonRestoredState", run_opts.allow_non_restored_state,
                    "skip savepoint state of operators the job no longer has");
  run_cmd->add_option("-c,--entry", run_opts.entry, "the entry symbol (sluice_job_main)");
  // Everything from the library on is the job's: its own --flags included.
  run_cmd->prefix_command();

  auto* info_cmd = cli.add_subcommand(
    "info", "print the execution plan of a job library, built here: sluice info [options] "
            "job.so [args...]");
  sluice::cli::info_options info_opts;
  info_cmd->add_option("-p,--parallelism", info_opts.parallelism, "the job's default parallelism")
    ->check(CLI::Range(1, 32768));
  info_cmd->add_option("-c,--entry", info_opts.entry, "the entry symbol (sluice_job_main)");
  info_cmd->prefix_command();

  auto* list_cmd = cli.add_subcommand("list", "list the JobManager's jobs");
  add_address(list_cmd);
  bool list_all = false, list_running = false, list_scheduled = false;
  list_cmd->add_flag("-a,--all", list_all, "also ended jobs");
  list_cmd->add_flag("-r,--running", list_running, "running jobs only");
  list_cmd->add_flag("-s,--scheduled", list_scheduled, "scheduled jobs only");

  std::string job_id;
  auto* cancel_cmd = cli.add_subcommand("cancel", "cancel a job");
  add_address(cancel_cmd);
  cancel_cmd->add_option("jobid", job_id, "the job's id")->required();

  auto* stop_cmd = cli.add_subcommand("stop", "stop a job with a savepoint");
  add_address(stop_cmd);
  bool drain = false;
  std::string target_dir;
  stop_cmd->add_flag("-d,--drain", drain,
                     "emit the maximum watermark first, so every window and timer fires");
  stop_cmd->add_option("-p,--savepointPath", target_dir, "the savepoint's directory");
  stop_cmd->add_option("jobid", job_id, "the job's id")->required();

  auto* savepoint_cmd = cli.add_subcommand(
    "savepoint", "take a savepoint of a running job (sluice savepoint <jobid> [dir]), or dispose "
                 "of one (sluice savepoint -d <path>)");
  add_address(savepoint_cmd);
  std::string dispose_path;
  savepoint_cmd->add_option("-d,--dispose", dispose_path,
                            "delete this savepoint (checked to be one first)");
  savepoint_cmd->add_option("jobid", job_id, "the job's id");
  savepoint_cmd->add_option("directory", target_dir, "the savepoint's directory");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e);
  }
  if (run->parsed()) {
    if (port >= 0)
      options.port = static_cast<uint16_t>(port);
    if (!bind.empty())
      options.bind_address = bind;
    if (!load_cli_settings(config_file, overrides, options.settings))
      return 2;
    auto flag = [&](const std::string& value, const char* key) {
      if (!value.empty())
        options.settings[key] = value;
    };
    flag(parallelism, "parallelism.default");
    flag(interval, "execution.checkpointing.interval");
    flag(dir, "state.checkpoints.dir");
    flag(backend, "state.backend.type");
    return run_functions(module_file, options);
  }
  if (jobmanager->parsed()) {
    std::map<std::string, std::string> settings;
    std::string conf_file;
    if (!find_conf_file(jm_config, conf_file) ||
        !load_cli_settings(conf_file, jm_overrides, settings))
      return 2;
    if (!conf_file.empty())
      std::cout << "sluice: configuration from " << conf_file << "\n" << std::flush;
    if (rest_port >= 0)
      settings["rest.port"] = std::to_string(rest_port);
    return sluice::cli::run_job_manager(settings);
  }
  if (taskmanager->parsed()) {
    std::map<std::string, std::string> settings;
    std::string conf_file;
    if (!find_conf_file(tm_config, conf_file) ||
        !load_cli_settings(conf_file, tm_overrides, settings))
      return 2;
    if (!conf_file.empty())
      std::cout << "sluice: configuration from " << conf_file << "\n" << std::flush;
    return sluice::cli::run_task_manager(settings);
  }
  // The client commands read the trust file for https JobManagers from the
  // settings file and -D, as the daemons read theirs.
  for (auto* c : {run_cmd, list_cmd, cancel_cmd, stop_cmd, savepoint_cmd}) {
    if (!c->parsed())
      continue;
    std::map<std::string, std::string> settings;
    std::string conf_file;
    if (!find_conf_file({}, conf_file) || !load_cli_settings(conf_file, client_overrides, settings))
      return 2;
    if (auto i = settings.find("security.ssl.rest.trust-cert-file"); i != settings.end())
      job_manager.trust_cert_file = i->second;
  }
  if (run_cmd->parsed()) {
    auto rest = run_cmd->remaining();
    if (rest.empty()) {
      std::cerr << "sluice: run needs a job library: sluice run [options] job.so [args...]\n";
      return 2;
    }
    run_opts.job_manager = job_manager;
    run_opts.library = rest.front();
    run_opts.args.assign(rest.begin() + 1, rest.end());
    return sluice::cli::run_job(run_opts);
  }
  if (info_cmd->parsed()) {
    auto rest = info_cmd->remaining();
    if (rest.empty()) {
      std::cerr << "sluice: info needs a job library: sluice info [options] job.so [args...]\n";
      return 2;
    }
    // The job is built with the settings a JobManager would give it.
    std::string conf_file;
    if (!find_conf_file({}, conf_file) || !load_cli_settings(conf_file, {}, info_opts.settings))
      return 2;
    info_opts.library = rest.front();
    info_opts.args.assign(rest.begin() + 1, rest.end());
    return sluice::cli::print_job_info(info_opts);
  }
  if (list_cmd->parsed())
    return sluice::cli::list_jobs(job_manager, list_all         ? "all"
                                               : list_running   ? "running"
                                               : list_scheduled ? "scheduled"
                                                                : "");
  if (cancel_cmd->parsed())
    return sluice::cli::cancel_job(job_manager, job_id);
  if (stop_cmd->parsed())
    return sluice::cli::stop_job(job_manager, job_id, drain, target_dir);
  if (savepoint_cmd->parsed()) {
    if (!dispose_path.empty()) {
      if (!job_id.empty()) {
        std::cerr << "sluice: savepoint -d takes a savepoint path and no job id\n";
        return 2;
      }
      return sluice::cli::dispose_savepoint(dispose_path);
    }
    if (job_id.empty()) {
      std::cerr << "sluice: savepoint needs a job id: sluice savepoint <jobid> [directory]\n";
      return 2;
    }
    return sluice::cli::savepoint_job(job_manager, job_id, target_dir);
  }
  return 0;
}
