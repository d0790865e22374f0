#include "sluice/state/snapshot.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_map>

namespace sluice::state {

namespace {

constexpr char magic[8] = {'S', 'L', 'K', 'S', 'N', 'A', 'P', '1'};
/// Index entry per key group: offset, length, CRC.
constexpr size_t index_entry_bytes = 8 + 8 + 4;

/// Tables for CRC-32 (IEEE, reflected) eight bytes at a time ("slicing by
/// 8"): t[0] is the classic byte table, t[k][b] the CRC of byte b followed
/// by k zero bytes. About five times the byte-at-a-time rate, which matters
/// for checkpoints: every stored RocksDB file and heap snapshot is summed.
std::array<std::array<uint32_t, 256>, 8> make_crc_tables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (size_t k = 1; k < 8; ++k)
    for (uint32_t i = 0; i < 256; ++i)
      t[k][i] = t[0][t[k - 1][i] & 0xFFu] ^ (t[k - 1][i] >> 8);
  return t;
}

void write_str(byte_writer& w, std::string_view s) {
  w.write_varint(s.size());
  w.write_bytes(s.data(), s.size());
}

std::string_view read_str(byte_reader& r) {
  auto n = r.read_varint();
  if (n > r.remaining())
    r.fail("string of " + std::to_string(n) + " bytes, " + std::to_string(r.remaining()) +
           " remain");
  return r.read_view(static_cast<size_t>(n));
}

/// What the header says about one state.
struct snapshot_state {
  std::string name;
  state_kind kind = state_kind::value;
  std::string namespace_type;
  std::string value_type;
  std::string description;
  bool ttl = false;
};

/// What the header says about one timer queue.
struct snapshot_timer_queue {
  std::string name;
  std::string namespace_type;
};

struct block_ref {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t crc = 0;
};

/// Parses and checks a snapshot's header; reads key-group blocks on demand.
/// Every failure is a state_error naming the snapshot and the byte offset.
class snapshot_reader {
public:
  snapshot_reader(std::string_view bytes, size_t number) : bytes_(bytes), number_(number) {
    try {
      parse_header();
    } catch (const serialization_error& e) {
      fail(std::string("corrupt header: ") + e.what());
    }
  }

  int32_t max_parallelism = 0;
  key_group_range range;
  std::string key_type;
  std::vector<snapshot_state> states;
  std::vector<snapshot_timer_queue> timer_queues;

  /// Calls fn(state index in the header, entry) for every entry of key group
  /// `kg` (inside `range`), and timer_fn(queue index in the header, time, key
  /// bytes, namespace bytes) for every timer.
  template <class F, class T>
  void for_each_entry(int32_t kg, F&& fn, T&& timer_fn) {
    const auto& b = index_[static_cast<size_t>(kg - range.start)];
    if (b.length == 0)
      return;
    auto block = body_.substr(static_cast<size_t>(b.offset), static_cast<size_t>(b.length));
    if (snapshot_crc32(block) != b.crc)
      fail("key group " + std::to_string(kg) + ": checksum mismatch in the block at byte " +
           std::to_string(body_start_ + b.offset));
    byte_reader r(block);
    snapshot_entry e;
    try {
      auto sections = r.read_varint();
      for (uint64_t s = 0; s < sections; ++s) {
        auto state = r.read_varint();
        if (state >= states.size() + timer_queues.size())
          r.fail("section " + std::to_string(state) + " not in the header");
        if (state >= states.size()) {
          auto queue = static_cast<uint32_t>(state - states.size());
          auto count = r.read_varint();
          for (uint64_t i = 0; i < count; ++i) {
            auto time = static_cast<int64_t>(r.read_u64());
            auto key = read_str(r);
            auto ns = read_str(r);
            timer_fn(queue, time, key, ns);
          }
          continue;
        }
        bool list = states[static_cast<size_t>(state)].kind == state_kind::list;
        auto count = r.read_varint();
        for (uint64_t i = 0; i < count; ++i) {
          e.key = read_str(r);
          e.ns = read_str(r);
          e.elements.clear();
          if (list) {
            auto n = r.read_varint();
            for (uint64_t j = 0; j < n; ++j) {
              auto v = read_str(r);
              e.elements.emplace_back(v, static_cast<int64_t>(r.read_u64()));
            }
          } else {
            e.value = read_str(r);
            e.stamp = static_cast<int64_t>(r.read_u64());
          }
          fn(static_cast<uint32_t>(state), e);
        }
      }
      if (!r.at_end())
        r.fail(std::to_string(r.remaining()) + " trailing bytes");
    } catch (const serialization_error& err) {
      fail("key group " + std::to_string(kg) + " (block at byte " +
           std::to_string(body_start_ + b.offset) + "): " + err.what());
    }
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw state_error("keyed state snapshot #" + std::to_string(number_) + " (" +
                      std::to_string(bytes_.size()) + " bytes): " + what);
  }

private:
  void parse_header() {
    byte_reader r(bytes_);
    auto m = r.read_view(sizeof magic);
    if (std::memcmp(m.data(), magic, sizeof magic) != 0)
      fail("not a keyed state snapshot (bad magic)");
    auto version = r.read_u32();
    if (version != keyed_snapshot_version)
      fail("unsupported format version " + std::to_string(version) + " (this build reads " +
           std::to_string(keyed_snapshot_version) + ")");
    auto header_len = r.read_u64();
    if (header_len > r.remaining() || r.remaining() - header_len < 4)
      fail("truncated: header of " + std::to_string(header_len) + " bytes, " +
           std::to_string(r.remaining()) + " remain");
    auto header_end = r.offset() + static_cast<size_t>(header_len);
    byte_reader crc_r(bytes_.substr(header_end, 4));
    if (snapshot_crc32(bytes_.substr(0, header_end)) != crc_r.read_u32())
      fail("header checksum mismatch");
    byte_reader h(bytes_.substr(r.offset(), static_cast<size_t>(header_len)));

    max_parallelism = static_cast<int32_t>(h.read_u32());
    range.start = static_cast<int32_t>(h.read_u32());
    range.end = static_cast<int32_t>(h.read_u32());
    if (max_parallelism <= 0 || max_parallelism > upper_bound_max_parallelism ||
        range.start < 0 || range.end < range.start || range.end >= max_parallelism)
      h.fail("bad key-group range or max parallelism");
    key_type = std::string(read_str(h));
    auto n = h.read_varint();
    if (n > h.remaining())
      h.fail("state count " + std::to_string(n) + " exceeds the header");
    for (uint64_t i = 0; i < n; ++i) {
      snapshot_state s;
      s.name = std::string(read_str(h));
      auto kind = h.read_u8();
      if (kind > static_cast<uint8_t>(state_kind::aggregating))
        h.fail("unknown state kind " + std::to_string(kind));
      s.kind = static_cast<state_kind>(kind);
      s.namespace_type = std::string(read_str(h));
      s.value_type = std::string(read_str(h));
      s.description = std::string(read_str(h));
      auto ttl = h.read_u8();
      if (ttl > 1)
        h.fail("bad TTL flag");
      s.ttl = ttl == 1;
      for (auto& o : states)
        if (o.name == s.name)
          h.fail("state '" + s.name + "' appears twice");
      states.push_back(std::move(s));
    }
    auto queues = h.read_varint();
    if (queues > h.remaining())
      h.fail("timer queue count " + std::to_string(queues) + " exceeds the header");
    for (uint64_t i = 0; i < queues; ++i) {
      snapshot_timer_queue q;
      q.name = std::string(read_str(h));
      q.namespace_type = std::string(read_str(h));
      for (auto& o : timer_queues)
        if (o.name == q.name)
          h.fail("timer queue '" + q.name + "' appears twice");
      timer_queues.push_back(std::move(q));
    }
    auto groups = static_cast<size_t>(range.size());
    if (groups * index_entry_bytes > h.remaining())
      h.fail("truncated key-group index");
    index_.resize(groups);
    for (auto& b : index_) {
      b.offset = h.read_u64();
      b.length = h.read_u64();
      b.crc = h.read_u32();
    }
    auto body_len = h.read_u64();
    if (!h.at_end())
      h.fail("trailing bytes in the header");
    body_start_ = header_end + 4;
    if (bytes_.size() - body_start_ != body_len)
      fail("body is " + std::to_string(bytes_.size() - body_start_) + " bytes, header says " +
           std::to_string(body_len) + " (truncated or extended)");
    body_ = bytes_.substr(body_start_);
    for (size_t g = 0; g < groups; ++g) {
      auto& b = index_[g];
      if (b.offset > body_len || b.length > body_len - b.offset)
        fail("key group " + std::to_string(range.start + static_cast<int32_t>(g)) +
             ": block outside the body");
    }
  }

  std::string_view bytes_;
  std::string_view body_;
  size_t body_start_ = 0;
  size_t number_;
  std::vector<block_ref> index_;
};

} // namespace

uint32_t snapshot_crc32_update(uint32_t crc, std::string_view bytes) noexcept {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the CRC reads words little-endian");
  static const auto t = make_crc_tables();
  uint32_t c = crc ^ 0xFFFFFFFFu;
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint32_t lo = 0, hi = 0;
    std::memcpy(&lo, p, 4); // little-endian, as every target sluice builds for
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
  }
  for (; n > 0; ++p, --n)
    c = t[0][(c ^ *p) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t snapshot_crc32(std::string_view bytes) noexcept { return snapshot_crc32_update(0, bytes); }

snapshot_info read_snapshot_info(std::string_view bytes) {
  snapshot_reader r(bytes, 0);
  snapshot_info out;
  out.max_parallelism = r.max_parallelism;
  out.range = r.range;
  out.key_type = r.key_type;
  for (auto& s : r.states)
    out.states.push_back({s.name, s.kind, s.ttl});
  return out;
}

// ---- snapshot_writer --------------------------------------------------------

snapshot_writer::snapshot_writer(const std::vector<state_meta>& states,
                                 const std::vector<timer_queue_meta>& timer_queues,
                                 key_group_range range, int32_t max_parallelism,
                                 std::string key_type)
  : states_(states), timer_queues_(timer_queues), range_(range), max_parallelism_(max_parallelism),
    key_type_(std::move(key_type)), groups_(static_cast<size_t>(range.size())) {}

snapshot_writer::section& snapshot_writer::section_of(int32_t kg, uint32_t id) {
  if (!range_.contains(kg))
    throw state_error("snapshot: entry of key group " + std::to_string(kg) +
                      " outside the backend's range");
  if (id >= states_.size() + timer_queues_.size())
    throw state_error("snapshot: entry of undeclared state or timer queue " + std::to_string(id));
  auto& g = groups_[static_cast<size_t>(kg - range_.start)];
  if (g.size() <= id)
    g.resize(states_.size() + timer_queues_.size());
  return g[id];
}

void snapshot_writer::add_timer(int32_t kg, uint32_t queue, int64_t time, std::string_view key,
                                std::string_view ns) {
  if (queue >= timer_queues_.size())
    throw state_error("snapshot: timer of unregistered timer queue " + std::to_string(queue));
  if (!range_.contains(kg))
    throw state_error("snapshot: timer queue '" + timer_queues_[queue].name +
                      "' holds a timer of key group " + std::to_string(kg) +
                      ", outside the backend's range");
  auto& s = section_of(kg, static_cast<uint32_t>(states_.size()) + queue);
  byte_writer w(s.bytes);
  w.write_u64(static_cast<uint64_t>(time));
  write_str(w, key);
  write_str(w, ns);
  ++s.count;
}

void snapshot_writer::add_value(int32_t kg, uint32_t state, std::string_view key,
                                std::string_view ns, std::string_view value, int64_t stamp) {
  auto& s = section_of(kg, state);
  byte_writer w(s.bytes);
  write_str(w, key);
  write_str(w, ns);
  write_str(w, value);
  w.write_u64(static_cast<uint64_t>(stamp));
  ++s.count;
}

void snapshot_writer::add_list(int32_t kg, uint32_t state, std::string_view key,
                               std::string_view ns, uint64_t count, std::string_view elements) {
  auto& s = section_of(kg, state);
  byte_writer w(s.bytes);
  write_str(w, key);
  write_str(w, ns);
  w.write_varint(count);
  w.write_bytes(elements.data(), elements.size());
  ++s.count;
}

void snapshot_writer::append_list_element(std::string& out, std::string_view value,
                                          int64_t stamp) {
  byte_writer w(out);
  write_str(w, value);
  w.write_u64(static_cast<uint64_t>(stamp));
}

std::string snapshot_writer::finish() {
  std::string body;
  std::vector<block_ref> index(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto& sections = groups_[g];
    uint64_t n = 0;
    for (auto& s : sections)
      n += s.count > 0 ? 1 : 0;
    if (n == 0)
      continue;
    auto start = body.size();
    byte_writer w(body);
    w.write_varint(n);
    for (size_t i = 0; i < sections.size(); ++i) {
      if (sections[i].count == 0)
        continue;
      w.write_varint(i);
      w.write_varint(sections[i].count);
      w.write_bytes(sections[i].bytes.data(), sections[i].bytes.size());
      std::string().swap(sections[i].bytes);
    }
    index[g] = {start, body.size() - start,
                snapshot_crc32(std::string_view(body).substr(start))};
  }

  std::string header;
  byte_writer h(header);
  h.write_u32(static_cast<uint32_t>(max_parallelism_));
  h.write_u32(static_cast<uint32_t>(range_.start));
  h.write_u32(static_cast<uint32_t>(range_.end));
  write_str(h, key_type_);
  h.write_varint(states_.size());
  for (auto& s : states_) {
    write_str(h, s.name);
    h.write_u8(static_cast<uint8_t>(s.kind));
    write_str(h, s.namespace_serial_type);
    write_str(h, s.value_serial_type);
    write_str(h, s.type_description);
    h.write_u8(s.ttl.enabled() ? 1 : 0);
  }
  h.write_varint(timer_queues_.size());
  for (auto& q : timer_queues_) {
    write_str(h, q.name);
    write_str(h, q.namespace_serial_type);
  }
  for (auto& b : index) {
    h.write_u64(b.offset);
    h.write_u64(b.length);
    h.write_u32(b.crc);
  }
  h.write_u64(body.size());

  std::string out;
  out.reserve(8 + 4 + 8 + header.size() + 4 + body.size());
  byte_writer o(out);
  o.write_bytes(magic, sizeof magic);
  o.write_u32(keyed_snapshot_version);
  o.write_u64(header.size());
  o.write_bytes(header.data(), header.size());
  o.write_u32(snapshot_crc32(out));
  o.write_bytes(body.data(), body.size());
  return out;
}

// ---- keyed_state_backend_base -----------------------------------------------

std::string keyed_state_backend_base::snapshot() { return snapshot_impl(true); }

std::string keyed_state_backend_base::snapshot_meta() { return snapshot_impl(false); }

void keyed_state_backend_base::restore_native(
  const std::vector<std::shared_ptr<native_restore_source>>&) {
  throw state_error(std::string("the ") + to_string(kind()) +
                    " backend cannot restore a native RocksDB snapshot (an incremental "
                    "checkpoint); restore from a savepoint, which is in the canonical format, "
                    "or use the rocksdb backend");
}

std::string keyed_state_backend_base::snapshot_impl(bool entries) {
  for (auto& s : states_)
    if (s.namespace_serial_type.empty() || s.value_serial_type.empty())
      throw state_error("cannot snapshot state '" + s.name + "' (" + s.type_description +
                        "): its types need a serializer; add SLUICE_SERIALIZABLE(...) or a "
                        "serializer<T> specialisation");
  for (auto& q : timer_queues_)
    if (q.namespace_serial_type.empty())
      throw state_error("cannot snapshot timer queue '" + q.name +
                        "': its namespace type needs a serializer; add SLUICE_SERIALIZABLE(...) "
                        "or a serializer<T> specialisation");
  snapshot_writer w(states_, timer_queues_, range_, max_parallelism_, snapshot_key_type());
  if (entries)
    write_snapshot_entries(w);
  write_snapshot_timers(w);
  return w.finish();
}

void keyed_state_backend_base::restore(const std::vector<std::string_view>& snapshots) {
  std::vector<bool> restored(static_cast<size_t>(range_.size()), false);
  for (size_t n = 0; n < snapshots.size(); ++n) {
    snapshot_reader r(snapshots[n], n);
    if (r.max_parallelism != max_parallelism_)
      r.fail("written with max parallelism " + std::to_string(r.max_parallelism) +
             ", this backend has " + std::to_string(max_parallelism_) +
             " (rescaling keeps the max parallelism)");
    auto key_type = snapshot_key_type();
    if (r.key_type != key_type)
      r.fail("keys are " + r.key_type + ", this backend's are " + key_type);

    // Snapshot state index -> declared state index.
    std::vector<uint32_t> local(r.states.size());
    for (size_t i = 0; i < r.states.size(); ++i) {
      auto& s = r.states[i];
      auto it = std::find_if(states_.begin(), states_.end(),
                             [&](const state_meta& m) { return m.name == s.name; });
      if (it == states_.end())
        throw state_error("restore: state '" + s.name + "' (" + s.description +
                          ") is in the snapshot but not declared; create its state handle "
                          "before restoring");
      if (it->kind != s.kind || it->namespace_serial_type != s.namespace_type ||
          it->value_serial_type != s.value_type)
        throw state_error("restore: state '" + s.name + "' was snapshotted as " + s.description +
                          " (" + to_string(s.kind) + " of " + s.value_type + " in " +
                          s.namespace_type + ") but is declared as " + it->type_description +
                          " (" + to_string(it->kind) + " of " + it->value_serial_type + " in " +
                          it->namespace_serial_type + ")");
      local[i] = static_cast<uint32_t>(it - states_.begin());
    }

    // Snapshot timer queue index -> registered queue index.
    std::vector<uint32_t> local_queue(r.timer_queues.size());
    for (size_t i = 0; i < r.timer_queues.size(); ++i) {
      auto& q = r.timer_queues[i];
      auto it = std::find_if(timer_queues_.begin(), timer_queues_.end(),
                             [&](const timer_queue_meta& m) { return m.name == q.name; });
      if (it == timer_queues_.end())
        throw state_error("restore: timer queue '" + q.name + "' (timers in " +
                          q.namespace_type +
                          ") is in the snapshot but not registered; the operator must register "
                          "its timer queues before restoring");
      if (it->namespace_serial_type != q.namespace_type)
        throw state_error("restore: timer queue '" + q.name + "' was snapshotted with timers in " +
                          q.namespace_type + " but is registered with timers in " +
                          it->namespace_serial_type);
      local_queue[i] = static_cast<uint32_t>(it - timer_queues_.begin());
    }

    auto from = std::max(r.range.start, range_.start);
    auto to = std::min(r.range.end, range_.end);
    for (auto kg = from; kg <= to; ++kg) {
      auto slot = static_cast<size_t>(kg - range_.start);
      if (restored[slot])
        r.fail("key group " + std::to_string(kg) + " is also in an earlier snapshot");
      restored[slot] = true;
      r.for_each_entry(kg, [&](uint32_t s, snapshot_entry& e) {
        auto idx = local[s];
        auto& meta = states_[idx];
        // Stamps follow this state's TTL: fresh when it gained one, none
        // when it lost it.
        if (!meta.ttl.enabled() || !r.states[s].ttl) {
          int64_t stamp = meta.ttl.enabled() ? clock_->now_ms() : 0;
          e.stamp = stamp;
          for (auto& el : e.elements)
            el.second = stamp;
        }
        try {
          restore_snapshot_entry(idx, kg, e);
        } catch (const serialization_error& err) {
          throw state_error("restore: state '" + meta.name + "', key group " +
                            std::to_string(kg) + ": entry cannot be read as " +
                            meta.type_description + " (" + err.what() + ")");
        }
      }, [&](uint32_t q, int64_t time, std::string_view key, std::string_view ns) {
        auto idx = local_queue[q];
        try {
          restore_snapshot_timer(idx, kg, time, key, ns);
        } catch (const serialization_error& err) {
          throw state_error("restore: timer queue '" + timer_queues_[idx].name +
                            "', key group " + std::to_string(kg) +
                            ": timer cannot be read (" + err.what() + ")");
        }
      });
    }
  }
  on_restored();
}

void keyed_state_backend_base::add_snapshot_timer(snapshot_writer& w, int32_t kg, uint32_t queue,
                                                  int64_t time, std::string_view key,
                                                  std::string_view ns) {
  w.add_timer(kg, queue, time, key, ns);
}

void keyed_state_backend_base::restore_snapshot_timer(uint32_t queue, int32_t, int64_t,
                                                      std::string_view, std::string_view) {
  throw state_error("restore: timer queue '" + timer_queues_.at(queue).name +
                    "': this backend cannot restore timers");
}

std::string keyed_state_backend_base::snapshot_key_type() const {
  throw state_error(std::string("the ") + to_string(kind()) +
                    " backend does not support snapshots");
}

void keyed_state_backend_base::write_snapshot_entries(snapshot_writer&) {
  throw state_error(std::string("the ") + to_string(kind()) +
                    " backend does not support snapshots");
}

void keyed_state_backend_base::restore_snapshot_entry(uint32_t, int32_t, const snapshot_entry&) {
  throw state_error(std::string("the ") + to_string(kind()) +
                    " backend does not support restoring snapshots");
}

} // namespace sluice::state
