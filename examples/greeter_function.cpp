// A remote stateful function written with sluice's C++ SDK: example/greeter
// counts the visits of each name (its state) and greets the caller; without
// a caller (a plain ingress message) the greeting goes to the example/greets
// egress. Serve it, then run examples/greeter/module.yaml with
// `sluice functions run` (see README.md).
//
//   greeter_function [--port 8000]

#include "example_args.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/sdk/function_server.hpp"

#include <csignal>
#include <iostream>

#include <signal.h>

using namespace sluice::remote;

int main(int argc, char** argv) {
  sdk::server_config config;
  config.port = 8000;
  sluice::examples::example_args args(argc, argv);
  while (args.next()) {
    if (args.flag() == "--port")
      config.port = static_cast<uint16_t>(args.number(0));
    else {
      std::cerr << "error: unknown argument '" << args.flag() << "' (use --port N)\n";
      return 2;
    }
  }

  auto functions = std::make_shared<sdk::function_registry>();
  functions->bind({"example", "greeter"}, {sdk::value<int32_t>("seen")},
                  [](sdk::context& ctx, const sdk::message& msg) {
                    auto name = msg.as<std::string>();
                    auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
                    ctx.storage().set("seen", seen);
                    auto greeting = "Hello " + name + ", you are visitor #" +
                                    std::to_string(seen) + "!";
                    if (ctx.caller())
                      ctx.send(*ctx.caller(), sluice::functions::make_typed(greeting));
                    else
                      ctx.send_egress({"example", "greets"},
                                      sluice::functions::make_typed(greeting));
                  });

  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  auto server = sdk::function_server::start(functions, config);
  if (!server) {
    std::cerr << "greeter_function: " << describe(server.error()) << "\n";
    return 1;
  }
  std::cout << "greeter_function: serving example/greeter on http://127.0.0.1:" << (*server)->port()
            << "/statefun" << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->stop();
  return 0;
}
