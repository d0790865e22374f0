#pragma once

#include "sluice/functions/message.hpp"
#include "sluice/functions/serialization.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

/// The records of a functions job: envelopes carry messages to functions
/// and to egresses; delayed messages wait in keyed state; dead letters say
/// why a message could not be handled.
namespace sluice::functions {

/// A record on the dispatcher's input and output: a message to a function
/// (keyed by its target address) or to an egress.
struct envelope {
  enum class kind : uint8_t { to_function = 0, to_egress = 1 };

  kind destination = kind::to_function;
  address target;                ///< to_function
  std::optional<address> caller; ///< to_function: the sending function, if any
  egress_id egress;              ///< to_egress
  typed_value payload;
  /// The message's event time (ms), if its source had one; outgoing
  /// messages inherit the event time of the message that sent them.
  std::optional<int64_t> event_time;

  /// A message for the function at `target`.
  [[nodiscard]] static envelope to_function(address target, typed_value payload,
                                            std::optional<address> caller = std::nullopt,
                                            std::optional<int64_t> event_time = std::nullopt) {
    envelope e;
    e.destination = kind::to_function;
    e.target = std::move(target);
    e.caller = std::move(caller);
    e.payload = std::move(payload);
    e.event_time = event_time;
    return e;
  }
  /// A message for egress `id`.
  [[nodiscard]] static envelope to_egress(egress_id id, typed_value payload,
                                          std::optional<int64_t> event_time = std::nullopt) {
    envelope e;
    e.destination = kind::to_egress;
    e.egress = std::move(id);
    e.payload = std::move(payload);
    e.event_time = event_time;
    return e;
  }

  [[nodiscard]] bool is_egress() const noexcept { return destination == kind::to_egress; }
  /// The message a handler sees.
  [[nodiscard]] message to_message() const { return message{target, caller, payload, event_time}; }
  /// "-> ns/type/id" or "-> egress ns/name", with the payload's typename.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const envelope& a, const envelope& b) {
    return a.destination == b.destination && a.target == b.target && a.caller == b.caller &&
           a.egress == b.egress && a.payload == b.payload && a.event_time == b.event_time;
  }
  friend bool operator!=(const envelope& a, const envelope& b) { return !(a == b); }

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "functions.envelope";
  SLUICE_SERIALIZABLE(destination, target, caller, egress, payload, event_time)
};

/// The key selector of a dispatcher's input: an envelope's target address.
struct envelope_target {
  const address& operator()(const envelope& e) const noexcept { return e.target; }
};

/// A delayed message waiting in the keyed state of the address that sent
/// it, until its timer fires or it is cancelled.
struct delayed_message {
  address target;
  typed_value payload;
  /// When it is due: processing time, or event time when `on_event_time`.
  int64_t due = 0;
  bool on_event_time = false;
  /// Orders messages due at the same time (the order they were sent).
  uint64_t sequence = 0;
  /// The cancellation token; empty when the message cannot be cancelled.
  std::string token;
  /// The event time the message carries when delivered (on event time: the
  /// due time; else the sending message's event time, if any).
  std::optional<int64_t> event_time;

  friend bool operator==(const delayed_message& a, const delayed_message& b) {
    return a.target == b.target && a.payload == b.payload && a.due == b.due &&
           a.on_event_time == b.on_event_time && a.sequence == b.sequence && a.token == b.token &&
           a.event_time == b.event_time;
  }

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "functions.delayed_message";
  SLUICE_SERIALIZABLE(target, payload, due, on_event_time, sequence, token, event_time)
};

/// A message no function could handle, sent to the dead-letter egress: the
/// message as it was and why. Its payload type is `sluice.types/dead-letter`.
struct dead_letter {
  address target;
  std::optional<address> caller;
  typed_value payload;
  std::string reason;

  friend bool operator==(const dead_letter& a, const dead_letter& b) {
    return a.target == b.target && a.caller == b.caller && a.payload == b.payload &&
           a.reason == b.reason;
  }

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "functions.dead_letter";
  SLUICE_SERIALIZABLE(target, caller, payload, reason)
};

/// Dead letters as typed values (the sluice serializer's encoding).
template <> struct value_codec<dead_letter> {
  static constexpr std::string_view type_name = "sluice.types/dead-letter";
  static std::string encode(const dead_letter& v);
  static std::optional<dead_letter> decode(std::string_view bytes);
};

} // namespace sluice::functions
