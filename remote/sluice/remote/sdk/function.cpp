#include "sluice/remote/sdk/function.hpp"

#include "sluice/remote/invocation_codec.hpp"

namespace sluice::remote::sdk {

storage::slot& storage::find(std::string_view name) {
  for (auto& s : slots_)
    if (s.spec->name == name)
      return s;
  throw usage_error("state '" + std::string{name} + "' is not declared");
}

const storage::slot& storage::find(std::string_view name) const {
  return const_cast<storage*>(this)->find(name);
}

std::optional<typed_value> storage::get_raw(std::string_view name) const {
  const auto& s = find(name);
  if (!s.value)
    return std::nullopt;
  if (s.value->type_name != s.spec->type_name)
    throw usage_error("state '" + s.spec->name + "' arrived as a '" + s.value->type_name +
                      "' but is declared as '" + s.spec->type_name + "'");
  return s.value;
}

void storage::set_raw(std::string_view name, typed_value v) {
  auto& s = find(name);
  if (v.type_name != s.spec->type_name)
    throw usage_error("cannot set state '" + s.spec->name + "' (declared '" + s.spec->type_name +
                      "') to a '" + v.type_name + "'");
  s.value = std::move(v);
  s.mutated = true;
}

void storage::remove(std::string_view name) {
  auto& s = find(name);
  s.value.reset();
  s.mutated = true;
}

namespace {

void check_target(const address& target) {
  if (!is_valid_address(target))
    throw usage_error("cannot send to invalid address '" + target.to_string() + "'");
}

void check_value(const typed_value& v) {
  if (!is_valid_type_name(v.type_name))
    throw usage_error("cannot send a value with typename '" + v.type_name +
                      "' (expected namespace/name)");
}

} // namespace

void context::send(address target, typed_value value) {
  check_target(target);
  check_value(value);
  effects_.messages.push_back({std::move(target), std::move(value)});
}

void context::send_after(std::chrono::milliseconds delay, address target, typed_value value,
                         std::string cancellation_token) {
  check_target(target);
  check_value(value);
  if (delay.count() < 0)
    throw usage_error("cannot delay a message by a negative duration");
  functions::delayed_invocation d;
  d.cancellation_token = std::move(cancellation_token);
  d.delay = delay;
  d.target = std::move(target);
  d.argument = std::move(value);
  effects_.delayed.push_back(std::move(d));
}

void context::cancel_delayed(std::string token) {
  if (token.empty())
    throw usage_error("a cancellation token must not be empty");
  functions::delayed_invocation d;
  d.is_cancellation = true;
  d.cancellation_token = std::move(token);
  effects_.delayed.push_back(std::move(d));
}

void context::send_egress(const egress_id& egress, typed_value value) {
  if (egress.ns.empty() || egress.name.empty())
    throw usage_error("cannot send to egress '" + egress.to_string() + "'");
  check_value(value);
  effects_.egress.push_back({egress, std::move(value)});
}

} // namespace sluice::remote::sdk
