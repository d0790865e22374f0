#include "sluice/remote/ingress/journal.hpp"

#include <random>

namespace sluice::remote::ingress {

namespace {
std::string random_instance() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  return std::to_string(rng());
}
} // namespace

ingress_journal::ingress_journal(size_t max_messages, uint64_t max_bytes)
    : max_messages_(max_messages)
    , max_bytes_(max_bytes)
    , instance_(random_instance()) {}

uint64_t ingress_journal::weight(const functions::envelope& e) {
  // A fixed share for the envelope itself, so empty messages count too.
  constexpr uint64_t overhead = 64;
  uint64_t w = overhead + e.payload.bytes.size() + e.payload.type_name.size() +
               e.target.type.ns.size() + e.target.type.name.size() + e.target.id.size();
  if (e.caller)
    w += e.caller->type.ns.size() + e.caller->type.name.size() + e.caller->id.size();
  return w;
}

std::optional<uint64_t> ingress_journal::append(functions::envelope message) {
  auto w = weight(message);
  std::lock_guard<std::mutex> lock{mtx_};
  if (messages_.size() >= max_messages_ || bytes_ + w > max_bytes_)
    return std::nullopt;
  messages_.push_back(std::move(message));
  bytes_ += w;
  return first_ + messages_.size() - 1;
}

uint64_t ingress_journal::read(uint64_t from, size_t max,
                               std::vector<functions::envelope>& out) const {
  std::lock_guard<std::mutex> lock{mtx_};
  auto seq = std::max(from, first_);
  auto end = first_ + messages_.size();
  for (; seq < end && max > 0; ++seq, --max)
    out.push_back(messages_[static_cast<size_t>(seq - first_)]);
  return seq;
}

void ingress_journal::truncate(uint64_t before) {
  std::lock_guard<std::mutex> lock{mtx_};
  while (first_ < before && !messages_.empty()) {
    bytes_ -= weight(messages_.front());
    messages_.pop_front();
    ++first_;
  }
}

uint64_t ingress_journal::first() const {
  std::lock_guard<std::mutex> lock{mtx_};
  return first_;
}

uint64_t ingress_journal::end() const {
  std::lock_guard<std::mutex> lock{mtx_};
  return first_ + messages_.size();
}

size_t ingress_journal::size() const {
  std::lock_guard<std::mutex> lock{mtx_};
  return messages_.size();
}

uint64_t ingress_journal::bytes() const {
  std::lock_guard<std::mutex> lock{mtx_};
  return bytes_;
}

} // namespace sluice::remote::ingress
