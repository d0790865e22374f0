#include "sluice/functions/typed_value.hpp"

#include <cstring>

namespace sluice::functions {

namespace {

// Protobuf wire tags for field 1 of each wrapper.
constexpr uint8_t tag_varint = 0x08;
constexpr uint8_t tag_fixed64 = 0x09;
constexpr uint8_t tag_bytes = 0x0a;
constexpr uint8_t tag_fixed32 = 0x0d;

template <class U>
std::string encode_fixed(uint8_t tag, U bits) {
  std::string out(1 + sizeof(U), '\0');
  out[0] = static_cast<char>(tag);
  for (size_t i = 0; i < sizeof(U); ++i)
    out[1 + i] = static_cast<char>((bits >> (8 * i)) & 0xff);
  return out;
}

// A wrapper with a default value is encoded as zero bytes by protobuf, so
// the empty message decodes as the zero value.
template <class U>
std::optional<U> decode_fixed(uint8_t tag, std::string_view bytes) {
  if (bytes.empty())
    return U{0};
  if (bytes.size() != 1 + sizeof(U) || static_cast<uint8_t>(bytes[0]) != tag)
    return std::nullopt;
  U bits = 0;
  for (size_t i = 0; i < sizeof(U); ++i)
    bits |= static_cast<U>(static_cast<uint8_t>(bytes[1 + i])) << (8 * i);
  return bits;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

std::optional<uint64_t> get_varint(std::string_view& in) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty())
      return std::nullopt;
    auto b = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0)
      return v;
  }
  return std::nullopt;
}

} // namespace

std::string value_codec<bool>::encode(bool v) {
  if (!v)
    return {};
  return std::string{static_cast<char>(tag_varint), '\x01'};
}

std::optional<bool> value_codec<bool>::decode(std::string_view bytes) {
  if (bytes.empty())
    return false;
  if (static_cast<uint8_t>(bytes[0]) != tag_varint)
    return std::nullopt;
  bytes.remove_prefix(1);
  auto v = get_varint(bytes);
  if (!v || !bytes.empty())
    return std::nullopt;
  return *v != 0;
}

std::string value_codec<int32_t>::encode(int32_t v) {
  if (v == 0)
    return {};
  return encode_fixed(tag_fixed32, static_cast<uint32_t>(v));
}

std::optional<int32_t> value_codec<int32_t>::decode(std::string_view bytes) {
  auto bits = decode_fixed<uint32_t>(tag_fixed32, bytes);
  if (!bits)
    return std::nullopt;
  return static_cast<int32_t>(*bits);
}

std::string value_codec<int64_t>::encode(int64_t v) {
  if (v == 0)
    return {};
  return encode_fixed(tag_fixed64, static_cast<uint64_t>(v));
}

std::optional<int64_t> value_codec<int64_t>::decode(std::string_view bytes) {
  auto bits = decode_fixed<uint64_t>(tag_fixed64, bytes);
  if (!bits)
    return std::nullopt;
  return static_cast<int64_t>(*bits);
}

std::string value_codec<float>::encode(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if (bits == 0)
    return {};
  return encode_fixed(tag_fixed32, bits);
}

std::optional<float> value_codec<float>::decode(std::string_view bytes) {
  auto bits = decode_fixed<uint32_t>(tag_fixed32, bytes);
  if (!bits)
    return std::nullopt;
  float v;
  std::memcpy(&v, &*bits, sizeof v);
  return v;
}

std::string value_codec<double>::encode(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if (bits == 0)
    return {};
  return encode_fixed(tag_fixed64, bits);
}

std::optional<double> value_codec<double>::decode(std::string_view bytes) {
  auto bits = decode_fixed<uint64_t>(tag_fixed64, bytes);
  if (!bits)
    return std::nullopt;
  double v;
  std::memcpy(&v, &*bits, sizeof v);
  return v;
}

std::string value_codec<std::string>::encode(std::string_view v) {
  std::string out;
  if (v.empty())
    return out;
  out.reserve(v.size() + 6);
  out.push_back(static_cast<char>(tag_bytes));
  put_varint(out, v.size());
  out.append(v);
  return out;
}

std::optional<std::string>
value_codec<std::string>::decode(std::string_view bytes) {
  if (bytes.empty())
    return std::string{};
  if (static_cast<uint8_t>(bytes[0]) != tag_bytes)
    return std::nullopt;
  bytes.remove_prefix(1);
  auto len = get_varint(bytes);
  if (!len || *len != bytes.size())
    return std::nullopt;
  return std::string{bytes};
}

} // namespace sluice::functions
