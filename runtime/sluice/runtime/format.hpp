#pragma once

#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

/// How records are shown by print sinks and text files: strings as they are,
/// numbers in decimal, pairs and tuples as "(a,b)" like Flink's tuples,
/// vectors as "[a, b]", anything else through its operator<<.
namespace sluice::runtime {

template <class T>
void append_display(std::string& out, const T& value);

namespace internal {
template <class T, class = void>
struct is_streamable : std::false_type {};
template <class T>
struct is_streamable<T, std::void_t<decltype(std::declval<std::ostream&>()
                                             << std::declval<const T&>())>>
  : std::true_type {};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_tuple_like : std::false_type {};
template <class... Ts>
struct is_tuple_like<std::tuple<Ts...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};
} // namespace internal

template <class T>
void append_display(std::string& out, const T& value) {
  if constexpr (std::is_same_v<T, std::string> || std::is_same_v<T, std::string_view>) {
    out += value;
  } else if constexpr (std::is_same_v<T, const char*> || std::is_same_v<T, char*>) {
    out += value;
  } else if constexpr (std::is_same_v<T, bool>) {
    out += value ? "true" : "false";
  } else if constexpr (std::is_same_v<T, char>) {
    out += value;
  } else if constexpr (std::is_integral_v<T>) {
    out += std::to_string(value);
  } else if constexpr (internal::is_tuple_like<T>::value) {
    out += '(';
    bool first = true;
    std::apply(
      [&](const auto&... xs) {
        ((out += first ? "" : ",", first = false, append_display(out, xs)), ...);
      },
      value);
    out += ')';
  } else if constexpr (internal::is_vector<T>::value) {
    out += '[';
    for (size_t i = 0; i < value.size(); ++i) {
      if (i > 0)
        out += ", ";
      append_display(out, value[i]);
    }
    out += ']';
  } else if constexpr (internal::is_streamable<T>::value) {
    std::ostringstream os;
    os << value;
    out += os.str();
  } else {
    static_assert(internal::is_streamable<T>::value,
                  "give the record type an operator<< to print it");
  }
}

/// The display form of `value`.
template <class T>
std::string to_display_string(const T& value) {
  std::string out;
  append_display(out, value);
  return out;
}

} // namespace sluice::runtime
