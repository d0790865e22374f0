#pragma once

#include "sluice/functions/dispatcher_function.hpp"
#include "sluice/functions/envelope.hpp"
#include "sluice/runtime/data_stream.hpp"

#include <memory>
#include <string>

namespace sluice::functions {

/// Runs stateful functions as a job: `ingress` (envelopes to functions) goes
/// to the dispatcher, keyed by address and parallel; what functions send to
/// each other returns to it over a feedback edge (a loop, so the job runs
/// until cancelled); the returned stream holds the egress envelopes (dead
/// letters included) for egress sinks. `uid` names the dispatcher's state.
inline runtime::data_stream<envelope>
run_functions(const runtime::data_stream<envelope>& ingress,
              std::shared_ptr<const function_registry> registry,
              dispatcher_options options = {},
              const std::string& uid = "functions-dispatcher") {
  auto dispatched = ingress.key_by(envelope_target{})
                      .process(dispatcher_function(std::move(registry), std::move(options)))
                      .name("Functions")
                      .uid(uid);
  dispatched.filter([](const envelope& e) { return !e.is_egress(); })
    .name("To Functions")
    .key_by(envelope_target{})
    .feed_back_into(dispatched);
  return dispatched.filter([](const envelope& e) { return e.is_egress(); }).name("To Egress");
}

} // namespace sluice::functions
