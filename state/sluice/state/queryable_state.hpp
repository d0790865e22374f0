#pragma once

#include "sluice/state/serializer.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <utility>
#include <vector>

/// Queryable state: reading keys from URL text and rendering state values
/// as JSON, for GET /jobs/:jobid/state/:uid/:key. Only the subtask that
/// owns a key's group reads it, on its own thread, between batches; nothing
/// here runs per record.
namespace sluice::state {

namespace internal {

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_map : std::false_type {};
template <class K, class V, class C, class A>
struct is_map<std::map<K, V, C, A>> : std::true_type {};
template <class K, class V, class H, class E, class A>
struct is_map<std::unordered_map<K, V, H, E, A>> : std::true_type {};

template <class T>
struct is_pair : std::false_type {};
template <class A, class B>
struct is_pair<std::pair<A, B>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

/// Appends `s` as a JSON string literal.
inline void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// Standard base64 with padding.
inline std::string base64(std::string_view bytes) {
  static constexpr char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) |
                 uint32_t(uint8_t(bytes[i + 2]));
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

template <class T>
constexpr bool is_json_scalar_v =
  std::is_arithmetic_v<T> || std::is_same_v<T, std::string>;

} // namespace internal

/// Appends `v` as JSON: numbers, bools and strings as themselves (a
/// non-finite float as null), vectors as arrays, maps as objects whose
/// scalar keys become strings (other keys: an array of [key, value]),
/// pairs as [first, second], optionals as the value or null; any other type
/// as {"serialized": "<base64 of its serializer's bytes>", "type": "<name>"}
/// ("serialized" is null for a type without a serializer).
template <class T>
void print_json(std::string& out, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    out += v ? "true" : "false";
  } else if constexpr (std::is_integral_v<T>) {
    out += std::to_string(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) {
      out += "null";
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(v));
      out += buf;
    }
  } else if constexpr (std::is_same_v<T, std::string>) {
    internal::append_json_string(out, v);
  } else if constexpr (internal::is_optional<T>::value) {
    if (v)
      print_json(out, *v);
    else
      out += "null";
  } else if constexpr (internal::is_pair<T>::value) {
    out += '[';
    print_json(out, v.first);
    out += ',';
    print_json(out, v.second);
    out += ']';
  } else if constexpr (internal::is_vector<T>::value) {
    out += '[';
    bool first = true;
    for (const auto& e : v) {
      if (!first)
        out += ',';
      first = false;
      print_json(out, e);
    }
    out += ']';
  } else if constexpr (internal::is_map<T>::value) {
    using key_type = typename T::key_type;
    constexpr bool object = internal::is_json_scalar_v<key_type>;
    out += object ? '{' : '[';
    bool first = true;
    for (const auto& [k, val] : v) {
      if (!first)
        out += ',';
      first = false;
      if constexpr (object) {
        if constexpr (std::is_same_v<key_type, std::string>) {
          internal::append_json_string(out, k);
        } else {
          std::string text;
          print_json(text, k);
          internal::append_json_string(out, text);
        }
        out += ':';
        print_json(out, val);
      } else {
        out += '[';
        print_json(out, k);
        out += ',';
        print_json(out, val);
        out += ']';
      }
    }
    out += object ? '}' : ']';
  } else {
    out += "{\"serialized\":";
    if constexpr (is_serializable_v<T>) {
      internal::append_json_string(out, internal::base64(serialize(v)));
      out += ",\"type\":";
      internal::append_json_string(out, serializer<T>::type_name());
    } else {
      out += "null,\"type\":";
      internal::append_json_string(out, typeid(T).name());
    }
    out += '}';
  }
}

/// `v` as JSON text (print_json).
template <class T>
[[nodiscard]] std::string to_json(const T& v) {
  std::string out;
  print_json(out, v);
  return out;
}

/// Whether keys of type K can be read from URL text (parse_key).
template <class K>
constexpr bool is_url_key_v = std::is_arithmetic_v<K> || std::is_same_v<K, std::string>;

/// Reads a key of type K from `text` (already URL-decoded): integers in
/// decimal, floating point as strtod reads it, bools as true/false/1/0,
/// strings as they are. Empty when the whole text is not a K.
template <class K>
[[nodiscard]] std::optional<K> parse_key(std::string_view text) {
  static_assert(is_url_key_v<K>, "parse_key needs an arithmetic or string key type");
  if constexpr (std::is_same_v<K, std::string>) {
    return std::string(text);
  } else if constexpr (std::is_same_v<K, bool>) {
    if (text == "true" || text == "1")
      return true;
    if (text == "false" || text == "0")
      return false;
    return std::nullopt;
  } else if constexpr (std::is_integral_v<K>) {
    if (text.empty())
      return std::nullopt;
    const char* first = text.data();
    if (*first == '+' && text.size() > 1)
      ++first;
    K v{};
    auto [end, ec] = std::from_chars(first, text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size())
      return std::nullopt;
    return v;
  } else {
    if (text.empty() || std::isspace(static_cast<unsigned char>(text.front())))
      return std::nullopt;
    std::string s(text); // strtod needs a terminated string
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (end != s.c_str() + s.size())
      return std::nullopt;
    return static_cast<K>(v);
  }
}

} // namespace sluice::state
