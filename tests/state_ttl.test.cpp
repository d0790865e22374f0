#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace sluice;
using namespace std::chrono_literals;
using sluice::test::eventually;

namespace {

/// Emits keys 0..n-1, then produces nothing until cancelled (so processing
/// time keeps running for the operators after it).
struct keys_then_idle final : source_function<int64_t> {
  int64_t n = 0;
  int64_t next = 0;
  explicit keys_then_idle(int64_t count) : n(count) {}
  runtime::source_step run(collector<int64_t>& out, size_t max) override {
    if (next >= n)
      return runtime::source_step::wait(5ms);
    for (size_t i = 0; i < max && next < n; ++i)
      out.collect(next++);
    return runtime::source_step::more();
  }
};

/// Writes a TTL'd value per key without ever reading it again; key 0 also
/// reports, after `report_after`, how many keys still hold the state.
struct write_once final : keyed_process_function<int64_t, int64_t, std::string> {
  std::chrono::milliseconds report_after;
  state::value_state<int64_t> v;
  runtime_context rc;
  explicit write_once(std::chrono::milliseconds after) : report_after(after) {}

  void open(const runtime_context& ctx) override {
    rc = ctx;
    state::value_state_descriptor<int64_t> d("v", state_ttl{20ms});
    v = ctx.get_state(d);
  }
  void process_element(const int64_t& k, context& ctx, collector<std::string>&) override {
    v.update(k);
    if (k == 0)
      ctx.timer_service().register_processing_time_timer(
        ctx.timer_service().current_processing_time() + report_after.count());
  }
  void on_timer(int64_t, context&, collector<std::string>& out) override {
    auto& b = dynamic_cast<state::keyed_state_backend<int64_t>&>(rc.keyed_backend());
    size_t total = 0;
    for (uint32_t i = 0; i < b.states().size(); ++i)
      if (b.states()[i].name == "v")
        total = b.keys(i).size();
    out.collect("keys:" + std::to_string(total));
  }
};

std::string run_and_report(state::backend_kind backend, std::chrono::milliseconds interval) {
  configuration cfg;
  cfg.state.backend = backend;
  cfg.state.ttl_cleanup_interval = interval;
  stream_environment env(cfg);
  env.set_parallelism(1);
  auto out = env.add_source(keys_then_idle(500), "keys")
               .key_by([](const int64_t& k) { return k; })
               .process(write_once(400ms))
               .collect();
  auto client = env.execute_async("ttl sweep");
  bool reported = eventually([&] { return out->size() >= 1; }, 10s);
  client->cancel();
  client->wait_for(5s);
  return reported ? out->values().front() : "no report";
}

} // namespace

TEST_SUITE("integration.state_ttl") {

TEST_CASE("expired state nobody reads again is swept in the background") {
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
    CAPTURE(state::to_string(backend));
    CHECK(run_and_report(backend, 20ms) == "keys:0");
  }
}

TEST_CASE("without the background sweep, expired state waits for access") {
  CHECK(run_and_report(state::backend_kind::heap, 0ms) == "keys:500");
}

} // TEST_SUITE
