// Checkpoint overhead and recovery time, one figure per line:
//   overhead heap: P%      keyed running sum (heap backend), throughput with
//                          a checkpoint every second vs. checkpointing off
//   overhead rocksdb: P%   the same on RocksDB with 1 M keys and incremental
//                          checkpoints (--full: full snapshots instead)
//   recovery: T ms         from a killed subtask to records flowing again,
//                          with a 0-delay restart strategy
//   rocksdb log cost: P%   (--only log) what a write-ahead log costs a bare
//                          RocksDB instance doing the keyed sum's get + put,
//                          without sluice around it: the price of the log cut
// Each figure comes from --repeat off/on pairs (default 6; single pairs swing
// by +-10 % on a shared 2-core machine): the overhead compares the summed
// times, and "overhead <backend> standard error: S%" is the spread of the
// pairs' own overheads over sqrt(pairs), to read the figure against.
// Plus, per backend, the throughputs and the checkpoints' count, mean
// duration ("checkpoint duration <backend>: T ms", trigger to completion),
// mean synchronous part per subtask, and mean size ("checkpoint size
// <backend>: N bytes", what a checkpoint wrote: for incremental ones the new
// files only) and full state size; for RocksDB also the CPU its background
// threads spent per run on flushes and compactions, off and on (what the
// checkpoints' extra flushes cost besides the cut itself).
//
//   checkpoint_overhead [--heap-records N] [--rocksdb-records N] [--only heap|rocksdb|recovery|log]
//                       [--full 1] [--repeat N] [--single off|on]
//                       [--cut log|flush] [--dir DIR] [--interval MS]
// --dir: where checkpoints go (default <tmp>/sluice-bench-checkpoints); on
// the RocksDB instances' filesystem files are linked, elsewhere copied.

#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/sluice.hpp"

#include <nlohmann/json.hpp>
#include <rocksdb/db.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using namespace sluice;
using namespace std::chrono_literals;
using record = std::pair<uint64_t, int64_t>;

struct run_result {
  double records_per_s = 0;
  int64_t checkpoints = 0;
  int64_t mean_duration_ms = 0;
  int64_t mean_size = 0;
  double mean_sync_ms = 0;
  int64_t mean_alignment_ms = 0;
  uint64_t full_size = 0;
  double flush_cpu_s = 0;      // RocksDB's flush threads during the run
  double compaction_cpu_s = 0; // and its compaction threads
};

/// CPU seconds RocksDB's background threads have used in this process so
/// far: "rocksdb:high" runs flushes, "rocksdb:low" compactions. They are
/// shared by every instance and outlive the jobs, so a run's share is the
/// difference across it. Zero where /proc is not readable.
struct background_cpu {
  double flush_s = 0;
  double compaction_s = 0;
};

background_cpu rocksdb_background_cpu() {
  background_cpu out;
  std::error_code ec;
  std::filesystem::directory_iterator tasks("/proc/self/task", ec);
  if (ec)
    return out;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  for (const auto& task : tasks) {
    std::ifstream comm_in(task.path() / "comm");
    std::string comm;
    std::getline(comm_in, comm);
    double* into = comm.rfind("rocksdb:high", 0) == 0  ? &out.flush_s
                   : comm.rfind("rocksdb:low", 0) == 0 ? &out.compaction_s
                                                       : nullptr;
    if (into == nullptr)
      continue;
    std::ifstream stat_in(task.path() / "stat");
    std::string stat;
    std::getline(stat_in, stat);
    // proc(5): after "pid (name) " come field 3 (state) ... 14 utime, 15 stime.
    auto name_end = stat.rfind(')');
    if (name_end == std::string::npos || name_end + 2 > stat.size())
      continue;
    std::istringstream fields(stat.substr(name_end + 2));
    std::string field;
    double used = 0;
    for (int k = 3; k <= 15 && fields >> field; ++k)
      if (k >= 14)
        used += std::strtod(field.c_str(), nullptr);
    *into += used / ticks;
  }
  return out;
}

bool incremental = true;
auto cut = state::rocksdb_config::snapshot_cut::flush; // the default; --cut log for the opt-in cut
std::chrono::milliseconds interval{1000};
int bloom = -1; // --bloom 0|1: RocksDB bloom filters off or on (default: the configuration's)
std::filesystem::path checkpoint_dir =
  std::filesystem::temp_directory_path() / "sluice-bench-checkpoints";

run_result keyed_sum(state::backend_kind backend, uint64_t n, uint64_t keys, bool checkpoints) {
  configuration cfg;
  cfg.state.backend = backend;
  cfg.state.rocksdb.cut = cut;
  if (bloom >= 0)
    cfg.state.rocksdb.use_bloom_filter = bloom == 1;
  cfg.parallelism = 2;
  auto dir = checkpoint_dir;
  if (checkpoints) {
    cfg.checkpoints.interval = interval;
    cfg.checkpoints.directory = dir.string();
    cfg.checkpoints.incremental = incremental;
    // Kept after the end: the full state size is read from the last one.
    cfg.checkpoints.retention = runtime::externalized_retention::retain_on_cancellation;
  }
  stream_environment env(cfg);
  env.from_generator(n, [keys](uint64_t i) { return record{(i * 2654435761u) % keys, 1}; })
    .key_by([](const record& r) { return r.first; })
    .sum(&record::second)
    .discard();
  auto cpu0 = rocksdb_background_cpu();
  auto t0 = std::chrono::steady_clock::now();
  auto job = env.execute_async("checkpoint overhead");
  auto r = job->wait();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r.ok()) {
    std::fprintf(stderr, "job failed: %s\n", r.error.c_str());
    std::exit(1);
  }
  run_result out;
  out.records_per_s = static_cast<double>(n) / s;
  auto cpu1 = rocksdb_background_cpu();
  out.flush_cpu_s = cpu1.flush_s - cpu0.flush_s;
  out.compaction_cpu_s = cpu1.compaction_s - cpu0.compaction_s;
  auto stats = nlohmann::json::parse(job->checkpoint_stats_json());
  out.checkpoints = stats["counts"]["completed"].get<int64_t>();
  out.mean_duration_ms = stats["summary"]["end_to_end_duration"]["avg"].get<int64_t>();
  out.mean_size = stats["summary"]["state_size"]["avg"].get<int64_t>();
  out.mean_alignment_ms = stats["summary"]["alignment_duration"]["avg"].get<int64_t>();
  if (!checkpoints)
    return out;
  // The synchronous part per subtask of the task that has the longest one
  // (the keyed sum), over the completed checkpoints in the history, and the
  // state size of the last checkpoint (every file it references, shared
  // ones included).
  double sync_sum = 0;
  int64_t sync_n = 0;
  for (auto& c : stats["history"]) {
    if (c["status"] != "COMPLETED")
      continue;
    int64_t longest = 0;
    for (auto& [vertex, t] : c["tasks"].items())
      longest = std::max(longest, t["summary"]["checkpoint_duration"]["sync"]["avg"].get<int64_t>());
    sync_sum += static_cast<double>(longest);
    ++sync_n;
  }
  out.mean_sync_ms = sync_n > 0 ? sync_sum / static_cast<double>(sync_n) : 0;
  runtime::checkpoint_storage storage(dir, job->job_id());
  if (auto last = storage.latest_completed())
    for (auto& op : storage.read_metadata(*last).operators)
      for (auto& sub : op.subtasks) {
        if (sub.native_files.empty())
          out.full_size += sub.bytes;
        for (auto& f : sub.native_files)
          out.full_size += f.size;
      }
  std::error_code ec;
  std::filesystem::remove_all(storage.job_dir(), ec);
  return out;
}

void overhead(const char* label, state::backend_kind backend, uint64_t n, uint64_t keys,
              int repeat) {
  // Off and on back to back, `repeat` times; the overhead compares the
  // summed times, each pair ran on the same (noisy, shared) machine state.
  // The order alternates (off-on, on-off, ...): the second run of a pair
  // starts while the kernel still writes back and frees the first one's
  // files, which would otherwise count against "on" every time.
  double off_s = 0, on_s = 0;
  run_result on, off;
  int64_t taken = 0;
  std::vector<double> pair_overheads;
  background_cpu off_cpu, on_cpu;
  auto rewritten_before = state::rewritten_flush_cuts();
  for (int i = 0; i < repeat; ++i) {
    if (i % 2 == 0) {
      off = keyed_sum(backend, n, keys, false);
      on = keyed_sum(backend, n, keys, true);
    } else {
      on = keyed_sum(backend, n, keys, true);
      off = keyed_sum(backend, n, keys, false);
    }
    off_s += static_cast<double>(n) / off.records_per_s;
    on_s += static_cast<double>(n) / on.records_per_s;
    taken += on.checkpoints;
    pair_overheads.push_back(1.0 - on.records_per_s / off.records_per_s);
    off_cpu.flush_s += off.flush_cpu_s;
    off_cpu.compaction_s += off.compaction_cpu_s;
    on_cpu.flush_s += on.flush_cpu_s;
    on_cpu.compaction_s += on.compaction_cpu_s;
    std::printf("%s run %d: off %.3f M records/s, on %.3f M records/s (%.1f%%)\n", label, i + 1,
                off.records_per_s / 1e6, on.records_per_s / 1e6,
                100.0 * (1.0 - on.records_per_s / off.records_per_s));
  }
  std::printf("%s off: %.3f M records/s\n", label, static_cast<double>(n) * repeat / off_s / 1e6);
  std::printf("%s on: %.3f M records/s\n", label, static_cast<double>(n) * repeat / on_s / 1e6);
  std::printf("%s checkpoints: %lld (%s)\n", label, static_cast<long long>(on.checkpoints),
              backend == state::backend_kind::rocksdb && incremental ? "incremental" : "full");
  if (backend == state::backend_kind::rocksdb && incremental)
    // Flush cuts whose files a later flush overtook, written out whole
    // (per subtask; two subtasks per checkpoint).
    std::printf("%s rewritten cuts: %llu of %lld\n", label,
                static_cast<unsigned long long>(state::rewritten_flush_cuts() - rewritten_before),
                static_cast<long long>(taken * 2));
  std::printf("checkpoint duration %s: %lld ms\n", label,
              static_cast<long long>(on.mean_duration_ms));
  std::printf("checkpoint sync part %s: %.1f ms\n", label, on.mean_sync_ms);
  std::printf("checkpoint alignment %s: %lld ms\n", label,
              static_cast<long long>(on.mean_alignment_ms));
  std::printf("checkpoint size %s: %lld bytes\n", label, static_cast<long long>(on.mean_size));
  std::printf("full state size %s: %llu bytes\n", label,
              static_cast<unsigned long long>(on.full_size));
  if (backend == state::backend_kind::rocksdb) {
    std::printf("flush cpu %s off: %.2f s\n", label, off_cpu.flush_s / repeat);
    std::printf("flush cpu %s on: %.2f s\n", label, on_cpu.flush_s / repeat);
    std::printf("compaction cpu %s off: %.2f s\n", label, off_cpu.compaction_s / repeat);
    std::printf("compaction cpu %s on: %.2f s\n", label, on_cpu.compaction_s / repeat);
  }
  if (repeat > 1) {
    double mean = 0;
    for (double o : pair_overheads)
      mean += o / repeat;
    double square_sum = 0;
    for (double o : pair_overheads)
      square_sum += (o - mean) * (o - mean);
    double error = std::sqrt(square_sum / (repeat - 1) / repeat);
    std::printf("overhead %s standard error: %.1f%%\n", label, 100.0 * error);
  }
  std::printf("overhead %s: %.1f%%\n", label, 100.0 * (1.0 - off_s / on_s));
}

/// Records/s of get + put per record on a bare RocksDB instance (500 k
/// keys, the keyed sum's access pattern), with or without its log
/// (buffered, as the log cut writes it).
double bare_rocksdb(bool log, uint64_t n) {
  auto dir = std::filesystem::temp_directory_path() / "sluice-bench-bare-rocksdb";
  std::filesystem::remove_all(dir);
  rocksdb::Options o;
  o.create_if_missing = true;
  o.write_buffer_size = size_t{16} << 20;
  o.manual_wal_flush = true;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(o, dir.string(), &raw);
  if (!st.ok()) {
    std::fprintf(stderr, "cannot open RocksDB in %s: %s\n", dir.c_str(), st.ToString().c_str());
    std::exit(1);
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions w;
  w.disableWAL = !log;
  std::string value;
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t key = (i * 2654435761u) % 500'000;
    rocksdb::Slice k(reinterpret_cast<const char*>(&key), sizeof key);
    int64_t sum = 0;
    if (db->Get(rocksdb::ReadOptions(), k, &value).ok() && value.size() == sizeof sum)
      std::memcpy(&sum, value.data(), sizeof sum);
    ++sum;
    db->Put(w, k, rocksdb::Slice(reinterpret_cast<const char*>(&sum), sizeof sum));
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  db.reset();
  std::filesystem::remove_all(dir);
  return static_cast<double>(n) / s;
}

void log_cost(uint64_t n, int repeat) {
  double without_s = 0, with_s = 0;
  for (int i = 0; i < repeat; ++i) {
    bool log_first = i % 2 == 1;
    double a = bare_rocksdb(log_first, n);
    double b = bare_rocksdb(!log_first, n);
    double without = log_first ? b : a, with = log_first ? a : b;
    without_s += static_cast<double>(n) / without;
    with_s += static_cast<double>(n) / with;
    std::printf("bare rocksdb run %d: no log %.3f M ops/s, log %.3f M ops/s (%.1f%%)\n", i + 1,
                without / 1e6, with / 1e6, 100.0 * (1.0 - with / without));
  }
  std::printf("rocksdb log cost: %.1f%%\n", 100.0 * (1.0 - without_s / with_s));
}

/// Kills a keyed subtask of a running checkpointed job and measures until
/// the restarted subtask reports records again.
double recovery_ms() {
  configuration cfg;
  cfg.state.backend = state::backend_kind::heap;
  cfg.parallelism = 2;
  cfg.checkpoints.interval = 100ms;
  cfg.checkpoints.directory = checkpoint_dir.string();
  cfg.restart.type = runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = 10;
  cfg.restart.fixed_delay.delay = 0ms;
  stream_environment env(cfg);
  env.from_generator(stream_environment::unbounded, [](uint64_t i) { return record{i % 10000, 1}; },
                     2e6)
    .key_by([](const record& r) { return r.first; })
    .sum(&record::second)
    .discard();
  auto job = env.execute_async("recovery");
  std::this_thread::sleep_for(1500ms);
  // The killed subtask's counter: the new attempt's subtask publishes its
  // own count from 0, so processing has resumed once the counter has fallen
  // below its last value and grown above 0 again.
  auto killed_in = [&] {
    for (auto& m : job->metrics().subtasks)
      if (m.task.find("Keyed") != std::string::npos && m.subtask == 0)
        return m.records_in;
    return uint64_t{0};
  };
  auto before = killed_in();
  auto t0 = std::chrono::steady_clock::now();
  job->kill_subtask(1, 0);
  while (job->restarts() == 0)
    std::this_thread::sleep_for(100us);
  for (;;) {
    auto n = killed_in();
    if (n > 0 && n < before && job->status() == runtime::job_status::running)
      break;
    std::this_thread::sleep_for(100us);
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
  job->cancel();
  job->wait();
  return ms;
}

} // namespace

int main(int argc, char** argv) {
  uint64_t heap_records = 200'000'000, rocksdb_records = 4'000'000;
  std::string only;
  int repeat = 6;
  // --single off|on: one RocksDB run only, for profiling either side.
  std::string single;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--heap-records")
      heap_records = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--rocksdb-records")
      rocksdb_records = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--only")
      only = argv[i + 1];
    else if (a == "--full")
      incremental = std::string(argv[i + 1]) == "0";
    else if (a == "--repeat")
      repeat = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--cut")
      cut = std::string(argv[i + 1]) == "flush" ? state::rocksdb_config::snapshot_cut::flush
                                                 : state::rocksdb_config::snapshot_cut::log;
    else if (a == "--interval")
      interval = std::chrono::milliseconds(std::atoll(argv[i + 1]));
    else if (a == "--dir")
      checkpoint_dir = argv[i + 1];
    else if (a == "--bloom")
      bloom = std::atoi(argv[i + 1]);
    else if (a == "--single")
      single = argv[i + 1];
  }
  if (!single.empty()) {
    auto r = keyed_sum(state::backend_kind::rocksdb, rocksdb_records, 1'000'000, single == "on");
    std::printf("rocksdb %s: %.3f M records/s, %lld checkpoints, flush cpu %.2f s, "
                "compaction cpu %.2f s\n",
                single.c_str(), r.records_per_s / 1e6, static_cast<long long>(r.checkpoints),
                r.flush_cpu_s, r.compaction_cpu_s);
    return 0;
  }
  if (only.empty() || only == "heap")
    overhead("heap", state::backend_kind::heap, heap_records, 100'000, repeat);
  if (only.empty() || only == "rocksdb")
    overhead("rocksdb", state::backend_kind::rocksdb, rocksdb_records, 1'000'000, repeat);
  if (only == "log")
    log_cost(1'500'000, repeat);
  if (only.empty() || only == "recovery")
    std::printf("recovery: %.0f ms\n", recovery_ms());
  return 0;
}
