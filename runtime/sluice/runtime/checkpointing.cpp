#include "sluice/runtime/checkpointing.hpp"

#include <stdexcept>

namespace sluice::runtime {

namespace {
void require(bool ok, const char* key, long long value, const char* rule) {
  if (!ok)
    throw std::invalid_argument(std::string("invalid checkpoint setting ") + key + " = " +
                                std::to_string(value) + ": " + rule);
}
} // namespace

void validate(const checkpoint_settings& s) {
  require(s.interval.count() >= 0, "execution.checkpointing.interval", s.interval.count(),
          "must be >= 0 ms (0 = off)");
  require(s.timeout.count() > 0, "execution.checkpointing.timeout", s.timeout.count(),
          "must be > 0 ms");
  require(s.min_pause.count() >= 0, "execution.checkpointing.min-pause", s.min_pause.count(),
          "must be >= 0 ms");
  require(s.max_concurrent >= 1, "execution.checkpointing.max-concurrent-checkpoints",
          s.max_concurrent, "must be >= 1");
  require(s.tolerable_failed >= 0, "execution.checkpointing.tolerable-failed-checkpoints",
          s.tolerable_failed, "must be >= 0");
  require(s.aligned_checkpoint_timeout.count() >= 0,
          "execution.checkpointing.aligned-checkpoint-timeout",
          s.aligned_checkpoint_timeout.count(), "must be >= 0 ms");
  if (s.unaligned && s.enabled()) {
    if (s.mode != checkpointing_mode::exactly_once)
      throw std::invalid_argument(
        "invalid checkpoint setting execution.checkpointing.unaligned.enabled = true: unaligned "
        "checkpoints need execution.checkpointing.mode = EXACTLY_ONCE");
    require(s.max_concurrent == 1, "execution.checkpointing.max-concurrent-checkpoints",
            s.max_concurrent, "must be 1 with unaligned checkpoints");
  }
  require(s.num_retained >= 1, "state.checkpoints.num-retained", s.num_retained,
          "must be >= 1");
}

} // namespace sluice::runtime
