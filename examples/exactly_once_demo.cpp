// An exactly-once job you can break: reads lines "key,value" from the
// replayable file source, keeps a running sum per key in keyed state, and
// writes "key,running_sum,line_number" for every input line through the
// transactional file sink into DIR. About every N records (seeded) a failure
// is injected in the subtask that processes that record; the job restarts
// from its latest checkpoint and finishes when the input is consumed. The
// finished part files then hold exactly one line per input line, with the
// sums of an uninterrupted run: the demo checks that and says so.
//
//   exactly_once_demo --input FILE --output DIR --checkpoint-interval MS
//                     --fail-every N [--seed S] [--parallelism P]
//                     [--state heap|rocksdb]
#include "example_args.hpp"
#include "exactly_once_job.hpp"

#include <cstdio>
#include <filesystem>
#include <iostream>

namespace {

int usage() {
  std::cerr << "usage: exactly_once_demo --input FILE --output DIR --checkpoint-interval MS\n"
               "                         --fail-every N [--seed S] [--parallelism P]\n"
               "                         [--state heap|rocksdb]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string input, output, backend = "rocksdb";
  int64_t interval = -1, fail_every = -1, seed = 1, parallelism = 2;
  sluice::examples::example_args args(argc, argv);
  while (args.next()) {
    const auto& arg = args.flag();
    if (arg == "--input")
      input = args.text();
    else if (arg == "--output")
      output = args.text();
    else if (arg == "--state")
      backend = args.text();
    else if (arg == "--checkpoint-interval")
      interval = args.number(1);
    else if (arg == "--fail-every")
      fail_every = args.number(0);
    else if (arg == "--seed")
      seed = args.number(0);
    else if (arg == "--parallelism")
      parallelism = args.number(1);
    else
      return usage();
  }
  if (input.empty() || output.empty() || interval < 0 || fail_every < 0)
    return usage();
  if (backend != "heap" && backend != "rocksdb") {
    std::cerr << "error: --state must be heap or rocksdb, not '" << backend << "'\n";
    return 2;
  }
  // Bad input is reported before the job starts, with its line.
  std::vector<std::string> expected;
  try {
    if (!std::filesystem::is_regular_file(input))
      throw std::invalid_argument("cannot open input file '" + input + "'");
    expected = exactly_once::expected_output(input);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  if (std::filesystem::exists(output) && !std::filesystem::is_empty(output)) {
    std::cerr << "error: output directory '" << output << "' is not empty\n";
    return 1;
  }
  auto plan = std::make_shared<exactly_once::failure_plan>(
    static_cast<int64_t>(expected.size()), fail_every, static_cast<uint64_t>(seed));

  sluice::configuration cfg;
  cfg.parallelism = static_cast<int32_t>(parallelism);
  cfg.state.backend =
    backend == "heap" ? sluice::state::backend_kind::heap : sluice::state::backend_kind::rocksdb;
  cfg.checkpoints.interval = std::chrono::milliseconds(interval);
  cfg.checkpoints.directory = (std::filesystem::path(output) / ".checkpoints").string();
  cfg.restart.type = sluice::runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = static_cast<int>(plan->planned()) + 10;
  cfg.restart.fixed_delay.delay = std::chrono::milliseconds(0);
  sluice::stream_environment env(cfg);
  exactly_once::build(env, input, output, plan);
  std::cout << "input: " << expected.size() << " lines; " << plan->planned()
            << " failures planned; checkpoint every " << interval << " ms; parallelism "
            << parallelism << "; state " << backend << std::endl;
  auto job = env.execute_async("exactly-once demo");
  auto r = job->wait();
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(output) / ".checkpoints", ec);
  if (!r.ok()) {
    std::cerr << "job " << sluice::runtime::to_string(r.status) << ": " << r.error << "\n";
    return 1;
  }
  auto got = exactly_once::finished_output(output);
  std::cout << "job FINISHED in " << r.duration.count() << " ms after " << plan->injected()
            << " injected failures and " << job->restarts() << " restarts" << std::endl;
  if (got != expected) {
    std::cout << "output differs from an uninterrupted run: " << got.size() << " lines, "
              << expected.size() << " expected" << std::endl;
    return 1;
  }
  std::cout << "output: " << got.size()
            << " lines in finished part files, exactly one per input line, sums as in an "
               "uninterrupted run"
            << std::endl;
  return 0;
}
