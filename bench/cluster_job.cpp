// The job bench/cluster runs on the cluster: `--records N` generated
// (key, 1) pairs over 4096 keys, summed per key, the sums discarded; with
// `--interval MS`, checkpointed every MS milliseconds. The keyed exchange is
// the only one; at parallelism 4 on two TaskManagers of 2 slots each, half
// of its channels cross processes.

#include "sluice/job.hpp"

#include <chrono>
#include <string>
#include <utility>

extern "C" int sluice_job_main(int argc, char** argv, sluice::job_context& ctx) {
  if ((argc != 3 && argc != 5) || std::string(argv[1]) != "--records" ||
      (argc == 5 && std::string(argv[3]) != "--interval")) {
    ctx.fail("usage: --records N [--interval MS]");
    return 2;
  }
  if (argc == 5)
    ctx.env().config().checkpoints.interval = std::chrono::milliseconds(std::stoll(argv[4]));
  using pair = std::pair<int64_t, int64_t>;
  ctx.env()
    .from_generator(std::stoull(argv[2]),
                    [](uint64_t i) { return pair{static_cast<int64_t>(i % 4096), 1}; })
    .key_by([](const pair& p) { return p.first; })
    .sum(&pair::second)
    .discard();
  ctx.set_job_name("keyed sums");
  return 0;
}
