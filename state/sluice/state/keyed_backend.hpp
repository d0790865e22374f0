#pragma once

#include "sluice/state/descriptors.hpp"
#include "sluice/state/key_group.hpp"
#include "sluice/state/serializer.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

/// Keyed state backends: where the keyed state of one operator subtask
/// lives. Two implementations share this interface: heap (hash maps
/// partitioned by key group) and RocksDB (key-group | key | namespace keys).
///
/// Threading: a backend belongs to one subtask and is used by one thread at a
/// time (the subtask actor's).
namespace sluice::state {

/// Which backend stores a job's keyed state.
enum class backend_kind { heap, rocksdb };

/// "heap" / "rocksdb".
[[nodiscard]] inline const char* to_string(backend_kind k) noexcept {
  return k == backend_kind::heap ? "heap" : "rocksdb";
}

/// Parses "heap" / "hashmap" / "rocksdb"; throws state_error otherwise.
[[nodiscard]] inline backend_kind parse_backend_kind(const std::string& s) {
  if (s == "heap" || s == "hashmap")
    return backend_kind::heap;
  if (s == "rocksdb")
    return backend_kind::rocksdb;
  throw state_error("unknown state backend '" + s + "' (use heap or rocksdb)");
}

/// The namespace of plain keyed state; windows use their window instead.
struct void_namespace {
  friend constexpr bool operator==(void_namespace, void_namespace) noexcept { return true; }
  friend constexpr bool operator!=(void_namespace, void_namespace) noexcept { return false; }
  friend constexpr bool operator<(void_namespace, void_namespace) noexcept { return false; }
};

/// void_namespace is written as nothing.
template <>
struct serializer<void_namespace> {
  static constexpr uint32_t version = 1;
  static void write(byte_writer&, const void_namespace&) {}
  static void_namespace read(byte_reader&) { return {}; }
  static std::string type_name() { return "void_namespace"; }
};

/// Hashes keys for the backends' hash maps: the stable key hash where the
/// type has one, spread so power-of-two tables work.
template <class T, class = void>
struct state_hasher {
  size_t operator()(const T& v) const noexcept(noexcept(std::hash<T>{}(v))) {
    return std::hash<T>{}(v);
  }
};
template <class T>
struct state_hasher<T, std::void_t<decltype(key_hash<T>{}(std::declval<const T&>()))>> {
  size_t operator()(const T& v) const noexcept {
    return static_cast<uint32_t>(murmur_hash(key_hash<T>{}(v))) * 0x9e3779b97f4a7c15ull;
  }
};

class keyed_state_backend_base;

/// Appends, as JSON, the value state `index` holds for the backend's current
/// key in the void namespace ("null" when it holds none or it expired).
/// Made where the state's types are known (the state handles); what
/// queryable state reads (queryable_state.hpp).
using state_printer =
  std::function<void(keyed_state_backend_base& backend, uint32_t index, std::string& out)>;

/// What the backend knows about one declared state.
struct state_meta {
  std::string name;
  state_kind kind = state_kind::value;
  std::type_index value_type = typeid(void);
  std::type_index namespace_type = typeid(void);
  std::string type_description; ///< for errors: "value<int64 in void_namespace>"
  state_ttl ttl;
  /// serializer<N>::type_name() / serializer<V>::type_name(), empty when the
  /// type has none: what a snapshot records and a restore checks.
  std::string namespace_serial_type;
  std::string value_serial_type;
  /// How queryable state prints it; empty for namespaced state and for
  /// states declared without a handle.
  state_printer printer;
};

/// What the backend knows about one registered timer queue.
struct timer_queue_meta {
  std::string name;
  /// serializer<N>::type_name() of the timers' namespace, empty when N has
  /// none: what a snapshot records and a restore checks.
  std::string namespace_serial_type;
};

/// A queue of keyed timers (time, key, namespace) that an operator keeps in
/// memory and registers with its keyed state backend under a name, so that
/// the backend's snapshot() writes its timers into the key groups' blocks
/// and restore() gives them back (Flink's heap priority queues registered in
/// the keyed state backend). Owned by the operator; it must outlive every
/// snapshot() and restore() call of the backend it is registered with.
template <class K>
class keyed_timer_queue {
public:
  virtual ~keyed_timer_queue() = default;
  /// serializer<N>::type_name() of the namespace, empty when it has none.
  [[nodiscard]] virtual std::string timer_namespace_type() const = 0;
  /// Calls fn(time, key, serializer<N> bytes of the namespace) for every
  /// timer set, in no particular order.
  virtual void
  for_each_snapshot_timer(const std::function<void(int64_t, const K&, std::string_view)>& fn) = 0;
  /// Sets a timer read from a snapshot (`ns`: serializer<N> bytes); throws
  /// serialization_error when `ns` cannot be read.
  virtual void restore_timer(int64_t time, const K& key, std::string_view ns) = 0;
};

class snapshot_writer;
struct snapshot_entry;
struct native_snapshot;
struct native_restore_source;

namespace internal {
template <class T>
std::string serial_type_name() {
  if constexpr (is_serializable_v<T>)
    return serializer<T>::type_name();
  else
    return {};
}
} // namespace internal

/// The part of a backend that does not depend on the key type.
class keyed_state_backend_base {
public:
  keyed_state_backend_base(key_group_range range, int32_t max_parallelism,
                           std::shared_ptr<const state_clock> clock)
    : range_(range), max_parallelism_(max_parallelism),
      clock_(clock ? std::move(clock) : std::make_shared<system_state_clock>()) {
    if (max_parallelism <= 0 || max_parallelism > upper_bound_max_parallelism)
      throw state_error("max parallelism " + std::to_string(max_parallelism) +
                        " outside [1, " + std::to_string(upper_bound_max_parallelism) + "]");
    if (range.size() <= 0 || range.start < 0 || range.end >= max_parallelism)
      throw state_error("bad key-group range [" + std::to_string(range.start) + ", " +
                        std::to_string(range.end) + "]");
  }
  virtual ~keyed_state_backend_base() = default;
  keyed_state_backend_base(const keyed_state_backend_base&) = delete;
  keyed_state_backend_base& operator=(const keyed_state_backend_base&) = delete;

  [[nodiscard]] virtual backend_kind kind() const noexcept = 0;
  /// The key groups this backend owns.
  [[nodiscard]] key_group_range key_groups() const noexcept { return range_; }
  [[nodiscard]] int32_t max_parallelism() const noexcept { return max_parallelism_; }
  /// Key group of the current key (set by set_current_key).
  [[nodiscard]] int32_t current_key_group() const noexcept { return current_kg_; }
  [[nodiscard]] const state_clock& clock() const noexcept { return *clock_; }

  /// Removes expired entries, visiting at most about `budget` keys; returns
  /// how many entries it removed. Call it now and then (background cleanup).
  virtual size_t cleanup_expired(size_t budget) = 0;

  /// Registers state `name` of `kind` holding `V` in namespace `N`; returns
  /// its index. Declaring the same name again with the same kind and types
  /// returns the same index; with different ones it throws state_error.
  template <class N, class V>
  uint32_t declare(const state_descriptor_base& d, state_kind kind, const std::string& type_desc) {
    d.check();
    for (uint32_t i = 0; i < states_.size(); ++i) {
      auto& m = states_[i];
      if (m.name != d.name)
        continue;
      if (m.kind != kind || m.value_type != std::type_index(typeid(V)) ||
          m.namespace_type != std::type_index(typeid(N)))
        throw state_error("state '" + d.name + "' is declared as " + m.type_description +
                          " but accessed as " + type_desc);
      return i;
    }
    states_.push_back(state_meta{d.name, kind, typeid(V), typeid(N), type_desc, d.ttl,
                                 internal::serial_type_name<N>(),
                                 internal::serial_type_name<V>(), state_printer{}});
    on_declare(static_cast<uint32_t>(states_.size() - 1));
    return static_cast<uint32_t>(states_.size() - 1);
  }

  /// Every declared state, by index.
  [[nodiscard]] const std::vector<state_meta>& states() const noexcept { return states_; }
  /// Sets how queryable state prints state `index`, unless it has a
  /// printer already (the first handle declared wins).
  void set_state_printer(uint32_t index, state_printer printer) {
    auto& m = states_.at(index);
    if (!m.printer)
      m.printer = std::move(printer);
  }
  /// Every registered timer queue, by index.
  [[nodiscard]] const std::vector<timer_queue_meta>& timer_queues() const noexcept {
    return timer_queues_;
  }

  /// Writes the entries of every declared state and the timers of every
  /// registered timer queue in the key groups this backend owns in the
  /// canonical snapshot format (snapshot.hpp), which every backend kind
  /// restores. Expired entries are left out. Throws state_error when a
  /// state's type, a timer namespace (or the key type) has no serializer.
  /// Defined in snapshot.cpp.
  [[nodiscard]] std::string snapshot();

  /// Restores the entries of the key groups this backend owns from
  /// `snapshots` (of any backend kind and parallelism, e.g. one per old
  /// subtask); entries of other key groups are skipped without being read.
  /// Every state in a snapshot must be declared here first, with the same
  /// kind and types (create the state handles, then restore), and every
  /// timer queue registered under its name with the same namespace type;
  /// timers go back to the registered queue. Meant for a
  /// fresh backend: restored entries overwrite existing ones. Throws
  /// state_error on corrupt input, an unknown version, a type mismatch, or a
  /// key group present in two snapshots; the backend may then hold part of
  /// the data. The current key is undefined afterwards.
  void restore(const std::vector<std::string_view>& snapshots);

  /// The synchronous part of a native snapshot for checkpoint `id` (RocksDB:
  /// memtables flushed, files hard-linked into a local directory), or null
  /// when this backend kind has none (the heap: use snapshot()). Throws
  /// state_error as snapshot() does, or when RocksDB fails.
  [[nodiscard]] virtual std::shared_ptr<native_snapshot> snapshot_native(int64_t /*id*/) {
    return nullptr;
  }
  /// Restores from native snapshots of old subtasks (any parallelism, same
  /// max parallelism): same key groups = the files become this instance;
  /// otherwise only the owned key groups are kept or copied. Every state
  /// must be declared first, as for restore(). Throws state_error naming
  /// the snapshot; the heap backend cannot read native snapshots.
  virtual void restore_native(const std::vector<std::shared_ptr<native_restore_source>>& sources);
  /// Checkpoint `id` completed: native snapshots may reference its uploads.
  virtual void checkpoint_completed(int64_t /*id*/) {}
  /// Checkpoint `id` was aborted: its uploads are deleted, never referenced.
  virtual void checkpoint_aborted(int64_t /*id*/) {}
  /// A canonical snapshot of the timers and the states' descriptions
  /// without any state entry (what a native snapshot keeps beside its
  /// RocksDB files). Defined in snapshot.cpp.
  [[nodiscard]] std::string snapshot_meta();

protected:
  /// The canonical snapshot, with or without the state entries.
  [[nodiscard]] std::string snapshot_impl(bool entries);
  /// Called after a new state was declared (RocksDB creates its column).
  virtual void on_declare(uint32_t) {}
  /// Called at the end of a restore() that read every snapshot (the heap
  /// backend re-establishes orders its cells' users rely on).
  virtual void on_restored() {}

  /// Records timer queue `name`; throws state_error when the name is taken.
  uint32_t add_timer_queue(const std::string& name, std::string namespace_serial_type) {
    for (auto& q : timer_queues_)
      if (q.name == name)
        throw state_error("timer queue '" + name + "' is registered twice");
    timer_queues_.push_back(timer_queue_meta{name, std::move(namespace_serial_type)});
    return static_cast<uint32_t>(timer_queues_.size() - 1);
  }
  /// Adds every timer of every registered queue to `w`.
  virtual void write_snapshot_timers(snapshot_writer&) {}
  /// Adds one timer of queue `queue` to `w` (snapshot_writer::add_timer,
  /// for code that sees snapshot_writer incomplete).
  static void add_snapshot_timer(snapshot_writer& w, int32_t kg, uint32_t queue, int64_t time,
                                 std::string_view key, std::string_view ns);
  /// Gives one timer of queue `queue` read from a snapshot's key group `kg`
  /// (key and namespace as serializer bytes) back to the queue.
  virtual void restore_snapshot_timer(uint32_t queue, int32_t kg, int64_t time,
                                      std::string_view key, std::string_view ns);

  /// serializer<K>::type_name() of the key type; throws state_error when K
  /// has none.
  [[nodiscard]] virtual std::string snapshot_key_type() const;
  /// Adds every live entry of the owned key groups to `w`.
  virtual void write_snapshot_entries(snapshot_writer& w);
  /// Stores one entry of state `idx` read from a snapshot's key group `kg`
  /// (stamps already adjusted to this state's TTL).
  virtual void restore_snapshot_entry(uint32_t idx, int32_t kg, const snapshot_entry& e);

  void set_current_key_group(int32_t kg) {
    if (!range_.contains(kg))
      throw state_error("key group " + std::to_string(kg) + " of the current key is outside [" +
                        std::to_string(range_.start) + ", " + std::to_string(range_.end) +
                        "] owned by this subtask");
    current_kg_ = kg;
  }

  key_group_range range_;
  int32_t max_parallelism_;
  int32_t current_kg_ = -1;
  std::shared_ptr<const state_clock> clock_;
  std::vector<state_meta> states_;
  std::vector<timer_queue_meta> timer_queues_;
};

/// A backend for keys of type K: the current key selects whose state the
/// state handles read and write.
template <class K>
class keyed_state_backend : public virtual keyed_state_backend_base {
public:
  using key_type = K;
  keyed_state_backend(key_group_range range, int32_t max_parallelism,
                      std::shared_ptr<const state_clock> clock)
    : keyed_state_backend_base(range, max_parallelism, std::move(clock)) {}

  /// Makes `key` the current key; throws state_error when the key's group
  /// is not owned here (a record routed to the wrong subtask).
  virtual void set_current_key(const K& key) = 0;
  [[nodiscard]] const K& current_key() const noexcept { return key_; }
  /// The keys that hold an entry of state `index` (in no particular order).
  [[nodiscard]] virtual std::vector<K> keys(uint32_t index) = 0;

  /// Registers `queue` under `name` (e.g. "_timer_state/event"), so
  /// snapshots carry its timers and a restore gives them back to it;
  /// register before restore(), as states are declared. Throws state_error
  /// when the name is taken.
  void register_timer_queue(const std::string& name, keyed_timer_queue<K>& queue) {
    add_timer_queue(name, queue.timer_namespace_type());
    queues_.push_back(&queue);
  }

  /// The key group of `key` under this backend's max parallelism.
  [[nodiscard]] int32_t key_group_of_key(const K& key) const noexcept {
    return key_group_for_hash(key_hash<K>{}(key), max_parallelism_);
  }

protected:
  std::string snapshot_key_type() const override {
    if constexpr (is_serializable_v<K>)
      return serializer<K>::type_name();
    else
      throw state_error(std::string("the key type (") + typeid(K).name() +
                        ") has no serializer, which a snapshot needs");
  }

  // Both backend kinds carry timers the same way: the queues stay in the
  // operator's memory and only their snapshot goes through the backend.
  void write_snapshot_timers(snapshot_writer& w) override {
    if constexpr (is_serializable_v<K>) {
      std::string k;
      for (uint32_t q = 0; q < queues_.size(); ++q)
        queues_[q]->for_each_snapshot_timer([&](int64_t time, const K& key, std::string_view ns) {
          k.clear();
          serialize_into(k, key);
          add_snapshot_timer(w, key_group_of_key(key), q, time, k, ns);
        });
    } else {
      (void)w;
      if (!queues_.empty())
        (void)snapshot_key_type(); // throws
    }
  }
  void restore_snapshot_timer(uint32_t queue, int32_t kg, int64_t time, std::string_view key,
                              std::string_view ns) override {
    if constexpr (is_serializable_v<K>) {
      auto k = deserialize<K>(key);
      if (key_group_of_key(k) != kg)
        throw state_error("restore: timer queue '" + timer_queues_.at(queue).name +
                          "': a key in the block of key group " + std::to_string(kg) +
                          " belongs to key group " + std::to_string(key_group_of_key(k)) +
                          " (corrupt snapshot)");
      queues_.at(queue)->restore_timer(time, k, ns);
    } else {
      (void)queue, (void)kg, (void)time, (void)key, (void)ns;
      (void)snapshot_key_type(); // throws
    }
  }

  K key_{};
  std::vector<keyed_timer_queue<K>*> queues_; ///< by timer queue index
};

// ---- the backends' internal state interfaces (key type erased) -------------

/// One value per (current key, namespace).
template <class N, class V>
class internal_value_state {
public:
  virtual ~internal_value_state() = default;
  virtual void set_namespace(const N& ns) = 0;
  /// The value, or nullptr when absent or expired. Valid until the next
  /// access to this state.
  [[nodiscard]] virtual const V* get() = 0;
  virtual void put(V value) = 0;
  virtual void clear() = 0;
  /// Folds the values of `sources` into the current namespace with `merge`
  /// and clears them (merging windows).
  virtual void merge_namespaces(const std::vector<N>& sources,
                                const std::function<V(const V&, const V&)>& merge) = 0;
};

/// A list per (current key, namespace); TTL applies per element.
template <class N, class T>
class internal_list_state {
public:
  virtual ~internal_list_state() = default;
  virtual void set_namespace(const N& ns) = 0;
  /// Appends the live elements to `out`; returns whether there were any.
  virtual bool get(std::vector<T>& out) = 0;
  virtual void add(T value) = 0;
  virtual void add_all(std::vector<T> values) = 0;
  /// Replaces the list (an empty vector clears it).
  virtual void update(std::vector<T> values) = 0;
  virtual void clear() = 0;
  /// Appends the lists of `sources` to the current namespace's and clears them.
  virtual void merge_namespaces(const std::vector<N>& sources) = 0;
};

/// A map per (current key, namespace); TTL applies per map entry.
template <class N, class UK, class UV>
class internal_map_state {
public:
  virtual ~internal_map_state() = default;
  virtual void set_namespace(const N& ns) = 0;
  [[nodiscard]] virtual std::optional<UV> get(const UK& key) = 0;
  virtual void put(UK key, UV value) = 0;
  virtual void remove(const UK& key) = 0;
  [[nodiscard]] virtual bool contains(const UK& key) = 0;
  /// Appends the live entries to `out` (heap: hash order; RocksDB: in the
  /// byte order of the serialized user keys).
  virtual void entries(std::vector<std::pair<UK, UV>>& out) = 0;
  [[nodiscard]] virtual bool empty() = 0;
  virtual void clear() = 0;
};

} // namespace sluice::state
