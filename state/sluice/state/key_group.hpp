#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

/// Key groups: the unit in which keyed state is partitioned, assigned exactly
/// as Flink assigns them so that state can be rescaled by moving whole groups.
namespace sluice::state {

/// Flink's murmur finalisation of a 32-bit hash, returning a non-negative int
/// (INT_MIN maps to 0, everything else negative maps to its absolute value).
[[nodiscard]] constexpr int32_t murmur_hash(int32_t code) noexcept {
  auto rotl = [](uint32_t x, int r) { return (x << r) | (x >> (32 - r)); };
  uint32_t c = static_cast<uint32_t>(code);
  c *= 0xcc9e2d51u;
  c = rotl(c, 15);
  c *= 0x1b873593u;
  c = rotl(c, 13);
  c = c * 5u + 0xe6546b64u;
  c ^= 4u;
  c ^= c >> 16;
  c *= 0x85ebca6bu;
  c ^= c >> 13;
  c *= 0xc2b2ae35u;
  c ^= c >> 16;
  auto h = static_cast<int32_t>(c);
  if (h >= 0)
    return h;
  return h == INT32_MIN ? 0 : -h;
}

/// The key group of a key whose stable hash is `key_hash`.
[[nodiscard]] constexpr int32_t key_group_for_hash(int32_t key_hash,
                                                   int32_t max_parallelism) noexcept {
  return murmur_hash(key_hash) % max_parallelism;
}

/// The subtask (operator index) that owns `key_group` at `parallelism`.
[[nodiscard]] constexpr int32_t subtask_for_key_group(int32_t max_parallelism,
                                                      int32_t parallelism,
                                                      int32_t key_group) noexcept {
  return static_cast<int32_t>(static_cast<int64_t>(key_group) * parallelism /
                              max_parallelism);
}

/// An inclusive range of key groups [start, end]; empty when end < start.
struct key_group_range {
  int32_t start = 0;
  int32_t end = -1;

  [[nodiscard]] constexpr int32_t size() const noexcept {
    return end >= start ? end - start + 1 : 0;
  }
  [[nodiscard]] constexpr bool contains(int32_t kg) const noexcept {
    return kg >= start && kg <= end;
  }
  friend constexpr bool operator==(key_group_range a, key_group_range b) noexcept {
    return a.start == b.start && a.end == b.end;
  }
};

/// The key groups owned by subtask `index` of `parallelism` subtasks.
[[nodiscard]] constexpr key_group_range
key_group_range_for_subtask(int32_t max_parallelism, int32_t parallelism,
                            int32_t index) noexcept {
  auto mp = static_cast<int64_t>(max_parallelism);
  auto p = static_cast<int64_t>(parallelism);
  auto i = static_cast<int64_t>(index);
  return {static_cast<int32_t>((i * mp + p - 1) / p),
          static_cast<int32_t>(((i + 1) * mp - 1) / p)};
}

/// Upper bound Flink allows for max parallelism (2^15).
constexpr int32_t upper_bound_max_parallelism = 1 << 15;

/// Flink's default max parallelism for an operator of `parallelism`:
/// min(max(roundUpPow2(p + p/2), 128), 32768).
[[nodiscard]] constexpr int32_t default_max_parallelism(int32_t parallelism) noexcept {
  int64_t want = static_cast<int64_t>(parallelism) + parallelism / 2;
  int64_t pow2 = 1;
  while (pow2 < want)
    pow2 <<= 1;
  if (pow2 < 128)
    pow2 = 128;
  if (pow2 > upper_bound_max_parallelism)
    pow2 = upper_bound_max_parallelism;
  return static_cast<int32_t>(pow2);
}

/// A stable 32-bit hash of a key, identical across processes, runs and
/// builds (it decides where keyed state lives in checkpoints). Built-in
/// types hash like the matching Java type's hashCode(), so keys hash as they
/// do in Flink. Specialise for user types, or give the type a member
/// `int32_t hash_code() const`.
template <class T, class = void>
struct key_hash;

namespace internal {
template <class T, class = void>
struct has_hash_code : std::false_type {};
template <class T>
struct has_hash_code<T, std::void_t<decltype(std::declval<const T&>().hash_code())>>
  : std::true_type {};

[[nodiscard]] inline int32_t java_string_hash(std::string_view s) noexcept {
  uint32_t h = 0;
  for (unsigned char c : s)
    h = 31u * h + c;
  return static_cast<int32_t>(h);
}

[[nodiscard]] constexpr int32_t java_long_hash(uint64_t v) noexcept {
  return static_cast<int32_t>(static_cast<uint32_t>(v ^ (v >> 32)));
}
} // namespace internal

template <class T>
struct key_hash<T, std::enable_if_t<std::is_integral_v<T>>> {
  constexpr int32_t operator()(T v) const noexcept {
    if constexpr (std::is_same_v<T, bool>)
      return v ? 1231 : 1237;
    else if constexpr (sizeof(T) <= 4)
      return static_cast<int32_t>(v);
    else
      return internal::java_long_hash(static_cast<uint64_t>(v));
  }
};

template <class T>
struct key_hash<T, std::enable_if_t<std::is_enum_v<T>>> {
  constexpr int32_t operator()(T v) const noexcept {
    return key_hash<std::underlying_type_t<T>>{}(
      static_cast<std::underlying_type_t<T>>(v));
  }
};

template <>
struct key_hash<double> {
  int32_t operator()(double v) const noexcept {
    if (v == 0.0)
      v = 0.0; // -0.0 and 0.0 are equal keys
    if (v != v)
      return internal::java_long_hash(0x7ff8000000000000ull); // canonical NaN
    uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return internal::java_long_hash(bits);
  }
};

template <>
struct key_hash<float> {
  int32_t operator()(float v) const noexcept {
    if (v == 0.0f)
      v = 0.0f;
    if (v != v)
      return 0x7fc00000;
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return static_cast<int32_t>(bits);
  }
};

template <>
struct key_hash<std::string> {
  int32_t operator()(const std::string& s) const noexcept {
    return internal::java_string_hash(s);
  }
};

template <>
struct key_hash<std::string_view> {
  int32_t operator()(std::string_view s) const noexcept {
    return internal::java_string_hash(s);
  }
};

/// Pairs and tuples combine like java.util.List.hashCode().
template <class... Ts>
struct key_hash<std::tuple<Ts...>> {
  int32_t operator()(const std::tuple<Ts...>& t) const noexcept {
    uint32_t h = 1;
    std::apply(
      [&h](const auto&... xs) {
        ((h = 31u * h +
              static_cast<uint32_t>(key_hash<std::decay_t<decltype(xs)>>{}(xs))),
         ...);
      },
      t);
    return static_cast<int32_t>(h);
  }
};

template <class A, class B>
struct key_hash<std::pair<A, B>> {
  int32_t operator()(const std::pair<A, B>& p) const noexcept {
    uint32_t h = 1;
    h = 31u * h + static_cast<uint32_t>(key_hash<A>{}(p.first));
    h = 31u * h + static_cast<uint32_t>(key_hash<B>{}(p.second));
    return static_cast<int32_t>(h);
  }
};

template <class T>
struct key_hash<T, std::enable_if_t<internal::has_hash_code<T>::value>> {
  int32_t operator()(const T& v) const noexcept(noexcept(v.hash_code())) {
    return static_cast<int32_t>(v.hash_code());
  }
};

/// The key group of `key`.
template <class K>
[[nodiscard]] int32_t key_group_of(const K& key, int32_t max_parallelism) {
  return key_group_for_hash(key_hash<K>{}(key), max_parallelism);
}

} // namespace sluice::state
