#include "sluice/remote/invocation_codec.hpp"

#include "proto/egress.pb.h"
#include "proto/request_reply.pb.h"

#include <climits>
#include <unordered_map>
#include <unordered_set>

namespace sluice::remote {

namespace rr = io::statefun::sdk::reqreply;
using functions::address;
using functions::typed_value;

namespace {

// An error about the reply of the function at `target`.
caf::error bad_reply(const address& target, const std::string& what) {
  return make_error(remote_errc::malformed_response, reply_error_prefix(target) + what);
}

caf::error bad_request(const std::string& what) {
  return make_error(remote_errc::invalid_request, what);
}

void to_pb(const address& a, rr::Address* out) {
  out->set_namespace_(a.type.ns);
  out->set_type(a.type.name);
  out->set_id(a.id);
}

address from_pb(const rr::Address& a) {
  return address{functions::function_type{a.namespace_(), a.type()}, a.id()};
}

void to_pb(const typed_value& v, rr::TypedValue* out) {
  out->set_typename_(v.type_name);
  out->set_has_value(true);
  out->set_value(v.bytes);
}

typed_value from_pb(const rr::TypedValue& v) {
  return typed_value{v.typename_(), v.has_value() ? v.value() : std::string{}};
}

// Checks an address read from the wire; `what` names the field.
std::optional<std::string> check_address(const rr::Address& a, const char* what) {
  auto addr = from_pb(a);
  if (!is_valid_address(addr))
    return std::string{what} + " has an invalid address '" + addr.to_string() +
           "' (namespace, name and id must be non-empty, no '/' in "
           "namespace or name)";
  return std::nullopt;
}

std::optional<std::string> check_argument(const rr::TypedValue& v, const char* what) {
  if (!is_valid_type_name(v.typename_()))
    return std::string{what} + " has an invalid typename '" + v.typename_() +
           "' (expected namespace/name)";
  return std::nullopt;
}

functions::expiration_mode to_mode(int mode, bool& ok) {
  ok = true;
  switch (mode) {
    case rr::FromFunction::ExpirationSpec::NONE:
      return functions::expiration_mode::none;
    case rr::FromFunction::ExpirationSpec::AFTER_WRITE:
      return functions::expiration_mode::after_write;
    case rr::FromFunction::ExpirationSpec::AFTER_INVOKE:
      return functions::expiration_mode::after_invoke;
    default:
      ok = false;
      return functions::expiration_mode::none;
  }
}

rr::FromFunction::ExpirationSpec::ExpireMode to_pb(functions::expiration_mode mode) {
  switch (mode) {
    case functions::expiration_mode::after_write:
      return rr::FromFunction::ExpirationSpec::AFTER_WRITE;
    case functions::expiration_mode::after_invoke:
      return rr::FromFunction::ExpirationSpec::AFTER_INVOKE;
    case functions::expiration_mode::none:
      break;
  }
  return rr::FromFunction::ExpirationSpec::NONE;
}

caf::expected<functions::invocation_outcome>
decode_missing(const rr::FromFunction::IncompleteInvocationContext& ctx,
               const invocation_request& req) {
  functions::missing_state out;
  std::unordered_set<std::string> seen;
  for (const auto& spec : ctx.missing_values()) {
    if (spec.state_name().empty())
      return bad_reply(req.target, "a missing state spec has no name");
    if (!seen.insert(spec.state_name()).second)
      return bad_reply(req.target, "state '" + spec.state_name() + "' is listed twice as missing");
    functions::value_spec vs;
    vs.name = spec.state_name();
    // StateFun registers an empty typename as io.statefun.types/unset.
    vs.type_name = spec.type_typename().empty() ? "io.statefun.types/unset" : spec.type_typename();
    if (!is_valid_type_name(vs.type_name))
      return bad_reply(req.target, "missing state '" + vs.name + "' has an invalid typename '" +
                                       vs.type_name + "'");
    if (spec.has_expiration_spec()) {
      const auto& e = spec.expiration_spec();
      bool ok = false;
      vs.expiration.mode = to_mode(e.mode(), ok);
      if (!ok)
        return bad_reply(req.target, "missing state '" + vs.name +
                                         "' has an unknown expiration mode " +
                                         std::to_string(e.mode()));
      if (e.expire_after_millis() < 0)
        return bad_reply(req.target, "missing state '" + vs.name +
                                         "' has a negative expiration of " +
                                         std::to_string(e.expire_after_millis()) + " ms");
      vs.expiration.ttl = std::chrono::milliseconds{e.expire_after_millis()};
    }
    out.specs.push_back(std::move(vs));
  }
  if (out.specs.empty())
    return bad_reply(req.target, "an incomplete invocation context lists no missing state");
  return functions::invocation_outcome{std::move(out)};
}

caf::expected<functions::invocation_outcome>
decode_result(const rr::FromFunction::InvocationResponse& resp, const invocation_request& req) {
  functions::invocation_result out;
  std::unordered_map<std::string_view, std::string_view> registered;
  for (const auto& s : req.state)
    registered.emplace(s.name, s.type_name);
  out.mutations.reserve(resp.state_mutations_size());
  for (const auto& m : resp.state_mutations()) {
    auto i = registered.find(m.state_name());
    if (i == registered.end())
      return bad_reply(req.target,
                       "a mutation of state '" + m.state_name() + "', which is not registered");
    functions::state_mutation sm;
    sm.name = m.state_name();
    switch (m.mutation_type()) {
      case rr::FromFunction::PersistedValueMutation::DELETE:
        sm.what = functions::state_mutation::kind::remove;
        break;
      case rr::FromFunction::PersistedValueMutation::MODIFY: {
        sm.what = functions::state_mutation::kind::modify;
        if (!m.has_state_value())
          return bad_reply(req.target, "a MODIFY of state '" + sm.name + "' without a value");
        sm.value = from_pb(m.state_value());
        if (!i->second.empty() && sm.value.type_name != i->second)
          return bad_reply(req.target, "a MODIFY of state '" + sm.name + "' with typename '" +
                                           sm.value.type_name + "', but it is registered as '" +
                                           std::string{i->second} + "'");
        break;
      }
      default:
        return bad_reply(req.target, "a mutation of state '" + sm.name + "' with unknown type " +
                                         std::to_string(m.mutation_type()));
    }
    out.mutations.push_back(std::move(sm));
  }
  out.messages.reserve(resp.outgoing_messages_size());
  for (const auto& m : resp.outgoing_messages()) {
    if (!m.has_target())
      return bad_reply(req.target, "an outgoing message without a target");
    if (auto e = check_address(m.target(), "an outgoing message"))
      return bad_reply(req.target, *e);
    if (auto e = check_argument(m.argument(), "an outgoing message"))
      return bad_reply(req.target, *e);
    out.messages.push_back({from_pb(m.target()), from_pb(m.argument())});
  }
  out.delayed.reserve(resp.delayed_invocations_size());
  for (const auto& d : resp.delayed_invocations()) {
    functions::delayed_invocation dm;
    dm.is_cancellation = d.is_cancellation_request();
    dm.cancellation_token = d.cancellation_token();
    if (dm.is_cancellation) {
      if (dm.cancellation_token.empty())
        return bad_reply(req.target, "a delayed-message cancellation without a token");
      out.delayed.push_back(std::move(dm));
      continue;
    }
    if (d.delay_in_ms() < 0)
      return bad_reply(req.target, "a delayed message with a negative delay of " +
                                       std::to_string(d.delay_in_ms()) + " ms");
    if (!d.has_target())
      return bad_reply(req.target, "a delayed message without a target");
    if (auto e = check_address(d.target(), "a delayed message"))
      return bad_reply(req.target, *e);
    if (auto e = check_argument(d.argument(), "a delayed message"))
      return bad_reply(req.target, *e);
    dm.delay = std::chrono::milliseconds{d.delay_in_ms()};
    dm.target = from_pb(d.target());
    dm.argument = from_pb(d.argument());
    out.delayed.push_back(std::move(dm));
  }
  out.egress.reserve(resp.outgoing_egresses_size());
  for (const auto& e : resp.outgoing_egresses()) {
    if (e.egress_namespace().empty() || e.egress_type().empty())
      return bad_reply(req.target, "an egress message to '" + e.egress_namespace() + "/" +
                                       e.egress_type() + "' (namespace and type must be set)");
    if (auto err = check_argument(e.argument(), "an egress message"))
      return bad_reply(req.target, *err);
    out.egress.push_back(
        {functions::egress_id{e.egress_namespace(), e.egress_type()}, from_pb(e.argument())});
  }
  return functions::invocation_outcome{std::move(out)};
}

} // namespace

std::string reply_error_prefix(const address& target) {
  return "invalid reply from remote function " + target.type.to_string() + " for address " +
         target.to_string() + ": ";
}

bool is_valid_type_name(std::string_view name) {
  auto slash = name.rfind('/');
  return slash != std::string_view::npos && slash != 0 && slash + 1 != name.size();
}

bool is_valid_address(const address& addr) {
  return !addr.type.ns.empty() && !addr.type.name.empty() && !addr.id.empty() &&
         addr.type.ns.find('/') == std::string::npos &&
         addr.type.name.find('/') == std::string::npos;
}

caf::expected<std::string> encode_request(const invocation_request& req) {
  if (!is_valid_address(req.target))
    return bad_request("cannot invoke invalid address '" + req.target.to_string() + "'");
  if (req.invocations.empty())
    return bad_request("cannot invoke " + req.target.to_string() + " with an empty batch");
  rr::ToFunction to;
  auto* batch = to.mutable_invocation();
  to_pb(req.target, batch->mutable_target());
  batch->mutable_state()->Reserve(static_cast<int>(req.state.size()));
  for (const auto& s : req.state) {
    auto* pv = batch->add_state();
    pv->set_state_name(s.name);
    if (s.bytes)
      to_pb(typed_value{s.type_name, *s.bytes}, pv->mutable_state_value());
  }
  batch->mutable_invocations()->Reserve(static_cast<int>(req.invocations.size()));
  for (const auto& inv : req.invocations) {
    auto* pi = batch->add_invocations();
    if (inv.caller)
      to_pb(*inv.caller, pi->mutable_caller());
    to_pb(inv.argument, pi->mutable_argument());
  }
  return to.SerializeAsString();
}

caf::expected<functions::invocation_outcome> decode_response(std::string_view bytes,
                                                             const invocation_request& req) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    return bad_reply(req.target,
                     "a reply of " + std::to_string(bytes.size()) + " bytes is too large to parse");
  rr::FromFunction from;
  if (!from.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad_reply(req.target, "the " + std::to_string(bytes.size()) +
                                     " bytes of the reply are not a "
                                     "FromFunction message");
  switch (from.response_case()) {
    case rr::FromFunction::kInvocationResult:
      return decode_result(from.invocation_result(), req);
    case rr::FromFunction::kIncompleteInvocationContext:
      return decode_missing(from.incomplete_invocation_context(), req);
    default:
      return functions::invocation_outcome{functions::invocation_result{}};
  }
}

caf::expected<decoded_request> decode_request(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    return bad_request("a request of " + std::to_string(bytes.size()) +
                       " bytes is too large to parse");
  rr::ToFunction to;
  if (!to.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return bad_request("the " + std::to_string(bytes.size()) +
                       " bytes of the request are not a ToFunction message");
  if (!to.has_invocation())
    return bad_request("the request carries no invocation batch");
  const auto& batch = to.invocation();
  if (!batch.has_target())
    return bad_request("the invocation batch has no target address");
  decoded_request out;
  out.target = from_pb(batch.target());
  if (!is_valid_address(out.target))
    return bad_request("the invocation batch has an invalid target address '" +
                       out.target.to_string() + "'");
  out.state.reserve(batch.state_size());
  for (const auto& s : batch.state()) {
    received_state rs;
    rs.name = s.state_name();
    if (s.has_state_value() && s.state_value().has_value())
      rs.value = from_pb(s.state_value());
    out.state.push_back(std::move(rs));
  }
  out.invocations.reserve(batch.invocations_size());
  for (const auto& inv : batch.invocations()) {
    functions::invocation fi;
    if (inv.has_caller()) {
      fi.caller = from_pb(inv.caller());
      if (!is_valid_address(*fi.caller))
        return bad_request("an invocation of " + out.target.to_string() +
                           " has an invalid caller address '" + fi.caller->to_string() + "'");
    }
    fi.argument = from_pb(inv.argument());
    out.invocations.push_back(std::move(fi));
  }
  return out;
}

std::string encode_response(const functions::invocation_outcome& outcome) {
  rr::FromFunction from;
  if (auto* missing = std::get_if<functions::missing_state>(&outcome)) {
    auto* ctx = from.mutable_incomplete_invocation_context();
    for (const auto& spec : missing->specs) {
      auto* pv = ctx->add_missing_values();
      pv->set_state_name(spec.name);
      pv->set_type_typename(spec.type_name);
      // As the official SDKs: no expiration spec for values that never
      // expire.
      if (spec.expiration.mode != functions::expiration_mode::none) {
        auto* e = pv->mutable_expiration_spec();
        e->set_mode(to_pb(spec.expiration.mode));
        e->set_expire_after_millis(spec.expiration.ttl.count());
      }
    }
    return from.SerializeAsString();
  }
  const auto& result = std::get<functions::invocation_result>(outcome);
  auto* resp = from.mutable_invocation_result();
  for (const auto& m : result.mutations) {
    auto* pm = resp->add_state_mutations();
    pm->set_state_name(m.name);
    if (m.what == functions::state_mutation::kind::modify) {
      pm->set_mutation_type(rr::FromFunction::PersistedValueMutation::MODIFY);
      to_pb(m.value, pm->mutable_state_value());
    } else {
      pm->set_mutation_type(rr::FromFunction::PersistedValueMutation::DELETE);
    }
  }
  for (const auto& m : result.messages) {
    auto* pm = resp->add_outgoing_messages();
    to_pb(m.target, pm->mutable_target());
    to_pb(m.argument, pm->mutable_argument());
  }
  for (const auto& d : result.delayed) {
    auto* pd = resp->add_delayed_invocations();
    pd->set_is_cancellation_request(d.is_cancellation);
    pd->set_cancellation_token(d.cancellation_token);
    if (d.is_cancellation)
      continue;
    pd->set_delay_in_ms(d.delay.count());
    to_pb(d.target, pd->mutable_target());
    to_pb(d.argument, pd->mutable_argument());
  }
  for (const auto& e : result.egress) {
    auto* pe = resp->add_outgoing_egresses();
    pe->set_egress_namespace(e.egress.ns);
    pe->set_egress_type(e.egress.name);
    to_pb(e.argument, pe->mutable_argument());
  }
  return from.SerializeAsString();
}

typed_value make_kafka_record(std::string_view topic, std::string_view key,
                              std::string_view value_bytes) {
  io::statefun::sdk::egress::KafkaProducerRecord rec;
  rec.set_topic(std::string{topic});
  rec.set_key(std::string{key});
  rec.set_value_bytes(std::string{value_bytes});
  return typed_value{std::string{kafka_producer_record_type}, rec.SerializeAsString()};
}

caf::expected<kafka_record> parse_kafka_record(const typed_value& value) {
  if (value.type_name != kafka_producer_record_type)
    return make_error(remote_errc::malformed_response,
                      "a Kafka egress record must have typename '" +
                          std::string{kafka_producer_record_type} + "', not '" + value.type_name +
                          "'");
  io::statefun::sdk::egress::KafkaProducerRecord rec;
  if (value.bytes.size() > static_cast<size_t>(INT_MAX) ||
      !rec.ParseFromArray(value.bytes.data(), static_cast<int>(value.bytes.size())))
    return make_error(remote_errc::malformed_response,
                      "the bytes of a Kafka egress record do not parse");
  if (rec.topic().empty())
    return make_error(remote_errc::malformed_response, "a Kafka egress record without a topic");
  return kafka_record{rec.topic(), rec.key(), rec.value_bytes()};
}

} // namespace sluice::remote
