#pragma once

#include "sluice/remote/ingress/journal.hpp"
#include "sluice/runtime/checkpointing.hpp"
#include "sluice/runtime/source.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sluice::remote::ingress {

/// Where an ingress source is in its journal (its operator state).
struct journal_position {
  /// The journal's instance(): a position of another journal is ignored.
  std::string journal;
  /// The sequence of the next message to emit.
  uint64_t next = 0;

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "remote.journal_position";
  SLUICE_SERIALIZABLE(journal, next)
};

/// The source of a functions job behind an HTTP ingress: emits the journal's
/// messages in order (envelopes to functions) and keeps the next sequence
/// to emit in its operator state. A restore (a restart inside the process)
/// rewinds to the restored position, so no accepted message is lost or
/// emitted twice into the restored state. The journal is truncated up to
/// a checkpoint's position when that checkpoint completes; without
/// checkpointing, as soon as a message is emitted. A restored position of
/// another journal (another process) starts at the journal's first message.
/// Runs at parallelism 1 (open() refuses more). An empty journal is polled
/// every `poll_interval`.
class http_ingress_source final : public runtime::source_function<functions::envelope>,
                                  public runtime::checkpointed_function,
                                  public runtime::checkpoint_listener {
public:
  explicit http_ingress_source(std::shared_ptr<ingress_journal> journal,
                               std::chrono::microseconds poll_interval =
                                   std::chrono::microseconds{200})
      : journal_(std::move(journal))
      , poll_interval_(poll_interval) {}
  /// Copies the journal and settings only (copied per subtask before open).
  http_ingress_source(const http_ingress_source& o)
      : runtime::source_function<functions::envelope>()
      , journal_(o.journal_)
      , poll_interval_(o.poll_interval_) {}
  http_ingress_source& operator=(const http_ingress_source&) = delete;

  void initialize_state(const runtime::function_initialization_context& ctx) override;
  void open(const runtime::runtime_context& ctx) override;
  runtime::source_step run(runtime::collector<functions::envelope>& out,
                           size_t max_records) override;
  void snapshot_state(int64_t checkpoint_id, int64_t timestamp_ms) override;
  void notify_checkpoint_complete(int64_t checkpoint_id) override;

  /// The sequence of the next message to emit.
  [[nodiscard]] uint64_t next() const noexcept { return next_; }

private:
  std::shared_ptr<ingress_journal> journal_;
  std::chrono::microseconds poll_interval_;
  state::operator_list_state<journal_position>* state_ = nullptr;
  std::vector<journal_position> restored_;
  bool checkpointing_ = false;
  uint64_t next_ = 0;
  /// Positions of checkpoints taken and not completed yet.
  std::map<int64_t, uint64_t> taken_;
  std::vector<functions::envelope> batch_;
};

} // namespace sluice::remote::ingress
