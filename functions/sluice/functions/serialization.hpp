#pragma once

#include "sluice/functions/address.hpp"
#include "sluice/functions/async_function.hpp"
#include "sluice/functions/message.hpp"
#include "sluice/functions/typed_value.hpp"
#include "sluice/state/key_group.hpp"
#include "sluice/state/serializer.hpp"

/// How the functions' vocabulary types sit in keyed state, checkpoints and
/// records crossing processes: serializers (state/serializer.hpp) and the
/// stable key hash that places an address in a key group. Include this
/// header (or one that includes it) before asking whether a type holding an
/// address is serializable.
namespace sluice::state {

/// `namespace`, then `name`, as strings. Named "function_type".
template <> struct serializer<functions::function_type> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "function_type"; }
  static void write(byte_writer& w, const functions::function_type& v) {
    serializer<std::string>::write(w, v.ns);
    serializer<std::string>::write(w, v.name);
  }
  [[nodiscard]] static functions::function_type read(byte_reader& r) {
    functions::function_type t;
    t.ns = serializer<std::string>::read(r);
    t.name = serializer<std::string>::read(r);
    return t;
  }
};

/// The function type, then the id. Named "address".
template <> struct serializer<functions::address> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "address"; }
  static void write(byte_writer& w, const functions::address& v) {
    serializer<functions::function_type>::write(w, v.type);
    serializer<std::string>::write(w, v.id);
  }
  [[nodiscard]] static functions::address read(byte_reader& r) {
    functions::address a;
    a.type = serializer<functions::function_type>::read(r);
    a.id = serializer<std::string>::read(r);
    return a;
  }
};

/// The typename, then the bytes. Named "typed_value".
template <> struct serializer<functions::typed_value> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "typed_value"; }
  static void write(byte_writer& w, const functions::typed_value& v) {
    serializer<std::string>::write(w, v.type_name);
    serializer<std::string>::write(w, v.bytes);
  }
  [[nodiscard]] static functions::typed_value read(byte_reader& r) {
    functions::typed_value v;
    v.type_name = serializer<std::string>::read(r);
    v.bytes = serializer<std::string>::read(r);
    return v;
  }
};

/// The namespace, then the name. Named "egress_id".
template <> struct serializer<functions::egress_id> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "egress_id"; }
  static void write(byte_writer& w, const functions::egress_id& v) {
    serializer<std::string>::write(w, v.ns);
    serializer<std::string>::write(w, v.name);
  }
  [[nodiscard]] static functions::egress_id read(byte_reader& r) {
    functions::egress_id e;
    e.ns = serializer<std::string>::read(r);
    e.name = serializer<std::string>::read(r);
    return e;
  }
};

/// The caller, the argument and the event time of a buffered message.
/// Named "async_invocation".
template <> struct serializer<functions::async_invocation> {
  static constexpr uint32_t version = 1;
  static std::string type_name() { return "async_invocation"; }
  static void write(byte_writer& w, const functions::async_invocation& v) {
    serializer<std::optional<functions::address>>::write(w, v.caller);
    serializer<functions::typed_value>::write(w, v.argument);
    serializer<std::optional<int64_t>>::write(w, v.event_time);
  }
  [[nodiscard]] static functions::async_invocation read(byte_reader& r) {
    functions::async_invocation v;
    v.caller = serializer<std::optional<functions::address>>::read(r);
    v.argument = serializer<functions::typed_value>::read(r);
    v.event_time = serializer<std::optional<int64_t>>::read(r);
    return v;
  }
};

/// An address hashes like Java's `Objects.hash(namespace, name, id)`, so it
/// is stable across processes and builds (it decides the key group).
template <> struct key_hash<functions::address> {
  int32_t operator()(const functions::address& a) const noexcept {
    uint32_t h = 1;
    h = 31u * h + static_cast<uint32_t>(internal::java_string_hash(a.type.ns));
    h = 31u * h + static_cast<uint32_t>(internal::java_string_hash(a.type.name));
    h = 31u * h + static_cast<uint32_t>(internal::java_string_hash(a.id));
    return static_cast<int32_t>(h);
  }
};

} // namespace sluice::state
