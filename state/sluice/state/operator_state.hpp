#pragma once

#include "sluice/state/descriptors.hpp"
#include "sluice/state/serializer.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <unordered_map>
#include <vector>

/// Operator state: the state of a non-keyed function instance (a source's
/// offsets, a sink's pending transactions), and broadcast state.
///
/// - list state: on restore with another parallelism the lists of all old
///   subtasks are concatenated and cut evenly (Flink's even-split);
/// - union list state: every new subtask gets the whole concatenation;
/// - broadcast state: a map that is the same on every subtask (it is filled
///   from a broadcast stream); every new subtask gets a copy.
///
/// Threading: owned by one subtask, used by its thread only.
namespace sluice::state {

/// How a list of operator state is handed out when parallelism changes.
enum class redistribution { even_split, union_all, broadcast };

namespace internal {
/// Checks the new parallelism and concatenates the old subtasks' lists in
/// subtask order.
template <class T>
std::vector<T> concat_for_redistribution(const std::vector<std::vector<T>>& old_lists,
                                         int32_t new_parallelism) {
  if (new_parallelism <= 0)
    throw state_error("cannot redistribute operator state to parallelism " +
                      std::to_string(new_parallelism));
  std::vector<T> all;
  for (auto& l : old_lists)
    all.insert(all.end(), l.begin(), l.end());
  return all;
}
} // namespace internal

/// Even-split redistribution: concatenates the old subtasks' lists in order
/// and cuts the result into `new_parallelism` contiguous parts whose sizes
/// differ by at most one (the first parts take the remainder).
template <class T>
std::vector<std::vector<T>> redistribute_even(const std::vector<std::vector<T>>& old_lists,
                                              int32_t new_parallelism) {
  auto all = internal::concat_for_redistribution(old_lists, new_parallelism);
  auto p = static_cast<size_t>(new_parallelism);
  std::vector<std::vector<T>> out(p);
  size_t base = all.size() / p;
  size_t extra = all.size() % p;
  size_t at = 0;
  for (size_t i = 0; i < p; ++i) {
    size_t n = base + (i < extra ? 1 : 0);
    out[i].assign(all.begin() + static_cast<std::ptrdiff_t>(at),
                  all.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }
  return out;
}

/// Union redistribution: every new subtask gets every old element.
template <class T>
std::vector<std::vector<T>> redistribute_union(const std::vector<std::vector<T>>& old_lists,
                                               int32_t new_parallelism) {
  auto all = internal::concat_for_redistribution(old_lists, new_parallelism);
  return std::vector<std::vector<T>>(static_cast<size_t>(new_parallelism), all);
}

/// Broadcast redistribution: every subtask held the same map; each new
/// subtask gets subtask 0's copy (or nothing if there was none).
template <class T>
std::vector<T> redistribute_broadcast(const std::vector<T>& old_copies, int32_t new_parallelism) {
  if (new_parallelism <= 0)
    throw state_error("cannot redistribute broadcast state to parallelism " +
                      std::to_string(new_parallelism));
  if (old_copies.empty())
    return std::vector<T>(static_cast<size_t>(new_parallelism));
  return std::vector<T>(static_cast<size_t>(new_parallelism), old_copies.front());
}

/// A list of operator state (even-split or union).
template <class T>
class operator_list_state {
public:
  [[nodiscard]] const std::vector<T>& get() const noexcept { return items_; }
  void add(T v) { items_.push_back(std::move(v)); }
  void update(std::vector<T> vs) { items_ = std::move(vs); }
  void clear() noexcept { items_.clear(); }

private:
  std::vector<T> items_;
};

/// Broadcast state: a map every subtask holds the same copy of. Only the
/// broadcast side of a connected stream may write it.
template <class K, class V>
class broadcast_state {
public:
  [[nodiscard]] const V* get(const K& k) const {
    auto it = map_.find(k);
    return it == map_.end() ? nullptr : &it->second;
  }
  [[nodiscard]] bool contains(const K& k) const { return map_.count(k) > 0; }
  void put(K k, V v) { map_[std::move(k)] = std::move(v); }
  void remove(const K& k) { map_.erase(k); }
  void clear() noexcept { map_.clear(); }
  [[nodiscard]] const std::map<K, V>& entries() const noexcept { return map_; }

private:
  std::map<K, V> map_;
};

/// One operator state's content as bytes: what a snapshot holds for it and
/// what a restoring subtask receives after redistribution. Elements are the
/// serializer<T> bytes of list elements, or of pair<K,V> map entries for
/// broadcast state.
struct operator_state_part {
  std::string name;
  redistribution mode = redistribution::even_split;
  std::string description;
  std::vector<std::string> elements;
};

/// The operator state of one subtask, by name.
///
/// Snapshot format (little-endian): magic "SLOPSNAP" | u32 version |
/// varint state count | per state: str name, u8 mode, str description,
/// varint element count, per element str bytes | u32 CRC-32 of all before.
class operator_state_store {
public:
  static constexpr uint32_t snapshot_version = 1;

  /// Even-split list state `name`.
  template <class T>
  operator_list_state<T>& list_state(const std::string& name) {
    return get<operator_list_state<T>, T>(name, redistribution::even_split,
                                          "list<" + label<T>() + ">");
  }
  /// Union list state `name`.
  template <class T>
  operator_list_state<T>& union_list_state(const std::string& name) {
    return get<operator_list_state<T>, T>(name, redistribution::union_all,
                                          "union list<" + label<T>() + ">");
  }
  /// Broadcast state `name`.
  template <class K, class V>
  state::broadcast_state<K, V>& broadcast_state(const std::string& name) {
    return get<state::broadcast_state<K, V>, std::pair<K, V>>(
      name, redistribution::broadcast, "broadcast map<" + label<K>() + "," + label<V>() + ">");
  }
  /// Names of the declared states.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& [n, e] : entries_)
      out.push_back(n);
    return out;
  }
  /// True when nothing is declared and nothing restored waits.
  [[nodiscard]] bool empty() const noexcept { return entries_.empty() && pending_.empty(); }

  /// Every declared state (and restored state not declared again yet) in
  /// the snapshot format. Throws state_error for a state whose type has no
  /// serializer.
  [[nodiscard]] std::string snapshot() const;
  /// Parses a snapshot; `origin` names it in errors (state_error).
  [[nodiscard]] static std::vector<operator_state_part> parse(std::string_view bytes,
                                                             const std::string& origin);
  /// The parts new subtask `index` of `parallelism` gets from the parsed
  /// snapshots of all old subtasks (in old subtask order): even-split lists
  /// cut evenly, union lists whole, broadcast state from old subtask 0.
  [[nodiscard]] static std::vector<operator_state_part>
  redistribute(const std::vector<std::vector<operator_state_part>>& old_subtasks, int32_t index,
               int32_t parallelism);
  /// Takes restored parts: a state declared later (or already) starts with
  /// their content. A part declared with another type or mode throws then.
  void restore(std::vector<operator_state_part> parts);

private:
  template <class T>
  static std::string label() {
    if constexpr (is_serializable_v<T>)
      return serializer<T>::type_name();
    else
      return typeid(T).name();
  }

  struct entry {
    std::shared_ptr<void> holder;
    std::type_index type = typeid(void);
    redistribution mode = redistribution::even_split;
    std::string description;
    /// The content as element bytes; empty when the type has no serializer.
    std::function<std::vector<std::string>()> dump;
  };

  template <class H, class E>
  H& get(const std::string& name, redistribution mode, const std::string& desc) {
    if (name.empty())
      throw state_error("operator state needs a name");
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      auto h = std::make_shared<H>();
      entry e{h, typeid(H), mode, desc, {}};
      if constexpr (is_serializable_v<E>) {
        H* raw = h.get();
        e.dump = [raw] {
          std::vector<std::string> out;
          if constexpr (std::is_same_v<H, operator_list_state<E>>) {
            for (auto& v : raw->get())
              out.push_back(serialize(v));
          } else {
            for (auto& kv : raw->entries())
              out.push_back(serialize(E(kv.first, kv.second)));
          }
          return out;
        };
      }
      auto p = pending_.find(name);
      if (p != pending_.end()) {
        auto part = std::move(p->second);
        pending_.erase(p);
        if (part.mode != mode || part.description != desc)
          throw state_error("restored operator state '" + name + "' is " + part.description +
                            " but the program declares it as " + desc);
        if constexpr (!is_serializable_v<E>) {
          throw state_error("operator state '" + name + "' was restored but " + desc +
                            " has no serializer");
        } else {
          for (auto& bytes : part.elements) {
            try {
              if constexpr (std::is_same_v<H, operator_list_state<E>>)
                h->add(deserialize<E>(bytes));
              else {
                auto kv = deserialize<E>(bytes);
                h->put(std::move(kv.first), std::move(kv.second));
              }
            } catch (const serialization_error& err) {
              throw state_error("cannot read restored operator state '" + name + "': " +
                                err.what());
            }
          }
        }
      }
      entries_.emplace(name, std::move(e));
      return *h;
    }
    if (it->second.type != std::type_index(typeid(H)) || it->second.mode != mode)
      throw state_error("operator state '" + name + "' is declared as " + it->second.description +
                        " but accessed as " + desc);
    return *static_cast<H*>(it->second.holder.get());
  }

  std::unordered_map<std::string, entry> entries_;
  /// Restored parts not declared yet, by name.
  std::map<std::string, operator_state_part> pending_;
};

} // namespace sluice::state
