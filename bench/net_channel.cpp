// Cross-node channels against in-process ones, one figure per line:
//   local channel: generator (p=1) -> key_by -> running sum (p=2) -> discard,
//                  every subtask in one actor system
//   net channel:   the same job with the generator in one actor system and
//                  the keyed subtasks in another, joined by CAF's middleman
//                  over loopback (batches serialized, credit as messages)
//
//   net_channel [--records N]

#include "sluice/actors/testing/two_nodes.hpp"
#include "sluice/sluice.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using record = std::pair<uint64_t, int64_t>;
constexpr uint64_t keys = 1000;

double run(uint64_t n, bool net) {
  sluice::configuration cfg;
  cfg.state.backend = sluice::state::backend_kind::heap;
  sluice::stream_environment env(cfg);
  env.set_parallelism(2);
  env.from_generator(n, [](uint64_t i) { return record{i % keys, static_cast<int64_t>(i)}; })
    .set_parallelism(1)
    .key_by([](const record& r) { return r.first; })
    .sum([](record& r) -> int64_t& { return r.second; })
    .discard();
  auto job = env.job(net ? "net" : "local");
  sluice::actors::testing::two_node_job nodes(
    {job, env.config(), "/tmp/sluice-bench-net-channel"},
    [&](int32_t v, int32_t) { return net && !job->vertices()[v].in_edges.empty(); });
  auto t0 = std::chrono::steady_clock::now();
  nodes.start();
  if (!nodes.run_to_end(std::chrono::minutes(10))) {
    std::fprintf(stderr, "%s failed: %s\n", net ? "net" : "local", nodes.first_error().c_str());
    std::exit(1);
  }
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t in = nodes.cell(1, 0).records_in.load() + nodes.cell(1, 1).records_in.load();
  if (in != n) {
    std::fprintf(stderr, "%s: %llu of %llu records arrived\n", net ? "net" : "local",
                 static_cast<unsigned long long>(in), static_cast<unsigned long long>(n));
    std::exit(1);
  }
  return static_cast<double>(n) / seconds;
}

} // namespace

int main(int argc, char** argv) {
  uint64_t n = 20'000'000;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--records")
      n = std::strtoull(argv[i + 1], nullptr, 10);
  std::printf("local channel: %.0f records/s\n", run(n, false));
  std::printf("net channel: %.0f records/s\n", run(n, true));
  return 0;
}
