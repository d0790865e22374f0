#include "sluice/remote/ingress/ingress_source.hpp"

#include <algorithm>
#include <stdexcept>

namespace sluice::remote::ingress {

void http_ingress_source::initialize_state(const runtime::function_initialization_context& ctx) {
  state_ = &ctx.operator_state().list_state<journal_position>("http-ingress-position");
  restored_.clear();
  if (ctx.is_restored())
    restored_ = state_->get();
}

void http_ingress_source::open(const runtime::runtime_context& ctx) {
  if (ctx.parallelism() != 1)
    throw std::runtime_error("the HTTP ingress source runs at parallelism 1, not " +
                             std::to_string(ctx.parallelism()));
  checkpointing_ = ctx.checkpointing_enabled();
  taken_.clear();
  next_ = journal_->first();
  for (auto& p : restored_)
    if (p.journal == journal_->instance())
      next_ = std::max(p.next, journal_->first());
}

runtime::source_step http_ingress_source::run(runtime::collector<functions::envelope>& out,
                                              size_t max_records) {
  batch_.clear();
  auto after = journal_->read(next_, max_records, batch_);
  if (batch_.empty())
    return runtime::source_step::wait(poll_interval_);
  for (auto& e : batch_)
    out.collect(std::move(e));
  next_ = after;
  if (!checkpointing_)
    journal_->truncate(next_);
  return runtime::source_step::more();
}

void http_ingress_source::snapshot_state(int64_t checkpoint_id, int64_t /*timestamp_ms*/) {
  if (state_ != nullptr)
    state_->update({journal_position{journal_->instance(), next_}});
  taken_[checkpoint_id] = next_;
}

void http_ingress_source::notify_checkpoint_complete(int64_t checkpoint_id) {
  // Subsuming: checkpoint n completed covers every earlier one.
  auto end = taken_.upper_bound(checkpoint_id);
  if (end == taken_.begin())
    return;
  auto covered = std::prev(end)->second;
  taken_.erase(taken_.begin(), end);
  journal_->truncate(covered);
}

} // namespace sluice::remote::ingress
