// Pipeline throughput, one figure per line:
//   a: chained generator -> map -> filter -> discarding sink
//   b: generator -> key_by -> running sum at parallelism 2 -> discarding sink
//   c: the work of (b) as a hand-written single-threaded loop
//   ratio b/c
//
//   pipeline_throughput [--records N] [--profile balanced|throughput]
//                       [--max-throughput M]  (messages per actor turn; 0 = CAF's unbounded)

#include "sluice/sluice.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

namespace {

using record = std::pair<uint64_t, int64_t>;
constexpr uint64_t keys = 1000;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

size_t batch_bytes = 0;
uint32_t credits = 0;
size_t step_records = 0;
int64_t max_throughput = -1;

sluice::configuration make_config(const std::string& profile) {
  sluice::configuration cfg;
  cfg.scheduler_profile = profile;
  // Workload (b) is a keyed running sum: keep its state on the heap.
  cfg.state.backend = sluice::state::backend_kind::heap;
  if (batch_bytes > 0)
    cfg.batch_bytes = batch_bytes;
  if (credits > 0)
    cfg.credits_per_channel = credits;
  if (step_records > 0)
    cfg.source_step_records = step_records;
  if (max_throughput >= 0)
    cfg.scheduler_max_throughput = static_cast<uint32_t>(max_throughput);
  return cfg;
}

double run_a(uint64_t n, const std::string& profile) {
  sluice::stream_environment env(make_config(profile));
  env.set_parallelism(1);
  env.from_generator(n, [](uint64_t i) { return static_cast<int64_t>(i); })
    .map([](int64_t v) { return v * 3 + 1; })
    .filter([](const int64_t& v) { return (v & 3) != 0; })
    .discard();
  auto t0 = std::chrono::steady_clock::now();
  auto r = env.execute("a");
  auto s = seconds_since(t0);
  if (!r.ok()) {
    std::fprintf(stderr, "a failed: %s\n", r.error.c_str());
    std::exit(1);
  }
  return static_cast<double>(n) / s;
}

double run_b(uint64_t n, const std::string& profile) {
  sluice::stream_environment env(make_config(profile));
  env.set_parallelism(2);
  auto src = env.from_generator(n, [](uint64_t i) { return record{i % keys, static_cast<int64_t>(i)}; });
  src.set_parallelism(1);
  auto summed = src.key_by([](const record& r) { return r.first; }).sum(&record::second);
  summed.set_parallelism(2);
  summed.discard().set_parallelism(2);
  auto t0 = std::chrono::steady_clock::now();
  auto r = env.execute("b");
  auto s = seconds_since(t0);
  if (!r.ok()) {
    std::fprintf(stderr, "b failed: %s\n", r.error.c_str());
    std::exit(1);
  }
  return static_cast<double>(n) / s;
}

/// (b) by hand: generate, sum per key in a hash map, hand each update to a
/// sink the compiler cannot remove.
double run_c(uint64_t n) {
  std::unordered_map<uint64_t, record> sums;
  volatile int64_t sink = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    record r{i % keys, static_cast<int64_t>(i)};
    auto [it, inserted] = sums.try_emplace(r.first, r);
    if (!inserted)
      it->second.second += r.second;
    sink = it->second.second;
  }
  auto s = seconds_since(t0);
  (void)sink;
  return static_cast<double>(n) / s;
}

} // namespace

int main(int argc, char** argv) {
  uint64_t n = 100'000'000;
  std::string profile = "throughput";
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--records" && i + 1 < argc)
      n = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--profile" && i + 1 < argc)
      profile = argv[++i];
    else if (arg == "--batch-bytes" && i + 1 < argc)
      batch_bytes = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--step" && i + 1 < argc)
      step_records = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--only" && i + 1 < argc)
      only = argv[++i];
    else if (arg == "--max-throughput" && i + 1 < argc)
      max_throughput = std::strtoll(argv[++i], nullptr, 10);
    else if (arg == "--credits" && i + 1 < argc)
      credits = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
    else {
      std::fprintf(stderr, "usage: %s [--records N] [--profile balanced|throughput] [--batch-bytes B] [--credits C] [--step S] [--max-throughput M] [--only a|b|c]\n", argv[0]);
      return 2;
    }
  }
  auto want = [&](const char* which) { return only.empty() || only == which; };
  double b = 0;
  double c = 0;
  if (want("a")) {
    std::printf("a: %.0f records/s\n", run_a(n, profile));
    std::fflush(stdout);
  }
  if (want("b")) {
    b = run_b(n, profile);
    std::printf("b: %.0f records/s\n", b);
    std::fflush(stdout);
  }
  if (want("c")) {
    c = run_c(n);
    std::printf("c: %.0f records/s\n", c);
  }
  if (b > 0 && c > 0)
    std::printf("ratio b/c: %.3f\n", b / c);
  return 0;
}
