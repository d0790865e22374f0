#pragma once

/// Everything a sluice program needs: the DataStream API, run on the local
/// mini-cluster by default.
#include "sluice/actors/cluster.hpp"
#include "sluice/runtime/file_sink.hpp"
#include "sluice/runtime/two_phase_commit_sink.hpp"
#include "sluice/runtime/environment.hpp"

namespace sluice {

using runtime::broadcast_process_function;
using runtime::checkpoint_listener;
using runtime::checkpointed_function;
using runtime::file_sink_options;
using runtime::two_phase_commit_sink;
using runtime::co_flat_map_function;
using runtime::co_group_function;
using runtime::co_map_function;
using runtime::co_process_function;
using runtime::collector;
using runtime::configuration;
using runtime::data_stream;
using runtime::job_result;
using runtime::job_status;
using runtime::keyed_stream;
using runtime::rich_function;
using runtime::runtime_context;
using runtime::sink_function;
using runtime::source_function;
using runtime::source_step;
using runtime::stream_environment;
using runtime::keyed_broadcast_process_function;
using runtime::keyed_co_process_function;
using runtime::keyed_process_function;
using runtime::output_tag;
using runtime::process_context;
using runtime::process_function;
using runtime::process_join_function;
using runtime::time_domain;
using runtime::watermark_strategy;
using state::aggregating_state_descriptor;
using state::list_state_descriptor;
using state::map_state_descriptor;
using state::reducing_state_descriptor;
using state::state_ttl;
using state::value_state_descriptor;

namespace internal {
/// Registers the local mini-cluster as the default executor in every
/// program that includes this header.
inline const bool local_executor_registered = [] {
  runtime::set_default_executor_factory(
    [] { return std::make_shared<actors::local_executor>(); });
  return true;
}();
} // namespace internal

} // namespace sluice
