// Window and state throughput, one figure per line:
//   heap: keyed tumbling event-time window sum, heap backend
//   exchange only: the same pipeline without the window (the floor the
//     source, watermarks and keyed exchange set)
//   window operator alone: the heap case's window operator driven in a loop
//     on one thread, a watermark every --watermark-every records
//   rocksdb: the window sum on RocksDB
//   rocksdb value-state: a keyed value-state update per record, 1 M keys, RocksDB
//   rocksdb raw put / raw get: RocksDB operations through the backend's byte
//   level, for scale
//
//   window_throughput [--records N] [--rocksdb-records N] [--watermark-every N]
//                     [--only heap|exchange|operator|rocksdb|value|raw]
//
// Workload (issue 3): 1000 keys, 10 ms windows, timestamps rising 1 ms per
// 1000 records, parallelism 2, periodic ascending watermarks.

#include "sluice/sluice.hpp"

#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>

namespace {

using namespace sluice;
using namespace sluice::runtime;
using record = std::pair<uint64_t, int64_t>; // key, value; the timestamp is derived

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double window_sum(uint64_t n, state::backend_kind backend) {
  configuration cfg;
  cfg.state.backend = backend;
  cfg.scheduler_profile = "throughput";
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto src = env.from_generator(n, [](uint64_t i) {
    return record{i % 1000, static_cast<int64_t>(i / 1000)};
  });
  src.set_parallelism(1);
  // The value field is i / 1000, the record's event time in ms.
  auto stamped = src.assign_timestamps_and_watermarks(
    watermark_strategy<record>::for_monotonous_timestamps().with_timestamp_assigner(
      [](const record& r) { return r.second; }));
  stamped.set_parallelism(1);
  stamped.key_by([](const record& r) { return r.first; })
    .window(tumbling_event_time_windows(std::chrono::milliseconds(10)))
    .reduce([](const record& a, const record& b) { return record{a.first, a.second + b.second}; })
    .discard();
  auto t0 = std::chrono::steady_clock::now();
  auto r = env.execute("window sum");
  auto s = seconds_since(t0);
  if (!r.ok()) {
    std::fprintf(stderr, "window sum failed: %s\n", r.error.c_str());
    std::exit(1);
  }
  return static_cast<double>(n) / s;
}

/// The window sum's pipeline without the window: the same source, watermarks
/// and keyed exchange into a filter that drops everything. The window
/// operator's cost is what window_sum adds to this.
double exchange_only(uint64_t n) {
  configuration cfg;
  cfg.scheduler_profile = "throughput";
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto src = env.from_generator(n, [](uint64_t i) {
    return record{i % 1000, static_cast<int64_t>(i / 1000)};
  });
  src.set_parallelism(1);
  auto stamped = src.assign_timestamps_and_watermarks(
    watermark_strategy<record>::for_monotonous_timestamps().with_timestamp_assigner(
      [](const record& r) { return r.second; }));
  stamped.set_parallelism(1);
  stamped.key_by([](const record& r) { return r.first; })
    .filter([](const record& r) { return r.second < 0; })
    .discard();
  auto t0 = std::chrono::steady_clock::now();
  auto r = env.execute("exchange only");
  auto s = seconds_since(t0);
  if (!r.ok()) {
    std::fprintf(stderr, "exchange only failed: %s\n", r.error.c_str());
    std::exit(1);
  }
  return static_cast<double>(n) / s;
}

/// The heap window sum's window operator alone, driven in a loop on this
/// thread (no actors, no exchange): one subtask owning every key, the same
/// records and timestamps, a watermark (the highest timestamp - 1) every
/// `watermark_every` records, in stamped blocks of 64. What the operator
/// costs per record.
double operator_alone(uint64_t n, uint64_t watermark_every) {
  auto key = [](const record& r) { return r.first; };
  auto sum = [](const record& a, const record& b) { return record{a.first, a.second + b.second}; };
  using ops = reduce_ops<record, decltype(sum)>;
  window_spec<uint64_t, record, time_window, record> spec;
  spec.assigner = std::make_shared<tumbling_event_time_windows>(std::chrono::milliseconds(10));
  spec.trigger_prototype = std::make_shared<event_time_trigger<record, time_window>>();
  spec.contents_prototype =
    std::make_shared<incremental_contents<uint64_t, record, time_window, record, ops>>(ops{sum},
                                                                                       nullptr);
  window_operator<uint64_t, record, time_window, record, decltype(key)> op("Window", key, spec);
  struct counting_sink final : collector<record> {
    using collector<record>::collect;
    void collect(record&&) override { ++n; }
    uint64_t n = 0;
  } sink;
  state_settings settings;
  settings.backend = state::backend_kind::heap;
  element_context element;
  runtime_context ctx("window operator", 0, 1, 128);
  ctx.set_state_config(&settings);
  ctx.set_element_context(&element);
  op.set_output(&sink);
  op.open(ctx);
  auto t0 = std::chrono::steady_clock::now();
  // In stamped blocks, as an input feeder hands over a batch's records.
  constexpr uint64_t block = 64;
  record records[block];
  int64_t stamps[block];
  for (uint64_t base = 0; base < n;) {
    // A block ends at the next watermark.
    const uint64_t next_wm = (base / watermark_every + 1) * watermark_every;
    const uint64_t end = std::min({n, base + block, next_wm});
    for (uint64_t i = base; i < end; ++i) {
      records[i - base] = record{i % 1000, static_cast<int64_t>(i / 1000)};
      stamps[i - base] = static_cast<int64_t>(i / 1000);
    }
    op.collect_stamped(records, stamps, end - base, element);
    base = end;
    if (base % watermark_every == 0) {
      element.watermark = static_cast<int64_t>((base - 1) / 1000) - 1;
      op.process_watermark(element.watermark);
    }
  }
  element.watermark = INT64_MAX;
  op.process_watermark(INT64_MAX);
  auto s = seconds_since(t0);
  op.close();
  if (sink.n != n / 10000 * 1000)
    std::fprintf(stderr, "operator alone emitted %llu windows\n",
                 static_cast<unsigned long long>(sink.n));
  return static_cast<double>(n) / s;
}

struct count_per_key final : keyed_process_function<uint64_t, uint64_t, int64_t> {
  state::value_state<int64_t> count;
  void open(const runtime_context& ctx) override {
    count = ctx.get_state(value_state_descriptor<int64_t>("count"));
  }
  void process_element(const uint64_t&, context&, collector<int64_t>&) override {
    count.update(count.value_or(0) + 1);
  }
};

double value_state_updates(uint64_t n) {
  configuration cfg;
  cfg.state.backend = state::backend_kind::rocksdb;
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto src = env.from_generator(n, [](uint64_t i) { return (i * 2654435761u) % 1'000'000; });
  src.set_parallelism(1);
  src.key_by([](const uint64_t& k) { return k; }).process(count_per_key{}).discard();
  auto t0 = std::chrono::steady_clock::now();
  auto r = env.execute("value state");
  auto s = seconds_since(t0);
  if (!r.ok()) {
    std::fprintf(stderr, "value state failed: %s\n", r.error.c_str());
    std::exit(1);
  }
  return static_cast<double>(n) / s;
}

void raw_rocksdb(uint64_t n, double& puts, double& gets) {
  state::rocksdb_config cfg;
  state::rocksdb_keyed_backend<int64_t> b({0, 127}, 128, nullptr, cfg, "sluice-bench-raw");
  state::value_state_descriptor<int64_t> d("raw");
  auto idx = b.declare<state::void_namespace, int64_t>(d, state::state_kind::value, "raw");
  std::string key, value(16, 'v');
  auto make_key = [&](uint64_t i) {
    key.clear();
    auto k = (i * 2654435761u) % 1'000'000;
    key.append(reinterpret_cast<const char*>(&k), sizeof k);
  };
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    make_key(i);
    b.put(idx, key, value);
  }
  puts = static_cast<double>(n) / seconds_since(t0);
  std::string out;
  t0 = std::chrono::steady_clock::now();
  uint64_t found = 0;
  for (uint64_t i = 0; i < n; ++i) {
    make_key(i);
    found += b.get(idx, key, out) ? 1 : 0;
  }
  gets = static_cast<double>(n) / seconds_since(t0);
  if (found != n)
    std::fprintf(stderr, "raw get found %llu of %llu\n", static_cast<unsigned long long>(found),
                 static_cast<unsigned long long>(n));
}

} // namespace

int main(int argc, char** argv) {
  uint64_t n = 10'000'000;
  uint64_t rocks_n = 1'000'000;
  uint64_t watermark_every = 1'000'000;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--records" && i + 1 < argc)
      n = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--rocksdb-records" && i + 1 < argc)
      rocks_n = std::strtoull(argv[++i], nullptr, 10);
    else if (arg == "--watermark-every" && i + 1 < argc)
      watermark_every = std::max<uint64_t>(1, std::strtoull(argv[++i], nullptr, 10));
    else if (arg == "--only" && i + 1 < argc)
      only = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: %s [--records N] [--rocksdb-records N] [--watermark-every N]\n"
                   "          [--only heap|exchange|operator|rocksdb|value|raw]\n",
                   argv[0]);
      return 2;
    }
  }
  auto want = [&](const char* w) { return only.empty() || only == w; };
  if (want("heap")) {
    std::printf("heap: %.0f records/s\n", window_sum(n, state::backend_kind::heap));
    std::fflush(stdout);
  }
  if (want("operator")) {
    std::printf("window operator alone: %.0f records/s\n", operator_alone(n, watermark_every));
    std::fflush(stdout);
  }
  if (want("exchange")) {
    std::printf("exchange only: %.0f records/s\n", exchange_only(n));
    std::fflush(stdout);
  }
  if (want("rocksdb")) {
    std::printf("rocksdb: %.0f records/s\n", window_sum(rocks_n, state::backend_kind::rocksdb));
    std::fflush(stdout);
  }
  if (want("value")) {
    std::printf("rocksdb value-state: %.0f records/s\n", value_state_updates(rocks_n));
    std::fflush(stdout);
  }
  if (want("raw")) {
    double puts = 0, gets = 0;
    raw_rocksdb(rocks_n, puts, gets);
    std::printf("rocksdb raw put: %.0f ops/s\n", puts);
    std::printf("rocksdb raw get: %.0f ops/s\n", gets);
  }
  return 0;
}
