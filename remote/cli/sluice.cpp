// The `sluice` command line. So far: `sluice functions run module.yaml`,
// which runs a stateful-functions application from a StateFun module file
// alone (remote functions, HTTP ingress, egresses) until SIGINT or SIGTERM.

#include "sluice/remote/app/functions_app.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/remote/settings_file.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
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

} // namespace

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
    if (!config_file.empty()) {
      auto file = sluice::remote::load_settings(config_file);
      if (!file) {
        std::cerr << "sluice: " << sluice::remote::describe(file.error()) << "\n";
        return 2;
      }
      options.settings = std::move(*file);
    }
    for (auto& o : overrides) {
      auto kv = sluice::remote::parse_setting_override(o);
      if (!kv) {
        std::cerr << "sluice: " << sluice::remote::describe(kv.error()) << "\n";
        return 2;
      }
      options.settings[kv->first] = kv->second;
    }
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
  return 0;
}
