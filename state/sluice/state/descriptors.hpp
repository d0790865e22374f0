#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

/// What a user declares to get keyed state: its name, its kind and value
/// types, and how long entries live (TTL).
namespace sluice::state {

/// A state access that cannot be served: a name declared twice with
/// different kinds or types, a bad descriptor, a backend failure.
class state_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// When an entry's TTL clock restarts.
enum class ttl_update {
  on_create_and_write, ///< writes only (Flink's OnCreateAndWrite)
  on_read_and_write,   ///< reads too (Flink's OnReadAndWrite)
};

/// Time-to-live of every entry of one state. Expired entries are never
/// returned; they are removed when next touched and by the backend's
/// background sweep (keyed_state_backend_base::cleanup_expired).
struct state_ttl {
  std::chrono::milliseconds ttl{0}; ///< 0 = entries never expire
  ttl_update update = ttl_update::on_create_and_write;

  [[nodiscard]] bool enabled() const noexcept { return ttl.count() > 0; }
  /// Whether an entry stamped at `stamp_ms` is expired at `now_ms`.
  [[nodiscard]] bool expired(int64_t stamp_ms, int64_t now_ms) const noexcept {
    return enabled() && now_ms - stamp_ms >= ttl.count();
  }
};

/// The clock TTL is measured on. Replaceable so tests control time.
class state_clock {
public:
  virtual ~state_clock() = default;
  /// Milliseconds since an arbitrary fixed point.
  [[nodiscard]] virtual int64_t now_ms() const = 0;
};

/// Wall-clock milliseconds (processing time).
class system_state_clock final : public state_clock {
public:
  [[nodiscard]] int64_t now_ms() const override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
};

/// A clock tests move by hand.
class manual_state_clock final : public state_clock {
public:
  explicit manual_state_clock(int64_t start_ms = 0) : now_(start_ms) {}
  [[nodiscard]] int64_t now_ms() const override { return now_; }
  void advance(std::chrono::milliseconds d) noexcept { now_ += d.count(); }
  void set(int64_t ms) noexcept { now_ = ms; }

private:
  int64_t now_;
};

/// The kinds of keyed state, as the backends store them.
enum class state_kind { value, list, map, reducing, aggregating };

/// Name of a state kind for error messages ("value", "list", ...).
[[nodiscard]] inline const char* to_string(state_kind k) noexcept {
  switch (k) {
    case state_kind::value:
      return "value";
    case state_kind::list:
      return "list";
    case state_kind::map:
      return "map";
    case state_kind::reducing:
      return "reducing";
    case state_kind::aggregating:
      return "aggregating";
  }
  return "?";
}

/// Common part of all descriptors.
struct state_descriptor_base {
  std::string name;
  state_ttl ttl;

  void check() const {
    if (name.empty())
      throw state_error("a state descriptor needs a name");
    if (ttl.ttl.count() < 0)
      throw state_error("state '" + name + "': TTL must not be negative");
  }
};

/// A single value per key (Flink's ValueState).
template <class T>
struct value_state_descriptor : state_descriptor_base {
  using value_type = T;
  static constexpr state_kind kind = state_kind::value;
  explicit value_state_descriptor(std::string n, state_ttl t = {})
    : state_descriptor_base{std::move(n), t} {}
};

/// A list of values per key (Flink's ListState).
template <class T>
struct list_state_descriptor : state_descriptor_base {
  using value_type = T;
  static constexpr state_kind kind = state_kind::list;
  explicit list_state_descriptor(std::string n, state_ttl t = {})
    : state_descriptor_base{std::move(n), t} {}
};

/// A map per key (Flink's MapState); TTL applies per map entry.
template <class UK, class UV>
struct map_state_descriptor : state_descriptor_base {
  using key_type = UK;
  using value_type = UV;
  static constexpr state_kind kind = state_kind::map;
  explicit map_state_descriptor(std::string n, state_ttl t = {})
    : state_descriptor_base{std::move(n), t} {}
};

/// One value per key that every add() folds into with `reduce(acc, in)`.
template <class T>
struct reducing_state_descriptor : state_descriptor_base {
  using value_type = T;
  static constexpr state_kind kind = state_kind::reducing;
  std::function<T(const T&, const T&)> reduce;
  reducing_state_descriptor(std::string n, std::function<T(const T&, const T&)> f,
                            state_ttl t = {})
    : state_descriptor_base{std::move(n), t}, reduce(std::move(f)) {}
};

/// An incremental aggregation (Flink's AggregateFunction): an accumulator
/// created, added to, merged and read as a result.
template <class In, class Acc, class Out>
struct aggregate_function {
  virtual ~aggregate_function() = default;
  [[nodiscard]] virtual Acc create_accumulator() const = 0;
  virtual void add(const In& value, Acc& acc) const = 0;
  [[nodiscard]] virtual Out get_result(const Acc& acc) const = 0;
  [[nodiscard]] virtual Acc merge(const Acc& a, const Acc& b) const = 0;
};

/// One accumulator per key fed through an aggregate_function.
template <class In, class Acc, class Out>
struct aggregating_state_descriptor : state_descriptor_base {
  using value_type = Acc;
  static constexpr state_kind kind = state_kind::aggregating;
  std::shared_ptr<const aggregate_function<In, Acc, Out>> function;
  aggregating_state_descriptor(std::string n,
                               std::shared_ptr<const aggregate_function<In, Acc, Out>> f,
                               state_ttl t = {})
    : state_descriptor_base{std::move(n), t}, function(std::move(f)) {}
};

} // namespace sluice::state
