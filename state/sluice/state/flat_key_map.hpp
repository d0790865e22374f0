#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

/// An open-addressing hash map for the heap backend's per-key-group key
/// tables: linear probing over a power-of-two array, the caller supplies the
/// hash (the backend computes one per record anyway for the key group), and
/// deletion shifts entries back so no tombstones build up.
namespace sluice::state {

/// The power of two of slots (at least `least`) that holds `n` entries at a
/// load of at most 3/4.
inline size_t slots_for(size_t n, size_t least) noexcept {
  size_t slots = least;
  while (slots * 3 < n * 4)
    slots *= 2;
  return slots;
}

/// Map from K to V with caller-supplied 32-bit hashes. K and V must be
/// default-constructible and movable. References returned by find/insert
/// stay valid until the next insert or erase. `LineAligned` puts each entry
/// on its own cache line (large values); without it entries pack densely
/// (small values: more of the table stays in L1).
template <class K, class V, bool LineAligned = true>
class flat_key_map {
public:
  flat_key_map() = default;

  [[nodiscard]] size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

  /// The value of `key`, or nullptr.
  [[nodiscard]] V* find(const K& key, uint32_t hash) noexcept {
    if (size_ == 0)
      return nullptr;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      auto& e = entries_[i];
      if (!e.used)
        return nullptr;
      if (e.hash == hash && e.key == key)
        return &e.value;
    }
  }

  /// Starts loading the home slot of `hash` into the cache, ahead of a
  /// find() of it.
  void prefetch(uint32_t hash) const noexcept {
    if (!entries_.empty())
      __builtin_prefetch(&entries_[hash & mask_]);
  }

  /// Inserts `key` (which must be absent) with a default value.
  V& insert(const K& key, uint32_t hash) {
    if ((size_ + 1) * 4 > entries_.size() * 3)
      grow();
    size_t i = hash & mask_;
    while (entries_[i].used)
      i = (i + 1) & mask_;
    auto& e = entries_[i];
    e.used = true;
    e.hash = hash;
    e.key = key;
    e.value = V{};
    ++size_;
    return e.value;
  }

  /// Makes room for `n` entries without growing.
  void reserve(size_t n) {
    const size_t want = slots_for(n, 8);
    if (want > entries_.size())
      rehash(want);
  }

  /// Removes `key` if present.
  void erase(const K& key, uint32_t hash) {
    if (size_ == 0)
      return;
    size_t i = hash & mask_;
    for (;; i = (i + 1) & mask_) {
      auto& e = entries_[i];
      if (!e.used)
        return;
      if (e.hash == hash && e.key == key)
        break;
    }
    // Backward-shift deletion: move later entries of the probe run into
    // the hole when their home slot is at or before it.
    size_t hole = i;
    for (size_t j = (hole + 1) & mask_; entries_[j].used; j = (j + 1) & mask_) {
      size_t home = entries_[j].hash & mask_;
      bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (movable) {
        entries_[hole] = std::move(entries_[j]);
        hole = j;
      }
    }
    entries_[hole] = entry{};
    --size_;
  }

  /// Calls fn(const K&, V&) for every entry; fn returns true to erase it.
  template <class F>
  void erase_if(F&& fn) {
    std::vector<std::pair<K, uint32_t>> gone;
    for (auto& e : entries_)
      if (e.used && fn(static_cast<const K&>(e.key), e.value))
        gone.emplace_back(e.key, e.hash);
    for (auto& [k, h] : gone)
      erase(k, h);
  }

  /// Calls fn(const K&, V&) for every entry.
  template <class F>
  void for_each(F&& fn) {
    for (auto& e : entries_)
      if (e.used)
        fn(static_cast<const K&>(e.key), e.value);
  }

private:
  /// The probe reads hash, flag and key: keep them first, and the entry on
  /// a cache-line boundary, so a probe and a small value share one line.
  struct alignas(LineAligned ? 64 : alignof(V) > alignof(K) ? alignof(V) : alignof(K)) entry {
    uint32_t hash = 0;
    bool used = false;
    K key{};
    V value{};
  };

  void grow() { rehash(entries_.empty() ? 8 : entries_.size() * 2); }
  void rehash(size_t slots) {
    std::vector<entry> old;
    old.swap(entries_);
    entries_.resize(slots);
    mask_ = entries_.size() - 1;
    size_ = 0;
    for (auto& e : old) {
      if (!e.used)
        continue;
      size_t i = e.hash & mask_;
      while (entries_[i].used)
        i = (i + 1) & mask_;
      entries_[i] = std::move(e);
      ++size_;
    }
  }

  std::vector<entry> entries_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

/// Map from K to V with caller-supplied 32-bit hashes whose entries sit in
/// arrival order in one dense array, found through a separate index of
/// 8-byte slots (hash and position). For many small tables that are filled,
/// walked once in order and emptied (the panes of tumbling windows): the
/// index is a quarter of a flat_key_map's slots and stays in the first-level
/// cache, a walk reads the entries front to back with no lookups, and
/// clearing keeps both arrays for the next fill. No erase of single keys.
template <class K, class V>
class arrival_map {
public:
  [[nodiscard]] size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] bool empty() const noexcept { return entries_.empty(); }

  /// The value of `key`, or nullptr.
  [[nodiscard]] V* find(const K& key, uint32_t hash) noexcept {
    if (index_.empty())
      return nullptr;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const uint64_t slot = index_[i];
      if (slot == 0)
        return nullptr;
      if (static_cast<uint32_t>(slot >> 32) == hash) {
        auto& e = entries_[static_cast<uint32_t>(slot) - 1];
        if (e.first == key)
          return &e.second;
      }
    }
  }

  /// Starts loading the home slot of `hash` ahead of a find() of it.
  void prefetch(uint32_t hash) const noexcept {
    if (!index_.empty())
      __builtin_prefetch(&index_[hash & mask_]);
  }

  /// Appends `key` (which must be absent) with `value`.
  V& insert(const K& key, uint32_t hash, V value) {
    if ((entries_.size() + 1) * 4 > index_.size() * 3)
      rehash(index_.empty() ? 16 : index_.size() * 2);
    place(hash, static_cast<uint32_t>(entries_.size()));
    entries_.emplace_back(key, std::move(value));
    return entries_.back().second;
  }

  /// Makes room for `n` entries without growing.
  void reserve(size_t n) {
    const size_t want = slots_for(n, 16);
    if (want > index_.size())
      rehash(want);
    entries_.reserve(n);
  }

  /// Removes every entry, keeping the memory of both arrays.
  void clear() noexcept {
    if (entries_.empty())
      return;
    std::fill(index_.begin(), index_.end(), 0);
    entries_.clear();
  }

  /// Calls fn(const K&, V&) for every entry, in arrival order.
  template <class F>
  void for_each(F&& fn) {
    for (auto& [k, v] : entries_)
      fn(static_cast<const K&>(k), v);
  }
  /// Calls fn(const K&, uint32_t hash) for every entry, in arrival order
  /// (the hashes are read back from the index: not for a hot path).
  template <class F>
  void for_each_key(F&& fn) const {
    std::vector<uint32_t> hashes(entries_.size());
    for (const uint64_t slot : index_)
      if (slot != 0)
        hashes[static_cast<uint32_t>(slot) - 1] = static_cast<uint32_t>(slot >> 32);
    for (size_t i = 0; i < entries_.size(); ++i)
      fn(entries_[i].first, hashes[i]);
  }

private:
  /// Slot value: hash in the high half, position + 1 in the low half (0: empty).
  void place(uint32_t hash, uint32_t pos) {
    size_t i = hash & mask_;
    while (index_[i] != 0)
      i = (i + 1) & mask_;
    index_[i] = (static_cast<uint64_t>(hash) << 32) | (pos + 1);
  }
  /// A larger index, every slot placed again (a slot holds all it needs).
  void rehash(size_t slots) {
    std::vector<uint64_t> old(slots, 0);
    old.swap(index_);
    mask_ = slots - 1;
    for (const uint64_t slot : old)
      if (slot != 0)
        place(static_cast<uint32_t>(slot >> 32), static_cast<uint32_t>(slot) - 1);
  }

  std::vector<uint64_t> index_;
  size_t mask_ = 0;
  std::vector<std::pair<K, V>> entries_;
};

} // namespace sluice::state
