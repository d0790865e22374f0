#pragma once

#include "sluice/connectors/kafka.hpp"
#include "sluice/functions/envelope.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/runtime/data_stream.hpp"
#include "sluice/runtime/environment.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// The StateFun Kafka ingress and egress (`io.statefun.kafka.v1/ingress`,
/// `io.statefun.kafka.v1/egress`) on librdkafka, built from a parsed module.
namespace sluice::remote::kafka {

/// Settings of Kafka ingresses that module YAML does not carry.
struct ingress_options {
  /// Bound on each metadata, watermark, committed-offset and time lookup
  /// while a subtask opens; past it the subtask fails (and the job restarts
  /// as its restart strategy says).
  std::chrono::milliseconds request_timeout{10000};
  /// How long a step that found no record waits before the next.
  std::chrono::milliseconds idle_wait{10};
  /// Where records that cannot become a message go (no key, or an empty
  /// one), as `functions::dead_letter`s: the dispatcher passes egress
  /// envelopes through to the egress stream.
  functions::egress_id dead_letters{"sluice", "dead-letters"};
};

/// A Kafka ingress source: each record of a topic becomes one envelope per
/// target function type of that topic.
using kafka_ingress_source = connectors::kafka_source<functions::envelope>;

/// Parses a startup date as StateFun writes it, `yyyy-MM-dd HH:mm:ss.SSS Z`
/// (Z: `+hhmm`/`-hhmm`, or `Z`), into epoch milliseconds.
[[nodiscard]] std::optional<int64_t> parse_startup_date(std::string_view text);

/// True if `address` is a list of `host:port` (comma-separated, port
/// 1-65535, IPv6 hosts in brackets).
[[nodiscard]] bool is_valid_kafka_address(std::string_view address);

/// The source settings `spec` declares: its topics, the start position
/// (group-offsets and specific-offsets fall back to
/// `autoOffsetResetPosition`; a date starts at the first record at or after
/// it, or at the end), its properties. Fails naming the declaration for a
/// bad address, date or specific offset.
[[nodiscard]] caf::expected<connectors::kafka_source_config>
ingress_config(const kafka_ingress_spec& spec, const ingress_options& options = {});

/// What one record of `spec` becomes: to every target type of its topic, a
/// message to id = key (UTF-8) with the value as a typed value of the
/// topic's value type (bytes unchanged) and the record's timestamp as event
/// time. A record without a key (or an empty one) becomes one dead letter.
[[nodiscard]] std::vector<functions::envelope>
ingress_messages(const kafka_ingress_spec& spec, const connectors::kafka_consumed_record& record,
                 const ingress_options& options = {});

/// The source of ingress `spec` (replayable: offsets are operator state;
/// partition p of a topic is read by one subtask, see
/// connectors::kafka_partition_owner).
[[nodiscard]] caf::expected<kafka_ingress_source>
make_kafka_ingress(const kafka_ingress_spec& spec, const ingress_options& options = {});

/// Every Kafka ingress of `m` as one stream of envelopes: one source per
/// ingress (named "Kafka ingress <ns/name>", uid "kafka-ingress-<ns/name>",
/// so its offsets survive changes of the job), unioned. Fails if `m`
/// declares no Kafka ingress or one is invalid.
[[nodiscard]] caf::expected<runtime::data_stream<functions::envelope>>
add_kafka_ingresses(runtime::stream_environment& env, const module& m,
                    const ingress_options& options = {});

} // namespace sluice::remote::kafka
