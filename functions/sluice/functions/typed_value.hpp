#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::functions {

/// A value as stateful functions exchange it: a typename
/// (`namespace/name`, e.g. `io.statefun.types/int`) and the encoded bytes.
/// This is StateFun's TypedValue; the bytes are opaque to the runtime.
struct typed_value {
  std::string type_name;
  std::string bytes;

  /// True if the value carries a payload (StateFun's `has_value`).
  bool has_value() const { return !type_name.empty() || !bytes.empty(); }

  friend bool operator==(const typed_value& a, const typed_value& b) {
    return a.type_name == b.type_name && a.bytes == b.bytes;
  }
  friend bool operator!=(const typed_value& a, const typed_value& b) {
    return !(a == b);
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, typed_value& x) {
  return f(x.type_name, x.bytes);
}

/// The StateFun built-in typenames.
namespace type_names {
inline constexpr std::string_view boolean = "io.statefun.types/bool";
inline constexpr std::string_view int32 = "io.statefun.types/int";
inline constexpr std::string_view int64 = "io.statefun.types/long";
inline constexpr std::string_view float32 = "io.statefun.types/float";
inline constexpr std::string_view float64 = "io.statefun.types/double";
inline constexpr std::string_view string = "io.statefun.types/string";
} // namespace type_names

/// Encodes and decodes C++ values as StateFun built-in types: each is a
/// protobuf wrapper message with the value in field 1 (BooleanWrapper,
/// IntWrapper, ...), so the bytes match what the official SDKs produce.
/// Specialize for user types with `type_name` and `encode`/`decode`.
template <class T>
struct value_codec;

template <>
struct value_codec<bool> {
  static constexpr std::string_view type_name = type_names::boolean;
  static std::string encode(bool v);
  static std::optional<bool> decode(std::string_view bytes);
};

template <>
struct value_codec<int32_t> {
  static constexpr std::string_view type_name = type_names::int32;
  static std::string encode(int32_t v);
  static std::optional<int32_t> decode(std::string_view bytes);
};

template <>
struct value_codec<int64_t> {
  static constexpr std::string_view type_name = type_names::int64;
  static std::string encode(int64_t v);
  static std::optional<int64_t> decode(std::string_view bytes);
};

template <>
struct value_codec<float> {
  static constexpr std::string_view type_name = type_names::float32;
  static std::string encode(float v);
  static std::optional<float> decode(std::string_view bytes);
};

template <>
struct value_codec<double> {
  static constexpr std::string_view type_name = type_names::float64;
  static std::string encode(double v);
  static std::optional<double> decode(std::string_view bytes);
};

template <>
struct value_codec<std::string> {
  static constexpr std::string_view type_name = type_names::string;
  static std::string encode(std::string_view v);
  static std::optional<std::string> decode(std::string_view bytes);
};

/// Wraps a C++ value as a typed value of its codec's type.
template <class T>
typed_value make_typed(const T& v) {
  return typed_value{std::string{value_codec<T>::type_name},
                     value_codec<T>::encode(v)};
}

/// Reads a typed value as T; nullopt if the typename differs or the bytes
/// are malformed.
template <class T>
std::optional<T> typed_as(const typed_value& v) {
  if (v.type_name != value_codec<T>::type_name)
    return std::nullopt;
  return value_codec<T>::decode(v.bytes);
}

} // namespace sluice::functions
