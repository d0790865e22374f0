#include "sluice/runtime/channel_state.hpp"

#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/state/serializer.hpp"
#include "sluice/state/snapshot.hpp"

namespace sluice::runtime {

namespace {
constexpr std::string_view magic = "SLCHAN";
constexpr uint8_t version = 1;

void write_batches(state::byte_writer& w, const std::vector<std::string>& batches) {
  w.write_varint(batches.size());
  for (const auto& b : batches) {
    w.write_varint(b.size());
    w.write_bytes(b.data(), b.size());
  }
}

std::vector<std::string> read_batches(state::byte_reader& r) {
  auto n = r.read_varint();
  if (n > r.remaining())
    r.fail("count of " + std::to_string(n) + " batches exceeds the file");
  std::vector<std::string> out;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    auto len = r.read_varint();
    out.emplace_back(r.read_view(len));
  }
  return out;
}

size_t read_count(state::byte_reader& r, const char* what) {
  auto n = r.read_varint();
  if (n > r.remaining())
    r.fail(std::string("count of ") + what + " exceeds the file");
  return static_cast<size_t>(n);
}
} // namespace

bool channel_state::empty() const noexcept { return bytes() == 0; }

uint64_t channel_state::bytes() const noexcept {
  uint64_t n = 0;
  for (const auto& ch : inputs)
    for (const auto& b : ch)
      n += b.size();
  for (const auto& out : outputs)
    for (const auto& ch : out)
      for (const auto& b : ch)
        n += b.size();
  return n;
}

std::string channel_state::encode() const {
  std::string out;
  {
    state::byte_writer w(out);
    w.write_bytes(magic.data(), magic.size());
    w.write_u8(version);
    w.write_varint(inputs.size());
    for (const auto& ch : inputs)
      write_batches(w, ch);
    w.write_varint(outputs.size());
    for (const auto& o : outputs) {
      w.write_varint(o.size());
      for (const auto& ch : o)
        write_batches(w, ch);
    }
  }
  auto crc = state::snapshot_crc32(out);
  state::byte_writer w(out);
  w.write_u32(crc);
  return out;
}

channel_state channel_state::decode(std::string_view bytes, const std::string& origin) {
  if (bytes.size() < magic.size() + 1 + 4 || bytes.substr(0, magic.size()) != magic)
    throw checkpoint_error(origin + ": not a sluice channel state file");
  if (static_cast<uint8_t>(bytes[magic.size()]) != version)
    throw checkpoint_error(origin + ": channel state version " +
                           std::to_string(static_cast<uint8_t>(bytes[magic.size()])) +
                           " is not supported (this build reads " + std::to_string(version) +
                           ")");
  auto body = bytes.substr(0, bytes.size() - 4);
  state::byte_reader tail(bytes.substr(bytes.size() - 4));
  if (tail.read_u32() != state::snapshot_crc32(body))
    throw checkpoint_error(origin + ": channel state is corrupt (checksum mismatch)");
  try {
    state::byte_reader r(body.substr(magic.size() + 1));
    channel_state cs;
    cs.inputs.resize(read_count(r, "input channels"));
    for (auto& ch : cs.inputs)
      ch = read_batches(r);
    cs.outputs.resize(read_count(r, "outputs"));
    for (auto& o : cs.outputs) {
      o.resize(read_count(r, "output channels"));
      for (auto& ch : o)
        ch = read_batches(r);
    }
    if (!r.at_end())
      r.fail("trailing bytes");
    return cs;
  } catch (const state::serialization_error& e) {
    throw checkpoint_error(origin + ": malformed channel state (" + e.what() + ")");
  }
}

} // namespace sluice::runtime
