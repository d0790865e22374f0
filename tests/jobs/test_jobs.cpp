// Job libraries for the cluster tests (cluster_cli, cluster_processes,
// cluster_netns): a job that runs until it is cancelled or stopped (the
// default entry), a bounded exactly-once count, and entries that fail.

#include "sluice/job.hpp"

#include <stdexcept>
#include <string>
#include <utility>

namespace {

/// Counts `records` generated keys k0..k9 (`rate` records/s in all) into the
/// file sink of `directory`: the running count of each key, "(kI,c)".
void count_keys(sluice::job_context& ctx, const std::string& directory, uint64_t records,
                double rate) {
  using count = std::pair<std::string, int64_t>;
  sluice::file_sink_options sink;
  sink.directory = directory;
  ctx.env()
    .from_generator(records, [](uint64_t i) { return count{"k" + std::to_string(i % 10), 1}; },
                    rate)
    .uid("keys")
    .key_by([](const count& c) { return c.first; })
    .sum(&count::second)
    .uid("counts")
    .sink_to_files(sink)
    .uid("files");
}

} // namespace

/// Counts generated keys k0..k9 (200 records/s) into the file sink of
/// `--output DIR` until cancelled or stopped.
extern "C" int sluice_job_main(int argc, char** argv, sluice::job_context& ctx) {
  if (argc != 3 || std::string(argv[1]) != "--output") {
    ctx.fail("usage: --output DIR");
    return 2;
  }
  count_keys(ctx, argv[2], sluice::stream_environment::unbounded, 200);
  ctx.set_job_name("endless counts");
  return 0;
}

/// Throws while it builds its pipeline.
extern "C" int throwing_job_main(int, char**, sluice::job_context&) {
  throw std::runtime_error("no pipeline today");
}

/// Calls execute() itself, which a job library must not do.
extern "C" int executing_job_main(int, char**, sluice::job_context& ctx) {
  ctx.env().from_elements(1, 2, 3).print();
  (void) ctx.env().execute("should not run");
  return 0;
}

/// `--output DIR --records N --rate R`: counts N generated records over keys
/// k0..k9 (R records/s in all) into the file sink of DIR, then finishes.
/// With checkpoints on, the sink commits exactly once: every (kI,c) for c in
/// 1..N/10 appears exactly once in the finished parts, whatever failed.
extern "C" int bounded_counts_main(int argc, char** argv, sluice::job_context& ctx) {
  if (argc != 7 || std::string(argv[1]) != "--output" || std::string(argv[3]) != "--records" ||
      std::string(argv[5]) != "--rate") {
    ctx.fail("usage: --output DIR --records N --rate R");
    return 2;
  }
  count_keys(ctx, argv[2], std::stoull(argv[4]), std::stod(argv[6]));
  ctx.set_job_name("bounded counts");
  return 0;
}
