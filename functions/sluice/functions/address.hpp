#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

namespace sluice::functions {

/// The logical type of a stateful function: a namespace and a name, written
/// `namespace/name` (StateFun's TypeName).
struct function_type {
  std::string ns;
  std::string name;

  /// `namespace/name`.
  std::string to_string() const { return ns + "/" + name; }

  /// Parses `namespace/name`; the namespace may itself contain dots but the
  /// name may not contain a slash. Returns nullopt for anything else.
  static std::optional<function_type> parse(std::string_view text);

  friend bool operator==(const function_type& a, const function_type& b) {
    return a.ns == b.ns && a.name == b.name;
  }
  friend bool operator!=(const function_type& a, const function_type& b) {
    return !(a == b);
  }
  friend bool operator<(const function_type& a, const function_type& b) {
    return a.ns != b.ns ? a.ns < b.ns : a.name < b.name;
  }
};

/// One instance of a function: its type and an id. Each address has its own
/// persistent state and handles its messages one at a time.
struct address {
  function_type type;
  std::string id;

  /// `namespace/name/id`.
  std::string to_string() const { return type.to_string() + "/" + id; }

  /// Parses `namespace/name/id` (the id may contain slashes).
  static std::optional<address> parse(std::string_view text);

  friend bool operator==(const address& a, const address& b) {
    return a.type == b.type && a.id == b.id;
  }
  friend bool operator!=(const address& a, const address& b) {
    return !(a == b);
  }
  friend bool operator<(const address& a, const address& b) {
    return a.type != b.type ? a.type < b.type : a.id < b.id;
  }
};

/// Where egress messages go: a namespace and a name (`namespace/name`), as
/// StateFun's EgressIdentifier.
struct egress_id {
  std::string ns;
  std::string name;

  /// `namespace/name`.
  [[nodiscard]] std::string to_string() const { return ns + "/" + name; }

  friend bool operator==(const egress_id& a, const egress_id& b) {
    return a.ns == b.ns && a.name == b.name;
  }
  friend bool operator!=(const egress_id& a, const egress_id& b) { return !(a == b); }
  friend bool operator<(const egress_id& a, const egress_id& b) {
    return a.ns != b.ns ? a.ns < b.ns : a.name < b.name;
  }
};

inline std::ostream& operator<<(std::ostream& os, const function_type& t) {
  return os << t.to_string();
}
inline std::ostream& operator<<(std::ostream& os, const address& a) {
  return os << a.to_string();
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, function_type& x) {
  return f(x.ns, x.name);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, address& x) {
  return f(x.type, x.id);
}

} // namespace sluice::functions

namespace std {
template <>
struct hash<sluice::functions::function_type> {
  size_t operator()(const sluice::functions::function_type& t) const noexcept {
    return hash<string>{}(t.ns) * 31 + hash<string>{}(t.name);
  }
};
template <>
struct hash<sluice::functions::address> {
  size_t operator()(const sluice::functions::address& a) const noexcept {
    return hash<sluice::functions::function_type>{}(a.type) * 31
           + hash<string>{}(a.id);
  }
};
} // namespace std
