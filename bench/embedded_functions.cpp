// Embedded stateful functions in a pipeline, one figure:
//   embedded: N inv/s
// generator (p=1) of messages to 100 k addresses, round robin -> key_by
// address -> function dispatcher (p=2) -> discarding sink. Each invocation
// reads and writes a persisted long and sends one message out (a round trip
// through the dispatcher per message).
//
//   embedded_functions [--messages N] [--addresses A] [--backend heap|rocksdb]
//                      [--profile balanced|throughput]

#include "sluice/functions/dispatcher_function.hpp"
#include "sluice/sluice.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fn = sluice::functions;

int main(int argc, char** argv) {
  uint64_t messages = 5'000'000;
  uint64_t addresses = 100'000;
  std::string backend = "heap";
  std::string profile = "throughput";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--messages" && i + 1 < argc)
      messages = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--addresses" && i + 1 < argc)
      addresses = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--backend" && i + 1 < argc)
      backend = argv[++i];
    else if (arg == "--profile" && i + 1 < argc)
      profile = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--messages N] [--addresses A] [--backend heap|rocksdb] "
                   "[--profile balanced|throughput]\n",
                   argv[0]);
      return 2;
    }
  }
  if (addresses == 0) {
    std::fprintf(stderr, "--addresses must be at least 1\n");
    return 2;
  }

  auto registry = std::make_shared<fn::function_registry>();
  auto err = registry->bind({"bench", "counter"},
                            [](fn::context& ctx, const fn::message& m) {
                              auto n =
                                  ctx.storage().get<int64_t>("n").value_or(0) + m.as<int64_t>();
                              ctx.storage().set("n", n);
                              ctx.send(fn::address{{"bench", "reply"}, ctx.self().id}, n);
                            },
                            {fn::value_spec::of<int64_t>("n")});
  if (err) {
    std::fprintf(stderr, "bind failed: %s\n", fn::error_text(err).c_str());
    return 1;
  }

  sluice::configuration cfg;
  cfg.state.backend = sluice::state::parse_backend_kind(backend);
  cfg.scheduler_profile = profile;
  sluice::stream_environment env(cfg);
  env.set_parallelism(2);
  auto src = env.from_generator(messages, [addresses](uint64_t i) {
    return fn::envelope::to_function(
        fn::address{{"bench", "counter"}, std::to_string(i % addresses)},
        fn::make_typed(int64_t{1}));
  });
  src.set_parallelism(1);
  src.key_by(fn::envelope_target{}).process(fn::dispatcher_function(registry)).discard();

  auto t0 = std::chrono::steady_clock::now();
  auto r = env.execute("embedded functions");
  auto s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "job failed: %s\n", r.error.c_str());
    return 1;
  }
  std::printf("embedded: %.0f inv/s (%llu messages, %llu addresses, %s, %.2f s)\n",
              static_cast<double>(messages) / s, static_cast<unsigned long long>(messages),
              static_cast<unsigned long long>(addresses), backend.c_str(), s);
  return 0;
}
