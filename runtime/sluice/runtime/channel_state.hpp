#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// In-flight data of an unaligned checkpoint. When a barrier overtakes the
/// batches queued before it, those batches are not yet processed by the
/// receiver (input channel state) or not yet sent by the sender (output
/// channel state); the checkpoint stores them so a restored job replays
/// them before any new data, as Flink does.
namespace sluice::runtime {

/// The captured batches of one subtask, each batch in the encoding of
/// batch_base::write_records(), in channel order.
struct channel_state {
  /// Per input channel: batches that arrived before the channel's barrier
  /// and were not processed when the subtask took its snapshot.
  std::vector<std::vector<std::string>> inputs;
  /// Per output, per channel: batches the subtask had produced but not sent
  /// when its barrier overtook them.
  std::vector<std::vector<std::vector<std::string>>> outputs;

  /// True when no batch was captured.
  [[nodiscard]] bool empty() const noexcept;
  /// Encoded size of the captured batches.
  [[nodiscard]] uint64_t bytes() const noexcept;
  /// The file format: magic "SLCHAN", a version, the batches, a CRC-32.
  [[nodiscard]] std::string encode() const;
  /// Parses encode()'s output; checkpoint_error naming `origin` when the
  /// bytes are truncated, corrupt or of another version.
  [[nodiscard]] static channel_state decode(std::string_view bytes, const std::string& origin);
};

} // namespace sluice::runtime
