// The `sluice` command line. So far: `sluice functions run module.yaml`,
// which runs a stateful-functions application from a StateFun module file
// alone (remote functions, HTTP ingress, egresses) until SIGINT or SIGTERM.

#include "sluice/remote/app/functions_app.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/module.hpp"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

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
  run->add_option("--port,-p", port, "HTTP ingress port on 127.0.0.1 (default: the module's, else 8090; 0 = any)")
    ->check(CLI::Range(0, 65535));
  std::string bind;
  run->add_option("--bind", bind, "HTTP ingress bind address (default 127.0.0.1)");
  run->add_option("--parallelism", options.parallelism, "dispatcher parallelism")
    ->check(CLI::Range(1, 1024));
  std::string interval = "1s";
  run->add_option("--checkpoint-interval", interval,
                  "time between checkpoints, e.g. 500ms, 10s (0 = off)");
  run->add_option("--checkpoint-dir", options.checkpoint_dir,
                  "checkpoint directory (default: a new one under /tmp)");
  std::string backend = "rocksdb";
  run->add_option("--state-backend", backend, "function state: rocksdb or heap")
    ->check(CLI::IsMember({"rocksdb", "heap"}));
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
    auto every = sluice::remote::parse_duration(interval);
    if (!every) {
      std::cerr << "sluice: --checkpoint-interval: '" << interval
                << "' is not a duration (e.g. 500ms, 10s, 1min)\n";
      return 2;
    }
    options.checkpoint_interval = *every;
    options.backend = backend == "heap" ? sluice::state::backend_kind::heap
                                        : sluice::state::backend_kind::rocksdb;
    return run_functions(module_file, options);
  }
  return 0;
}
