// The `embedded` measurement of function_throughput: embedded stateful
// functions in a pipeline. A generator (p=1) of messages to `addresses`
// addresses, round robin -> key_by address -> function dispatcher (p=2) ->
// discarding sink. Each invocation reads and writes a persisted long and
// sends one message out (a round trip through the dispatcher per message).

#include "sluice/functions/dispatcher_function.hpp"
#include "sluice/sluice.hpp"

#include <chrono>
#include <string>

namespace fn = sluice::functions;

/// Invocations per second over `messages` messages, state on `backend`
/// (heap or rocksdb); 0 with `error` set when the job failed.
double embedded_invocations_per_second(uint64_t messages, uint64_t addresses,
                                       const std::string& backend, std::string& error) {
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
    error = "bind failed: " + fn::error_text(err);
    return 0;
  }
  sluice::configuration cfg;
  cfg.state.backend = sluice::state::parse_backend_kind(backend);
  cfg.scheduler_profile = "throughput";
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
    error = "job failed: " + r.error;
    return 0;
  }
  return static_cast<double>(messages) / s;
}
