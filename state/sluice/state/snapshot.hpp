#pragma once

#include "sluice/state/keyed_backend.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// The canonical byte format of keyed state snapshots, shared by every
/// backend kind, so a heap snapshot restores into RocksDB and back, at any
/// parallelism with the same max parallelism.
///
/// Layout (integers little-endian, "varint" = LEB128, "str" = varint length
/// then bytes):
///
///     magic "SLKSNAP1" | u32 version | u64 header length |
///     header: u32 max parallelism | u32 first key group | u32 last key group |
///             str key type (serializer<K>::type_name()) |
///             varint state count | per state: str name, u8 kind,
///               str namespace type, str value type, str description,
///               u8 has TTL |
///             varint timer queue count | per queue: str name,
///               str namespace type |
///             per key group of the range: u64 block offset (from the body
///               start), u64 block length, u32 block CRC-32 |
///             u64 body length |
///     u32 CRC-32 of everything above |
///     body: one block per non-empty key group.
///
/// A block: varint section count | per section: varint section id, varint
/// entry count, entries. Section ids below the state count are states (index
/// in the header), the next ones timer queues (id - state count: index in
/// the header's queue list). A timer entry: u64 time (two's complement), str
/// key (serializer<K> bytes), str namespace (serializer<N> bytes). A state
/// entry: str key (serializer<K>
/// bytes), str namespace (serializer<N> bytes, for map state followed by
/// serializer<UK> bytes of the user key), then for list state varint
/// element count and per element str value and u64 TTL stamp, for the other
/// kinds str value (serializer<V> / serializer<UV> bytes) and u64 TTL stamp
/// (0 when the state has no TTL). These are the bytes the RocksDB backend
/// keeps in its keys and values, so its snapshot is a scan per key group.
///
/// A restoring backend reads the header, then only the blocks of its own key
/// groups, each checked against its CRC before it is decoded.
///
/// Versions: 1 had no timer queues (in the header or blocks); version 2
/// added them. Readers accept their own version only.
namespace sluice::state {

/// The snapshot format version this build writes and reads.
inline constexpr uint32_t keyed_snapshot_version = 2;

/// One entry of one state as read from a snapshot; views into the snapshot
/// bytes.
struct snapshot_entry {
  std::string_view key; ///< serializer<K> bytes
  /// serializer<N> bytes; for map state followed by serializer<UK> bytes.
  std::string_view ns;
  std::string_view value; ///< not list: serializer<V> / serializer<UV> bytes
  int64_t stamp = 0;      ///< not list: TTL stamp (0 without TTL)
  /// List state: each element's serializer<T> bytes and TTL stamp.
  std::vector<std::pair<std::string_view, int64_t>> elements;
};

/// Collects a backend's entries (in any key-group order) and lays them out
/// in the snapshot format. Used by keyed_state_backend_base::snapshot().
class snapshot_writer {
public:
  snapshot_writer(const std::vector<state_meta>& states,
                  const std::vector<timer_queue_meta>& timer_queues, key_group_range range,
                  int32_t max_parallelism, std::string key_type);

  /// Adds an entry of a value, reducing, aggregating or map state.
  void add_value(int32_t kg, uint32_t state, std::string_view key, std::string_view ns,
                 std::string_view value, int64_t stamp);
  /// Adds a list entry of `count` elements, each encoded with
  /// append_list_element into `elements`.
  void add_list(int32_t kg, uint32_t state, std::string_view key, std::string_view ns,
                uint64_t count, std::string_view elements);
  /// Adds a timer of timer queue `queue` (key and namespace as serializer
  /// bytes).
  void add_timer(int32_t kg, uint32_t queue, int64_t time, std::string_view key,
                 std::string_view ns);
  /// Appends one list element (value bytes and TTL stamp) for add_list.
  static void append_list_element(std::string& out, std::string_view value, int64_t stamp);

  /// The snapshot bytes.
  [[nodiscard]] std::string finish();

private:
  struct section {
    uint64_t count = 0;
    std::string bytes;
  };
  /// The section of state `id`, or of timer queue `id - states.size()`.
  section& section_of(int32_t kg, uint32_t id);

  const std::vector<state_meta>& states_;
  const std::vector<timer_queue_meta>& timer_queues_;
  key_group_range range_;
  int32_t max_parallelism_;
  std::string key_type_;
  std::vector<std::vector<section>> groups_; ///< [key group - first][section id]
};

/// CRC-32 (IEEE) of `bytes`, as the snapshot format uses it.
[[nodiscard]] uint32_t snapshot_crc32(std::string_view bytes) noexcept;
/// Continues a CRC-32 over more bytes: snapshot_crc32_update(
/// snapshot_crc32(a), b) == snapshot_crc32(a + b); start from 0.
[[nodiscard]] uint32_t snapshot_crc32_update(uint32_t crc, std::string_view bytes) noexcept;

/// What a snapshot's header says about one state.
struct snapshot_state_info {
  std::string name;
  state_kind kind = state_kind::value;
  bool ttl = false;
};

/// What a snapshot's header says (checked like a restore checks it).
struct snapshot_info {
  int32_t max_parallelism = 0;
  key_group_range range;
  std::string key_type;
  std::vector<snapshot_state_info> states;
};

/// Reads the header of a snapshot; throws state_error when it is corrupt.
[[nodiscard]] snapshot_info read_snapshot_info(std::string_view bytes);

} // namespace sluice::state
