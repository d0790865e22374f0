#include "sluice/state/operator_state.hpp"

#include "sluice/state/snapshot.hpp"

namespace sluice::state {

namespace {
constexpr std::string_view op_magic = "SLOPSNAP";

void write_str(byte_writer& w, std::string_view s) {
  w.write_varint(s.size());
  w.write_bytes(s.data(), s.size());
}

std::string read_str(byte_reader& r) {
  auto n = r.read_varint();
  if (n > r.remaining())
    r.fail("string of " + std::to_string(n) + " bytes cannot fit in the " +
           std::to_string(r.remaining()) + " bytes left");
  std::string out(static_cast<size_t>(n), '\0');
  r.read_bytes(out.data(), out.size());
  return out;
}
} // namespace

std::string operator_state_store::snapshot() const {
  // Declared states and restored ones nobody declared again (a function
  // that reads its state lazily must not lose it in the next checkpoint).
  std::map<std::string, operator_state_part> parts(pending_.begin(), pending_.end());
  for (auto& [name, e] : entries_) {
    if (!e.dump)
      throw state_error("operator state '" + name + "' (" + e.description +
                        ") cannot be checkpointed: its type has no serializer");
    parts[name] = operator_state_part{name, e.mode, e.description, e.dump()};
  }
  std::string out;
  byte_writer w(out);
  w.write_bytes(op_magic.data(), op_magic.size());
  w.write_u32(snapshot_version);
  w.write_varint(parts.size());
  for (auto& [name, p] : parts) {
    write_str(w, name);
    w.write_u8(static_cast<uint8_t>(p.mode));
    write_str(w, p.description);
    w.write_varint(p.elements.size());
    for (auto& el : p.elements)
      write_str(w, el);
  }
  w.write_u32(snapshot_crc32(out));
  return out;
}

std::vector<operator_state_part> operator_state_store::parse(std::string_view bytes,
                                                             const std::string& origin) {
  if (bytes.size() < op_magic.size() + 8 || bytes.substr(0, op_magic.size()) != op_magic)
    throw state_error(origin + ": not an operator state snapshot");
  auto body = bytes.substr(0, bytes.size() - 4);
  byte_reader tail(bytes.substr(bytes.size() - 4));
  if (tail.read_u32() != snapshot_crc32(body))
    throw state_error(origin + ": operator state snapshot is corrupt (checksum mismatch)");
  std::vector<operator_state_part> out;
  try {
    byte_reader r(body.substr(op_magic.size()));
    auto version = r.read_u32();
    if (version != snapshot_version)
      throw state_error(origin + ": operator state snapshot version " + std::to_string(version) +
                        " (this build reads version " + std::to_string(snapshot_version) + ")");
    auto n = r.read_varint();
    for (uint64_t i = 0; i < n; ++i) {
      operator_state_part p;
      p.name = read_str(r);
      auto mode = r.read_u8();
      if (mode > static_cast<uint8_t>(redistribution::broadcast))
        r.fail("unknown redistribution mode " + std::to_string(mode));
      p.mode = static_cast<redistribution>(mode);
      p.description = read_str(r);
      auto count = r.read_varint();
      if (count > r.remaining())
        r.fail("element count " + std::to_string(count) + " exceeds the bytes left");
      for (uint64_t k = 0; k < count; ++k)
        p.elements.push_back(read_str(r));
      out.push_back(std::move(p));
    }
    if (!r.at_end())
      r.fail("trailing bytes");
  } catch (const serialization_error& e) {
    throw state_error(origin + ": malformed operator state snapshot: " + e.what());
  }
  return out;
}

std::vector<operator_state_part>
operator_state_store::redistribute(const std::vector<std::vector<operator_state_part>>& old,
                                   int32_t index, int32_t parallelism) {
  if (parallelism <= 0 || index < 0 || index >= parallelism)
    throw state_error("cannot redistribute operator state to subtask " + std::to_string(index) +
                      " of " + std::to_string(parallelism));
  // Per state name, its elements from each old subtask in subtask order.
  std::map<std::string, operator_state_part> heads;
  std::map<std::string, std::vector<std::vector<std::string>>> lists;
  for (size_t s = 0; s < old.size(); ++s) {
    for (auto& p : old[s]) {
      auto [it, fresh] = heads.try_emplace(p.name, operator_state_part{p.name, p.mode,
                                                                        p.description, {}});
      if (!fresh && (it->second.mode != p.mode || it->second.description != p.description))
        throw state_error("operator state '" + p.name + "' differs between old subtasks (" +
                          it->second.description + " and " + p.description + ")");
      auto& l = lists[p.name];
      l.resize(old.size());
      l[s] = p.elements;
    }
  }
  std::vector<operator_state_part> out;
  for (auto& [name, head] : heads) {
    auto part = head;
    auto& l = lists[name];
    switch (head.mode) {
      case redistribution::even_split:
        part.elements = std::move(redistribute_even(l, parallelism)[static_cast<size_t>(index)]);
        break;
      case redistribution::union_all:
        for (auto& one : l)
          part.elements.insert(part.elements.end(), one.begin(), one.end());
        break;
      case redistribution::broadcast:
        // Every old subtask held the same map: the first that had it.
        for (auto& one : l)
          if (!one.empty()) {
            part.elements = one;
            break;
          }
        break;
    }
    out.push_back(std::move(part));
  }
  return out;
}

void operator_state_store::restore(std::vector<operator_state_part> parts) {
  for (auto& p : parts) {
    if (entries_.count(p.name))
      throw state_error("operator state '" + p.name + "' is restored after it was declared");
    pending_[p.name] = std::move(p);
  }
}

} // namespace sluice::state
