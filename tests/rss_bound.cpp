// A job with 10 M keys on the RocksDB backend keeps its resident memory
// within a bound derived from the configured managed memory. Built as its own
// executable (sluice_rss_bound_test), so the job runs in a fresh process that
// no earlier test has grown.

#include "sluice/sluice.hpp"
#include "sluice/state/rocksdb_backend.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;

#if defined(SLUICE_RSS_BOUND_SANITIZED) && defined(__SANITIZE_ADDRESS__)
// ASan keeps freed memory in a quarantine (256 MiB by default), which would
// swamp the figure; a small one still catches use after free. ASAN_OPTIONS
// from the environment take precedence.
extern "C" const char* __asan_default_options() { return "quarantine_size_mb=16"; }
#endif

namespace {

#ifdef SLUICE_RSS_BOUND_SANITIZED
// The sanitizer build (CMake option SLUICE_SANITIZE) runs a scaled-down job:
// few keys, the smallest managed memory RocksDB accepts, and room for what
// ASan adds (redzones, shadow memory, the quarantine above, allocator caches:
// about 50 MiB at 200 k keys). The data set is then about as large as the
// budget, so here the bound mostly guards against gross growth; the 10 M key
// run of the regular build is the real check.
constexpr uint64_t default_keys = 200'000;
constexpr long managed_mib = 8;
constexpr long sanitizer_allowance_mib = 64;
#else
constexpr uint64_t default_keys = 10'000'000;
constexpr long managed_mib = 64;
constexpr long sanitizer_allowance_mib = 0;
#endif

/// Keys in the job; SLUICE_RSS_BOUND_KEYS in the environment overrides the
/// default for manual runs.
uint64_t key_count() {
  if (const char* env = std::getenv("SLUICE_RSS_BOUND_KEYS"))
    return std::strtoull(env, nullptr, 10);
  return default_keys;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false where not allowed.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

/// Samples VmRSS every 5 ms on its own thread, from construction until
/// stop(), and keeps the highest figure: the peak where VmHWM cannot be reset.
class rss_sampler {
public:
  rss_sampler() : thread_([this] { run(); }) {}
  ~rss_sampler() { stop(); }

  /// Stops sampling; returns the highest VmRSS seen, in KiB.
  long stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable())
      thread_.join();
    return peak_kib_;
  }

private:
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    do
      peak_kib_ = std::max(peak_kib_, sluice::test::rss_kib());
    while (!cv_.wait_for(lock, 5ms, [this] { return stopping_; }));
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  long peak_kib_ = 0; ///< guarded by mu_
  std::thread thread_;
};

/// What the keyed subtasks found in their RocksDB columns, summed over subtasks.
struct key_totals {
  std::atomic<uint64_t> stored_entries{0};
  std::atomic<uint64_t> stored_sum{0};
};

/// Keeps the latest payload of each key in value state (a blind update, as a
/// "last seen" state does). On close it walks the state's RocksDB column, so
/// the test sees what the backend really holds; the walk reads every block
/// through the shared block cache, so the cache's bound is tested as well as
/// the write buffers'.
struct remember_last final : keyed_process_function<uint64_t, uint64_t, uint64_t> {
  explicit remember_last(std::shared_ptr<key_totals> t) : totals(std::move(t)) {}

  std::shared_ptr<key_totals> totals;
  state::value_state<uint64_t> last;
  state::rocksdb_backend_core* rocksdb = nullptr;

  void open(const runtime_context& ctx) override {
    last = ctx.get_state(value_state_descriptor<uint64_t>("last"));
    rocksdb = dynamic_cast<state::rocksdb_backend_core*>(&ctx.keyed_backend());
    if (rocksdb == nullptr)
      throw std::logic_error("the job does not run on the RocksDB backend");
  }
  void process_element(const uint64_t& key, context&, collector<uint64_t>&) override {
    last.update(key + 1);
  }
  void close() override {
    uint64_t entries = 0;
    uint64_t sum = 0;
    rocksdb->scan(0, {}, [&](std::string_view, std::string_view value) {
      ++entries;
      sum += state::deserialize<uint64_t>(value);
      return true;
    });
    totals->stored_entries += entries;
    totals->stored_sum += sum;
  }
};

} // namespace

TEST_SUITE("integration.rss_bound") {

TEST_CASE("a job with 10 M keys on RocksDB keeps RSS within twice its managed memory") {
  const uint64_t n = key_count();
  sluice::test::temp_dir dir;
  configuration cfg;
  cfg.state.backend = state::backend_kind::rocksdb;
  cfg.state.rocksdb.local_dir = dir.path();
  cfg.state.rocksdb.managed_memory_bytes = size_t{managed_mib} << 20;
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto totals = std::make_shared<key_totals>();
  env.from_generator(n, [](uint64_t i) { return i; })
    .key_by([](const uint64_t& k) { return k; })
    .process(remember_last{totals})
    .discard();

  const long baseline_kib = sluice::test::rss_kib();
  const bool hwm_reset = reset_peak_rss();
  rss_sampler sampler;
  auto t0 = std::chrono::steady_clock::now();
  auto result = env.execute("rss bound");
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const long sampled_kib = sampler.stop();
  const long hwm_kib = sluice::test::peak_rss_kib();
  const long peak_kib = hwm_reset ? std::max(hwm_kib, sampled_kib) : sampled_kib;

  // The bound is the baseline plus twice the managed memory. The managed
  // memory caps RocksDB's block cache and the memtables charged to it; at
  // the peak (the walk in close()) the heap in use was about managed + 4 MiB.
  // The second budget covers what lies outside it: blocks the cache has freed
  // but glibc keeps in its per-thread arenas (up to about 30 MiB here) and the
  // engine's threads and batches (about 10 MiB). Without the cap the job holds
  // its whole data set: with managed memory at 1 GiB the peak was 296 MiB.
  const long bound_kib = baseline_kib + (2 * managed_mib + sanitizer_allowance_mib) * 1024;
  MESSAGE("keys " << n << ", " << seconds << " s; RSS baseline " << baseline_kib / 1024
                  << " MiB, peak " << peak_kib / 1024 << " MiB (sampled " << sampled_kib / 1024
                  << ", VmHWM " << hwm_kib / 1024 << std::string(hwm_reset ? "" : " not reset")
                  << "), bound " << bound_kib / 1024 << " MiB");
  REQUIRE_MESSAGE(result.ok(), result.error);
  // Every key is stored once, with its payload: the payloads sum to 1 + ... + n.
  CHECK(totals->stored_entries == n);
  CHECK(totals->stored_sum == n * (n + 1) / 2);
  CHECK(peak_kib <= bound_kib);
}

} // TEST_SUITE
