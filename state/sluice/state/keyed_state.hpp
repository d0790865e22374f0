#pragma once

#include "sluice/state/heap_backend.hpp"
#include "sluice/state/queryable_state.hpp"
#include "sluice/state/rocksdb_backend.hpp"

#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

/// The keyed state handles user functions hold: value, list, map, reducing
/// and aggregating state. A handle reads and writes the entry of the
/// backend's current key (and, for windows, the current namespace); it works
/// the same on every backend.
namespace sluice::state {

namespace internal {

template <class T>
std::string type_label() {
  if constexpr (is_serializable_v<T>)
    return serializer<T>::type_name();
  else
    return typeid(T).name();
}

template <class N>
std::string describe(state_kind kind, const std::string& types) {
  std::string s = std::string(to_string(kind)) + "<" + types + ">";
  if constexpr (!std::is_same_v<N, void_namespace>)
    s += " in namespace " + type_label<N>();
  return s;
}

template <class Core>
Core& core_of(keyed_state_backend_base& b) {
  auto* c = dynamic_cast<Core*>(&b);
  if (c == nullptr)
    throw state_error(std::string("backend is not a ") + to_string(b.kind()) + " backend");
  return *c;
}

/// Thrown when a type without a serializer meets the RocksDB backend.
template <class... Ts>
[[noreturn]] void no_serializer(const std::string& state) {
  std::string names;
  ((names += (names.empty() ? "" : ", ") + type_label<Ts>()), ...);
  throw state_error("state '" + state + "' needs serializers for RocksDB (types: " + names +
                    "); add SLUICE_SERIALIZABLE(...) to the type or use the heap backend");
}

template <class N, class V>
std::shared_ptr<internal_value_state<N, V>> make_value(keyed_state_backend_base& b, uint32_t idx) {
  if (b.kind() == backend_kind::heap)
    return std::make_shared<heap_value_state<N, V>>(core_of<heap_backend_core>(b), idx);
  if constexpr (is_serializable_v<N> && is_serializable_v<V>)
    return std::make_shared<rocksdb_value_state<N, V>>(core_of<rocksdb_backend_core>(b), idx);
  else
    no_serializer<N, V>(b.states()[idx].name);
}

template <class N, class T>
std::shared_ptr<internal_list_state<N, T>> make_list(keyed_state_backend_base& b, uint32_t idx) {
  if (b.kind() == backend_kind::heap)
    return std::make_shared<heap_list_state<N, T>>(core_of<heap_backend_core>(b), idx);
  if constexpr (is_serializable_v<N> && is_serializable_v<T>)
    return std::make_shared<rocksdb_list_state<N, T>>(core_of<rocksdb_backend_core>(b), idx);
  else
    no_serializer<N, T>(b.states()[idx].name);
}

template <class N, class UK, class UV>
std::shared_ptr<internal_map_state<N, UK, UV>> make_map(keyed_state_backend_base& b,
                                                        uint32_t idx) {
  if (b.kind() == backend_kind::heap)
    return std::make_shared<heap_map_state<N, UK, UV>>(core_of<heap_backend_core>(b), idx);
  if constexpr (is_serializable_v<N> && is_serializable_v<UK> && is_serializable_v<UV>)
    return std::make_shared<rocksdb_map_state<N, UK, UV>>(core_of<rocksdb_backend_core>(b), idx);
  else
    no_serializer<N, UK, UV>(b.states()[idx].name);
}

// Printers for queryable state. Each reads through a handle of its own,
// made per query, so no handle outlives the backend it points into.

/// Prints a value (or reducing) state: its value, or null.
template <class N, class V>
void set_value_printer(keyed_state_backend_base& b, uint32_t idx) {
  if constexpr (std::is_same_v<N, void_namespace>)
    b.set_state_printer(idx, [](keyed_state_backend_base& be, uint32_t i, std::string& out) {
      // The handle owns what get() points to (RocksDB reads into it).
      auto handle = make_value<N, V>(be, i);
      if (const V* v = handle->get())
        print_json(out, *v);
      else
        out += "null";
    });
}

/// Prints a list state: its live elements, or null when it has none.
template <class N, class T>
void set_list_printer(keyed_state_backend_base& b, uint32_t idx) {
  if constexpr (std::is_same_v<N, void_namespace>)
    b.set_state_printer(idx, [](keyed_state_backend_base& be, uint32_t i, std::string& out) {
      std::vector<T> elements;
      if (make_list<N, T>(be, i)->get(elements))
        print_json(out, elements);
      else
        out += "null";
    });
}

/// Prints a map state: an object (scalar user keys, as strings) or an
/// array of [key, value] pairs; null when it has no live entry.
template <class N, class UK, class UV>
void set_map_printer(keyed_state_backend_base& b, uint32_t idx) {
  if constexpr (std::is_same_v<N, void_namespace>)
    b.set_state_printer(idx, [](keyed_state_backend_base& be, uint32_t i, std::string& out) {
      std::vector<std::pair<UK, UV>> entries;
      make_map<N, UK, UV>(be, i)->entries(entries);
      if (entries.empty()) {
        out += "null";
        return;
      }
      constexpr bool object = internal::is_json_scalar_v<UK>;
      out += object ? '{' : '[';
      for (size_t e = 0; e < entries.size(); ++e) {
        if (e > 0)
          out += ',';
        if constexpr (object) {
          if constexpr (std::is_same_v<UK, std::string>)
            append_json_string(out, entries[e].first);
          else
            append_json_string(out, to_json(entries[e].first));
          out += ':';
          print_json(out, entries[e].second);
        } else {
          print_json(out, entries[e]);
        }
      }
      out += object ? '}' : ']';
    });
}

} // namespace internal

/// One value per key (and namespace).
template <class T, class N = void_namespace>
class value_state {
public:
  value_state() = default;
  value_state(keyed_state_backend_base& b, const value_state_descriptor<T>& d) {
    auto idx = b.declare<N, T>(d, state_kind::value,
                               internal::describe<N>(state_kind::value, internal::type_label<T>()));
    s_ = internal::make_value<N, T>(b, idx);
    internal::set_value_printer<N, T>(b, idx);
  }
  /// The current key's value, or nothing.
  [[nodiscard]] std::optional<T> value() const {
    if (auto* v = s_->get())
      return *v;
    return std::nullopt;
  }
  /// The current key's value, or `fallback`.
  [[nodiscard]] T value_or(T fallback) const {
    auto* v = s_->get();
    return v != nullptr ? *v : std::move(fallback);
  }
  void update(T v) { s_->put(std::move(v)); }
  void clear() { s_->clear(); }
  /// Selects the namespace (window) later calls use.
  void set_namespace(const N& ns) { s_->set_namespace(ns); }
  [[nodiscard]] explicit operator bool() const noexcept { return s_ != nullptr; }

private:
  std::shared_ptr<internal_value_state<N, T>> s_;
};

/// A list per key (and namespace).
template <class T, class N = void_namespace>
class list_state {
public:
  list_state() = default;
  list_state(keyed_state_backend_base& b, const list_state_descriptor<T>& d) {
    auto idx = b.declare<N, T>(d, state_kind::list,
                               internal::describe<N>(state_kind::list, internal::type_label<T>()));
    s_ = internal::make_list<N, T>(b, idx);
    internal::set_list_printer<N, T>(b, idx);
  }
  /// The current key's elements in insertion order (empty if none).
  [[nodiscard]] std::vector<T> get() const {
    std::vector<T> out;
    s_->get(out);
    return out;
  }
  void add(T v) { s_->add(std::move(v)); }
  void add_all(std::vector<T> vs) { s_->add_all(std::move(vs)); }
  void update(std::vector<T> vs) { s_->update(std::move(vs)); }
  void clear() { s_->clear(); }
  void set_namespace(const N& ns) { s_->set_namespace(ns); }
  /// Moves the lists of `sources` into the current namespace.
  void merge_namespaces(const std::vector<N>& sources) { s_->merge_namespaces(sources); }

private:
  std::shared_ptr<internal_list_state<N, T>> s_;
};

/// A map per key (and namespace).
template <class UK, class UV, class N = void_namespace>
class map_state {
public:
  map_state() = default;
  map_state(keyed_state_backend_base& b, const map_state_descriptor<UK, UV>& d) {
    auto types = internal::type_label<UK>() + "," + internal::type_label<UV>();
    auto idx = b.declare<N, std::pair<UK, UV>>(d, state_kind::map,
                                               internal::describe<N>(state_kind::map, types));
    s_ = internal::make_map<N, UK, UV>(b, idx);
    internal::set_map_printer<N, UK, UV>(b, idx);
  }
  [[nodiscard]] std::optional<UV> get(const UK& k) const { return s_->get(k); }
  void put(UK k, UV v) { s_->put(std::move(k), std::move(v)); }
  void remove(const UK& k) { s_->remove(k); }
  [[nodiscard]] bool contains(const UK& k) const { return s_->contains(k); }
  /// All live entries of the current key.
  [[nodiscard]] std::vector<std::pair<UK, UV>> entries() const {
    std::vector<std::pair<UK, UV>> out;
    s_->entries(out);
    return out;
  }
  [[nodiscard]] bool empty() const { return s_->empty(); }
  void clear() { s_->clear(); }
  void set_namespace(const N& ns) { s_->set_namespace(ns); }

private:
  std::shared_ptr<internal_map_state<N, UK, UV>> s_;
};

/// One value per key that add() folds into (Flink's ReducingState).
template <class T, class N = void_namespace>
class reducing_state {
public:
  reducing_state() = default;
  reducing_state(keyed_state_backend_base& b, const reducing_state_descriptor<T>& d)
    : reduce_(d.reduce) {
    if (!reduce_)
      throw state_error("reducing state '" + d.name + "' needs a reduce function");
    auto idx = b.declare<N, T>(
      d, state_kind::reducing, internal::describe<N>(state_kind::reducing, internal::type_label<T>()));
    s_ = internal::make_value<N, T>(b, idx);
    internal::set_value_printer<N, T>(b, idx);
    heap_ = dynamic_cast<heap_value_state<N, T>*>(s_.get());
  }
  /// Folds `v` into the current key's value.
  void add(T v) {
    if (heap_ != nullptr) {
      // In place: one lookup, no copy of the accumulator.
      if (auto* acc = heap_->find_mutable())
        *acc = reduce_(*acc, v);
      else
        heap_->insert(std::move(v));
      return;
    }
    if (auto* acc = s_->get())
      s_->put(reduce_(*acc, v));
    else
      s_->put(std::move(v));
  }
  [[nodiscard]] std::optional<T> get() const {
    if (auto* v = s_->get())
      return *v;
    return std::nullopt;
  }
  void clear() { s_->clear(); }
  void set_namespace(const N& ns) { s_->set_namespace(ns); }
  /// Reduces the values of `sources` into the current namespace.
  void merge_namespaces(const std::vector<N>& sources) { s_->merge_namespaces(sources, reduce_); }

private:
  std::function<T(const T&, const T&)> reduce_;
  std::shared_ptr<internal_value_state<N, T>> s_;
  heap_value_state<N, T>* heap_ = nullptr;
};

/// One accumulator per key fed through an aggregate_function (Flink's
/// AggregatingState).
template <class In, class Acc, class Out, class N = void_namespace>
class aggregating_state {
public:
  aggregating_state() = default;
  aggregating_state(keyed_state_backend_base& b,
                    const aggregating_state_descriptor<In, Acc, Out>& d)
    : fn_(d.function) {
    if (!fn_)
      throw state_error("aggregating state '" + d.name + "' needs an aggregate function");
    auto idx = b.declare<N, Acc>(d, state_kind::aggregating,
                                 internal::describe<N>(state_kind::aggregating,
                                                       internal::type_label<Acc>()));
    s_ = internal::make_value<N, Acc>(b, idx);
    heap_ = dynamic_cast<heap_value_state<N, Acc>*>(s_.get());
    if constexpr (std::is_same_v<N, void_namespace>)
      // What get() returns: the aggregate function's result.
      b.set_state_printer(idx, [fn = fn_](keyed_state_backend_base& be, uint32_t i,
                                          std::string& out) {
        auto handle = internal::make_value<N, Acc>(be, i); // owns what get() points to
        if (const Acc* a = handle->get())
          print_json(out, fn->get_result(*a));
        else
          out += "null";
      });
  }
  void add(const In& v) {
    if (heap_ != nullptr) {
      if (auto* acc = heap_->find_mutable()) {
        fn_->add(v, *acc);
      } else {
        auto a = fn_->create_accumulator();
        fn_->add(v, a);
        heap_->insert(std::move(a));
      }
      return;
    }
    const Acc* cur = s_->get();
    Acc a = cur != nullptr ? *cur : fn_->create_accumulator();
    fn_->add(v, a);
    s_->put(std::move(a));
  }
  /// The current key's result, or nothing when it has no accumulator.
  [[nodiscard]] std::optional<Out> get() const {
    if (auto* a = s_->get())
      return fn_->get_result(*a);
    return std::nullopt;
  }
  void clear() { s_->clear(); }
  void set_namespace(const N& ns) { s_->set_namespace(ns); }
  void merge_namespaces(const std::vector<N>& sources) {
    auto f = fn_;
    s_->merge_namespaces(sources, [f](const Acc& a, const Acc& b) { return f->merge(a, b); });
  }

private:
  std::shared_ptr<const aggregate_function<In, Acc, Out>> fn_;
  std::shared_ptr<internal_value_state<N, Acc>> s_;
  heap_value_state<N, Acc>* heap_ = nullptr;
};

/// Makes the keyed backend `kind` for keys K owning `range`.
template <class K>
std::unique_ptr<keyed_state_backend<K>>
make_keyed_backend(backend_kind kind, key_group_range range, int32_t max_parallelism,
                   std::shared_ptr<const state_clock> clock, const rocksdb_config& rocksdb,
                   const std::string& instance_name) {
  if (kind == backend_kind::heap)
    return std::make_unique<heap_keyed_backend<K>>(range, max_parallelism, std::move(clock));
  if constexpr (is_serializable_v<K>)
    return std::make_unique<rocksdb_keyed_backend<K>>(range, max_parallelism, std::move(clock),
                                                      rocksdb, instance_name);
  else
    throw state_error("key type " + internal::type_label<K>() +
                      " has no serializer, which the RocksDB backend needs; add "
                      "SLUICE_SERIALIZABLE(...) to it or use the heap backend");
}

} // namespace sluice::state
