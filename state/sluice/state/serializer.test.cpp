#include "sluice/state/serializer.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <limits>

using namespace sluice::state;

namespace {

std::string hex(std::string_view bytes) {
  std::string out;
  char buf[4];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, out.empty() ? "%02x" : " %02x", c);
    out += buf;
  }
  return out;
}

std::string bytes_of(std::initializer_list<unsigned> bytes) {
  std::string out;
  for (auto b : bytes)
    out.push_back(static_cast<char>(b));
  return out;
}

// Decodes and drops the value, for checks that only care whether decoding throws.
template <class T>
void decode(std::string_view bytes) {
  static_cast<void>(deserialize<T>(bytes));
}

using small_map = std::map<int8_t, int8_t>;
using small_unordered_map = std::unordered_map<int8_t, int8_t>;

template <class T>
void check_round_trip(const T& value) {
  auto bytes = serialize(value);
  CHECK(deserialize<T>(bytes) == value);
  // Decoding and re-encoding gives the same bytes: the encoding is canonical.
  CHECK(serialize(deserialize<T>(bytes)) == bytes);
}

// Every proper prefix of a valid encoding is malformed and must throw, never read past the end.
template <class T>
void check_every_prefix_throws(const T& value) {
  auto bytes = serialize(value);
  for (size_t n = 0; n < bytes.size(); ++n)
    CHECK_THROWS_AS(decode<T>(std::string_view(bytes).substr(0, n)), serialization_error);
}

enum class side : uint8_t { buy = 1, sell = 2 };
enum legacy_flags : int64_t { legacy_none = 0, legacy_big = int64_t{1} << 40 };

struct trade {
  int64_t id = 0;
  std::string symbol;
  std::vector<double> prices;
  std::optional<int32_t> venue;
  side direction = side::buy;
  SLUICE_SERIALIZABLE(id, symbol, prices, venue, direction)

  friend bool operator==(const trade& a, const trade& b) {
    return a.sluice_fields() == b.sluice_fields();
  }
};

struct named_point {
  static constexpr const char* sluice_type_name = "example.point";
  int32_t x = 0;
  int32_t y = 0;
  SLUICE_SERIALIZABLE(x, y)
};

struct plain_struct {
  int32_t x = 0;
};

// Version 1 of an account held only a balance; version 2 added the owner.
struct account_v1 {
  static constexpr uint32_t sluice_version = 1;
  int64_t balance = 0;
  SLUICE_SERIALIZABLE(balance)
};

struct account {
  static constexpr uint32_t sluice_version = 2;
  int64_t balance = 0;
  std::string owner;
  SLUICE_SERIALIZABLE(balance, owner)

  static account sluice_read_version(byte_reader& r, uint32_t stored_version) {
    if (stored_version != 1)
      r.fail("unknown account version " + std::to_string(stored_version));
    account a;
    a.balance = serializer<int64_t>::read(r);
    a.owner = "(unknown)";
    return a;
  }
  friend bool operator==(const account& a, const account& b) {
    return a.sluice_fields() == b.sluice_fields();
  }
};

struct account_without_upgrade {
  static constexpr uint32_t sluice_version = 2;
  int64_t balance = 0;
  std::string owner;
  SLUICE_SERIALIZABLE(balance, owner)
};

// Stands in for a generated protobuf message: the same three member functions, with a wire format
// of its own ("PB", one byte of id, then the text) so that the test needs no protobuf.
class fake_message {
public:
  uint8_t id = 0;
  std::string text;
  bool has_required_fields = true;

  bool SerializeToString(std::string* out) const {
    if (!has_required_fields)
      return false;
    *out = "PB";
    out->push_back(static_cast<char>(id));
    *out += text;
    return true;
  }
  bool ParseFromArray(const void* data, int size) {
    std::string_view in(static_cast<const char*>(data), static_cast<size_t>(size));
    if (in.size() < 3 || in.substr(0, 2) != "PB")
      return false;
    id = static_cast<uint8_t>(in[2]);
    text = std::string(in.substr(3));
    return true;
  }
  std::string GetTypeName() const { return "test.FakeMessage"; }

  friend bool operator==(const fake_message& a, const fake_message& b) {
    return a.id == b.id && a.text == b.text;
  }
};

// Like a generated proto2 message with a required field: real protobuf treats serializing it
// while the field is unset as a programming error, and throws or aborts instead of returning false.
class fake_message_with_required_field : public fake_message {
public:
  bool IsInitialized() const { return has_required_fields; }
  bool SerializeToString(std::string* out) const {
    if (!has_required_fields)
      throw std::logic_error("CHECK failed: IsInitialized()");
    return fake_message::SerializeToString(out);
  }
  std::string GetTypeName() const { return "test.RequiredMessage"; }
};

static_assert(is_serializable_v<int64_t>);
static_assert(is_serializable_v<std::map<std::string, std::vector<std::optional<double>>>>);
static_assert(is_serializable_v<trade>);
static_assert(is_serializable_v<fake_message>);
static_assert(is_serializable_v<std::vector<fake_message>>);
static_assert(!is_serializable_v<long double>);
static_assert(!is_serializable_v<plain_struct>);
static_assert(!is_serializable_v<std::vector<plain_struct>>);
static_assert(!is_serializable_v<std::pair<int, plain_struct>>);
static_assert(!is_serializable_v<const char*>);

} // namespace

TEST_SUITE("state.serializer") {

TEST_CASE("numbers are written as fixed-width little-endian bytes") {
  CHECK(hex(serialize(int32_t{1})) == "01 00 00 00");
  CHECK(hex(serialize(int32_t{-2})) == "fe ff ff ff");
  CHECK(hex(serialize(uint16_t{0x1234})) == "34 12");
  CHECK(hex(serialize(int8_t{-1})) == "ff");
  CHECK(hex(serialize(uint64_t{0x0102030405060708})) == "08 07 06 05 04 03 02 01");
  CHECK(hex(serialize(true)) == "01");
  CHECK(hex(serialize(false)) == "00");
  CHECK(hex(serialize('a')) == "61");
  CHECK(hex(serialize(1.0f)) == "00 00 80 3f");
  CHECK(hex(serialize(1.0)) == "00 00 00 00 00 00 f0 3f");
  CHECK(hex(serialize(side::sell)) == "02");
  CHECK(hex(serialize(legacy_big)) == "00 00 00 00 00 01 00 00");
}

TEST_CASE("strings, optionals and containers are written as varint counts then their parts") {
  CHECK(hex(serialize(std::string("ab"))) == "02 61 62");
  CHECK(hex(serialize(std::string())) == "00");
  CHECK(hex(serialize(std::string(300, 'x')).substr(0, 3)) == "ac 02 78");
  CHECK(hex(serialize(std::vector<int16_t>{1, -1})) == "02 01 00 ff ff");
  CHECK(hex(serialize(std::vector<std::string>{"a", ""})) == "02 01 61 00");
  CHECK(hex(serialize(std::optional<int32_t>{})) == "00");
  CHECK(hex(serialize(std::optional<int32_t>{5})) == "01 05 00 00 00");
  CHECK(hex(serialize(std::pair<int8_t, std::string>{1, "x"})) == "01 01 78");
  CHECK(hex(serialize(std::tuple<bool, uint8_t>{true, 7})) == "01 07");
  CHECK(hex(serialize(std::map<std::string, int8_t>{{"b", 2}, {"a", 1}})) ==
        "02 01 61 01 01 62 02");
  CHECK(hex(serialize(std::set<uint8_t>{3, 1})) == "02 01 03");
  CHECK(serialize(std::tuple<>{}).empty());
}

TEST_CASE("varints take one byte below 128 and at most ten bytes") {
  for (auto value_and_size : std::initializer_list<std::pair<uint64_t, size_t>>{
         {0, 1},
         {127, 1},
         {128, 2},
         {16383, 2},
         {16384, 3},
         {uint64_t{1} << 63, 10},
         {std::numeric_limits<uint64_t>::max(), 10}}) {
    auto [value, size] = value_and_size;
    CAPTURE(value_and_size.first);
    byte_writer w;
    w.write_varint(value);
    CHECK(w.buffer().size() == size);
    byte_reader r(w.buffer());
    CHECK(r.read_varint() == value);
    CHECK(r.at_end());
  }
  CHECK(hex(serialize(std::string(128, 'x')).substr(0, 2)) == "80 01");
}

TEST_CASE("a byte writer appends to a caller's buffer and a byte reader reads without copying") {
  std::string out = "head";
  byte_writer w(out);
  w.write_u8(1);
  w.write_u32(0x04030201);
  w.write_bytes("xyz", 3);
  CHECK(&w.buffer() == &out);
  CHECK(out == bytes_of({'h', 'e', 'a', 'd', 1, 1, 2, 3, 4, 'x', 'y', 'z'}));

  byte_reader r(out);
  CHECK(r.read_view(4) == "head");
  CHECK(r.read_u8() == 1);
  CHECK(r.read_u32() == 0x04030201);
  CHECK(r.offset() == 9);
  auto view = r.read_view(3);
  CHECK(view.data() == out.data() + 9);
  CHECK(r.remaining() == 0);
  CHECK_THROWS_AS(static_cast<void>(r.read_u8()), serialization_error);
}

TEST_CASE("every number type round-trips exactly, extremes included") {
  auto extremes = [](auto zero) {
    using T = decltype(zero);
    check_round_trip<T>(zero);
    check_round_trip<T>(std::numeric_limits<T>::min());
    check_round_trip<T>(std::numeric_limits<T>::max());
    check_round_trip<T>(std::numeric_limits<T>::lowest());
  };
  extremes(false);
  extremes(char{});
  extremes(int8_t{});
  extremes(uint8_t{});
  extremes(int16_t{});
  extremes(uint16_t{});
  extremes(int32_t{});
  extremes(uint32_t{});
  extremes(int64_t{});
  extremes(uint64_t{});
  extremes(0LL);
  extremes(0ULL);
  extremes(0.0f);
  extremes(0.0);
  check_round_trip(true);
  check_round_trip(-1.5e300);
  check_round_trip(std::numeric_limits<double>::denorm_min());
  check_round_trip(std::numeric_limits<float>::infinity());
  check_round_trip(side::sell);
  check_round_trip(legacy_big);
}

TEST_CASE("floating point round-trips bit-exactly, keeping the sign of zero and NaN payloads") {
  CHECK(std::signbit(deserialize<double>(serialize(-0.0))));
  CHECK(serialize(-0.0) != serialize(0.0));
  uint64_t nan_bits = 0x7ff8000000000abcULL;
  double nan;
  std::memcpy(&nan, &nan_bits, sizeof nan);
  double back = deserialize<double>(serialize(nan));
  uint64_t back_bits;
  std::memcpy(&back_bits, &back, sizeof back);
  CHECK(back_bits == nan_bits);
}

TEST_CASE("strings and byte vectors round-trip with embedded zeros and any byte value") {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c)
    all_bytes.push_back(static_cast<char>(c));
  check_round_trip(all_bytes);
  check_round_trip(std::string("a\0b", 3));
  check_round_trip(std::string());
  check_round_trip(std::vector<uint8_t>(all_bytes.begin(), all_bytes.end()));
  check_round_trip(std::vector<char>(all_bytes.begin(), all_bytes.end()));
  check_round_trip(std::vector<int8_t>{-128, 0, 127});
  check_round_trip(std::vector<uint8_t>{});
  // A byte vector is encoded exactly like a string with the same bytes.
  CHECK(serialize(std::vector<char>{'a', 'b'}) == serialize(std::string("ab")));
}

TEST_CASE("containers and nested combinations round-trip") {
  using entries = std::vector<std::pair<std::string, std::optional<int64_t>>>;
  check_round_trip(entries{{"a", 1}, {"", std::nullopt}, {"c", INT64_MIN}});
  check_round_trip(entries{});
  check_round_trip(std::map<std::string, std::vector<double>>{
    {"x", {1.5, -2.25}}, {"", {}}, {"z", {std::numeric_limits<double>::max()}}});
  check_round_trip(std::tuple<int32_t, std::string, bool>{-7, "seven", true});
  check_round_trip(std::tuple<>{});
  check_round_trip(std::set<std::string>{"b", "a", ""});
  // Only the value survives for unordered maps: their iteration order, and so their bytes, vary.
  std::unordered_map<std::string, int64_t> unordered{{"one", 1}, {"two", 2}, {"", 0}};
  CHECK(deserialize<decltype(unordered)>(serialize(unordered)) == unordered);
  check_round_trip(std::optional<std::vector<std::string>>{{"a", "b"}});
  check_round_trip(std::optional<std::vector<std::string>>{});
  check_round_trip(std::vector<std::vector<int32_t>>{{1, 2}, {}, {3}});
  check_round_trip(std::vector<bool>{true, false, true});
  check_round_trip(std::vector<uint64_t>{0, UINT64_MAX, 42});
  check_round_trip(std::map<int32_t, std::set<side>>{{1, {side::buy, side::sell}}, {-1, {}}});
  check_round_trip(std::pair<std::tuple<>, int8_t>{{}, 3});
}

TEST_CASE("a struct declared with SLUICE_SERIALIZABLE round-trips as its fields in order") {
  trade t{42, "ACME", {10.5, 11.0}, 7, side::sell};
  check_round_trip(t);
  check_round_trip(trade{});
  CHECK(serialize(t) == serialize(std::tuple<int64_t, std::string, std::vector<double>,
                                             std::optional<int32_t>, side>{
                          42, "ACME", {10.5, 11.0}, 7, side::sell}));
  check_round_trip(std::map<std::string, trade>{{"a", t}, {"b", trade{}}});
  auto p = deserialize<named_point>(serialize(named_point{3, -4}));
  CHECK(p.x == 3);
  CHECK(p.y == -4);
}

TEST_CASE("type names are stable and spell out nested types") {
  CHECK(serializer<bool>::type_name() == "bool");
  CHECK(serializer<char>::type_name() == "char");
  CHECK(serializer<int8_t>::type_name() == "int8");
  CHECK(serializer<uint8_t>::type_name() == "uint8");
  CHECK(serializer<int16_t>::type_name() == "int16");
  CHECK(serializer<uint32_t>::type_name() == "uint32");
  CHECK(serializer<long long>::type_name() == "int64");
  CHECK(serializer<uint64_t>::type_name() == "uint64");
  CHECK(serializer<float>::type_name() == "float");
  CHECK(serializer<double>::type_name() == "double");
  CHECK(serializer<side>::type_name() == "enum<uint8>");
  CHECK(serializer<std::pair<int64_t, std::string>>::type_name() == "pair<int64,string>");
  CHECK(serializer<std::vector<std::pair<std::string, std::optional<int64_t>>>>::type_name() ==
        "vector<pair<string,optional<int64>>>");
  CHECK(serializer<std::map<std::string, std::vector<double>>>::type_name() ==
        "map<string,vector<double>>");
  CHECK(serializer<std::tuple<int32_t, std::string, bool>>::type_name() ==
        "tuple<int32,string,bool>");
  CHECK(serializer<std::set<uint8_t>>::type_name() == "set<uint8>");
  CHECK(serializer<std::unordered_map<int32_t, bool>>::type_name() ==
        "unordered_map<int32,bool>");
  CHECK(serializer<std::tuple<>>::type_name() == "tuple<>");
  CHECK(serializer<trade>::type_name() ==
        "struct{int64,string,vector<double>,optional<int32>,enum<uint8>}");
  CHECK(serializer<named_point>::type_name() == "example.point");
  CHECK(serializer<std::vector<fake_message>>::type_name() == "vector<protobuf:test.FakeMessage>");
}

TEST_CASE("a protobuf-like message is written as its length and its own bytes") {
  fake_message m;
  m.id = 9;
  m.text = "hi";
  CHECK(serializer<fake_message>::type_name() == "protobuf:test.FakeMessage");
  CHECK(hex(serialize(m)) == "05 50 42 09 68 69");
  check_round_trip(m);
  check_round_trip(std::vector<fake_message>{m, fake_message{}});
  check_every_prefix_throws(m);
}

TEST_CASE("a protobuf-like message that does not parse throws an error naming its type") {
  auto bytes = bytes_of({3, 'X', 'Y', 0});
  CHECK_THROWS_WITH_AS(decode<fake_message>(bytes), doctest::Contains("test.FakeMessage"),
                       serialization_error);
}

TEST_CASE("a protobuf-like message that cannot be encoded throws and leaves the buffer as it was") {
  fake_message incomplete;
  incomplete.has_required_fields = false;
  std::string out = "kept";
  CHECK_THROWS_WITH_AS(serialize_into(out, std::pair<int32_t, fake_message>{1, incomplete}),
                       doctest::Contains("test.FakeMessage"), serialization_error);
  CHECK(out == "kept");
}

TEST_CASE("a protobuf-like message with required fields unset is refused before encoding") {
  fake_message_with_required_field m;
  m.id = 1;
  m.text = "t";
  check_round_trip(m);
  m.has_required_fields = false;
  CHECK_THROWS_WITH_AS(static_cast<void>(serialize(m)), doctest::Contains("test.RequiredMessage"),
                       serialization_error);
}

TEST_CASE("serialize_into appends, and values written in a row read back in a row") {
  std::string out = "k:";
  serialize_into(out, int32_t{1});
  serialize_into(out, std::string("ab"));
  CHECK(hex(out) == "6b 3a 01 00 00 00 02 61 62");
  byte_reader r(std::string_view(out).substr(2));
  CHECK(serializer<int32_t>::read(r) == 1);
  CHECK(serializer<std::string>::read(r) == "ab");
  CHECK(r.at_end());
}

TEST_CASE("truncated input throws serialization_error at every cut point") {
  check_every_prefix_throws(int64_t{-1});
  check_every_prefix_throws(std::string("hello"));
  check_every_prefix_throws(std::string(200, 'x'));
  check_every_prefix_throws(std::vector<double>{1.0, 2.0});
  check_every_prefix_throws(
    std::vector<std::pair<std::string, std::optional<int64_t>>>{{"a", 1}, {"b", std::nullopt}});
  check_every_prefix_throws(std::map<std::string, std::vector<double>>{{"k", {1.0}}, {"l", {}}});
  check_every_prefix_throws(std::tuple<int32_t, std::string, bool>{1, "s", false});
  check_every_prefix_throws(trade{1, "X", {2.0}, 3, side::sell});
  check_every_prefix_throws(account{5, "me"});
  check_every_prefix_throws(std::numeric_limits<uint64_t>::max()); // fixed width, not a varint
}

TEST_CASE("a length or count larger than the remaining bytes throws before allocating") {
  // Claims 2^60 bytes or elements, with three bytes following. A decoder that allocated for the
  // claim before checking it would fail with bad_alloc or length_error (no machine has that much
  // address space), not with serialization_error.
  auto huge = [] {
    byte_writer w;
    w.write_varint(uint64_t{1} << 60);
    w.write_bytes("abc", 3);
    return w.buffer();
  }();
  CHECK_THROWS_WITH_AS(decode<std::string>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<std::vector<uint8_t>>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<std::vector<int64_t>>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<std::vector<std::string>>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<small_unordered_map>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<small_map>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<std::set<int8_t>>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  CHECK_THROWS_WITH_AS(decode<fake_message>(huge), doctest::Contains("cannot fit"),
                       serialization_error);
  // One more than what is there is already too many.
  CHECK_THROWS_WITH_AS(decode<std::string>(bytes_of({4, 'a', 'b', 'c'})),
                       doctest::Contains("cannot fit"), serialization_error);
  // Three 8-byte elements cannot fit in the 16 bytes left.
  CHECK_THROWS_WITH_AS(decode<std::vector<double>>(std::string(1, '\3') + std::string(16, '\0')),
                       doctest::Contains("cannot fit"), serialization_error);
}

TEST_CASE("deserialize throws when bytes remain after the value") {
  auto bytes = serialize(int32_t{1}) + '\0';
  CHECK_THROWS_WITH_AS(decode<int32_t>(bytes), doctest::Contains("1 trailing bytes"),
                       serialization_error);
  CHECK_THROWS_AS(decode<std::string>(bytes_of({1, 'a', 'b'})), serialization_error);
  CHECK_THROWS_AS(decode<std::tuple<>>(bytes_of({0})), serialization_error);
}

TEST_CASE("invalid flags and non-canonical varints are rejected") {
  CHECK_THROWS_AS(decode<bool>(bytes_of({2})), serialization_error);
  CHECK_THROWS_AS(decode<std::optional<int8_t>>(bytes_of({2, 0})), serialization_error);
  // 0 written in two bytes: accepting it would give one value two encodings.
  CHECK_THROWS_AS(decode<std::string>(bytes_of({0x80, 0x00})), serialization_error);
  // A tenth byte carrying more than the 64th bit, or an eleventh byte, overflows 64 bits; the
  // lost bits would otherwise leave 0, a valid length.
  auto read_varint_of = [](const std::string& bytes) {
    byte_reader r(bytes);
    return r.read_varint();
  };
  CHECK_THROWS_WITH_AS(read_varint_of(std::string(9, '\x80') + '\x02'),
                       doctest::Contains("64 bits"), serialization_error);
  CHECK_THROWS_WITH_AS(read_varint_of(std::string(10, '\x80') + '\x01'),
                       doctest::Contains("64 bits"), serialization_error);
  CHECK_THROWS_AS(decode<std::string>(std::string(9, '\x80') + '\x02'), serialization_error);
  CHECK(read_varint_of(std::string(9, '\xff') + '\x01') == std::numeric_limits<uint64_t>::max());
}

TEST_CASE("equal maps and sets encode to the same bytes whatever their insertion order") {
  std::map<std::string, int32_t> forward, backward;
  std::set<int64_t> ascending, descending;
  for (int i = 0; i < 100; ++i) {
    forward.emplace("key" + std::to_string(i), i);
    backward.emplace("key" + std::to_string(99 - i), 99 - i);
    ascending.insert(i * 7919 % 1000);
    descending.insert((99 - i) * 7919 % 1000);
  }
  CHECK(serialize(forward) == serialize(backward));
  CHECK(serialize(ascending) == serialize(descending));
  CHECK(serialize(std::map<int8_t, int8_t>{{2, 0}, {1, 0}}) == bytes_of({2, 1, 0, 2, 0}));
}

TEST_CASE("maps and sets with keys out of order or repeated do not decode") {
  CHECK_THROWS_WITH_AS(decode<small_map>(bytes_of({2, 2, 0, 1, 0})),
                       doctest::Contains("increasing"), serialization_error);
  CHECK_THROWS_AS(decode<small_map>(bytes_of({2, 1, 0, 1, 5})),
                  serialization_error);
  CHECK_THROWS_AS(decode<std::set<int8_t>>(bytes_of({2, 1, 1})), serialization_error);
  CHECK_THROWS_AS(decode<small_unordered_map>(bytes_of({2, 1, 0, 1, 5})),
                  serialization_error);
}

TEST_CASE("a versioned struct writes its version before its fields") {
  CHECK(serializer<account>::version == 2);
  CHECK(serializer<trade>::version == 1);
  CHECK(hex(serialize(account{1, "a"})) == "02 01 00 00 00 00 00 00 00 01 61");
  check_round_trip(account{-3, "owner"});
}

TEST_CASE("a stored version newer than the compiled one throws") {
  auto bytes = serialize(account{7, "x"});
  CHECK_THROWS_WITH_AS(decode<account_v1>(bytes),
                       doctest::Contains("written by a newer version"), serialization_error);
}

TEST_CASE("an older stored version is read by sluice_read_version, or throws without it") {
  auto old_bytes = serialize(account_v1{250});
  auto upgraded = deserialize<account>(old_bytes);
  CHECK(upgraded.balance == 250);
  CHECK(upgraded.owner == "(unknown)");
  CHECK_THROWS_WITH_AS(decode<account_without_upgrade>(old_bytes),
                       doctest::Contains("no sluice_read_version"), serialization_error);
}

} // TEST_SUITE

TEST_CASE("variants round-trip by alternative index, even with one type twice") {
  using v2 = std::variant<int32_t, std::string>;
  check_round_trip(v2(int32_t{-7}));
  check_round_trip(v2(std::string("x\0y", 3)));
  using same = std::variant<int64_t, int64_t>;
  auto bytes = serialize(same(std::in_place_index<1>, 42));
  auto back = deserialize<same>(bytes);
  CHECK(back.index() == 1);
  CHECK(std::get<1>(back) == 42);
  CHECK(serializer<v2>::type_name() == "variant<int32,string>");
  // An index past the alternatives is refused.
  std::string bad = serialize(v2(int32_t{1}));
  bad[0] = 5;
  CHECK_THROWS_WITH_AS(deserialize<v2>(bad), doctest::Contains("alternative 5 does not exist"),
                       serialization_error);
}
