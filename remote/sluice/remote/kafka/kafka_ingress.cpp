#include "sluice/remote/kafka/kafka_ingress.hpp"

#include "sluice/remote/errors.hpp"

#include <charconv>
#include <exception>
#include <utility>

namespace sluice::remote::kafka {

namespace {

/// Reads exactly `n` digits at `text[pos]` as an int; advances `pos`.
std::optional<int> digits(std::string_view text, size_t& pos, size_t n) {
  if (pos + n > text.size())
    return std::nullopt;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

bool expect(std::string_view text, size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c)
    return false;
  ++pos;
  return true;
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil).
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

caf::error bad_spec(const kafka_ingress_spec& spec, const std::string& what) {
  return make_error(remote_errc::invalid_module,
                    spec.declared_at + ": Kafka ingress " + spec.id.to_string() + ": " + what);
}

} // namespace

std::optional<int64_t> parse_startup_date(std::string_view text) {
  size_t pos = 0;
  auto year = digits(text, pos, 4);
  if (!year || !expect(text, pos, '-'))
    return std::nullopt;
  auto month = digits(text, pos, 2);
  if (!month || !expect(text, pos, '-'))
    return std::nullopt;
  auto day = digits(text, pos, 2);
  if (!day || !expect(text, pos, ' '))
    return std::nullopt;
  auto hour = digits(text, pos, 2);
  if (!hour || !expect(text, pos, ':'))
    return std::nullopt;
  auto minute = digits(text, pos, 2);
  if (!minute || !expect(text, pos, ':'))
    return std::nullopt;
  auto second = digits(text, pos, 2);
  if (!second || !expect(text, pos, '.'))
    return std::nullopt;
  auto millis = digits(text, pos, 3);
  if (!millis || !expect(text, pos, ' '))
    return std::nullopt;
  static constexpr int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*month < 1 || *month > 12 || *day < 1 ||
      *day > month_days[*month - 1] + (*month == 2 && is_leap(*year) ? 1 : 0) || *hour > 23 ||
      *minute > 59 || *second > 59)
    return std::nullopt;
  int offset_minutes = 0;
  if (pos < text.size() && text[pos] == 'Z') {
    ++pos;
  } else {
    if (pos >= text.size() || (text[pos] != '+' && text[pos] != '-'))
      return std::nullopt;
    int sign = text[pos++] == '-' ? -1 : 1;
    auto oh = digits(text, pos, 2);
    if (!oh)
      return std::nullopt;
    (void)expect(text, pos, ':'); // +hh:mm is accepted as well as +hhmm
    auto om = digits(text, pos, 2);
    if (!om || *oh > 23 || *om > 59)
      return std::nullopt;
    offset_minutes = sign * (*oh * 60 + *om);
  }
  if (pos != text.size())
    return std::nullopt;
  int64_t days = days_from_civil(*year, *month, *day);
  int64_t seconds = days * 86400 + *hour * 3600 + *minute * 60 + *second - offset_minutes * 60;
  return seconds * 1000 + *millis;
}

bool is_valid_kafka_address(std::string_view address) {
  if (address.empty())
    return false;
  size_t start = 0;
  for (;;) {
    auto end = address.find(',', start);
    auto part = address.substr(start, end == std::string_view::npos ? address.npos : end - start);
    auto colon = part.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == part.size())
      return false;
    auto host = part.substr(0, colon);
    if (host.front() == '[' ? host.back() != ']' : host.find_first_of(":/ ") != host.npos)
      return false;
    auto port_text = part.substr(colon + 1);
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || p != port_text.data() + port_text.size() || port == 0 ||
        port > 65535)
      return false;
    if (end == std::string_view::npos)
      return true;
    start = end + 1;
  }
}

caf::expected<connectors::kafka_source_config> ingress_config(const kafka_ingress_spec& spec,
                                                              const ingress_options& options) {
  using connectors::kafka_starting_offsets;
  if (!is_valid_kafka_address(spec.address))
    return bad_spec(spec, "address '" + spec.address +
                              "' is not a list of host:port (e.g. kafka:9092,kafka2:9092)");
  if (spec.topics.empty())
    return bad_spec(spec, "no topics");
  connectors::kafka_source_config c;
  c.bootstrap_servers = spec.address;
  for (auto& t : spec.topics) {
    if (t.topic.empty())
      return bad_spec(spec, "a topic without a name");
    if (t.targets.empty())
      return bad_spec(spec, "topic '" + t.topic + "' has no targets");
    c.topics.push_back(t.topic);
  }
  c.group_id = spec.consumer_group_id;
  c.fallback_offsets = spec.auto_offset_reset_position == "earliest"
                         ? kafka_starting_offsets::earliest
                         : kafka_starting_offsets::latest;
  using kind = kafka_startup_position::kind;
  switch (spec.startup_position.type) {
    case kind::earliest:
      c.starting_offsets = kafka_starting_offsets::earliest;
      break;
    case kind::latest:
      c.starting_offsets = kafka_starting_offsets::latest;
      break;
    case kind::group_offsets:
      if (spec.consumer_group_id.empty())
        return bad_spec(spec, "a group-offsets startupPosition needs a consumerGroupId");
      c.starting_offsets = kafka_starting_offsets::committed;
      break;
    case kind::specific_offsets:
      c.starting_offsets = kafka_starting_offsets::specific;
      for (auto& [key, offset] : spec.startup_position.offsets) {
        auto slash = key.rfind('/');
        int32_t partition = -1;
        if (slash != std::string::npos && slash > 0) {
          auto [p, ec] = std::from_chars(key.data() + slash + 1, key.data() + key.size(),
                                         partition);
          if (ec != std::errc{} || p != key.data() + key.size())
            partition = -1;
        }
        if (partition < 0 || offset < 0)
          return bad_spec(spec, "bad specific offset '" + key + ": " + std::to_string(offset) +
                                  "' (expected topic/partition: offset >= 0)");
        c.specific_offsets[{key.substr(0, slash), partition}] = offset;
      }
      break;
    case kind::date: {
      auto ms = parse_startup_date(spec.startup_position.date);
      if (!ms)
        return bad_spec(spec, "startupPosition date '" + spec.startup_position.date +
                                "' is not 'yyyy-MM-dd HH:mm:ss.SSS Z' (e.g. "
                                "2020-02-01 04:15:00.00 +0000 with 3 fraction digits)");
      c.starting_offsets = kafka_starting_offsets::timestamp;
      c.starting_timestamp_ms = *ms;
      break;
    }
  }
  for (auto& [k, v] : spec.properties)
    c.properties[k] = v;
  c.request_timeout = options.request_timeout;
  c.idle_wait = options.idle_wait;
  return c;
}

std::vector<functions::envelope> ingress_messages(const kafka_ingress_spec& spec,
                                                  const connectors::kafka_consumed_record& record,
                                                  const ingress_options& options) {
  std::vector<functions::envelope> out;
  const kafka_topic_spec* topic = nullptr;
  for (auto& t : spec.topics)
    if (t.topic == record.topic)
      topic = &t;
  if (topic == nullptr)
    return out; // the source reads only the declared topics
  functions::typed_value value{topic->value_type, std::string(record.value)};
  if (!record.key || record.key->empty()) {
    functions::dead_letter d;
    d.target = functions::address{topic->targets.front(), ""};
    d.payload = std::move(value);
    d.reason = "Kafka ingress " + spec.id.to_string() + ": the record at " + topic->topic + "/" +
               std::to_string(record.partition) + "@" + std::to_string(record.offset) +
               (record.key ? " has an empty key" : " has no key") +
               "; the key is the id of the function it goes to";
    out.push_back(functions::envelope::to_egress(options.dead_letters, functions::make_typed(d),
                                                 record.timestamp_ms));
    return out;
  }
  out.reserve(topic->targets.size());
  for (auto& type : topic->targets)
    out.push_back(functions::envelope::to_function(functions::address{type, std::string(*record.key)},
                                                   value, std::nullopt, record.timestamp_ms));
  return out;
}

caf::expected<kafka_ingress_source> make_kafka_ingress(const kafka_ingress_spec& spec,
                                                       const ingress_options& options) {
  auto config = ingress_config(spec, options);
  if (!config)
    return std::move(config.error());
  connectors::kafka_record_reader<functions::envelope> reader =
    [spec, options](const connectors::kafka_consumed_record& r,
                    runtime::collector<functions::envelope>& out) {
      for (auto& e : ingress_messages(spec, r, options))
        out.collect(std::move(e));
    };
  try {
    return kafka_ingress_source(std::move(*config), std::move(reader));
  } catch (const std::exception& e) {
    return bad_spec(spec, e.what());
  }
}

caf::expected<runtime::data_stream<functions::envelope>>
add_kafka_ingresses(runtime::stream_environment& env, const module& m,
                    const ingress_options& options) {
  if (m.kafka_ingresses.empty())
    return make_error(remote_errc::invalid_module, "the module declares no Kafka ingress");
  std::optional<runtime::data_stream<functions::envelope>> all;
  for (auto& spec : m.kafka_ingresses) {
    auto source = make_kafka_ingress(spec, options);
    if (!source)
      return std::move(source.error());
    auto id = spec.id.to_string();
    auto stream = env.add_source(std::move(*source), "Kafka ingress " + id);
    stream.uid("kafka-ingress-" + id);
    all = all ? all->union_with(stream) : stream;
  }
  return std::move(*all);
}

} // namespace sluice::remote::kafka
