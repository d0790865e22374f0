#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

/// Binary encoding of values: keyed state in RocksDB, checkpoints, records crossing processes.
///
/// Format: numbers are fixed-width little-endian; lengths and counts are LEB128 varints; composites
/// are their parts in order, with no type tags. Equal values encode to identical bytes for every
/// type except std::unordered_map, whose iteration order is unspecified: never use an unordered
/// container in a key. Encoded keys compare equal byte-wise exactly when the values are equal, but
/// byte-wise *order* is not numeric order (little-endian). Floating point is encoded bit-exactly,
/// so a round trip keeps NaN payloads and the sign of zero, and 0.0 and -0.0 encode differently.
/// Protobuf messages encode as SerializeToString() produces them, which protobuf does not
/// promise to be deterministic for messages with map fields or unknown fields.
namespace sluice::state {

/// Thrown when bytes cannot be decoded (truncated input, bad length, trailing bytes, an invalid
/// flag, a version this build cannot read) or a protobuf message cannot be encoded.
class serialization_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Appends bytes to a std::string: one it owns, or one passed by reference that must outlive it.
/// Not thread-safe. Neither copyable nor movable, since it may point at its own buffer.
class byte_writer {
public:
  /// A writer that appends to a buffer of its own (see buffer()).
  byte_writer() : out_(&owned_) {}
  /// A writer that appends to `out`, after what `out` already holds.
  explicit byte_writer(std::string& out) : out_(&out) {}
  byte_writer(const byte_writer&) = delete;
  byte_writer& operator=(const byte_writer&) = delete;

  /// Appends `n` raw bytes starting at `p`.
  void write_bytes(const void* p, size_t n) {
    if (n != 0)
      out_->append(static_cast<const char*>(p), n);
  }
  /// Appends one byte.
  void write_u8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  /// Appends 2 bytes, little-endian.
  void write_u16(uint16_t v) { write_le(v); }
  /// Appends 4 bytes, little-endian.
  void write_u32(uint32_t v) { write_le(v); }
  /// Appends 8 bytes, little-endian.
  void write_u64(uint64_t v) { write_le(v); }
  /// Appends `v` as an unsigned LEB128 varint: 1 byte below 128, at most 10 bytes.
  void write_varint(uint64_t v) {
    char buf[10];
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
    buf[n++] = static_cast<char>(v);
    out_->append(buf, n);
  }
  /// The buffer written to: the owned one, or the one given to the constructor.
  std::string& buffer() noexcept { return *out_; }
  /// The buffer written to, read-only.
  const std::string& buffer() const noexcept { return *out_; }

private:
  template <class U>
  void write_le(U v) {
    char buf[sizeof(U)];
    for (size_t i = 0; i < sizeof(U); ++i)
      buf[i] = static_cast<char>(v >> (8 * i));
    out_->append(buf, sizeof(U));
  }

  std::string owned_;
  std::string* out_;
};

/// Reads from bytes it does not own (they must outlive it). Every read checks bounds first and
/// throws serialization_error rather than read past the end. Not thread-safe.
class byte_reader {
public:
  /// A reader positioned at the start of `bytes`.
  explicit byte_reader(std::string_view bytes) noexcept : bytes_(bytes) {}

  /// Copies the next `n` bytes to `p`.
  void read_bytes(void* p, size_t n) {
    auto v = read_view(n);
    if (n != 0)
      std::memcpy(p, v.data(), n);
  }
  /// Reads one byte.
  [[nodiscard]] uint8_t read_u8() { return static_cast<uint8_t>(read_view(1)[0]); }
  /// Reads 2 bytes, little-endian.
  [[nodiscard]] uint16_t read_u16() { return read_le<uint16_t>(); }
  /// Reads 4 bytes, little-endian.
  [[nodiscard]] uint32_t read_u32() { return read_le<uint32_t>(); }
  /// Reads 8 bytes, little-endian.
  [[nodiscard]] uint64_t read_u64() { return read_le<uint64_t>(); }
  /// Reads an unsigned LEB128 varint; rejects overlong and non-minimal encodings, so that every
  /// value has exactly one accepted encoding.
  [[nodiscard]] uint64_t read_varint() {
    uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
      if (at_end())
        fail("truncated varint");
      auto b = static_cast<uint8_t>(bytes_[pos_++]);
      if (shift == 63 && b > 1)
        fail("varint does not fit in 64 bits");
      v |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) {
        if (b == 0 && shift != 0)
          fail("non-minimal varint");
        return v;
      }
    }
  }
  /// The next `n` bytes without copying; valid as long as the underlying bytes are.
  [[nodiscard]] std::string_view read_view(size_t n) {
    if (n > remaining())
      fail("truncated input: need " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " remain");
    auto v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  /// How many bytes are left to read.
  [[nodiscard]] size_t remaining() const noexcept { return bytes_.size() - pos_; }
  /// Whether every byte has been read.
  [[nodiscard]] bool at_end() const noexcept { return pos_ == bytes_.size(); }
  /// How many bytes have been read so far.
  [[nodiscard]] size_t offset() const noexcept { return pos_; }
  /// Throws serialization_error saying `what` went wrong at the current offset.
  [[noreturn]] void fail(const std::string& what) const {
    throw serialization_error("cannot deserialize at byte " + std::to_string(pos_) + ": " + what);
  }

private:
  template <class U>
  U read_le() {
    auto v = read_view(sizeof(U));
    U out = 0;
    for (size_t i = 0; i < sizeof(U); ++i)
      out |= static_cast<U>(static_cast<U>(static_cast<uint8_t>(v[i])) << (8 * i));
    return out;
  }

  std::string_view bytes_;
  size_t pos_ = 0;
};

/// How to encode a T: `static void write(byte_writer&, const T&)`, `static T read(byte_reader&)`,
/// `static std::string type_name()` (stable and human-readable, e.g. "pair<int64,string>") and
/// `static constexpr uint32_t version`. Specialise it for types the library does not cover; the
/// primary template is left undefined so that an unsupported type is a compile error.
template <class T, class Enable = void>
struct serializer;

namespace internal {
template <class T, class = void>
struct has_serializer : std::false_type {};
template <class T>
struct has_serializer<T, std::void_t<decltype(sizeof(serializer<T>))>> : std::true_type {};
} // namespace internal

/// True when serializer<T> is defined, including for every element or field type of T. Declare a
/// specialisation before anything asks this of its type: the answer is fixed at the first ask.
template <class T>
constexpr bool is_serializable_v = internal::has_serializer<T>::value;

namespace internal {

template <class T>
constexpr bool is_number_v = std::is_arithmetic_v<T> && !std::is_same_v<T, long double>;

// Numbers whose in-memory form is already the encoding, so arrays of them are copied whole.
template <class T>
constexpr bool is_bulk_number_v = is_number_v<T> && !std::is_same_v<T, bool> &&
                                  __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

template <class T, class = void>
struct has_sluice_fields : std::false_type {};
template <class T>
struct has_sluice_fields<T, std::void_t<decltype(std::declval<const T&>().sluice_fields())>>
  : std::true_type {};

template <class Tuple>
struct field_types;
template <class... Fs>
struct field_types<std::tuple<Fs...>> {
  using type = std::tuple<std::remove_cv_t<std::remove_reference_t<Fs>>...>;
};
template <class T>
using field_types_t =
  typename field_types<decltype(std::declval<const T&>().sluice_fields())>::type;

template <class T, class = void>
struct fields_serializable : std::false_type {};
template <class T>
struct fields_serializable<T, std::enable_if_t<has_sluice_fields<T>::value>>
  : std::bool_constant<is_serializable_v<field_types_t<T>>> {};

template <class T, class = void>
struct has_sluice_version : std::false_type {};
template <class T>
struct has_sluice_version<T, std::void_t<decltype(uint32_t{T::sluice_version})>>
  : std::true_type {};

template <class T, class = void>
struct has_sluice_type_name : std::false_type {};
template <class T>
struct has_sluice_type_name<T, std::void_t<decltype(std::string(T::sluice_type_name))>>
  : std::true_type {};

template <class T, class = void>
struct has_read_version : std::false_type {};
template <class T>
struct has_read_version<T, std::enable_if_t<std::is_same_v<
                             decltype(T::sluice_read_version(std::declval<byte_reader&>(),
                                                             uint32_t{})),
                             T>>> : std::true_type {};

// Duck-typed protobuf message (google::protobuf::MessageLite), so that protobuf headers stay out.
template <class T, class = void>
struct is_protobuf_message : std::false_type {};
template <class T>
struct is_protobuf_message<
  T, std::enable_if_t<
       !has_sluice_fields<T>::value && std::is_default_constructible_v<T> &&
       std::is_same_v<decltype(std::declval<const T&>().SerializeToString(
                        std::declval<std::string*>())),
                      bool> &&
       std::is_same_v<decltype(std::declval<T&>().ParseFromArray(std::declval<const void*>(), 0)),
                      bool> &&
       std::is_constructible_v<std::string, decltype(std::declval<const T&>().GetTypeName())>>>
  : std::true_type {};

template <class T, class = void>
struct has_is_initialized : std::false_type {};
template <class T>
struct has_is_initialized<T, std::void_t<decltype(bool(std::declval<const T&>().IsInitialized()))>>
  : std::true_type {};

// Whether every value of T takes at least one byte. Containers rely on it: a count larger than
// the bytes left is then malformed, so it is rejected before anything is allocated.
template <class T, class = void>
struct never_empty : std::true_type {};
template <class... Ts>
struct never_empty<std::tuple<Ts...>> : std::disjunction<never_empty<Ts>...> {};
template <class A, class B>
struct never_empty<std::pair<A, B>> : std::disjunction<never_empty<A>, never_empty<B>> {};
template <class T>
struct never_empty<T, std::enable_if_t<has_sluice_fields<T>::value>>
  : std::disjunction<has_sluice_version<T>, never_empty<field_types_t<T>>> {};

// Reads a container's element count, refusing one that the remaining bytes cannot hold.
template <class Element>
size_t read_count(byte_reader& r, size_t min_bytes_per_element = 1) {
  static_assert(never_empty<Element>::value,
                "container elements must encode to at least one byte (not tuple<> or a struct "
                "without fields)");
  uint64_t n = r.read_varint();
  if (n > r.remaining() / min_bytes_per_element)
    r.fail("count " + std::to_string(n) + " cannot fit in the " + std::to_string(r.remaining()) +
           " bytes left");
  return static_cast<size_t>(n);
}

template <class... Ts>
std::string type_name_list() {
  std::string out;
  ((out += (out.empty() ? "" : ",") + serializer<Ts>::type_name()), ...);
  return out;
}

template <class... Ts>
std::string tuple_type_names(const std::tuple<Ts...>*) {
  return type_name_list<Ts...>();
}

template <size_t Size>
using uint_of_size = std::conditional_t<
  Size == 1, uint8_t,
  std::conditional_t<Size == 2, uint16_t, std::conditional_t<Size == 4, uint32_t, uint64_t>>>;

inline void write_fixed(byte_writer& w, uint8_t v) { w.write_u8(v); }
inline void write_fixed(byte_writer& w, uint16_t v) { w.write_u16(v); }
inline void write_fixed(byte_writer& w, uint32_t v) { w.write_u32(v); }
inline void write_fixed(byte_writer& w, uint64_t v) { w.write_u64(v); }
inline uint8_t read_fixed(byte_reader& r, uint8_t) { return r.read_u8(); }
inline uint16_t read_fixed(byte_reader& r, uint16_t) { return r.read_u16(); }
inline uint32_t read_fixed(byte_reader& r, uint32_t) { return r.read_u32(); }
inline uint64_t read_fixed(byte_reader& r, uint64_t) { return r.read_u64(); }

} // namespace internal

/// Numbers: fixed-width little-endian; bool is one byte, 0 or 1. Type names are "bool", "char",
/// "int8" ... "int64", "uint8" ... "uint64" (by width, so `long` and `long long` agree), "float"
/// and "double". long double is not supported: its layout differs between platforms.
template <class T>
struct serializer<T, std::enable_if_t<internal::is_number_v<T>>> {
  static_assert(!std::is_floating_point_v<T> ||
                  (std::numeric_limits<T>::is_iec559 && (sizeof(T) == 4 || sizeof(T) == 8)),
                "float and double must be IEEE 754 binary32 and binary64");
  using bits = internal::uint_of_size<sizeof(T)>;
  static constexpr uint32_t version = 1;
  static std::string type_name() {
    if constexpr (std::is_same_v<T, bool>)
      return "bool";
    else if constexpr (std::is_same_v<T, char>)
      return "char";
    else if constexpr (std::is_floating_point_v<T>)
      return sizeof(T) == 4 ? "float" : "double";
    else
      return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(8 * sizeof(T));
  }
  static void write(byte_writer& w, const T& v) {
    bits b;
    std::memcpy(&b, &v, sizeof b);
    if constexpr (std::is_same_v<T, bool>)
      b = v ? 1 : 0; // one canonical byte, whatever the in-memory form of true
    internal::write_fixed(w, b);
  }
  [[nodiscard]] static T read(byte_reader& r) {
    bits b = internal::read_fixed(r, bits{});
    if constexpr (std::is_same_v<T, bool>) {
      if (b > 1)
        r.fail("invalid bool byte " + std::to_string(b));
      return b == 1;
    } else {
      T v;
      std::memcpy(&v, &b, sizeof v);
      return v;
    }
  }
};

/// Enums: as their underlying type, named "enum<int32>" and so on. Values are not range-checked.
template <class T>
struct serializer<T, std::enable_if_t<std::is_enum_v<T>>> {
  using underlying = serializer<std::underlying_type_t<T>>;
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "enum<" + underlying::type_name() + ">"; }
  static void write(byte_writer& w, const T& v) {
    underlying::write(w, static_cast<std::underlying_type_t<T>>(v));
  }
  [[nodiscard]] static T read(byte_reader& r) { return static_cast<T>(underlying::read(r)); }
};

/// Strings: varint length, then the bytes. Named "string".
template <>
struct serializer<std::string> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "string"; }
  static void write(byte_writer& w, const std::string& v) {
    w.write_varint(v.size());
    w.write_bytes(v.data(), v.size());
  }
  [[nodiscard]] static std::string read(byte_reader& r) {
    return std::string(r.read_view(internal::read_count<char>(r)));
  }
};

/// Vectors: varint count, then the elements. Vectors of numbers other than bool (so also byte
/// vectors) are copied whole, with the same bytes as element by element.
template <class T, class A>
struct serializer<std::vector<T, A>, std::enable_if_t<is_serializable_v<T>>> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "vector<" + serializer<T>::type_name() + ">"; }
  static void write(byte_writer& w, const std::vector<T, A>& v) {
    w.write_varint(v.size());
    if constexpr (internal::is_bulk_number_v<T>)
      w.write_bytes(v.data(), v.size() * sizeof(T));
    else
      for (const auto& e : v)
        serializer<T>::write(w, e);
  }
  [[nodiscard]] static std::vector<T, A> read(byte_reader& r) {
    std::vector<T, A> v;
    if constexpr (internal::is_bulk_number_v<T>) {
      v.resize(internal::read_count<T>(r, sizeof(T)));
      r.read_bytes(v.data(), v.size() * sizeof(T));
    } else {
      auto n = internal::read_count<T>(r);
      v.reserve(n);
      for (size_t i = 0; i < n; ++i)
        v.push_back(serializer<T>::read(r));
    }
    return v;
  }
};

/// Pairs: first, then second. Named "pair<A,B>".
template <class A, class B>
struct serializer<std::pair<A, B>, std::enable_if_t<is_serializable_v<A> && is_serializable_v<B>>> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "pair<" + internal::type_name_list<A, B>() + ">"; }
  static void write(byte_writer& w, const std::pair<A, B>& v) {
    serializer<A>::write(w, v.first);
    serializer<B>::write(w, v.second);
  }
  [[nodiscard]] static std::pair<A, B> read(byte_reader& r) {
    A first = serializer<A>::read(r);
    B second = serializer<B>::read(r);
    return {std::move(first), std::move(second)};
  }
};

/// Variants: the alternative's index as a varint, then its value. Named
/// "variant<A,B,...>".
template <class... Ts>
struct serializer<std::variant<Ts...>, std::enable_if_t<(is_serializable_v<Ts> && ...)>> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "variant<" + internal::type_name_list<Ts...>() + ">"; }
  static void write(byte_writer& w, const std::variant<Ts...>& v) {
    w.write_varint(v.index());
    write_alternative(w, v, std::index_sequence_for<Ts...>{});
  }
  [[nodiscard]] static std::variant<Ts...> read(byte_reader& r) {
    auto index = r.read_varint();
    if (index >= sizeof...(Ts))
      r.fail(type_name() + " alternative " + std::to_string(index) + " does not exist");
    return read_alternative(r, static_cast<size_t>(index), std::index_sequence_for<Ts...>{});
  }

private:
  template <size_t... I>
  static void write_alternative(byte_writer& w, const std::variant<Ts...>& v,
                                std::index_sequence<I...>) {
    ((v.index() == I ? serializer<std::variant_alternative_t<I, std::variant<Ts...>>>::write(
                         w, std::get<I>(v))
                     : void()),
     ...);
  }
  template <size_t... I>
  static std::variant<Ts...> read_alternative(byte_reader& r, size_t index,
                                              std::index_sequence<I...>) {
    std::optional<std::variant<Ts...>> out;
    ((index == I ? void(out.emplace(std::in_place_index<I>,
                                    serializer<std::variant_alternative_t<I, std::variant<Ts...>>>::read(r)))
                 : void()),
     ...);
    return std::move(*out);
  }
};

/// Tuples: the elements in order. Named "tuple<A,B,...>".
template <class... Ts>
struct serializer<std::tuple<Ts...>, std::enable_if_t<(is_serializable_v<Ts> && ...)>> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "tuple<" + internal::type_name_list<Ts...>() + ">"; }
  static void write(byte_writer& w, const std::tuple<Ts...>& v) {
    std::apply([&w](const auto&... e) { (serializer<Ts>::write(w, e), ...); }, v);
  }
  [[nodiscard]] static std::tuple<Ts...> read([[maybe_unused]] byte_reader& r) {
    // A braced initializer list evaluates its elements left to right, so fields are read in order.
    return std::tuple<Ts...>{serializer<Ts>::read(r)...};
  }
};

/// Optionals: a byte, 0 (empty) or 1 (then the value). Named "optional<T>".
template <class T>
struct serializer<std::optional<T>, std::enable_if_t<is_serializable_v<T>>> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "optional<" + serializer<T>::type_name() + ">"; }
  static void write(byte_writer& w, const std::optional<T>& v) {
    w.write_u8(v ? 1 : 0);
    if (v)
      serializer<T>::write(w, *v);
  }
  [[nodiscard]] static std::optional<T> read(byte_reader& r) {
    auto flag = r.read_u8();
    if (flag > 1)
      r.fail("invalid optional flag " + std::to_string(flag));
    if (flag == 0)
      return std::nullopt;
    return serializer<T>::read(r);
  }
};

namespace internal {
// Ordered containers must arrive in strictly increasing key order, so that each value has one
// accepted encoding and duplicate keys cannot hide in the input.
template <class Container, class... Args>
void append_in_order(byte_reader& r, Container& c, Args&&... args) {
  const auto old_size = c.size();
  auto it = c.emplace_hint(c.end(), std::forward<Args>(args)...);
  if (c.size() == old_size || std::next(it) != c.end())
    r.fail("keys are not in strictly increasing order");
}

// Maps: varint count, then each key and its value in iteration order.
template <class Map, class K, class V, bool Ordered>
struct map_serializer {
  static constexpr uint32_t version = 1;
  static void write(byte_writer& w, const Map& m) {
    w.write_varint(m.size());
    for (const auto& [k, v] : m) {
      serializer<K>::write(w, k);
      serializer<V>::write(w, v);
    }
  }
  [[nodiscard]] static Map read(byte_reader& r) {
    Map m;
    auto n = read_count<std::pair<K, V>>(r);
    if constexpr (!Ordered)
      m.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      K k = serializer<K>::read(r);
      V v = serializer<V>::read(r);
      if constexpr (Ordered)
        append_in_order(r, m, std::move(k), std::move(v));
      else if (!m.emplace(std::move(k), std::move(v)).second)
        r.fail("duplicate key");
    }
    return m;
  }
};
} // namespace internal

/// Ordered maps: varint count, then keys and values in key order. Named "map<K,V>".
template <class K, class V, class C, class A>
struct serializer<std::map<K, V, C, A>,
                  std::enable_if_t<is_serializable_v<K> && is_serializable_v<V>>>
  : internal::map_serializer<std::map<K, V, C, A>, K, V, true> {
  static std::string type_name() { return "map<" + internal::type_name_list<K, V>() + ">"; }
};

/// Unordered maps: varint count, then keys and values in iteration order, which is NOT
/// deterministic: equal maps may encode differently, so never use one in a key. Named
/// "unordered_map<K,V>".
template <class K, class V, class H, class E, class A>
struct serializer<std::unordered_map<K, V, H, E, A>,
                  std::enable_if_t<is_serializable_v<K> && is_serializable_v<V>>>
  : internal::map_serializer<std::unordered_map<K, V, H, E, A>, K, V, false> {
  static std::string type_name() {
    return "unordered_map<" + internal::type_name_list<K, V>() + ">";
  }
};

/// Ordered sets: varint count, then the elements in order. Named "set<T>".
template <class T, class C, class A>
struct serializer<std::set<T, C, A>, std::enable_if_t<is_serializable_v<T>>> {
  using set_type = std::set<T, C, A>;
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "set<" + serializer<T>::type_name() + ">"; }
  static void write(byte_writer& w, const set_type& s) {
    w.write_varint(s.size());
    for (const auto& e : s)
      serializer<T>::write(w, e);
  }
  [[nodiscard]] static set_type read(byte_reader& r) {
    set_type s;
    auto n = internal::read_count<T>(r);
    for (size_t i = 0; i < n; ++i)
      internal::append_in_order(r, s, serializer<T>::read(r));
    return s;
  }
};

/// Protobuf messages (any type with `bool SerializeToString(std::string*) const`,
/// `bool ParseFromArray(const void*, int)` and `GetTypeName()`): varint length, then the message
/// bytes. Named "protobuf:" + the message's full type name.
template <class T>
struct serializer<T, std::enable_if_t<internal::is_protobuf_message<T>::value>> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "protobuf:" + std::string(T().GetTypeName()); }
  static void write(byte_writer& w, const T& v) {
    // Real protobuf throws or aborts, rather than return false, when asked to serialize a
    // message with required fields unset; ask first.
    bool complete = true;
    if constexpr (internal::has_is_initialized<T>::value)
      complete = v.IsInitialized();
    std::string bytes;
    if (!complete || !v.SerializeToString(&bytes))
      throw serialization_error("cannot serialize protobuf message " +
                                std::string(v.GetTypeName()) + " (required fields missing?)");
    w.write_varint(bytes.size());
    w.write_bytes(bytes.data(), bytes.size());
  }
  [[nodiscard]] static T read(byte_reader& r) {
    auto bytes = r.read_view(internal::read_count<char>(r));
    if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
      r.fail("protobuf message of " + std::to_string(bytes.size()) + " bytes is over 2 GiB");
    T v;
    if (!v.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      r.fail("cannot parse protobuf message " + std::string(v.GetTypeName()));
    return v;
  }
};

/// User structs that declare their fields with SLUICE_SERIALIZABLE: the fields in order. A struct
/// may declare `static constexpr uint32_t sluice_version = N;`, which is then written first as a
/// varint; reading a newer version throws, and reading an older one calls
/// `static T sluice_read_version(byte_reader&, uint32_t stored_version)` if T has it and throws
/// otherwise. Named T::sluice_type_name if declared, else "struct{" + field type names + "}".
/// T must be default-constructible.
template <class T>
struct serializer<T, std::enable_if_t<internal::fields_serializable<T>::value>> {
  using fields = internal::field_types_t<T>;
  static constexpr bool versioned = internal::has_sluice_version<T>::value;
  static constexpr uint32_t version = [] {
    if constexpr (versioned)
      return uint32_t{T::sluice_version};
    else
      return uint32_t{1};
  }();
  static std::string type_name() {
    if constexpr (internal::has_sluice_type_name<T>::value)
      return std::string(T::sluice_type_name);
    else
      return "struct{" + internal::tuple_type_names(static_cast<fields*>(nullptr)) + "}";
  }
  static void write(byte_writer& w, const T& v) {
    if constexpr (versioned)
      w.write_varint(version);
    // Write through the references in sluice_fields(), not a copy of the fields.
    std::apply(
      [&w](const auto&... f) {
        (serializer<std::remove_cv_t<std::remove_reference_t<decltype(f)>>>::write(w, f), ...);
      },
      v.sluice_fields());
  }
  [[nodiscard]] static T read(byte_reader& r) {
    static_assert(std::is_default_constructible_v<T>,
                  "SLUICE_SERIALIZABLE types must be default-constructible");
    if constexpr (versioned) {
      uint64_t stored = r.read_varint();
      if (stored > version)
        r.fail(type_name() + " version " + std::to_string(stored) +
               " was written by a newer version of the program (this build reads up to " +
               std::to_string(version) + ")");
      if (stored != version) {
        if constexpr (internal::has_read_version<T>::value)
          return T::sluice_read_version(r, static_cast<uint32_t>(stored));
        else
          r.fail(type_name() + " version " + std::to_string(stored) + " is older than version " +
                 std::to_string(version) + " and the type has no sluice_read_version to read it");
      }
    }
    T value{};
    value.sluice_fields() = serializer<fields>::read(r);
    return value;
  }
};

/// Appends the encoding of `v` to `out`; if encoding throws, `out` is left as it was.
template <class T>
void serialize_into(std::string& out, const T& v) {
  static_assert(is_serializable_v<T>, "no serializer<T> for this type or one of its parts");
  const auto old_size = out.size();
  byte_writer w(out);
  try {
    serializer<T>::write(w, v);
  } catch (...) {
    out.resize(old_size);
    throw;
  }
}

/// The encoding of `v`.
template <class T>
[[nodiscard]] std::string serialize(const T& v) {
  std::string out;
  serialize_into(out, v);
  return out;
}

/// Decodes exactly one T from all of `bytes`; throws serialization_error if they are malformed or
/// if bytes remain after the value.
template <class T>
[[nodiscard]] T deserialize(std::string_view bytes) {
  static_assert(is_serializable_v<T>, "no serializer<T> for this type or one of its parts");
  byte_reader r(bytes);
  T v = serializer<T>::read(r);
  if (!r.at_end())
    r.fail(std::to_string(r.remaining()) + " trailing bytes after " + serializer<T>::type_name());
  return v;
}

} // namespace sluice::state

/// Inside a struct body, lists the fields that serializer<T> writes, in this order, e.g.
/// `SLUICE_SERIALIZABLE(id, name, scores)`. Adding, removing or reordering fields changes the
/// encoding: declare `sluice_version` and `sluice_read_version` before doing so to stored types.
#define SLUICE_SERIALIZABLE(...)                                                                   \
  auto sluice_fields() { return std::tie(__VA_ARGS__); }                                           \
  auto sluice_fields() const { return std::tie(__VA_ARGS__); }
