#pragma once

// The job the REST and dashboard tests watch: an unbounded generator
// (uid "numbers", rate-limited) keyed by i % 7 into a per-key counter (uid
// "counter"), parallelism 2, heap state, checkpoints into <dir>/checkpoints.

#include "sluice/sluice.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace sluice::test {

/// Counts records per key; emits the running count.
struct count_per_key final : keyed_process_function<int64_t, int64_t, int64_t> {
  state::value_state<int64_t> n;
  void open(const runtime_context& ctx) override {
    n = ctx.get_state(value_state_descriptor<int64_t>("count"));
  }
  void process_element(const int64_t&, context&, collector<int64_t>& out) override {
    auto c = n.value().value_or(0) + 1;
    n.update(c);
    out.collect(c);
  }
};

/// Starts the counting job named `name` with a checkpoint every `interval`
/// and `rate` records/s.
inline std::shared_ptr<runtime::job_client>
start_counting_job(const std::string& dir, const std::string& name,
                   std::chrono::milliseconds interval, double rate) {
  configuration cfg;
  cfg.parallelism = 2;
  cfg.state.backend = state::backend_kind::heap;
  cfg.checkpoints.interval = interval;
  cfg.checkpoints.directory = dir + "/checkpoints";
  stream_environment env(cfg);
  env.from_generator(stream_environment::unbounded,
                     [](uint64_t i) { return static_cast<int64_t>(i); }, rate)
    .uid("numbers")
    .key_by([](int64_t i) { return i % 7; })
    .process(count_per_key{})
    .uid("counter")
    .discard();
  return env.execute_async(name);
}

} // namespace sluice::test
