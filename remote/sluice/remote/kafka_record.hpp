#pragma once

// The StateFun Kafka egress record (KafkaProducerRecord) as a typed value.
// Kept apart from invocation_codec.hpp so that code which needs only this
// (remote/kafka) does not pull in the invocation vocabulary. Defined in
// invocation_codec.cpp.

#include "sluice/functions/typed_value.hpp"

#include <caf/expected.hpp>

#include <string>
#include <string_view>

namespace sluice::remote {

/// The Kafka egress record typename the generic Kafka egress requires.
inline constexpr std::string_view kafka_producer_record_type =
    "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord";

/// A record for a StateFun generic Kafka egress: the typed value a function
/// sends to a Kafka egress (`KafkaProducerRecord`). An empty key means a
/// record without a key.
functions::typed_value make_kafka_record(std::string_view topic, std::string_view key,
                                         std::string_view value_bytes);

/// The fields of a Kafka egress record.
struct kafka_record {
  std::string topic;
  std::string key;
  std::string value;
};

/// Reads a typed value as a Kafka egress record; fails if the typename is
/// not `kafka_producer_record_type`, the bytes do not parse or the topic is
/// empty.
[[nodiscard]] caf::expected<kafka_record> parse_kafka_record(const functions::typed_value& value);

} // namespace sluice::remote
