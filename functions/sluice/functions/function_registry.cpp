#include "sluice/functions/function_registry.hpp"

#include <caf/sec.hpp>

#include <set>

namespace sluice::functions {

namespace {
caf::error invalid(std::string what) {
  return caf::make_error(caf::sec::invalid_argument, std::move(what));
}
} // namespace

caf::error function_registry::check_values(const function_type& type,
                                           const std::vector<value_spec>& values) {
  std::set<std::string> names;
  for (const auto& v : values) {
    if (v.name.empty())
      return invalid("function " + type.to_string() + ": a persisted value needs a name");
    if (!names.insert(v.name).second)
      return invalid("function " + type.to_string() + ": persisted value '" + v.name +
                     "' is declared twice");
    if (v.type_name.empty())
      return invalid("function " + type.to_string() + ": persisted value '" + v.name +
                     "' needs a typename");
    if (v.expiration.ttl.count() < 0)
      return invalid("function " + type.to_string() + ": persisted value '" + v.name +
                     "' has a negative TTL");
  }
  return {};
}

caf::error function_registry::add(function_binding b) {
  if (b.type.ns.empty() || b.type.name.empty())
    return invalid("a function type needs a namespace and a name, got '" + b.type.to_string() +
                   "'");
  if (!b.handler && !b.async)
    return invalid("function " + b.type.to_string() + " is bound to no function");
  if (auto err = check_values(b.type, b.values))
    return err;
  if (exact_.count(b.type) != 0)
    return invalid("function " + b.type.to_string() + " is bound twice");
  auto key = b.type;
  exact_.emplace(std::move(key), std::move(b));
  return {};
}

caf::error function_registry::bind(function_type type, handler fn, std::vector<value_spec> values) {
  function_binding b;
  b.type = std::move(type);
  b.handler = std::move(fn);
  b.values = std::move(values);
  return add(std::move(b));
}

caf::error function_registry::bind_async(function_type type, std::shared_ptr<async_function> fn,
                                         std::vector<value_spec> values,
                                         uint32_t max_batch_requests) {
  function_binding b;
  b.type = std::move(type);
  b.async = std::move(fn);
  b.values = std::move(values);
  b.max_batch_requests = max_batch_requests;
  return add(std::move(b));
}

caf::error function_registry::bind_namespace(std::string ns, namespace_provider provider) {
  if (ns.empty())
    return invalid("a namespace binding needs a namespace");
  if (!provider)
    return invalid("namespace " + ns + " is bound to no provider");
  if (namespaces_.count(ns) != 0)
    return invalid("namespace " + ns + " is bound twice");
  namespaces_.emplace(std::move(ns), std::move(provider));
  return {};
}

caf::expected<function_binding> function_registry::resolve(const function_type& type) const {
  if (auto it = exact_.find(type); it != exact_.end())
    return it->second;
  auto unbound = [&] {
    return caf::make_error(caf::sec::invalid_argument,
                           "no function is bound to type " + type.to_string());
  };
  auto it = namespaces_.find(type.ns);
  if (it == namespaces_.end())
    return unbound();
  std::optional<function_binding> b;
  try {
    b = it->second(type);
  } catch (const std::exception& e) {
    return invalid("the provider of namespace " + type.ns + " failed for type " + type.to_string() +
                   ": " + e.what());
  }
  if (!b)
    return unbound();
  // A provider's answer is held to the same rules as bind()'s arguments.
  b->type = type;
  if (!b->handler && !b->async)
    return invalid("the provider of namespace " + type.ns + " gave no function for type " +
                   type.to_string());
  if (auto err = check_values(type, b->values))
    return err;
  return std::move(*b);
}

std::string error_text(const caf::error& err) {
  if (!err)
    return "no error";
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return caf::to_string(err);
}

} // namespace sluice::functions
