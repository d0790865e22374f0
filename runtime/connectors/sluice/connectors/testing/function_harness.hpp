#pragma once

// Test support (header-only, not part of the library): runs a source or
// sink function outside a job, opened as its operator opens it.

#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/function.hpp"
#include "sluice/state/operator_state.hpp"

#include <cstdint>
#include <utility>
#include <vector>

namespace sluice::connectors::testing {

/// A checkpointed function opened as its operator opens it, with its own
/// operator state store: subtask `subtask` of `parallelism`, restored from
/// `restore` if that is not empty.
template <class F>
struct function_harness {
  state::operator_state_store store;
  runtime::checkpoint_hooks hooks;
  runtime::runtime_context ctx;
  F fn;
  function_harness(const F& f, int32_t subtask, int32_t parallelism,
                   std::vector<state::operator_state_part> restore = {}, bool checkpointing = true)
    : ctx("kafka", subtask, parallelism, 128), fn(f) {
    hooks.restored = !restore.empty();
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    ctx.set_checkpointing_enabled(checkpointing);
    runtime::internal::open_if_rich(fn, ctx);
  }
  /// Snapshots every checkpointed part for checkpoint `id`; the parts, as a
  /// restore takes them.
  std::vector<state::operator_state_part> checkpoint(int64_t id) {
    for (auto* f : hooks.checkpointed)
      f->snapshot_state(id, 0);
    return state::operator_state_store::parse(store.snapshot(), "test");
  }
};

} // namespace sluice::connectors::testing
