#pragma once

// StateFun 3.x module files: multi-document YAML, one `kind:` + `spec:` per
// document. sluice reads the remote-function endpoints, the Kafka ingress and
// egress, and a few sluice-specific kinds (see remote/README.md).

#include "sluice/functions/address.hpp"
#include "sluice/remote/url.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::remote {

/// The functions an endpoint serves: `ns/name`, or every function of a
/// namespace (`ns/*`).
struct function_pattern {
  std::string ns;
  /// Absent for `ns/*`.
  std::optional<std::string> name;

  /// True if `type` is served by this pattern.
  bool matches(const functions::function_type& type) const {
    return type.ns == ns && (!name || *name == type.name);
  }
  /// `ns/name` or `ns/*`.
  std::string to_string() const { return ns + "/" + (name ? *name : "*"); }
};

/// How the runtime talks to an endpoint (StateFun's `transport`, plus the
/// retry settings sluice adds).
struct transport_spec {
  /// `io.statefun.transports.v1/async` (default) or `.../okhttp`; both mean
  /// the same HTTP client in sluice.
  std::string type = "io.statefun.transports.v1/async";
  /// Total time for one call, retries included.
  std::chrono::milliseconds call{std::chrono::minutes{2}};
  /// Time to open one connection.
  std::chrono::milliseconds connect{std::chrono::seconds{20}};
  /// How long an idle pooled connection is kept.
  std::chrono::milliseconds pool_ttl{std::chrono::seconds{15}};
  /// Maximum open connections to the endpoint.
  uint32_t pool_size = 1024;
  /// Largest reply body accepted.
  uint64_t payload_max_bytes = 32 * 1024 * 1024;
  /// sluice: maximum attempts per call; 0 = as many as `call` allows.
  uint32_t max_attempts = 0;
  /// sluice: first retry delay, doubled per attempt (with jitter).
  std::chrono::milliseconds initial_backoff{10};
  /// sluice: largest retry delay.
  std::chrono::milliseconds max_backoff{std::chrono::seconds{1}};
};

/// A remote-function endpoint (`io.statefun.endpoints.v2/http`).
struct http_endpoint_spec {
  function_pattern functions;
  /// The URL; its path may hold `{function.name}`.
  std::string url_path_template;
  /// The URL parsed (scheme, host, port, path template).
  http_url url;
  /// Largest number of invocations per batch for one address.
  uint32_t max_num_batch_requests = 1000;
  transport_spec transport;
  /// `file:line` of the declaration, for messages.
  std::string declared_at;
};

/// An ingress or egress identifier, `namespace/name`.
struct io_identifier {
  std::string ns;
  std::string name;

  /// `namespace/name`.
  std::string to_string() const { return ns + "/" + name; }
  friend bool operator==(const io_identifier& a, const io_identifier& b) {
    return a.ns == b.ns && a.name == b.name;
  }
  friend bool operator<(const io_identifier& a, const io_identifier& b) {
    return a.ns != b.ns ? a.ns < b.ns : a.name < b.name;
  }
};

/// Client properties for Kafka, in declaration order.
using kafka_properties = std::vector<std::pair<std::string, std::string>>;

/// One topic of a Kafka ingress: its value type and the functions each
/// record goes to (the record key is the function id).
struct kafka_topic_spec {
  std::string topic;
  std::string value_type;
  std::vector<functions::function_type> targets;
};

/// Where a Kafka ingress starts reading.
struct kafka_startup_position {
  /// What kind of position.
  enum class kind : uint8_t { group_offsets, earliest, latest, specific_offsets, date };
  kind type = kind::group_offsets;
  /// For `specific_offsets`: `topic/partition` -> offset.
  std::map<std::string, int64_t> offsets;
  /// For `date`: the timestamp as written (`yyyy-MM-dd HH:mm:ss.SSS Z`).
  std::string date;
};

/// A Kafka ingress (`io.statefun.kafka.v1/ingress`).
struct kafka_ingress_spec {
  io_identifier id;
  std::string address;
  std::string consumer_group_id;
  kafka_startup_position startup_position;
  /// `earliest` or `latest` (default), when the start offset is out of range.
  std::string auto_offset_reset_position = "latest";
  std::vector<kafka_topic_spec> topics;
  kafka_properties properties;
  std::string declared_at;
};

/// A Kafka egress (`io.statefun.kafka.v1/egress`).
struct kafka_egress_spec {
  /// The delivery guarantee.
  enum class semantic : uint8_t { at_least_once, exactly_once, none };
  io_identifier id;
  std::string address;
  semantic delivery = semantic::at_least_once;
  /// For exactly-once.
  std::chrono::milliseconds transaction_timeout{std::chrono::minutes{15}};
  kafka_properties properties;
  std::string declared_at;
};

/// sluice: an HTTP ingress (`sluice.io/v1/http-ingress`). `POST`/`PUT` to
/// `/functions/<namespace>/<name>/<id>` delivers the body to that address,
/// typed by `Content-Type` (`text/plain`: a string; `application/vnd.<typename>`:
/// the bytes as that type, like the StateFun playground ingress; none:
/// `value_type`). Served by remote/ingress (ingress::config_from).
struct http_ingress_spec {
  io_identifier id;
  std::string bind_address = "127.0.0.1";
  /// 0 = pick a free port.
  uint16_t port = 0;
  std::string value_type = "io.statefun.types/string";
  std::string declared_at;
};

/// sluice: an egress that appends each record to a file
/// (`sluice.io/v1/file-egress`), one line per record.
struct file_egress_spec {
  /// How each record is written.
  enum class format : uint8_t {
    raw,  ///< a string's text, else the value bytes, and a newline
    json, ///< `{"typename":...,"value":...}` (or `"value_base64"`) per line
  };
  io_identifier id;
  std::string path;
  format line_format = format::raw;
  std::string declared_at;
};

/// sluice: where messages no function could handle go
/// (`sluice.io/v1/dead-letter-egress`): a file of JSON lines, one per dead
/// letter, with the target, caller, message and reason.
struct dead_letter_egress_spec {
  std::string path;
  std::string declared_at;
};

/// Everything one or more module files declare.
struct module {
  std::vector<http_endpoint_spec> endpoints;
  std::vector<kafka_ingress_spec> kafka_ingresses;
  std::vector<kafka_egress_spec> kafka_egresses;
  std::vector<http_ingress_spec> http_ingresses;
  std::vector<file_egress_spec> file_egresses;
  std::optional<dead_letter_egress_spec> dead_letters;

  /// The endpoint serving `type`: an exact `ns/name` endpoint beats an
  /// `ns/*` one; nullptr if none is declared (the function is not remote).
  const http_endpoint_spec* endpoint_for(const functions::function_type& type) const;
};

/// Parses module YAML; `source` names the text in errors (usually the file
/// name). Errors read `source:line:column: what was wrong`.
[[nodiscard]] caf::expected<module> parse_module(std::string_view yaml, std::string_view source);

/// Reads and parses a module file.
[[nodiscard]] caf::expected<module> load_module(const std::string& path);

/// Adds the declarations of `more` to `into`; fails on a duplicate endpoint
/// pattern or ingress/egress id.
[[nodiscard]] caf::error merge_module(module& into, module more);

/// Parses a duration as Flink writes them: an integer and an optional unit
/// (`ms`, `s`, `min`/`m`, `h`, `d` and their long forms; none = ms).
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

} // namespace sluice::remote
