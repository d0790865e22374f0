#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

/// An open-addressing hash map for the heap backend's per-key-group key
/// tables: linear probing over a power-of-two array, the caller supplies the
/// hash (the backend computes one per record anyway for the key group), and
/// deletion shifts entries back so no tombstones build up.
namespace sluice::state {

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
    size_t want = 8;
    while (want * 3 < n * 4)
      want *= 2;
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

} // namespace sluice::state
