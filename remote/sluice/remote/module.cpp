#include "sluice/remote/module.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/invocation_codec.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>

namespace sluice::remote {

namespace {

constexpr std::string_view kind_endpoint_v2 = "io.statefun.endpoints.v2/http";
constexpr std::string_view kind_endpoint_v1 = "io.statefun.endpoints.v1/http";
constexpr std::string_view kind_kafka_ingress = "io.statefun.kafka.v1/ingress";
constexpr std::string_view kind_kafka_egress = "io.statefun.kafka.v1/egress";
constexpr std::string_view kind_http_ingress = "sluice.io/v1/http-ingress";
constexpr std::string_view kind_file_egress = "sluice.io/v1/file-egress";
constexpr std::string_view kind_dead_letters = "sluice.io/v1/dead-letter-egress";

// Thrown inside the parser only; parse_module turns it into a caf::error.
struct spec_error {
  YAML::Mark mark;
  std::string what;
};

class module_parser {
public:
  explicit module_parser(std::string_view source)
      : source_(source) {}

  std::string where(const YAML::Mark& m) const {
    if (m.is_null())
      return source_;
    return source_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }

  [[noreturn]] static void fail(const YAML::Node& at, std::string what) {
    throw spec_error{at.Mark(), std::move(what)};
  }

  static void expect_map(const YAML::Node& n, const std::string& what) {
    if (!n.IsMap())
      fail(n, what + " must be a mapping");
  }

  // Rejects keys not in `known`: a typo must not silently drop a setting.
  static void check_keys(const YAML::Node& map, const std::string& what,
                         std::initializer_list<std::string_view> known) {
    for (const auto& kv : map) {
      auto key = kv.first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (auto k : known)
          list += (list.empty() ? "" : ", ") + std::string{k};
        fail(kv.first, "unknown field '" + key + "' in " + what + " (known: " + list + ")");
      }
    }
  }

  static YAML::Node require(const YAML::Node& map, const char* key, const std::string& what) {
    auto n = map[key];
    if (!n || n.IsNull())
      fail(map, "missing field '" + std::string{key} + "' in " + what);
    return n;
  }

  static std::string scalar(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar())
      fail(n, what + " must be a scalar");
    return n.Scalar();
  }

  static std::string non_empty(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    if (s.empty())
      fail(n, what + " must not be empty");
    return s;
  }

  static uint64_t unsigned_int(const YAML::Node& n, const std::string& what, uint64_t min,
                               uint64_t max) {
    auto s = scalar(n, what);
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || v < min || v > max)
      fail(n, what + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                  "], not '" + s + "'");
    return v;
  }

  static std::chrono::milliseconds duration(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    auto d = parse_duration(s);
    if (!d)
      fail(n, "bad duration '" + s + "' for " + what + " (expected e.g. 500ms, 10s, 2m, 1h)");
    return *d;
  }

  static io_identifier identifier(const YAML::Node& n, const std::string& what) {
    auto s = non_empty(n, what);
    auto t = functions::function_type::parse(s);
    if (!t)
      fail(n, "bad " + what + " '" + s + "' (expected namespace/name)");
    return io_identifier{t->ns, t->name};
  }

  static functions::function_type function_type(const YAML::Node& n, const std::string& what) {
    auto s = non_empty(n, what);
    auto t = functions::function_type::parse(s);
    if (!t)
      fail(n, "bad function type '" + s + "' in " + what + " (expected namespace/name)");
    return *t;
  }

  static std::string type_name(const YAML::Node& n, const std::string& what) {
    auto s = non_empty(n, what);
    if (!is_valid_type_name(s))
      fail(n, "bad typename '" + s + "' for " + what + " (expected namespace/name)");
    return s;
  }

  // Kafka properties: a list of single-entry maps, or one map.
  static kafka_properties properties(const YAML::Node& n, const std::string& what) {
    kafka_properties out;
    auto add_map = [&](const YAML::Node& m) {
      for (const auto& kv : m)
        out.emplace_back(scalar(kv.first, what + " key"), scalar(kv.second, what + " value"));
    };
    if (n.IsMap()) {
      add_map(n);
    } else if (n.IsSequence()) {
      for (const auto& item : n) {
        expect_map(item, "each entry of " + what);
        add_map(item);
      }
    } else {
      fail(n, what + " must be a list of key: value entries");
    }
    return out;
  }

  void parse_document(const YAML::Node& doc, module& out) {
    if (doc.IsNull())
      return;
    expect_map(doc, "a module document");
    if (doc["version"] && !doc["kind"])
      fail(doc, "the legacy 'version:' module format is not supported; write "
                "one 'kind:' + 'spec:' document per component, separated by "
                "'---'");
    auto kind = non_empty(require(doc, "kind", "a module document"), "kind");
    check_keys(doc, "a module document", {"kind", "spec"});
    auto spec = require(doc, "spec", "a '" + kind + "' document");
    expect_map(spec, "the spec of '" + kind + "'");
    auto at = where(doc.Mark());
    if (kind == kind_endpoint_v2 || kind == kind_endpoint_v1)
      out.endpoints.push_back(endpoint(spec, kind, at));
    else if (kind == kind_kafka_ingress)
      out.kafka_ingresses.push_back(kafka_ingress(spec, at));
    else if (kind == kind_kafka_egress)
      out.kafka_egresses.push_back(kafka_egress(spec, at));
    else if (kind == kind_http_ingress)
      out.http_ingresses.push_back(http_ingress(spec, at));
    else if (kind == kind_file_egress)
      out.file_egresses.push_back(file_egress(spec, at));
    else if (kind == kind_dead_letters) {
      if (out.dead_letters)
        fail(doc,
             "a second dead-letter egress (the first is at " + out.dead_letters->declared_at + ")");
      out.dead_letters = dead_letters(spec, at);
    } else if (kind.rfind("io.statefun.kinesis.", 0) == 0)
      fail(doc["kind"], "kind '" + kind +
                            "' is not supported by sluice "
                            "(Kinesis ingress and egress are not implemented)");
    else
      fail(doc["kind"],
           "unknown kind '" + kind + "' (known: " + std::string{kind_endpoint_v2} + ", " +
               std::string{kind_endpoint_v1} + ", " + std::string{kind_kafka_ingress} + ", " +
               std::string{kind_kafka_egress} + ", " + std::string{kind_http_ingress} + ", " +
               std::string{kind_file_egress} + ", " + std::string{kind_dead_letters} + ")");
  }

  static void timeouts(const YAML::Node& n, transport_spec& t, const std::string& what) {
    expect_map(n, what);
    check_keys(n, what, {"call", "connect", "read", "write"});
    if (auto v = n["call"])
      t.call = duration(v, what + ".call");
    if (auto v = n["connect"])
      t.connect = duration(v, what + ".connect");
    // read and write are per-operation timeouts of the OkHttp transport;
    // sluice bounds each attempt by the remaining call time instead.
    if (auto v = n["read"])
      duration(v, what + ".read");
    if (auto v = n["write"])
      duration(v, what + ".write");
  }

  static transport_spec transport(const YAML::Node& n) {
    const std::string what = "transport";
    expect_map(n, what);
    for (auto tls : {"trust_cacerts", "client_cert", "client_key", "client_key_password"})
      if (n[tls])
        fail(n[tls], std::string{"transport."} + tls +
                         " is not supported: sluice calls functions over "
                         "plain http only");
    check_keys(n, what,
               {"type", "call", "connect", "pool_ttl", "pool_size", "payload_max_bytes", "timeouts",
                "max_attempts", "initial_backoff", "max_backoff"});
    transport_spec t;
    if (auto v = n["type"]) {
      t.type = non_empty(v, "transport.type");
      if (t.type != "io.statefun.transports.v1/async" &&
          t.type != "io.statefun.transports.v1/okhttp")
        fail(v, "unknown transport type '" + t.type +
                    "' (known: io.statefun.transports.v1/async, "
                    "io.statefun.transports.v1/okhttp)");
    }
    if (auto v = n["timeouts"])
      timeouts(v, t, "transport.timeouts");
    if (auto v = n["call"])
      t.call = duration(v, "transport.call");
    if (auto v = n["connect"])
      t.connect = duration(v, "transport.connect");
    if (auto v = n["pool_ttl"])
      t.pool_ttl = duration(v, "transport.pool_ttl");
    if (auto v = n["pool_size"])
      t.pool_size = static_cast<uint32_t>(unsigned_int(v, "transport.pool_size", 1, 1u << 20));
    if (auto v = n["payload_max_bytes"])
      t.payload_max_bytes = unsigned_int(v, "transport.payload_max_bytes", 1, uint64_t{1} << 40);
    if (auto v = n["max_attempts"])
      t.max_attempts =
          static_cast<uint32_t>(unsigned_int(v, "transport.max_attempts", 0, 1u << 30));
    if (auto v = n["initial_backoff"])
      t.initial_backoff = duration(v, "transport.initial_backoff");
    if (auto v = n["max_backoff"])
      t.max_backoff = duration(v, "transport.max_backoff");
    if (t.call.count() <= 0)
      fail(n, "transport.call must be positive");
    if (t.connect.count() <= 0)
      fail(n, "transport.connect must be positive");
    if (t.max_backoff < t.initial_backoff)
      fail(n, "transport.max_backoff is smaller than transport.initial_backoff");
    return t;
  }

  http_endpoint_spec endpoint(const YAML::Node& spec, const std::string& kind,
                              const std::string& at) {
    const std::string what = "the spec of '" + kind + "'";
    if (kind == kind_endpoint_v1)
      check_keys(spec, what, {"functions", "urlPathTemplate", "maxNumBatchRequests", "timeouts"});
    else
      check_keys(spec, what, {"functions", "urlPathTemplate", "maxNumBatchRequests", "transport"});
    http_endpoint_spec ep;
    ep.declared_at = at;
    auto fn_node = require(spec, "functions", what);
    auto fns = non_empty(fn_node, "functions");
    auto slash = fns.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == fns.size() ||
        fns.find('/', slash + 1) != std::string::npos)
      fail(fn_node, "bad function type '" + fns +
                        "' in functions (expected namespace/name or "
                        "namespace/*)");
    ep.functions.ns = fns.substr(0, slash);
    auto name = fns.substr(slash + 1);
    if (name != "*") {
      if (name.find('*') != std::string::npos)
        fail(fn_node, "bad function type '" + fns +
                          "' in functions (only a whole-name '*' wildcard is "
                          "allowed)");
      ep.functions.name = name;
    }
    if (ep.functions.ns.find('*') != std::string::npos)
      fail(fn_node, "bad function type '" + fns + "' in functions (no wildcard in the namespace)");
    auto url_node = require(spec, "urlPathTemplate", what);
    ep.url_path_template = non_empty(url_node, "urlPathTemplate");
    auto url = parse_url(ep.url_path_template);
    if (!url)
      fail(url_node, describe(url.error()));
    ep.url = std::move(*url);
    if (auto v = spec["maxNumBatchRequests"])
      ep.max_num_batch_requests =
          static_cast<uint32_t>(unsigned_int(v, "maxNumBatchRequests", 1, 1u << 24));
    if (auto v = spec["transport"])
      ep.transport = transport(v);
    if (auto v = spec["timeouts"])
      timeouts(v, ep.transport, "timeouts");
    return ep;
  }

  static kafka_startup_position startup(const YAML::Node& n) {
    const std::string what = "startupPosition";
    expect_map(n, what);
    check_keys(n, what, {"type", "offsets", "date"});
    kafka_startup_position p;
    auto type_node = require(n, "type", what);
    auto type = non_empty(type_node, "startupPosition.type");
    if (type == "group-offsets") {
      p.type = kafka_startup_position::kind::group_offsets;
    } else if (type == "earliest") {
      p.type = kafka_startup_position::kind::earliest;
    } else if (type == "latest") {
      p.type = kafka_startup_position::kind::latest;
    } else if (type == "specific-offsets") {
      p.type = kafka_startup_position::kind::specific_offsets;
      auto offsets = require(n, "offsets", "a specific-offsets startupPosition");
      for (auto& [key, value] : properties(offsets, "startupPosition.offsets")) {
        auto slash = key.rfind('/');
        int64_t off = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), off);
        if (slash == std::string::npos || slash == 0 || slash + 1 == key.size() ||
            ec != std::errc{} || end != value.data() + value.size() || off < 0)
          fail(offsets, "bad specific offset '" + key + ": " + value +
                            "' (expected topic/partition: offset)");
        p.offsets[key] = off;
      }
    } else if (type == "date") {
      p.type = kafka_startup_position::kind::date;
      p.date = non_empty(require(n, "date", "a date startupPosition"), "startupPosition.date");
    } else {
      fail(type_node, "unknown startupPosition type '" + type +
                          "' (known: group-offsets, earliest, latest, "
                          "specific-offsets, date)");
    }
    return p;
  }

  kafka_ingress_spec kafka_ingress(const YAML::Node& spec, const std::string& at) {
    const std::string what = "the spec of '" + std::string{kind_kafka_ingress} + "'";
    check_keys(spec, what,
               {"id", "address", "consumerGroupId", "startupPosition", "autoOffsetResetPosition",
                "topics", "properties"});
    kafka_ingress_spec k;
    k.declared_at = at;
    k.id = identifier(require(spec, "id", what), "ingress id");
    k.address = non_empty(require(spec, "address", what), "address");
    k.consumer_group_id = non_empty(require(spec, "consumerGroupId", what), "consumerGroupId");
    if (auto v = spec["startupPosition"])
      k.startup_position = startup(v);
    if (auto v = spec["autoOffsetResetPosition"]) {
      k.auto_offset_reset_position = non_empty(v, "autoOffsetResetPosition");
      if (k.auto_offset_reset_position != "earliest" && k.auto_offset_reset_position != "latest")
        fail(v, "autoOffsetResetPosition must be earliest or latest, not '" +
                    k.auto_offset_reset_position + "'");
    }
    auto topics = require(spec, "topics", what);
    if (!topics.IsSequence() || topics.size() == 0)
      fail(topics, "topics must be a non-empty list");
    for (const auto& t : topics) {
      expect_map(t, "each entry of topics");
      check_keys(t, "a topic", {"topic", "valueType", "targets"});
      kafka_topic_spec ts;
      ts.topic = non_empty(require(t, "topic", "a topic"), "topic");
      ts.value_type = type_name(require(t, "valueType", "a topic"), "valueType");
      auto targets = require(t, "targets", "a topic");
      if (!targets.IsSequence() || targets.size() == 0)
        fail(targets, "targets must be a non-empty list of function types");
      for (const auto& target : targets)
        ts.targets.push_back(function_type(target, "targets"));
      k.topics.push_back(std::move(ts));
    }
    if (auto v = spec["properties"])
      k.properties = properties(v, "properties");
    return k;
  }

  kafka_egress_spec kafka_egress(const YAML::Node& spec, const std::string& at) {
    const std::string what = "the spec of '" + std::string{kind_kafka_egress} + "'";
    check_keys(spec, what, {"id", "address", "deliverySemantic", "properties"});
    kafka_egress_spec k;
    k.declared_at = at;
    k.id = identifier(require(spec, "id", what), "egress id");
    k.address = non_empty(require(spec, "address", what), "address");
    if (auto d = spec["deliverySemantic"]) {
      expect_map(d, "deliverySemantic");
      check_keys(d, "deliverySemantic", {"type", "transactionTimeout"});
      auto type_node = require(d, "type", "deliverySemantic");
      auto type = non_empty(type_node, "deliverySemantic.type");
      if (type == "at-least-once")
        k.delivery = kafka_egress_spec::semantic::at_least_once;
      else if (type == "exactly-once")
        k.delivery = kafka_egress_spec::semantic::exactly_once;
      else if (type == "none")
        k.delivery = kafka_egress_spec::semantic::none;
      else
        fail(type_node, "unknown deliverySemantic type '" + type +
                            "' (known: at-least-once, exactly-once, none)");
      if (auto t = d["transactionTimeout"])
        k.transaction_timeout = duration(t, "deliverySemantic.transactionTimeout");
    }
    if (auto v = spec["properties"])
      k.properties = properties(v, "properties");
    return k;
  }

  http_ingress_spec http_ingress(const YAML::Node& spec, const std::string& at) {
    const std::string what = "the spec of '" + std::string{kind_http_ingress} + "'";
    check_keys(spec, what, {"id", "bindAddress", "port", "valueType"});
    http_ingress_spec h;
    h.declared_at = at;
    h.id = identifier(require(spec, "id", what), "ingress id");
    if (auto v = spec["bindAddress"])
      h.bind_address = non_empty(v, "bindAddress");
    if (auto v = spec["port"])
      h.port = static_cast<uint16_t>(unsigned_int(v, "port", 0, 65535));
    if (auto v = spec["valueType"])
      h.value_type = type_name(v, "valueType");
    return h;
  }

  file_egress_spec file_egress(const YAML::Node& spec, const std::string& at) {
    const std::string what = "the spec of '" + std::string{kind_file_egress} + "'";
    check_keys(spec, what, {"id", "path", "format"});
    file_egress_spec f;
    f.declared_at = at;
    f.id = identifier(require(spec, "id", what), "egress id");
    f.path = non_empty(require(spec, "path", what), "path");
    if (auto v = spec["format"]) {
      auto fmt = non_empty(v, "format");
      if (fmt == "raw")
        f.line_format = file_egress_spec::format::raw;
      else if (fmt == "json")
        f.line_format = file_egress_spec::format::json;
      else
        fail(v, "unknown format '" + fmt + "' (known: raw, json)");
    }
    return f;
  }

  dead_letter_egress_spec dead_letters(const YAML::Node& spec, const std::string& at) {
    const std::string what = "the spec of '" + std::string{kind_dead_letters} + "'";
    check_keys(spec, what, {"path"});
    dead_letter_egress_spec d;
    d.declared_at = at;
    d.path = non_empty(require(spec, "path", what), "path");
    return d;
  }

private:
  std::string source_;
};

} // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
      s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
      s.remove_suffix(1);
    return s;
  };
  text = trim(text);
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])))
    ++digits;
  if (digits == 0)
    return std::nullopt;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  if (ec != std::errc{} || end != text.data() + digits)
    return std::nullopt;
  std::string unit{trim(text.substr(digits))};
  for (auto& c : unit)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int64_t factor = 0;
  if (unit.empty() || unit == "ms" || unit == "milli" || unit == "millis" ||
      unit == "millisecond" || unit == "milliseconds")
    factor = 1;
  else if (unit == "s" || unit == "sec" || unit == "secs" || unit == "second" || unit == "seconds")
    factor = 1000;
  else if (unit == "m" || unit == "min" || unit == "minute" || unit == "minutes")
    factor = 60 * 1000;
  else if (unit == "h" || unit == "hour" || unit == "hours")
    factor = 3600 * 1000;
  else if (unit == "d" || unit == "day" || unit == "days")
    factor = 24 * 3600 * 1000;
  else
    return std::nullopt;
  if (value > std::numeric_limits<int64_t>::max() / factor)
    return std::nullopt;
  return std::chrono::milliseconds{value * factor};
}

const http_endpoint_spec* module::endpoint_for(const functions::function_type& type) const {
  const http_endpoint_spec* wildcard = nullptr;
  for (const auto& ep : endpoints) {
    if (!ep.functions.matches(type))
      continue;
    if (ep.functions.name)
      return &ep;
    if (!wildcard)
      wildcard = &ep;
  }
  return wildcard;
}

caf::error merge_module(module& into, module more) {
  auto dup = [](const std::string& what, const std::string& first, const std::string& second) {
    return make_error(remote_errc::invalid_module,
                      second + ": " + what + " is already declared at " + first);
  };
  for (auto& ep : more.endpoints) {
    for (const auto& have : into.endpoints)
      if (have.functions.ns == ep.functions.ns && have.functions.name == ep.functions.name)
        return dup("an endpoint for " + ep.functions.to_string(), have.declared_at, ep.declared_at);
    into.endpoints.push_back(std::move(ep));
  }
  // Ingress and egress ids share one namespace per direction.
  std::map<io_identifier, std::string> ingress_ids;
  std::map<io_identifier, std::string> egress_ids;
  for (const auto& k : into.kafka_ingresses)
    ingress_ids.emplace(k.id, k.declared_at);
  for (const auto& h : into.http_ingresses)
    ingress_ids.emplace(h.id, h.declared_at);
  for (const auto& k : into.kafka_egresses)
    egress_ids.emplace(k.id, k.declared_at);
  for (const auto& f : into.file_egresses)
    egress_ids.emplace(f.id, f.declared_at);
  auto claim = [&](std::map<io_identifier, std::string>& ids, const io_identifier& id,
                   const std::string& at, const char* what) -> caf::error {
    auto [i, added] = ids.emplace(id, at);
    if (!added)
      return dup(std::string{what} + " " + id.to_string(), i->second, at);
    return caf::none;
  };
  for (auto& k : more.kafka_ingresses) {
    if (auto err = claim(ingress_ids, k.id, k.declared_at, "ingress"))
      return err;
    into.kafka_ingresses.push_back(std::move(k));
  }
  for (auto& h : more.http_ingresses) {
    if (auto err = claim(ingress_ids, h.id, h.declared_at, "ingress"))
      return err;
    into.http_ingresses.push_back(std::move(h));
  }
  for (auto& k : more.kafka_egresses) {
    if (auto err = claim(egress_ids, k.id, k.declared_at, "egress"))
      return err;
    into.kafka_egresses.push_back(std::move(k));
  }
  for (auto& f : more.file_egresses) {
    if (auto err = claim(egress_ids, f.id, f.declared_at, "egress"))
      return err;
    into.file_egresses.push_back(std::move(f));
  }
  if (more.dead_letters) {
    if (into.dead_letters)
      return dup("a dead-letter egress", into.dead_letters->declared_at,
                 more.dead_letters->declared_at);
    into.dead_letters = std::move(more.dead_letters);
  }
  return caf::none;
}

caf::expected<module> parse_module(std::string_view yaml, std::string_view source) {
  module_parser parser{source};
  module out;
  try {
    auto docs = YAML::LoadAll(std::string{yaml});
    for (const auto& doc : docs) {
      module one;
      parser.parse_document(doc, one);
      if (auto err = merge_module(out, std::move(one)))
        return err;
    }
  } catch (const spec_error& e) {
    return make_error(remote_errc::invalid_module, parser.where(e.mark) + ": " + e.what);
  } catch (const YAML::Exception& e) {
    return make_error(remote_errc::invalid_module,
                      parser.where(e.mark) + ": invalid YAML: " + e.msg);
  }
  return out;
}

caf::expected<module> load_module(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(remote_errc::invalid_module, path + ": cannot open the module file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return make_error(remote_errc::invalid_module, path + ": cannot read the module file");
  return parse_module(text.str(), path);
}

} // namespace sluice::remote
