#pragma once

#include "sluice/functions/envelope.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace sluice::remote::ingress {

/// The messages an HTTP ingress accepted and no completed checkpoint covers
/// yet, numbered in acceptance order: the replay log of the ingress source.
/// Bounded by a number of messages and of bytes; a full journal refuses
/// (the ingress answers 503). Thread-safe: the HTTP threads append, the
/// source subtask reads and truncates.
class ingress_journal {
public:
  /// A journal holding at most `max_messages` messages of at most
  /// `max_bytes` bytes (payloads and addresses) in total.
  ingress_journal(size_t max_messages, uint64_t max_bytes);

  /// Appends `message`; its sequence number, or nullopt when the journal
  /// is full.
  [[nodiscard]] std::optional<uint64_t> append(functions::envelope message);
  /// Copies up to `max` messages from sequence `from` on (or from first()
  /// when `from` was truncated already) to `out`; the sequence after the
  /// last one copied.
  uint64_t read(uint64_t from, size_t max, std::vector<functions::envelope>& out) const;
  /// Drops the messages before sequence `before`.
  void truncate(uint64_t before);

  /// The sequence of the oldest message kept.
  [[nodiscard]] uint64_t first() const;
  /// The sequence the next message gets.
  [[nodiscard]] uint64_t end() const;
  /// Messages kept.
  [[nodiscard]] size_t size() const;
  /// Bytes kept.
  [[nodiscard]] uint64_t bytes() const;
  /// Random per journal: a position saved for another journal (another
  /// process) means nothing here.
  [[nodiscard]] const std::string& instance() const noexcept { return instance_; }

  /// The bytes a message counts for.
  [[nodiscard]] static uint64_t weight(const functions::envelope& e);

private:
  const size_t max_messages_;
  const uint64_t max_bytes_;
  const std::string instance_;
  mutable std::mutex mtx_;
  std::deque<functions::envelope> messages_;
  uint64_t first_ = 0;
  uint64_t bytes_ = 0;
};

} // namespace sluice::remote::ingress
