#pragma once

#include "sluice/state/flat_key_map.hpp"
#include "sluice/state/keyed_backend.hpp"
#include "sluice/state/snapshot.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

/// The heap keyed state backend: state lives in hash maps partitioned by key
/// group (fast; it must fit in memory).
///
/// Layout: per key group, a hash map from key to a key_slot; a slot holds one
/// cell per declared state that the key has data in. A record looks its key
/// up once (set_current_key) and every state access then goes straight to
/// the cell, so adding states to an operator does not add hash lookups.
/// A key whose cells all become empty is removed.
namespace sluice::state {

namespace internal {

/// Where a cell writes its entries during a snapshot.
struct cell_snapshot_context {
  snapshot_writer& writer;
  int32_t key_group;
  uint32_t state;
  std::string_view key; ///< serializer<K> bytes of the cell's key
  const state_meta& meta;
  int64_t now; ///< expired entries are left out
};

[[noreturn]] inline void no_snapshot_serializer(const state_meta& m) {
  throw state_error("cannot snapshot state '" + m.name + "' (" + m.type_description +
                    "): its types need a serializer");
}

/// The data one key holds in one state (all namespaces).
struct heap_cell {
  virtual ~heap_cell() = default;
  [[nodiscard]] virtual bool empty() const noexcept = 0;
  /// Drops entries expired at `now`; returns how many.
  virtual size_t expire(int64_t now, const state_ttl& ttl) = 0;
  /// Move-constructs this cell into `where` (storage of the same size and
  /// alignment); the caller destroys the original.
  virtual heap_cell* move_into(void* where) noexcept = 0;
  /// Adds this cell's live entries to a snapshot.
  virtual void write_snapshot(const cell_snapshot_context& c) const { no_snapshot_serializer(c.meta); }
};

/// The cells of one key, indexed by state. Cell 0 lives inside the slot
/// when it is small (plain value state of a small type: a rolling
/// aggregate's accumulator): the key lookup then lands on the value itself,
/// one cache miss per record instead of three.
class key_slot {
public:
  static constexpr size_t inline_bytes = 48;

  key_slot() = default;
  key_slot(key_slot&& o) noexcept { take(o); }
  key_slot& operator=(key_slot&& o) noexcept {
    if (this != &o) {
      reset();
      take(o);
    }
    return *this;
  }
  ~key_slot() { reset(); }

  [[nodiscard]] heap_cell* get(size_t i) const noexcept {
    if (i == 0)
      return cell0_;
    return i - 1 < more_.size() ? more_[i - 1].get() : nullptr;
  }

  /// Creates cell `i` as a Cell; it must not exist.
  template <class Cell>
  Cell& create(size_t i) {
    Cell* c = nullptr;
    if (i == 0) {
      if constexpr (sizeof(Cell) <= inline_bytes && alignof(Cell) <= alignof(void*)) {
        c = ::new (static_cast<void*>(buf_)) Cell();
        inline0_ = true;
      } else {
        c = new Cell();
      }
      cell0_ = c;
    } else {
      if (more_.size() < i)
        more_.resize(i);
      auto p = std::make_unique<Cell>();
      c = p.get();
      more_[i - 1] = std::move(p);
    }
    ++live;
    return *c;
  }

  /// Destroys cell `i`.
  void destroy(size_t i) noexcept {
    if (i == 0) {
      if (cell0_ == nullptr)
        return;
      if (inline0_)
        cell0_->~heap_cell();
      else
        delete cell0_;
      cell0_ = nullptr;
      inline0_ = false;
    } else {
      if (i - 1 >= more_.size() || !more_[i - 1])
        return;
      more_[i - 1].reset();
    }
    --live;
  }

  [[nodiscard]] size_t size() const noexcept { return 1 + more_.size(); }

private:
  void take(key_slot& o) noexcept {
    live = o.live;
    more_ = std::move(o.more_);
    if (o.cell0_ != nullptr && o.inline0_) {
      cell0_ = o.cell0_->move_into(buf_);
      o.cell0_->~heap_cell();
      inline0_ = true;
    } else {
      cell0_ = o.cell0_;
      inline0_ = false;
    }
    o.cell0_ = nullptr;
    o.inline0_ = false;
    o.live = 0;
  }
  void reset() noexcept {
    if (cell0_ != nullptr) {
      if (inline0_)
        cell0_->~heap_cell();
      else
        delete cell0_;
    }
    cell0_ = nullptr;
    inline0_ = false;
    more_.clear();
    live = 0;
  }

  // Layout: what a record touches (cell 0's pointer and storage) first, so
  // that with the key in front of it, it fits the key table entry's first
  // cache line.
  heap_cell* cell0_ = nullptr;
  alignas(void*) unsigned char buf_[inline_bytes];
  bool inline0_ = false;
  std::vector<std::unique_ptr<heap_cell>> more_;

public:
  uint32_t live = 0; ///< cells that exist
};

/// A value with the time its TTL started.
template <class V>
struct stamped {
  V value;
  int64_t stamp = 0;
};

template <class V>
size_t expire_entry(stamped<V>& e, int64_t now, const state_ttl& ttl, bool& now_empty) {
  now_empty = ttl.expired(e.stamp, now);
  return now_empty ? 1 : 0;
}

template <class T>
size_t expire_entry(std::vector<stamped<T>>& list, int64_t now, const state_ttl& ttl,
                    bool& now_empty) {
  auto before = list.size();
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const stamped<T>& e) { return ttl.expired(e.stamp, now); }),
             list.end());
  now_empty = list.empty();
  return before - list.size();
}

template <class UK, class UV, class H>
size_t expire_entry(std::unordered_map<UK, stamped<UV>, H>& map, int64_t now,
                    const state_ttl& ttl, bool& now_empty) {
  size_t removed = 0;
  for (auto it = map.begin(); it != map.end();) {
    if (ttl.expired(it->second.stamp, now)) {
      it = map.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  now_empty = map.empty();
  return removed;
}

/// How a cell entry type (value, list, map) maps to snapshot entries.
/// `piece` is what one snapshot entry decodes to, merged into the entry.
template <class E>
struct entry_codec {
  static constexpr bool serializable = false;
};

template <class V>
struct entry_codec<stamped<V>> {
  static constexpr bool serializable = is_serializable_v<V>;
  using piece = stamped<V>;
  static void write(const cell_snapshot_context& c, const std::string& ns, const stamped<V>& e) {
    if (c.meta.ttl.expired(e.stamp, c.now))
      return;
    c.writer.add_value(c.key_group, c.state, c.key, ns, serialize(e.value),
                       c.meta.ttl.enabled() ? e.stamp : 0);
  }
  static piece decode(byte_reader& ns_rest, const snapshot_entry& s) {
    if (!ns_rest.at_end())
      ns_rest.fail("trailing bytes after the namespace");
    return {deserialize<V>(s.value), s.stamp};
  }
  static bool empty(const piece&) noexcept { return false; }
  static void merge(stamped<V>& e, piece&& p) { e = std::move(p); }
};

template <class T>
struct entry_codec<std::vector<stamped<T>>> {
  static constexpr bool serializable = is_serializable_v<T>;
  using piece = std::vector<stamped<T>>;
  static void write(const cell_snapshot_context& c, const std::string& ns, const piece& list) {
    std::string elements;
    uint64_t n = 0;
    std::string v;
    for (auto& e : list) {
      if (c.meta.ttl.expired(e.stamp, c.now))
        continue;
      v.clear();
      serialize_into(v, e.value);
      snapshot_writer::append_list_element(elements, v, c.meta.ttl.enabled() ? e.stamp : 0);
      ++n;
    }
    if (n > 0)
      c.writer.add_list(c.key_group, c.state, c.key, ns, n, elements);
  }
  static piece decode(byte_reader& ns_rest, const snapshot_entry& s) {
    if (!ns_rest.at_end())
      ns_rest.fail("trailing bytes after the namespace");
    piece out;
    for (auto& [bytes, stamp] : s.elements)
      out.push_back({deserialize<T>(bytes), stamp});
    return out;
  }
  static bool empty(const piece& p) noexcept { return p.empty(); }
  static void merge(piece& e, piece&& p) {
    for (auto& x : p)
      e.push_back(std::move(x));
  }
};

template <class UK, class UV, class H>
struct entry_codec<std::unordered_map<UK, stamped<UV>, H>> {
  static constexpr bool serializable = is_serializable_v<UK> && is_serializable_v<UV>;
  using piece = std::pair<UK, stamped<UV>>;
  static void write(const cell_snapshot_context& c, const std::string& ns,
                    const std::unordered_map<UK, stamped<UV>, H>& map) {
    std::string k;
    for (auto& [uk, e] : map) {
      if (c.meta.ttl.expired(e.stamp, c.now))
        continue;
      k = ns;
      serialize_into(k, uk);
      c.writer.add_value(c.key_group, c.state, c.key, k, serialize(e.value),
                         c.meta.ttl.enabled() ? e.stamp : 0);
    }
  }
  static piece decode(byte_reader& ns_rest, const snapshot_entry& s) {
    UK uk = serializer<UK>::read(ns_rest);
    if (!ns_rest.at_end())
      ns_rest.fail("trailing bytes after the map key");
    return {std::move(uk), stamped<UV>{deserialize<UV>(s.value), s.stamp}};
  }
  static bool empty(const piece&) noexcept { return false; }
  static void merge(std::unordered_map<UK, stamped<UV>, H>& e, piece&& p) {
    e[std::move(p.first)] = std::move(p.second);
  }
};

/// The entries of one key in one state, one per namespace. Namespaces per
/// key are few (the windows a key has open), so a vector searched linearly
/// beats a map.
template <class N, class E>
struct ns_cell final : heap_cell {
  std::vector<std::pair<N, E>> entries;

  E* find(const N& ns) noexcept {
    for (auto& e : entries)
      if (e.first == ns)
        return &e.second;
    return nullptr;
  }
  E& find_or_add(const N& ns) {
    if (auto* e = find(ns))
      return *e;
    return entries.emplace_back(ns, E{}).second;
  }
  /// Adds an entry for `ns`, which must be absent.
  E& add(const N& ns, E e) { return entries.emplace_back(ns, std::move(e)).second; }
  void erase(const N& ns) {
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].first == ns) {
        if (i + 1 != entries.size())
          entries[i] = std::move(entries.back());
        entries.pop_back();
        return;
      }
    }
  }
  bool empty() const noexcept override { return entries.empty(); }
  heap_cell* move_into(void* where) noexcept override {
    return ::new (where) ns_cell(std::move(*this));
  }
  void write_snapshot(const cell_snapshot_context& c) const override {
    if constexpr (is_serializable_v<N> && entry_codec<E>::serializable) {
      std::string ns;
      for (auto& [n, e] : entries) {
        ns.clear();
        serialize_into(ns, n);
        entry_codec<E>::write(c, ns, e);
      }
    } else {
      no_snapshot_serializer(c.meta);
    }
  }
  size_t expire(int64_t now, const state_ttl& ttl) override {
    size_t removed = 0;
    for (size_t i = 0; i < entries.size();) {
      bool gone = false;
      removed += expire_entry(entries[i].second, now, ttl, gone);
      if (gone) {
        if (i + 1 != entries.size())
          entries[i] = std::move(entries.back());
        entries.pop_back();
      } else {
        ++i;
      }
    }
    return removed;
  }
};

/// Plain keyed state (no namespace) holds at most one entry per key: keep
/// it inline, one indirection fewer on every access.
template <class E>
struct ns_cell<void_namespace, E> final : heap_cell {
  bool present = false; // first: read on every access, next to the vtable
  E entry{};

  E* find(const void_namespace&) noexcept { return present ? &entry : nullptr; }
  E& find_or_add(const void_namespace&) {
    present = true;
    return entry;
  }
  E& add(const void_namespace&, E e) {
    entry = std::move(e);
    present = true;
    return entry;
  }
  void erase(const void_namespace&) {
    entry = E{};
    present = false;
  }
  bool empty() const noexcept override { return !present; }
  heap_cell* move_into(void* where) noexcept override {
    return ::new (where) ns_cell(std::move(*this));
  }
  void write_snapshot(const cell_snapshot_context& c) const override {
    if constexpr (entry_codec<E>::serializable) {
      if (present)
        entry_codec<E>::write(c, std::string(), entry);
    } else {
      no_snapshot_serializer(c.meta);
    }
  }
  size_t expire(int64_t now, const state_ttl& ttl) override {
    if (!present)
      return 0;
    bool gone = false;
    auto removed = expire_entry(entry, now, ttl, gone);
    if (gone)
      erase({});
    return removed;
  }
};

} // namespace internal

/// Storage of one value state kept outside the key slots (see
/// heap_keyed_backend::dense_value).
template <class K>
class dense_table_base {
public:
  virtual ~dense_table_base() = default;
  [[nodiscard]] virtual size_t size() const noexcept = 0;
  /// Appends every key to `out`.
  virtual void keys(std::vector<K>& out) = 0;
  /// Adds every entry to `w` as entries of state `meta`/`idx`;
  /// `key_group_of` gives each key's group.
  virtual void write_snapshot(snapshot_writer& w, uint32_t idx, const state_meta& meta,
                              const std::function<int32_t(const K&)>& key_group_of) = 0;
  /// Sets `key`'s value in namespace `ns` (serialized; empty without one)
  /// from its serializer<V> bytes (from a snapshot).
  virtual void restore(const K& key, uint32_t hash, std::string_view ns,
                       std::string_view value) = 0;
};

/// A value state of a small type, without namespace or TTL, in one typed
/// table for the whole backend: the accumulators of rolling aggregations.
/// A record then costs one probe of a densely packed table instead of a key
/// slot lookup plus a cell access.
template <class K, class V>
class dense_value_table final : public dense_table_base<K> {
public:
  [[nodiscard]] V* find(const K& key, uint32_t hash) noexcept { return map_.find(key, hash); }
  void prefetch(uint32_t hash) const noexcept { map_.prefetch(hash); }
  /// Adds `key` (absent) with `value`.
  V& insert(const K& key, uint32_t hash, V value) {
    auto& v = map_.insert(key, hash);
    v = std::move(value);
    return v;
  }
  void erase(const K& key, uint32_t hash) { map_.erase(key, hash); }
  /// Calls fn(const K&, V&) for every entry.
  template <class F>
  void for_each(F&& fn) {
    map_.for_each(std::forward<F>(fn));
  }
  [[nodiscard]] size_t size() const noexcept override { return map_.size(); }
  void keys(std::vector<K>& out) override {
    map_.for_each([&](const K& k, V&) { out.push_back(k); });
  }
  void write_snapshot(snapshot_writer& w, uint32_t idx, const state_meta& meta,
                      const std::function<int32_t(const K&)>& key_group_of) override {
    if constexpr (is_serializable_v<K> && is_serializable_v<V>) {
      std::string k;
      std::string v;
      map_.for_each([&](const K& key, V& value) {
        k.clear();
        v.clear();
        serialize_into(k, key);
        serialize_into(v, value);
        w.add_value(key_group_of(key), idx, k, {}, v, 0);
      });
    } else {
      internal::no_snapshot_serializer(meta);
    }
  }
  void restore(const K& key, uint32_t hash, std::string_view ns, std::string_view value) override {
    if (!ns.empty())
      throw state_error("dense value state entry with a namespace");
    if constexpr (is_serializable_v<V>) {
      auto v = deserialize<V>(value);
      if (auto* cur = find(key, hash))
        *cur = std::move(v);
      else
        insert(key, hash, std::move(v));
    } else {
      throw state_error("dense value state has no serializer for its value type");
    }
  }

private:
  flat_key_map<K, V, false> map_;
};

/// The values of one namespaced value state (the accumulators of tumbling
/// windows) kept namespace by namespace: per namespace a pane, a dense table
/// of the keys that have a value there, in the order they got it. Under
/// event time that advances, records go to the newest pane, whose table
/// stays small and in cache, and a window that fires takes its whole pane
/// at once. Without TTL; accessed with dense_hash(key), not the current key.
template <class K, class N, class V>
class dense_pane_table final : public dense_table_base<K> {
public:
  /// One namespace's values, in the order the keys got them.
  using pane = arrival_map<K, V>;
  using pane_map = std::map<N, pane>;

  /// Namespace ns's pane, created empty if absent. Stays valid until that
  /// pane is erased.
  pane& pane_of(const N& ns) {
    if (last_ != panes_.end() && last_->first == ns)
      return last_->second;
    auto [it, fresh] = panes_.try_emplace(ns);
    if (fresh && !spares_.empty()) {
      // The storage of a pane that went, emptied: sized for as many keys,
      // and already in memory (a fresh table costs page faults and regrowing
      // on every window).
      it->second = std::move(spares_.back());
      spares_.pop_back();
    }
    last_ = it;
    return last_->second;
  }
  /// Every pane, in N's order.
  pane_map& panes() noexcept { return panes_; }
  /// Drops a pane with all its values.
  typename pane_map::iterator erase(typename pane_map::iterator it) {
    if (it == last_)
      last_ = panes_.end();
    values_ -= it->second.size();
    if (spares_.size() < max_spares) {
      it->second.clear();
      spares_.push_back(std::move(it->second));
    }
    return panes_.erase(it);
  }
  /// Adds `key` (absent from pane p) with `value` to p.
  V& insert(pane& p, const K& key, uint32_t hash, V value) {
    ++values_;
    return p.insert(key, hash, std::move(value));
  }

  [[nodiscard]] size_t size() const noexcept override { return values_; }
  void keys(std::vector<K>& out) override {
    flat_key_map<K, bool, false> seen;
    for (auto& [ns, p] : panes_)
      p.for_each_key([&](const K& k, uint32_t h) {
        if (seen.find(k, h) == nullptr) {
          seen.insert(k, h) = true;
          out.push_back(k);
        }
      });
  }
  void write_snapshot(snapshot_writer& w, uint32_t idx, const state_meta& meta,
                      const std::function<int32_t(const K&)>& key_group_of) override {
    if constexpr (is_serializable_v<K> && is_serializable_v<N> && is_serializable_v<V>) {
      std::string k;
      std::string n;
      for (auto& [ns, p] : panes_) {
        n.clear();
        serialize_into(n, ns);
        p.for_each([&](const K& key, V& value) {
          k.clear();
          serialize_into(k, key);
          // As a heap cell without TTL writes it (entry_codec<stamped<V>>).
          w.add_value(key_group_of(key), idx, k, n, serialize(value), 0);
        });
      }
    } else {
      internal::no_snapshot_serializer(meta);
    }
  }
  void restore(const K& key, uint32_t hash, std::string_view ns, std::string_view value) override {
    if constexpr (is_serializable_v<N> && is_serializable_v<V>) {
      auto n = deserialize<N>(ns);
      auto v = deserialize<V>(value);
      auto& p = pane_of(n);
      if (auto* cur = p.find(key, hash)) {
        *cur = std::move(v);
      } else {
        insert(p, key, hash, std::move(v));
      }
    } else {
      throw state_error("dense pane state has no serializer for its namespace or value type");
    }
  }

private:
  pane_map panes_;
  typename pane_map::iterator last_ = panes_.end();
  size_t values_ = 0;
  /// Emptied panes for new ones to take. Panes go when a watermark fires
  /// them, often many at once, and as many come after; the bound caps what
  /// a burst of windows leaves held.
  static constexpr size_t max_spares = 256;
  std::vector<pane> spares_;
};

/// The key-type independent half of the heap backend: cells of the current
/// key. State handles talk to this.
class heap_backend_core : public virtual keyed_state_backend_base {
public:
  heap_backend_core(key_group_range range, int32_t max_parallelism,
                    std::shared_ptr<const state_clock> clock)
    : keyed_state_backend_base(range, max_parallelism, std::move(clock)) {}

  /// The current key's cell of state `idx`, or nullptr.
  [[nodiscard]] internal::heap_cell* cell(uint32_t idx) const noexcept {
    return slot_ == nullptr ? nullptr : slot_->get(idx);
  }

  /// The current key's cell of state `idx`, created if missing.
  template <class Cell>
  Cell& ensure_cell(uint32_t idx) {
    auto* slot = slot_ != nullptr ? slot_ : &insert_current_slot();
    if (auto* c = slot->get(idx))
      return static_cast<Cell&>(*c);
    return slot->template create<Cell>(idx);
  }

  /// Frees the current key's cell `idx` if it holds nothing, and the key
  /// itself once it has no cells.
  void release_if_empty(uint32_t idx) {
    if (slot_ == nullptr)
      return;
    auto* c = slot_->get(idx);
    if (c != nullptr && c->empty()) {
      slot_->destroy(idx);
      if (slot_->live == 0)
        erase_current_slot();
    }
  }

  [[nodiscard]] int64_t now() const { return clock_->now_ms(); }

  /// Restores one snapshot entry of state `idx` into the current key.
  using cell_restore_fn = void (*)(heap_backend_core&, uint32_t idx, const snapshot_entry&);
  /// Records how state `idx` restores its cells (its state handle knows
  /// the cell type; called when the handle is created).
  void register_cell_restore(uint32_t idx, cell_restore_fn fn) {
    if (restore_fns_.size() <= idx)
      restore_fns_.resize(idx + 1, nullptr);
    restore_fns_[idx] = fn;
  }

  /// Calls on a cell of state `idx` after a restore.
  using cell_fixup_fn = std::function<void(internal::heap_cell&)>;
  /// Has `fn` run on every cell of state `idx` at the end of each restore():
  /// for users of the cells that keep their entries in an order of their
  /// own (a restore appends entries in snapshot order, which for a RocksDB
  /// snapshot is the byte order of the serialized namespaces).
  void register_restore_fixup(uint32_t idx, cell_fixup_fn fn) {
    if (fixups_.size() <= idx)
      fixups_.resize(idx + 1);
    fixups_[idx] = std::move(fn);
  }

protected:
  void on_restored() override {
    slot_ = nullptr;
    for (uint32_t i = 0; i < fixups_.size(); ++i)
      if (fixups_[i])
        for_each_cell(i, fixups_[i]);
  }
  /// Calls fn on every existing cell of state `idx`.
  virtual void for_each_cell(uint32_t idx, const cell_fixup_fn& fn) = 0;

  /// Inserts an empty slot for the current key and makes it current.
  virtual internal::key_slot& insert_current_slot() = 0;
  /// Removes the current key's slot.
  virtual void erase_current_slot() = 0;

  /// Expires the cells of one slot; returns entries removed. Leaves the
  /// slot's live count right; the caller drops slots that reach zero.
  size_t expire_slot(internal::key_slot& slot, int64_t now) {
    size_t removed = 0;
    for (size_t i = 0; i < slot.size(); ++i) {
      auto* c = slot.get(i);
      if (c == nullptr || i >= states_.size() || !states_[i].ttl.enabled())
        continue;
      removed += c->expire(now, states_[i].ttl);
      if (c->empty())
        slot.destroy(i);
    }
    return removed;
  }

  internal::key_slot* slot_ = nullptr;
  std::vector<cell_restore_fn> restore_fns_;
  std::vector<cell_fixup_fn> fixups_;
};

namespace internal {

/// Restores one snapshot entry into the current key's ns_cell<N, E>:
/// decodes everything first, so a bad entry leaves the cell as it was.
template <class N, class E>
void restore_cell_entry(heap_backend_core& core, uint32_t idx, const snapshot_entry& s) {
  if constexpr (is_serializable_v<N> && entry_codec<E>::serializable) {
    byte_reader r(s.ns);
    N ns = serializer<N>::read(r);
    auto piece = entry_codec<E>::decode(r, s);
    if (entry_codec<E>::empty(piece))
      return;
    auto& cell = core.template ensure_cell<ns_cell<N, E>>(idx);
    E* e = cell.find(ns);
    if (e == nullptr)
      e = &cell.add(ns, E{});
    entry_codec<E>::merge(*e, std::move(piece));
  } else {
    no_snapshot_serializer(core.states().at(idx));
  }
}

} // namespace internal

/// Heap backend for keys of type K.
template <class K>
class heap_keyed_backend final : public keyed_state_backend<K>, public heap_backend_core {
public:
  heap_keyed_backend(key_group_range range, int32_t max_parallelism,
                     std::shared_ptr<const state_clock> clock = nullptr)
    : keyed_state_backend_base(range, max_parallelism, clock),
      keyed_state_backend<K>(range, max_parallelism, clock),
      heap_backend_core(range, max_parallelism, clock),
      groups_(static_cast<size_t>(range.size())),
      kg_mask_((max_parallelism & (max_parallelism - 1)) == 0 ? max_parallelism - 1 : -1) {}

  backend_kind kind() const noexcept override { return backend_kind::heap; }

  void set_current_key(const K& key) override {
    hash_ = route(key);
    this->key_ = key;
    slot_ = groups_[static_cast<size_t>(current_kg_ - range_.start)].find(key, hash_);
  }

  /// The dense table of value state `index` (declared without TTL, used
  /// with the void namespace): created on first use. Accessed with
  /// dense_hash(key) instead of set_current_key.
  template <class V>
  dense_value_table<K, V>& dense_value(uint32_t index) {
    if (states_.at(index).ttl.enabled())
      throw state_error("state '" + states_[index].name + "' has a TTL; it cannot be dense");
    if (dense_.size() <= index)
      dense_.resize(index + 1);
    if (!dense_[index])
      dense_[index] = std::make_unique<dense_value_table<K, V>>();
    auto* t = dynamic_cast<dense_value_table<K, V>*>(dense_[index].get());
    if (t == nullptr)
      throw state_error("state '" + states_[index].name + "' is dense with another type");
    return *t;
  }
  /// The pane table of namespaced value state `index` (declared without
  /// TTL): created on first use. Accessed with dense_hash(key) instead of
  /// set_current_key.
  template <class N, class V>
  dense_pane_table<K, N, V>& dense_panes(uint32_t index) {
    if (states_.at(index).ttl.enabled())
      throw state_error("state '" + states_[index].name + "' has a TTL; it cannot be dense");
    if (dense_.size() <= index)
      dense_.resize(index + 1);
    if (!dense_[index])
      dense_[index] = std::make_unique<dense_pane_table<K, N, V>>();
    auto* t = dynamic_cast<dense_pane_table<K, N, V>*>(dense_[index].get());
    if (t == nullptr)
      throw state_error("state '" + states_[index].name + "' is dense with another type");
    return *t;
  }
  /// Checks that `key` belongs to this backend's key groups and returns its
  /// hash for dense tables (sets the current key group, not the key).
  uint32_t dense_hash(const K& key) { return route(key); }

  std::vector<K> keys(uint32_t index) override {
    std::vector<K> out;
    if (index < dense_.size() && dense_[index]) {
      dense_[index]->keys(out);
      return out;
    }
    for (auto& m : groups_)
      m.for_each([&](const K& k, internal::key_slot& slot) {
        if (slot.get(index) != nullptr)
          out.push_back(k);
      });
    return out;
  }

  size_t cleanup_expired(size_t budget) override {
    bool any_ttl = false;
    for (auto& s : states_)
      any_ttl = any_ttl || s.ttl.enabled();
    if (!any_ttl || groups_.empty())
      return 0;
    auto now = clock_->now_ms();
    size_t removed = 0;
    size_t visited = 0;
    // Whole key groups at a time, round robin, until the budget is spent.
    for (size_t n = 0; n < groups_.size() && visited < budget; ++n) {
      auto& m = groups_[sweep_next_];
      sweep_next_ = (sweep_next_ + 1) % groups_.size();
      slot_ = nullptr; // erasing moves slots; the next set_current_key finds it again
      m.erase_if([&](const K&, internal::key_slot& slot) {
        ++visited;
        removed += expire_slot(slot, now);
        return slot.live == 0;
      });
    }
    return removed;
  }

  /// Number of keys holding any state (for tests and metrics).
  [[nodiscard]] size_t key_count() const noexcept {
    size_t n = 0;
    for (auto& m : groups_)
      n += m.size();
    return n;
  }

protected:
  void write_snapshot_entries(snapshot_writer& w) override {
    if constexpr (is_serializable_v<K>) {
      auto now = clock_->now_ms();
      std::string k;
      for (size_t g = 0; g < groups_.size(); ++g) {
        auto kg = range_.start + static_cast<int32_t>(g);
        groups_[g].for_each([&](const K& key, internal::key_slot& slot) {
          k.clear();
          serialize_into(k, key);
          for (size_t i = 0; i < slot.size() && i < states_.size(); ++i)
            if (auto* c = slot.get(i))
              c->write_snapshot({w, kg, static_cast<uint32_t>(i), k, states_[i], now});
        });
      }
      for (size_t i = 0; i < dense_.size(); ++i)
        if (dense_[i])
          dense_[i]->write_snapshot(w, static_cast<uint32_t>(i), states_[i],
                                    [this](const K& key) { return this->key_group_of_key(key); });
    } else {
      (void)w;
      (void)this->snapshot_key_type(); // throws: no serializer for K
    }
  }

  void restore_snapshot_entry(uint32_t idx, int32_t kg, const snapshot_entry& e) override {
    if constexpr (is_serializable_v<K>) {
      auto& meta = states_.at(idx);
      auto key = deserialize<K>(e.key);
      if (this->key_group_of_key(key) != kg)
        throw state_error("restore: state '" + meta.name + "': a key in the block of key group " +
                          std::to_string(kg) + " belongs to key group " +
                          std::to_string(this->key_group_of_key(key)) + " (corrupt snapshot)");
      if (idx < dense_.size() && dense_[idx]) {
        auto hash = route(key);
        try {
          dense_[idx]->restore(key, hash, e.ns, e.value);
        } catch (const std::exception& x) {
          throw state_error("restore: state '" + meta.name + "': " + x.what());
        }
        return;
      }
      auto fn = idx < restore_fns_.size() ? restore_fns_[idx] : nullptr;
      if (fn == nullptr)
        throw state_error("restore: state '" + meta.name + "' (" + meta.type_description +
                          ") is declared but has no heap state handle or dense table yet; "
                          "create it before restoring");
      set_current_key(key);
      fn(*this, idx, e);
    } else {
      (void)idx;
      (void)kg;
      (void)e;
      (void)this->snapshot_key_type(); // throws
    }
  }

  void for_each_cell(uint32_t idx, const cell_fixup_fn& fn) override {
    for (auto& m : groups_)
      m.for_each([&](const K&, internal::key_slot& slot) {
        if (auto* c = slot.get(idx))
          fn(*c);
      });
  }

private:
  internal::key_slot& insert_current_slot() override {
    auto& slot =
      groups_[static_cast<size_t>(current_kg_ - range_.start)].insert(this->key_, hash_);
    slot_ = &slot;
    return slot;
  }

  void erase_current_slot() override {
    groups_[static_cast<size_t>(current_kg_ - range_.start)].erase(this->key_, hash_);
    slot_ = nullptr;
  }

  /// Key group check and table hash of `key`; sets the current key group.
  uint32_t route(const K& key) {
    auto m = murmur_hash(key_hash<K>{}(key));
    // A power-of-two max parallelism (the default 128 is) needs no division.
    auto kg = kg_mask_ >= 0 ? (m & kg_mask_) : m % max_parallelism_;
    if (kg < range_.start || kg > range_.end)
      set_current_key_group(kg); // throws
    current_kg_ = kg;
    // The low bits of m pick the key group; spread the high ones instead.
    return static_cast<uint32_t>((static_cast<uint64_t>(static_cast<uint32_t>(m)) *
                                  0x9e3779b97f4a7c15ull) >> 32);
  }

  std::vector<flat_key_map<K, internal::key_slot>> groups_;
  std::vector<std::unique_ptr<dense_table_base<K>>> dense_;
  uint32_t hash_ = 0;
  size_t sweep_next_ = 0;
  int32_t kg_mask_;
};

// ---- heap state implementations -------------------------------------------

/// What the heap state kinds share: their state's cell of the current key,
/// the namespace, the TTL and its stamps.
template <class N, class E>
class heap_state_base {
protected:
  using cell_type = internal::ns_cell<N, E>;

  heap_state_base(heap_backend_core& backend, uint32_t index)
    : b_(backend), idx_(index), ttl_(backend.states()[index].ttl) {
    b_.register_cell_restore(idx_, &internal::restore_cell_entry<N, E>);
  }

  /// The current key's cell of this state, or nullptr.
  cell_type* cell() const noexcept { return static_cast<cell_type*>(b_.cell(idx_)); }
  cell_type& ensure_cell() { return b_.template ensure_cell<cell_type>(idx_); }
  /// The TTL stamp a write gets now (0 without TTL).
  int64_t stamp() const { return ttl_.enabled() ? b_.now() : 0; }
  /// Removes the current namespace's entry, then the cell and key once
  /// they hold nothing.
  void erase_entry() {
    if (auto* c = cell()) {
      c->erase(ns_);
      b_.release_if_empty(idx_);
    }
  }

  heap_backend_core& b_;
  uint32_t idx_;
  state_ttl ttl_;
  N ns_{};
};

/// Heap value state; also the storage of reducing and aggregating state.
template <class N, class V>
class heap_value_state final : public internal_value_state<N, V>,
                               heap_state_base<N, internal::stamped<V>> {
  using base = heap_state_base<N, internal::stamped<V>>;
  using typename base::cell_type;
  using base::b_;
  using base::idx_;
  using base::ns_;
  using base::stamp;
  using base::ttl_;

public:
  heap_value_state(heap_backend_core& backend, uint32_t index) : base(backend, index) {}

  void set_namespace(const N& ns) override { ns_ = ns; }

  const V* get() override { return find(false); }

  /// The live value, to modify in place (counts as a write for TTL), or
  /// nullptr. The heap fast path of reducing and aggregating state.
  V* find_mutable() { return find(true); }

  /// Inserts a value for a key/namespace that has none (after find_mutable
  /// returned nullptr).
  V& insert(V value) {
    auto& c = this->ensure_cell();
    return c.add(ns_, internal::stamped<V>{std::move(value), stamp()}).value;
  }

  void put(V value) override {
    auto& c = this->ensure_cell();
    auto& e = c.find_or_add(ns_);
    e.value = std::move(value);
    e.stamp = stamp();
  }

  void clear() override { this->erase_entry(); }

  void merge_namespaces(const std::vector<N>& sources,
                        const std::function<V(const V&, const V&)>& merge) override {
    auto* c = this->cell();
    if (c == nullptr)
      return;
    std::optional<V> acc;
    for (auto& s : sources) {
      if (s == ns_)
        continue;
      if (auto* e = live(*c, s)) {
        acc = acc ? merge(*acc, e->value) : e->value;
        c->erase(s);
      }
    }
    if (!acc) {
      b_.release_if_empty(idx_);
      return;
    }
    if (auto* e = live(*c, ns_)) {
      e->value = merge(e->value, *acc);
      e->stamp = stamp();
    } else {
      c->add(ns_, internal::stamped<V>{std::move(*acc), stamp()});
    }
  }

private:
  internal::stamped<V>* live(cell_type& c, const N& ns) {
    auto* e = c.find(ns);
    if (e != nullptr && ttl_.enabled() && ttl_.expired(e->stamp, b_.now())) {
      c.erase(ns);
      return nullptr;
    }
    return e;
  }

  V* find(bool write) {
    auto* c = this->cell();
    if (c == nullptr)
      return nullptr;
    auto* e = c->find(ns_);
    if (e == nullptr)
      return nullptr;
    if (ttl_.enabled()) {
      auto now = b_.now();
      if (ttl_.expired(e->stamp, now)) {
        c->erase(ns_);
        b_.release_if_empty(idx_);
        return nullptr;
      }
      if (write || ttl_.update == ttl_update::on_read_and_write)
        e->stamp = now;
    }
    return &e->value;
  }
};

/// Heap list state.
template <class N, class T>
class heap_list_state final : public internal_list_state<N, T>,
                              heap_state_base<N, std::vector<internal::stamped<T>>> {
  using list_type = std::vector<internal::stamped<T>>;
  using base = heap_state_base<N, list_type>;
  using typename base::cell_type;
  using base::b_;
  using base::idx_;
  using base::ns_;
  using base::stamp;
  using base::ttl_;

public:
  heap_list_state(heap_backend_core& backend, uint32_t index) : base(backend, index) {}

  void set_namespace(const N& ns) override { ns_ = ns; }

  bool get(std::vector<T>& out) override {
    auto* c = this->cell();
    if (c == nullptr)
      return false;
    auto* l = c->find(ns_);
    if (l == nullptr)
      return false;
    if (ttl_.enabled()) {
      auto now = b_.now();
      bool gone = false;
      internal::expire_entry(*l, now, ttl_, gone);
      if (gone) {
        c->erase(ns_);
        b_.release_if_empty(idx_);
        return false;
      }
      if (ttl_.update == ttl_update::on_read_and_write)
        for (auto& e : *l)
          e.stamp = now;
    }
    for (auto& e : *l)
      out.push_back(e.value);
    return true;
  }

  void add(T value) override {
    auto& c = this->ensure_cell();
    c.find_or_add(ns_).push_back({std::move(value), stamp()});
  }

  void add_all(std::vector<T> values) override {
    if (values.empty())
      return;
    auto& l = this->ensure_cell().find_or_add(ns_);
    auto s = stamp();
    for (auto& v : values)
      l.push_back({std::move(v), s});
  }

  void update(std::vector<T> values) override {
    clear();
    add_all(std::move(values));
  }

  void clear() override { this->erase_entry(); }

  void merge_namespaces(const std::vector<N>& sources) override {
    auto* c = this->cell();
    if (c == nullptr)
      return;
    list_type merged;
    for (auto& s : sources) {
      if (s == ns_)
        continue;
      if (auto* l = c->find(s)) {
        for (auto& e : *l)
          merged.push_back(std::move(e));
        c->erase(s);
      }
    }
    if (merged.empty()) {
      b_.release_if_empty(idx_);
      return;
    }
    auto& target = c->find_or_add(ns_);
    for (auto& e : merged)
      target.push_back(std::move(e));
  }

};

/// Heap map state.
template <class N, class UK, class UV>
class heap_map_state final
  : public internal_map_state<N, UK, UV>,
    heap_state_base<N, std::unordered_map<UK, internal::stamped<UV>, state_hasher<UK>>> {
  using map_type = std::unordered_map<UK, internal::stamped<UV>, state_hasher<UK>>;
  using base = heap_state_base<N, map_type>;
  using typename base::cell_type;
  using base::b_;
  using base::idx_;
  using base::ns_;
  using base::stamp;
  using base::ttl_;

public:
  heap_map_state(heap_backend_core& backend, uint32_t index) : base(backend, index) {}

  void set_namespace(const N& ns) override { ns_ = ns; }

  std::optional<UV> get(const UK& key) override {
    auto* e = find(key);
    if (e == nullptr)
      return std::nullopt;
    return e->value;
  }

  void put(UK key, UV value) override {
    auto& m = this->ensure_cell().find_or_add(ns_);
    m[std::move(key)] = internal::stamped<UV>{std::move(value), stamp()};
  }

  void remove(const UK& key) override {
    auto* m = map();
    if (m == nullptr)
      return;
    m->erase(key);
    drop_if_empty(*m);
  }

  bool contains(const UK& key) override { return find(key) != nullptr; }

  void entries(std::vector<std::pair<UK, UV>>& out) override {
    auto* m = map();
    if (m == nullptr)
      return;
    if (ttl_.enabled()) {
      bool gone = false;
      internal::expire_entry(*m, b_.now(), ttl_, gone);
      if (gone) {
        drop_if_empty(*m);
        return;
      }
    }
    auto now = ttl_.enabled() ? b_.now() : 0;
    for (auto& [k, e] : *m) {
      if (ttl_.enabled() && ttl_.update == ttl_update::on_read_and_write)
        e.stamp = now;
      out.emplace_back(k, e.value);
    }
  }

  bool empty() override {
    auto* m = map();
    if (m == nullptr)
      return true;
    if (ttl_.enabled()) {
      bool gone = false;
      internal::expire_entry(*m, b_.now(), ttl_, gone);
      if (gone) {
        drop_if_empty(*m);
        return true;
      }
    }
    return m->empty();
  }

  void clear() override { this->erase_entry(); }

private:
  map_type* map() {
    auto* c = this->cell();
    return c == nullptr ? nullptr : c->find(ns_);
  }

  void drop_if_empty(map_type& m) {
    if (!m.empty())
      return;
    if (auto* c = this->cell()) {
      c->erase(ns_);
      b_.release_if_empty(idx_);
    }
  }

  internal::stamped<UV>* find(const UK& key) {
    auto* m = map();
    if (m == nullptr)
      return nullptr;
    auto it = m->find(key);
    if (it == m->end())
      return nullptr;
    if (ttl_.enabled()) {
      auto now = b_.now();
      if (ttl_.expired(it->second.stamp, now)) {
        m->erase(it);
        drop_if_empty(*m);
        return nullptr;
      }
      if (ttl_.update == ttl_update::on_read_and_write)
        it->second.stamp = now;
    }
    return &it->second;
  }
};

} // namespace sluice::state
