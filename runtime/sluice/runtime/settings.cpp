#include "sluice/runtime/internal/setting_text.hpp"
#include "sluice/runtime/settings.hpp"

#include "sluice/runtime/restart_strategy.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

namespace sluice::runtime {

namespace {

using internal::bad_value;
using internal::lower;
using internal::trim;

using setter = std::function<void(configuration&, const std::string& key, const std::string& value)>;

std::chrono::milliseconds duration(const std::string& key, const std::string& value) {
  return parse_flink_duration(value, key);
}

int32_t int32_in(const std::string& key, const std::string& value, int64_t min, int64_t max) {
  return static_cast<int32_t>(parse_setting_int(key, value, min, max));
}

/// Every key but restart-strategy.* (parse_restart_config's).
const std::map<std::string, setter>& setters() {
  static const std::map<std::string, setter> table = [] {
    std::map<std::string, setter> t;
    t["parallelism.default"] = [](configuration& c, const std::string& k, const std::string& v) {
      c.parallelism = int32_in(k, v, 1, 32768);
    };
    t["pipeline.max-parallelism"] = [](configuration& c, const std::string& k,
                                       const std::string& v) {
      c.max_parallelism = int32_in(k, v, 1, 32768);
    };
    auto buffer_timeout = [](configuration& c, const std::string& k, const std::string& v) {
      c.buffer_timeout = duration(k, v);
    };
    t["execution.buffer-timeout"] = buffer_timeout;
    t["execution.buffer-timeout.interval"] = buffer_timeout;
    t["pipeline.auto-watermark-interval"] = [](configuration& c, const std::string& k,
                                               const std::string& v) {
      c.auto_watermark_interval = duration(k, v);
    };
    t["taskmanager.numberOfTaskSlots"] = [](configuration& c, const std::string& k,
                                            const std::string& v) {
      c.slots_per_taskmanager = int32_in(k, v, 1, 1 << 16);
    };
    t["local.number-taskmanager"] = [](configuration& c, const std::string& k,
                                       const std::string& v) {
      c.taskmanagers = int32_in(k, v, 1, 1024);
    };
    t["sluice.scheduler.threads"] = [](configuration& c, const std::string& k,
                                       const std::string& v) {
      c.scheduler_threads = static_cast<uint32_t>(parse_setting_int(k, v, 0, 1024));
    };
    t["sluice.scheduler.profile"] = [](configuration& c, const std::string& k,
                                       const std::string& v) {
      auto p = lower(trim(v));
      if (p != "balanced" && p != "throughput")
        bad_value(k, v, "use balanced or throughput");
      c.scheduler_profile = p;
    };
    t["sluice.scheduler.max-throughput"] = [](configuration& c, const std::string& k,
                                              const std::string& v) {
      c.scheduler_max_throughput = static_cast<uint32_t>(parse_setting_int(k, v, 0, 1 << 20));
    };
    t["sluice.network.credits-per-channel"] = [](configuration& c, const std::string& k,
                                                 const std::string& v) {
      c.credits_per_channel = static_cast<uint32_t>(parse_setting_int(k, v, 1, 1024));
    };
    auto backend = [](configuration& c, const std::string& k, const std::string& v) {
      auto b = lower(trim(v));
      if (b == "hashmap" || b == "heap")
        c.state.backend = state::backend_kind::heap;
      else if (b == "rocksdb")
        c.state.backend = state::backend_kind::rocksdb;
      else
        bad_value(k, v, "use hashmap (heap) or rocksdb");
    };
    t["state.backend"] = backend;
    t["state.backend.type"] = backend;
    t["state.backend.incremental"] = [](configuration& c, const std::string& k,
                                        const std::string& v) {
      c.checkpoints.incremental = parse_setting_bool(k, v);
    };
    t["sluice.state.rocksdb.snapshot-cut"] = [](configuration& c, const std::string& k,
                                                const std::string& v) {
      auto cut = lower(trim(v));
      if (cut == "log")
        c.state.rocksdb.cut = state::rocksdb_config::snapshot_cut::log;
      else if (cut == "flush")
        c.state.rocksdb.cut = state::rocksdb_config::snapshot_cut::flush;
      else
        bad_value(k, v, "use log or flush");
    };
    t["state.backend.rocksdb.localdir"] = [](configuration& c, const std::string&,
                                             const std::string& v) {
      c.state.rocksdb.local_dir = std::string(trim(v));
    };
    t["state.backend.rocksdb.memory.fixed-per-tm"] = [](configuration& c, const std::string& k,
                                                        const std::string& v) {
      c.state.rocksdb.managed_memory_bytes = parse_memory_size(k, v);
    };
    t["state.backend.rocksdb.memory.write-buffer-ratio"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        auto r = parse_setting_double(k, v);
        if (r <= 0 || r >= 1)
          bad_value(k, v, "must be in (0, 1)");
        c.state.rocksdb.write_buffer_ratio = r;
      };
    t["state.backend.rocksdb.memory.high-prio-pool-ratio"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        auto r = parse_setting_double(k, v);
        if (r < 0 || r >= 1)
          bad_value(k, v, "must be in [0, 1)");
        c.state.rocksdb.high_priority_pool_ratio = r;
      };
    t["state.backend.rocksdb.use-bloom-filter"] = [](configuration& c, const std::string& k,
                                                     const std::string& v) {
      c.state.rocksdb.use_bloom_filter = parse_setting_bool(k, v);
    };
    t["sluice.state.rocksdb.compaction.level0-file-num-trigger"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        // "auto": 8 with incremental checkpoints, else 4. RocksDB slows
        // writes down at 20 L0 files.
        c.state.rocksdb.level0_compaction_trigger =
          lower(trim(v)) == "auto" ? 0 : int32_in(k, v, 1, 16);
      };
    t["state.checkpoints.dir"] = [](configuration& c, const std::string&, const std::string& v) {
      c.checkpoints.directory = std::string(trim(v));
    };
    auto retained = [](configuration& c, const std::string& k, const std::string& v) {
      c.checkpoints.num_retained = int32_in(k, v, 1, 1 << 20);
    };
    t["state.checkpoints.num-retained"] = retained;
    t["execution.checkpointing.num-retained"] = retained;
    t["execution.checkpointing.interval"] = [](configuration& c, const std::string& k,
                                               const std::string& v) {
      c.checkpoints.interval = duration(k, v);
    };
    t["execution.checkpointing.timeout"] = [](configuration& c, const std::string& k,
                                              const std::string& v) {
      c.checkpoints.timeout = duration(k, v);
    };
    t["execution.checkpointing.min-pause"] = [](configuration& c, const std::string& k,
                                                const std::string& v) {
      c.checkpoints.min_pause = duration(k, v);
    };
    t["execution.checkpointing.max-concurrent-checkpoints"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        c.checkpoints.max_concurrent = int32_in(k, v, 1, 1024);
      };
    t["execution.checkpointing.tolerable-failed-checkpoints"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        c.checkpoints.tolerable_failed = int32_in(k, v, 0, std::numeric_limits<int32_t>::max());
      };
    t["execution.checkpointing.mode"] = [](configuration& c, const std::string& k,
                                           const std::string& v) {
      auto m = lower(trim(v));
      if (m == "exactly_once")
        c.checkpoints.mode = checkpointing_mode::exactly_once;
      else if (m == "at_least_once")
        c.checkpoints.mode = checkpointing_mode::at_least_once;
      else
        bad_value(k, v, "use EXACTLY_ONCE or AT_LEAST_ONCE");
    };
    auto unaligned = [](configuration& c, const std::string& k, const std::string& v) {
      c.checkpoints.unaligned = parse_setting_bool(k, v);
    };
    t["execution.checkpointing.unaligned"] = unaligned;
    t["execution.checkpointing.unaligned.enabled"] = unaligned;
    t["execution.checkpointing.aligned-checkpoint-timeout"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        c.checkpoints.aligned_checkpoint_timeout = duration(k, v);
      };
    auto retention = [](configuration& c, const std::string& k, const std::string& v) {
      auto r = lower(trim(v));
      if (r == "no_externalized_checkpoints")
        c.checkpoints.retention = externalized_retention::none;
      else if (r == "delete_on_cancellation")
        c.checkpoints.retention = externalized_retention::delete_on_cancellation;
      else if (r == "retain_on_cancellation")
        c.checkpoints.retention = externalized_retention::retain_on_cancellation;
      else
        bad_value(k, v,
                  "use NO_EXTERNALIZED_CHECKPOINTS, DELETE_ON_CANCELLATION or "
                  "RETAIN_ON_CANCELLATION");
    };
    t["execution.checkpointing.externalized-checkpoint-retention"] = retention;
    t["execution.checkpointing.externalized-checkpoints.retention"] = retention;
    t["execution.savepoint.path"] = [](configuration& c, const std::string&,
                                       const std::string& v) {
      c.restore.path = std::string(trim(v));
    };
    t["execution.savepoint.ignore-unclaimed-state"] =
      [](configuration& c, const std::string& k, const std::string& v) {
        c.restore.allow_non_restored_state = parse_setting_bool(k, v);
      };
    return t;
  }();
  return table;
}

bool is_restart_key(const std::string& key) {
  return key == "restart-strategy" || key.rfind("restart-strategy.", 0) == 0;
}

} // namespace

int64_t parse_setting_int(std::string_view key, std::string_view raw, int64_t min, int64_t max) {
  auto text = trim(raw);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    bad_value(key, raw, "out of range");
  if (ec != std::errc() || end != text.data() + text.size() || text.empty())
    bad_value(key, raw, "not an integer");
  if (value < min || value > max)
    bad_value(key, raw, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return value;
}

double parse_setting_double(std::string_view key, std::string_view raw) {
  auto text = trim(raw);
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() ||
      !std::isfinite(value))
    bad_value(key, raw, "not a finite number");
  return value;
}

bool parse_setting_bool(std::string_view key, std::string_view raw) {
  auto v = lower(trim(raw));
  if (v == "true")
    return true;
  if (v == "false")
    return false;
  bad_value(key, raw, "use true or false");
}

uint64_t parse_memory_size(std::string_view key, std::string_view raw) {
  auto text = trim(raw);
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0)
    bad_value(key, raw, "a memory size is a whole number with an optional unit, e.g. '64 mb'");
  uint64_t amount = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, amount);
  if (ec != std::errc() || end != text.data() + digits)
    bad_value(key, raw, "the number is too large");
  auto unit = lower(trim(text.substr(digits)));
  uint64_t factor = 0;
  if (unit.empty() || unit == "b" || unit == "bytes")
    factor = 1;
  else if (unit == "k" || unit == "kb" || unit == "kibibytes")
    factor = uint64_t{1} << 10;
  else if (unit == "m" || unit == "mb" || unit == "mebibytes")
    factor = uint64_t{1} << 20;
  else if (unit == "g" || unit == "gb" || unit == "gibibytes")
    factor = uint64_t{1} << 30;
  else if (unit == "t" || unit == "tb" || unit == "tebibytes")
    factor = uint64_t{1} << 40;
  else
    bad_value(key, raw, "unknown unit '" + unit + "' (use b, kb, mb, gb or tb)");
  if (amount > std::numeric_limits<uint64_t>::max() / factor)
    bad_value(key, raw, "the size is too large");
  return amount * factor;
}

std::vector<std::string> apply_settings(configuration& config,
                                        const std::map<std::string, std::string>& settings) {
  std::vector<std::string> warnings;
  std::map<std::string, std::string> restart;
  for (const auto& [key, value] : settings) {
    if (is_restart_key(key)) {
      restart.emplace(key, value);
      continue;
    }
    auto it = setters().find(key);
    if (it == setters().end()) {
      warnings.push_back("unknown configuration key '" + key + "' (ignored)");
      continue;
    }
    it->second(config, key, value);
  }
  if (!restart.empty()) {
    auto parsed = parse_restart_config(restart);
    validate(parsed);
    config.restart = parsed;
  }
  validate(config.checkpoints);
  return warnings;
}

const std::vector<std::string>& known_setting_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k;
    for (auto& [key, _] : setters())
      k.push_back(key);
    k.emplace_back("restart-strategy.type");
    std::sort(k.begin(), k.end());
    return k;
  }();
  return keys;
}

} // namespace sluice::runtime
