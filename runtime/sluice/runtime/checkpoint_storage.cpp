#include "sluice/runtime/checkpoint_storage.hpp"

#include "sluice/state/key_group.hpp"

#include <nlohmann/json.hpp>

#include "sluice/state/snapshot.hpp"
#include "sluice/state/work_dir.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <unistd.h>

namespace sluice::runtime {

namespace {

constexpr const char* metadata_file = "_metadata";
constexpr const char* format_name = "sluice-checkpoint";

std::string errno_text() { return std::strerror(errno); }

/// fsync of a file or directory, so a rename or write survives a crash.
void sync_path(const std::filesystem::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0)
    throw checkpoint_error("cannot open " + p.string() + " to sync it: " + errno_text());
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    throw checkpoint_error("cannot sync " + p.string() + ": " + errno_text());
}

/// "chk-12" -> 12; nothing for other names.
std::optional<int64_t> checkpoint_id_of(const std::string& name) {
  if (name.rfind("chk-", 0) != 0 || name.size() == 4)
    return std::nullopt;
  int64_t id = 0;
  for (size_t i = 4; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9' || id > (INT64_MAX - 9) / 10)
      return std::nullopt;
    id = id * 10 + (name[i] - '0');
  }
  return id;
}

/// A relative file name inside a checkpoint directory: no directories, no
/// way out of it.
void check_file_name(const std::string& name, const std::string& origin) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos)
    throw checkpoint_error(origin + ": invalid state file name '" + name + "'");
}

/// "shared/c12/abc-000012.sst": a shared file's place relative to the job
/// directory, and nothing else (no way out of shared/).
void check_shared_path(const std::string& path, const std::string& origin) {
  auto bad = [&] { throw checkpoint_error(origin + ": invalid shared file path '" + path + "'"); };
  if (path.rfind("shared/c", 0) != 0)
    bad();
  auto slash = path.find('/', 8);
  if (slash == std::string::npos || slash == 8)
    bad();
  for (size_t i = 8; i < slash; ++i)
    if (path[i] < '0' || path[i] > '9')
      bad();
  check_file_name(path.substr(slash + 1), origin);
}

/// Reads up to `limit` bytes of `fd` in 1 MiB chunks into `got` (size and
/// CRC-32), handing each chunk to `sink`. False when a read fails (errno
/// tells why) or `sink` returns false.
template <class Sink>
bool read_summed(int fd, uint64_t limit, std::pair<uint64_t, uint32_t>& got, Sink&& sink) {
  std::string buf(size_t{1} << 20, '\0');
  got = {0, 0};
  while (got.first < limit) {
    auto n = ::read(fd, buf.data(),
                    static_cast<size_t>(std::min<uint64_t>(buf.size(), limit - got.first)));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
    if (n == 0)
      break;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    got.second = state::snapshot_crc32_update(got.second, chunk);
    got.first += chunk.size();
    if (!sink(chunk))
      return false;
  }
  return true;
}

/// Copies `from` to `to` in 1 MiB chunks, returning its size and CRC-32.
/// With `durable`, through a temp file that is synced and renamed (the
/// caller syncs the directory); otherwise straight to `to`.
std::pair<uint64_t, uint32_t> copy_with_crc(const std::filesystem::path& from,
                                            const std::filesystem::path& to, bool durable,
                                            uint64_t limit = std::numeric_limits<uint64_t>::max()) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0)
    throw checkpoint_error("cannot open " + from.string() + ": " + errno_text());
  auto tmp = to;
  if (durable)
    tmp += ".inprogress";
  int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    auto why = errno_text();
    ::close(in);
    throw checkpoint_error("cannot create " + tmp.string() + ": " + why);
  }
  auto fail = [&](const std::string& what) {
    auto why = errno_text();
    ::close(in);
    ::close(out);
    ::unlink(tmp.c_str());
    throw checkpoint_error(what + ": " + why);
  };
  std::pair<uint64_t, uint32_t> got;
  bool written = true;
  bool read = read_summed(in, limit, got, [&](std::string_view chunk) {
    size_t done = 0;
    while (done < chunk.size()) {
      auto w = ::write(out, chunk.data() + done, chunk.size() - done);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)
        return written = false;
      done += static_cast<size_t>(w);
    }
    return true;
  });
  if (!written)
    fail("cannot write " + tmp.string());
  if (!read)
    fail("cannot read " + from.string());
  if (durable && ::fsync(out) != 0)
    fail("cannot sync " + tmp.string());
  ::close(in);
  if (::close(out) != 0) {
    auto why = errno_text();
    ::unlink(tmp.c_str());
    throw checkpoint_error("cannot write " + tmp.string() + ": " + why);
  }
  if (durable && ::rename(tmp.c_str(), to.c_str()) != 0) {
    auto why = errno_text();
    ::unlink(tmp.c_str());
    throw checkpoint_error("cannot rename " + tmp.string() + " to " + to.string() + ": " + why);
  }
  return got;
}

/// Size (at most `limit` bytes) and CRC-32 of a file's content, after
/// syncing the file.
std::pair<uint64_t, uint32_t> sum_and_sync(const std::filesystem::path& p, uint64_t limit) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw checkpoint_error("cannot open " + p.string() + ": " + errno_text());
  auto fail = [&](const std::string& what) {
    auto why = errno_text();
    ::close(fd);
    throw checkpoint_error(what + " " + p.string() + ": " + why);
  };
  std::pair<uint64_t, uint32_t> got;
  if (!read_summed(fd, limit, got, [](std::string_view) { return true; }))
    fail("cannot read");
  if (::fdatasync(fd) != 0)
    fail("cannot sync");
  ::close(fd);
  return got;
}

/// Stores a file of a native snapshot at `to`: as a hard link when `to` is
/// on the snapshot's filesystem (RocksDB never rewrites a byte it wrote:
/// SST files are immutable, logs and the MANIFEST only grow, and `limit`
/// is then the snapshot's prefix), else as a durable copy of at most
/// `limit` bytes. Returns the stored content's size and CRC-32.
std::pair<uint64_t, uint32_t> store_native_file(const std::filesystem::path& from,
                                                const std::filesystem::path& to, uint64_t limit) {
  if (::link(from.c_str(), to.c_str()) == 0) {
    try {
      return sum_and_sync(to, limit);
    } catch (...) {
      ::unlink(to.c_str());
      throw;
    }
  }
  // EXDEV (another filesystem), EPERM (links not supported), EEXIST (a
  // retried upload): copy instead.
  return copy_with_crc(from, to, true, limit);
}

/// "c12" -> 12; nothing for other names.
std::optional<int64_t> shared_dir_id(const std::string& name) {
  if (name.size() < 2 || name[0] != 'c')
    return std::nullopt;
  return checkpoint_id_of("chk-" + name.substr(1));
}

} // namespace

// ---- shared state registry -------------------------------------------------

void shared_state_registry::register_checkpoint(const checkpoint_metadata& md) {
  if (registered(md.checkpoint_id))
    unregister_checkpoint(md.checkpoint_id);
  auto& mine = by_checkpoint_[md.checkpoint_id];
  for (const auto& op : md.operators)
    for (const auto& s : op.subtasks)
      for (const auto& f : s.native_files)
        if (f.shared) {
          ++refs_[f.stored];
          mine.push_back(f.stored);
        }
}

void shared_state_registry::unregister_checkpoint(int64_t id) {
  auto it = by_checkpoint_.find(id);
  if (it == by_checkpoint_.end())
    return;
  for (const auto& f : it->second)
    --refs_[f];
  by_checkpoint_.erase(it);
}

std::vector<std::string> shared_state_registry::collect() {
  std::vector<std::string> out;
  for (auto it = refs_.begin(); it != refs_.end();) {
    if (it->second <= 0) {
      out.push_back(it->first);
      it = refs_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

int32_t shared_state_registry::references(const std::string& path) const {
  auto it = refs_.find(path);
  return it == refs_.end() ? 0 : it->second;
}

// ---- metadata ------------------------------------------------------------

std::string checkpoint_metadata::to_json() const {
  using nlohmann::json;
  json ops = json::array();
  for (const auto& op : operators) {
    json subs = json::array();
    for (const auto& s : op.subtasks) {
      json sub = {{"subtask", s.subtask},
                  {"keyed_state", s.keyed_state_file},
                  {"operator_state", s.operator_state_file},
                  {"bytes", s.bytes}};
      if (!s.native_files.empty()) {
        json files = json::array();
        for (const auto& f : s.native_files) {
          json file = {{"name", f.name},
                       {"stored", f.stored},
                       {"size", f.size},
                       {"crc32", f.crc32},
                       {"shared", f.shared}};
          if (f.prefix)
            file["prefix"] = true; // absent in checkpoints written before it existed
          files.push_back(std::move(file));
        }
        sub["native"] = std::move(files);
      }
      if (!s.channel_state_file.empty())
        sub["channel_state"] = s.channel_state_file;
      subs.push_back(std::move(sub));
    }
    ops.push_back({{"uid", op.uid},
                   {"parallelism", op.parallelism},
                   {"max_parallelism", op.max_parallelism},
                   {"subtasks", subs}});
  }
  json doc = {{"format", format_name},
              {"version", version},
              {"job_id", job_id},
              {"checkpoint_id", checkpoint_id},
              {"timestamp", timestamp_ms},
              {"savepoint", savepoint},
              {"operators", ops}};
  return doc.dump(2) + "\n";
}

checkpoint_metadata checkpoint_metadata::from_json(std::string_view text,
                                                   const std::string& origin) {
  using nlohmann::json;
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const std::exception& e) {
    throw checkpoint_error(origin + ": not a checkpoint metadata file (" + e.what() + ")");
  }
  auto fail = [&](const std::string& why) -> void { throw checkpoint_error(origin + ": " + why); };
  try {
    if (!doc.is_object() || doc.value("format", "") != format_name)
      fail("not a sluice checkpoint metadata file");
    checkpoint_metadata md;
    md.version = doc.at("version").get<int32_t>();
    if (md.version != current_version && md.version != 1)
      fail("metadata version " + std::to_string(md.version) + " is not supported (this build reads " +
           std::to_string(current_version) + ")");
    md.job_id = doc.at("job_id").get<std::string>();
    md.checkpoint_id = doc.at("checkpoint_id").get<int64_t>();
    md.timestamp_ms = doc.at("timestamp").get<int64_t>();
    md.savepoint = doc.at("savepoint").get<bool>();
    std::vector<std::string> uids;
    for (const auto& o : doc.at("operators")) {
      operator_state_handle op;
      op.uid = o.at("uid").get<std::string>();
      op.parallelism = o.at("parallelism").get<int32_t>();
      op.max_parallelism = o.at("max_parallelism").get<int32_t>();
      if (op.uid.empty())
        fail("an operator has no uid");
      if (std::find(uids.begin(), uids.end(), op.uid) != uids.end())
        fail("operator '" + op.uid + "' appears twice");
      uids.push_back(op.uid);
      if (op.parallelism < 1 || op.max_parallelism < op.parallelism)
        fail("operator '" + op.uid + "' has parallelism " + std::to_string(op.parallelism) +
             " and max parallelism " + std::to_string(op.max_parallelism));
      std::vector<bool> seen(static_cast<size_t>(op.parallelism), false);
      for (const auto& s : o.at("subtasks")) {
        subtask_state_handle h;
        h.subtask = s.at("subtask").get<int32_t>();
        h.keyed_state_file = s.at("keyed_state").get<std::string>();
        h.operator_state_file = s.at("operator_state").get<std::string>();
        h.channel_state_file = s.value("channel_state", std::string());
        h.bytes = s.at("bytes").get<uint64_t>();
        if (h.subtask < 0 || h.subtask >= op.parallelism || seen[static_cast<size_t>(h.subtask)])
          fail("operator '" + op.uid + "' has a missing, repeated or out-of-range subtask " +
               std::to_string(h.subtask));
        seen[static_cast<size_t>(h.subtask)] = true;
        for (const auto* f : {&h.keyed_state_file, &h.operator_state_file,
                              &h.channel_state_file})
          if (!f->empty())
            check_file_name(*f, origin);
        if (s.contains("native")) {
          for (const auto& f : s.at("native")) {
            state::native_file_ref r;
            r.name = f.at("name").get<std::string>();
            r.stored = f.at("stored").get<std::string>();
            r.size = f.at("size").get<uint64_t>();
            r.crc32 = f.at("crc32").get<uint32_t>();
            r.shared = f.at("shared").get<bool>();
            r.prefix = f.contains("prefix") && f.at("prefix").get<bool>();
            check_file_name(r.name, origin);
            if (r.shared)
              check_shared_path(r.stored, origin);
            else
              check_file_name(r.stored, origin);
            h.native_files.push_back(std::move(r));
          }
          if (!h.native_files.empty() && h.keyed_state_file.empty())
            fail("operator '" + op.uid + "' subtask " + std::to_string(h.subtask) +
                 " has native keyed state files but no keyed state description");
        }
        op.subtasks.push_back(std::move(h));
      }
      md.operators.push_back(std::move(op));
    }
    return md;
  } catch (const checkpoint_error&) {
    throw;
  } catch (const std::exception& e) {
    throw checkpoint_error(origin + ": malformed checkpoint metadata (" + e.what() + ")");
  }
}

// ---- storage -------------------------------------------------------------

checkpoint_storage::checkpoint_storage(std::filesystem::path base, std::string job_id,
                                       int32_t num_retained)
  : dir_(std::move(base) / job_id), job_id_(std::move(job_id)),
    num_retained_(std::max(1, num_retained)) {
  if (job_id_.empty() || job_id_.find('/') != std::string::npos)
    throw std::invalid_argument("checkpoint storage needs a job id without '/', got '" + job_id_ +
                                "'");
  // Nothing touches the filesystem here: begin() creates directories, so an
  // actor can own a storage without blocking on I/O.
}

std::filesystem::path checkpoint_storage::checkpoint_dir(int64_t id) const {
  return dir_ / ("chk-" + std::to_string(id));
}

std::filesystem::path checkpoint_storage::begin(int64_t id) {
  if (id < 1)
    throw std::invalid_argument("checkpoint ids start at 1, got " + std::to_string(id));
  auto d = checkpoint_dir(id);
  if (std::filesystem::exists(d / metadata_file))
    throw checkpoint_error("checkpoint " + std::to_string(id) + " already completed in " +
                           d.string());
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  if (ec)
    throw checkpoint_error("cannot create " + d.string() + ": " + ec.message());
  return d;
}

void checkpoint_storage::write_atomically(const std::filesystem::path& path,
                                          std::string_view bytes) {
  auto tmp = path;
  tmp += ".inprogress";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw checkpoint_error("cannot create " + tmp.string() + ": " + errno_text());
  size_t done = 0;
  while (done < bytes.size()) {
    auto n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      auto why = errno_text();
      ::close(fd);
      ::unlink(tmp.c_str());
      throw checkpoint_error("cannot write " + tmp.string() + ": " + why);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    auto why = errno_text();
    ::unlink(tmp.c_str());
    throw checkpoint_error("cannot sync " + tmp.string() + ": " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto why = errno_text();
    ::unlink(tmp.c_str());
    throw checkpoint_error("cannot rename " + tmp.string() + " to " + path.string() + ": " + why);
  }
  sync_path(path.parent_path(), true);
}

std::string checkpoint_storage::write_file(int64_t id, const std::string& name,
                                           std::string_view bytes) {
  check_file_name(name, "checkpoint " + std::to_string(id));
  if (name == metadata_file)
    throw std::invalid_argument("'_metadata' is written by complete()");
  auto d = checkpoint_dir(id);
  if (!std::filesystem::is_directory(d))
    throw checkpoint_error("checkpoint " + std::to_string(id) + " was not begun (no " +
                           d.string() + ")");
  write_atomically(d / name, bytes);
  return name;
}

std::string checkpoint_storage::read_file(int64_t id, const std::string& name) const {
  auto origin = "checkpoint " + std::to_string(id);
  check_file_name(name, origin);
  auto p = checkpoint_dir(id) / name;
  std::ifstream in(p, std::ios::binary);
  if (!in)
    throw checkpoint_error(origin + ": cannot read state file " + p.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<int64_t> checkpoint_storage::complete(const checkpoint_metadata& md,
                                                  const std::vector<int64_t>& in_flight) {
  finalize(md);
  std::vector<int64_t> dropped;
  auto done = completed();
  while (done.size() > static_cast<size_t>(num_retained_)) {
    discard(done.front());
    dropped.push_back(done.front());
    done.erase(done.begin());
  }
  delete_orphans(md.checkpoint_id, in_flight);
  return dropped;
}

void checkpoint_storage::finalize(const checkpoint_metadata& md) {
  if (md.job_id != job_id_)
    throw std::invalid_argument("metadata of job " + md.job_id + " given to the storage of job " +
                                job_id_);
  std::lock_guard<std::mutex> lock(mu_);
  load_registry();
  auto d = checkpoint_dir(md.checkpoint_id);
  if (!std::filesystem::is_directory(d))
    throw checkpoint_error("checkpoint " + std::to_string(md.checkpoint_id) + " was not begun");
  auto missing = [&](const operator_state_handle& op, const subtask_state_handle& s,
                     const std::string& what) {
    throw checkpoint_error("checkpoint " + std::to_string(md.checkpoint_id) + ": operator '" +
                           op.uid + "' subtask " + std::to_string(s.subtask) + " names " + what);
  };
  for (const auto& op : md.operators)
    for (const auto& s : op.subtasks) {
      for (const auto* f : {&s.keyed_state_file, &s.operator_state_file, &s.channel_state_file})
        if (!f->empty() && !std::filesystem::exists(d / *f))
          missing(op, s, "missing file " + *f);
      for (const auto& f : s.native_files) {
        auto p = f.shared ? dir_ / f.stored : d / f.stored;
        std::error_code ec;
        auto size = std::filesystem::file_size(p, ec);
        if (ec || size < f.size || (size > f.size && !f.prefix))
          missing(op, s, (ec ? "missing file " : "file of another size: ") + f.stored);
      }
    }
  write_atomically(d / metadata_file, md.to_json());
  registry_.register_checkpoint(md);
}

void checkpoint_storage::remove_checkpoint_dir(int64_t id) {
  std::error_code ec;
  std::filesystem::remove_all(checkpoint_dir(id), ec);
  // remove_all fails with ENOENT when another thread removed an entry it
  // was about to remove; what counts is that the directory is gone.
  if (ec && std::filesystem::exists(checkpoint_dir(id)))
    throw checkpoint_error("cannot delete " + checkpoint_dir(id).string() + ": " + ec.message());
}

void checkpoint_storage::discard(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  load_registry();
  registry_.unregister_checkpoint(id);
  remove_checkpoint_dir(id);
  // The shared files only it referenced go (registry_.collect()), and so
  // does what it uploaded to shared/c<id> that no checkpoint on disk
  // references: an aborted checkpoint's uploads (only completed
  // checkpoints' uploads are reused), or a subsumed one's that no newer
  // checkpoint kept.
  delete_unreferenced(INT64_MAX, {}, id);
}

void checkpoint_storage::delete_orphans(int64_t below, const std::vector<int64_t>& in_flight) {
  std::lock_guard<std::mutex> lock(mu_);
  load_registry();
  std::error_code ec;
  if (std::filesystem::is_directory(dir_, ec))
    for (const auto& e : std::filesystem::directory_iterator(dir_, ec)) {
      auto id = checkpoint_id_of(e.path().filename().string());
      if (id && *id < below &&
          std::find(in_flight.begin(), in_flight.end(), *id) == in_flight.end() &&
          e.is_directory(ec) && !std::filesystem::exists(e.path() / metadata_file, ec))
        remove_checkpoint_dir(*id);
    }
  delete_unreferenced(below, in_flight);
}

void checkpoint_storage::load_registry() {
  if (registry_loaded_)
    return;
  for (auto id : completed())
    registry_.register_checkpoint(read_metadata(id));
  registry_loaded_ = true;
}

void checkpoint_storage::delete_unreferenced(int64_t below, const std::vector<int64_t>& skip,
                                             std::optional<int64_t> only) {
  std::error_code ec;
  for (const auto& rel : registry_.collect())
    std::filesystem::remove(dir_ / rel, ec);
  auto shared = dir_ / "shared";
  if (!std::filesystem::is_directory(shared, ec))
    return;
  for (const auto& e : std::filesystem::directory_iterator(shared, ec)) {
    auto name = e.path().filename().string();
    auto id = shared_dir_id(name);
    if (!id || *id >= below || (only && *id != *only) ||
        std::find(skip.begin(), skip.end(), *id) != skip.end() || !e.is_directory(ec))
      continue;
    bool empty = true;
    for (const auto& f : std::filesystem::directory_iterator(e.path(), ec)) {
      if (registry_.known("shared/" + name + "/" + f.path().filename().string())) {
        empty = false;
        continue;
      }
      std::filesystem::remove(f.path(), ec);
    }
    if (empty)
      std::filesystem::remove(e.path(), ec);
  }
}

int32_t checkpoint_storage::shared_references(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  load_registry();
  return registry_.references(path);
}

size_t checkpoint_storage::cleanup_incomplete() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  if (!std::filesystem::is_directory(dir_))
    return n;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    auto id = checkpoint_id_of(e.path().filename().string());
    if (id && e.is_directory() && !std::filesystem::exists(e.path() / metadata_file)) {
      remove_checkpoint_dir(*id);
      ++n;
    }
  }
  load_registry();
  delete_unreferenced(INT64_MAX, {});
  return n;
}

std::vector<int64_t> checkpoint_storage::completed() const {
  std::vector<int64_t> ids;
  if (!std::filesystem::is_directory(dir_))
    return ids;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    auto id = checkpoint_id_of(e.path().filename().string());
    if (id && e.is_directory() && std::filesystem::exists(e.path() / metadata_file))
      ids.push_back(*id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::optional<int64_t> checkpoint_storage::latest_completed() const {
  auto ids = completed();
  if (ids.empty())
    return std::nullopt;
  return ids.back();
}

checkpoint_metadata checkpoint_storage::read_metadata(int64_t id) const {
  auto p = checkpoint_dir(id) / metadata_file;
  std::ifstream in(p, std::ios::binary);
  if (!in)
    throw checkpoint_error(p.string() + ": checkpoint " + std::to_string(id) +
                           " is missing or incomplete");
  std::ostringstream text;
  text << in.rdbuf();
  auto md = checkpoint_metadata::from_json(text.str(), p.string());
  if (md.checkpoint_id != id)
    throw checkpoint_error(p.string() + ": records checkpoint " +
                           std::to_string(md.checkpoint_id) + ", expected " + std::to_string(id));
  return md;
}

// ---- restore ---------------------------------------------------------------

namespace {
std::string slurp(const std::filesystem::path& p, const std::string& origin) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    throw checkpoint_error(origin + ": cannot read " + p.string());
  std::ostringstream out;
  out << in.rdbuf();
  if (!in.good() && !in.eof())
    throw checkpoint_error(origin + ": error reading " + p.string());
  return out.str();
}
} // namespace

restore_point restore_point::read(const std::filesystem::path& dir) {
  auto p = dir / metadata_file;
  if (!std::filesystem::exists(p))
    throw checkpoint_error(p.string() + ": no checkpoint or savepoint metadata here");
  restore_point rp;
  rp.dir = dir;
  rp.metadata = checkpoint_metadata::from_json(slurp(p, "metadata"), p.string());
  return rp;
}

const operator_state_handle* restore_point::find(const std::string& uid) const {
  for (const auto& op : metadata.operators)
    if (op.uid == uid)
      return &op;
  return nullptr;
}

namespace {

/// Downloads the native snapshot of old subtask `s` into a new directory
/// under `staging_root`, checking each file's size and CRC.
std::shared_ptr<state::native_restore_source>
download_native(const restore_point& rp, const operator_state_handle& op,
                const subtask_state_handle& s, state::key_group_range range,
                const std::string& staging_root) {
  auto src = std::make_shared<state::native_restore_source>();
  src->origin = "operator '" + op.uid + "' subtask " + std::to_string(s.subtask) + " in " +
                rp.dir.string();
  src->range = range;
  src->files = s.native_files;
  src->reusable = rp.owns_shared_files;
  check_file_name(s.keyed_state_file, src->origin);
  src->meta = slurp(rp.dir / s.keyed_state_file, src->origin);
  std::error_code ec;
  auto root = staging_root.empty() ? std::filesystem::temp_directory_path(ec)
                                   : std::filesystem::path(staging_root);
  // Named after host and pid: what a killed process was downloading goes
  // with the next restore under the same root (state/work_dir.hpp).
  auto dir = state::make_process_dir(root, "sluice-restore", ec);
  if (ec)
    throw checkpoint_error(src->origin + ": cannot create a directory under " + root.string() +
                           ": " + ec.message());
  src->dir = dir.string();
  for (const auto& f : s.native_files) {
    auto from = f.shared ? rp.dir.parent_path() / f.stored : rp.dir / f.stored;
    auto kind = std::string(f.shared ? "shared" : "private");
    if (!std::filesystem::exists(from, ec))
      throw checkpoint_error(src->origin + ": " + kind + " state file " + from.string() +
                             " is missing");
    std::pair<uint64_t, uint32_t> got;
    try {
      got = copy_with_crc(from, dir / f.name, false,
                          f.prefix ? f.size : std::numeric_limits<uint64_t>::max());
    } catch (const checkpoint_error& e) {
      throw checkpoint_error(src->origin + ": " + e.what());
    }
    if (got.first != f.size)
      throw checkpoint_error(src->origin + ": " + kind + " state file " + from.string() + " has " +
                             std::to_string(got.first) + " bytes, the checkpoint recorded " +
                             std::to_string(f.size) + " (truncated or replaced)");
    if (got.second != f.crc32)
      throw checkpoint_error(src->origin + ": " + kind + " state file " + from.string() +
                             " is corrupt (checksum mismatch)");
  }
  return src;
}

} // namespace

operator_restore load_operator_restore(const restore_point& rp, const operator_state_handle& op,
                                       int32_t index, int32_t parallelism,
                                       int32_t max_parallelism, const std::string& staging_root) {
  auto origin = "operator '" + op.uid + "' in " + rp.dir.string();
  operator_restore out;
  bool has_keyed = false;
  for (const auto& s : op.subtasks)
    has_keyed = has_keyed || !s.keyed_state_file.empty();
  if (has_keyed && op.max_parallelism != max_parallelism)
    throw checkpoint_error(origin + ": keyed state was written with max parallelism " +
                           std::to_string(op.max_parallelism) + " but the job has " +
                           std::to_string(max_parallelism) +
                           " (the max parallelism of a stateful operator cannot change)");
  auto mine = state::key_group_range_for_subtask(max_parallelism, parallelism, index);
  std::vector<std::vector<state::operator_state_part>> old_parts;
  bool any_operator_state = false;
  for (const auto& s : op.subtasks) {
    if (!s.keyed_state_file.empty()) {
      auto theirs = state::key_group_range_for_subtask(op.max_parallelism, op.parallelism,
                                                       s.subtask);
      if (theirs.start <= mine.end && mine.start <= theirs.end) {
        if (!s.native_files.empty()) {
          out.native_keyed.push_back(download_native(rp, op, s, theirs, staging_root));
        } else {
          check_file_name(s.keyed_state_file, origin);
          out.keyed.push_back(slurp(rp.dir / s.keyed_state_file, origin));
        }
      }
    }
    if (!s.operator_state_file.empty()) {
      check_file_name(s.operator_state_file, origin);
      auto file = rp.dir / s.operator_state_file;
      try {
        old_parts.push_back(state::operator_state_store::parse(slurp(file, origin),
                                                               file.string()));
      } catch (const state::state_error& e) {
        throw checkpoint_error(origin + ": " + e.what());
      }
      any_operator_state = true;
    } else {
      old_parts.emplace_back();
    }
  }
  if (any_operator_state) {
    try {
      out.operator_state = state::operator_state_store::redistribute(old_parts, index, parallelism);
    } catch (const state::state_error& e) {
      throw checkpoint_error(origin + ": " + e.what());
    }
  }
  return out;
}

written_operator_snapshot write_operator_snapshot(const std::filesystem::path& chk_dir,
                                                  int64_t checkpoint_id, const std::string& base,
                                                  operator_snapshot& snap) {
  written_operator_snapshot out;
  if (snap.keyed.empty() && snap.operator_state.empty() && !snap.native_keyed)
    return out;
  std::error_code ec;
  std::filesystem::create_directories(chk_dir, ec);
  if (ec)
    throw checkpoint_error("cannot create " + chk_dir.string() + ": " + ec.message());
  if (!snap.keyed.empty()) {
    out.keyed_state_file = base + ".keyed";
    checkpoint_storage::write_atomically(chk_dir / out.keyed_state_file, snap.keyed);
    out.bytes += snap.keyed.size();
  }
  if (snap.native_keyed) {
    auto& n = *snap.native_keyed;
    try {
      n.finish(); // a flush cut: waits here, off the subtask's thread, for the flush
    } catch (const state::state_error& e) {
      throw checkpoint_error(e.what());
    }
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(n.local_dir, ec))
      if (e.is_regular_file(ec))
        names.push_back(e.path().filename().string());
    if (ec || names.empty())
      throw checkpoint_error("cannot list the native snapshot in " + n.local_dir +
                             (ec ? ": " + ec.message() : std::string(": it is empty")));
    std::sort(names.begin(), names.end());
    auto reusable = n.ledger ? n.ledger->reusable(names) : std::map<std::string,
                                                                      state::native_file_ref>{};
    auto shared_rel = "shared/c" + std::to_string(checkpoint_id);
    auto job_dir = chk_dir.parent_path();
    bool shared_dir_made = false;
    std::vector<state::native_file_ref> uploaded;
    for (const auto& name : names) {
      auto local = std::filesystem::path(n.local_dir) / name;
      auto size = std::filesystem::file_size(local, ec);
      if (ec)
        throw checkpoint_error("cannot read " + local.string() + ": " + ec.message());
      // A log or MANIFEST the instance kept appending to: the snapshot is
      // its prefix.
      auto valid = n.valid_sizes.find(name);
      uint64_t limit = std::numeric_limits<uint64_t>::max();
      if (valid != n.valid_sizes.end()) {
        if (size < valid->second)
          throw checkpoint_error(local.string() + " has " + std::to_string(size) +
                                 " bytes, fewer than the " + std::to_string(valid->second) +
                                 " of the snapshot");
        limit = valid->second;
      }
      // Immutable files are stored once and shared by later checkpoints:
      // SST files, and logs RocksDB has closed (the live log is trimmed).
      auto ends_with = [&](const char* suffix) {
        auto len = std::strlen(suffix);
        return name.size() > len && name.compare(name.size() - len, len, suffix) == 0;
      };
      bool immutable =
        ends_with(".sst") || (ends_with(".log") && valid == n.valid_sizes.end());
      if (immutable) {
        auto it = reusable.find(name);
        if (it != reusable.end() && it->second.size == size) {
          // A completed checkpoint stored this immutable file already.
          out.native_files.push_back(it->second);
          continue;
        }
        if (!shared_dir_made) {
          std::filesystem::create_directories(job_dir / shared_rel, ec);
          if (ec)
            throw checkpoint_error("cannot create " + (job_dir / shared_rel).string() + ": " +
                                   ec.message());
          shared_dir_made = true;
        }
      }
      state::native_file_ref r;
      r.name = name;
      r.shared = immutable;
      r.stored = immutable ? shared_rel + "/" + n.instance + "-" + name : base + "." + name;
      auto [bytes, crc] =
        store_native_file(local, immutable ? job_dir / r.stored : chk_dir / r.stored, limit);
      r.size = bytes;
      r.crc32 = crc;
      r.prefix = valid != n.valid_sizes.end();
      out.bytes += bytes;
      if (immutable)
        uploaded.push_back(r);
      out.native_files.push_back(std::move(r));
    }
    if (shared_dir_made)
      sync_path(job_dir / shared_rel, true);
    out.keyed_state_file = base + ".keyed";
    checkpoint_storage::write_atomically(chk_dir / out.keyed_state_file, n.meta);
    out.bytes += n.meta.size();
    if (n.ledger)
      n.ledger->uploaded(checkpoint_id, uploaded);
    snap.native_keyed.reset(); // drops the local hard links
  }
  if (!snap.operator_state.empty()) {
    out.operator_state_file = base + ".op";
    checkpoint_storage::write_atomically(chk_dir / out.operator_state_file, snap.operator_state);
    out.bytes += snap.operator_state.size();
  }
  return out;
}

std::optional<channel_state> load_channel_state(const restore_point& rp,
                                                const operator_state_handle& op, int32_t index,
                                                int32_t parallelism) {
  auto origin = "operator '" + op.uid + "' in " + rp.dir.string();
  bool any = false;
  for (const auto& s : op.subtasks)
    any = any || !s.channel_state_file.empty();
  if (!any)
    return std::nullopt;
  if (op.parallelism != parallelism)
    throw checkpoint_error(origin + ": holds in-flight data of an unaligned checkpoint, which " +
                           "cannot be restored at another parallelism (" +
                           std::to_string(op.parallelism) + " -> " +
                           std::to_string(parallelism) +
                           "); rescale from a savepoint or an aligned checkpoint");
  for (const auto& s : op.subtasks) {
    if (s.subtask != index || s.channel_state_file.empty())
      continue;
    check_file_name(s.channel_state_file, origin);
    auto file = rp.dir / s.channel_state_file;
    return channel_state::decode(slurp(file, origin), origin + ": " + file.string());
  }
  return std::nullopt;
}

void check_state_mapping(const restore_point& rp, const std::vector<std::string>& uids,
                         bool allow_non_restored_state) {
  if (allow_non_restored_state)
    return;
  for (const auto& op : rp.metadata.operators) {
    bool has_state = false;
    for (const auto& s : op.subtasks)
      has_state = has_state || !s.keyed_state_file.empty() || !s.operator_state_file.empty() ||
                  !s.channel_state_file.empty();
    if (has_state && std::find(uids.begin(), uids.end(), op.uid) == uids.end())
      throw checkpoint_error(
        "Failed to rollback to checkpoint/savepoint " + rp.dir.string() +
        ": cannot map the state of operator '" + op.uid +
        "' to the new program, because the operator is not available in the new program. "
        "If you want to allow to skip this, set allow_non_restored_state "
        "(--allowNonRestoredState)");
  }
}

void dispose_savepoint(const std::filesystem::path& dir) {
  auto rp = restore_point::read(dir);
  if (!rp.metadata.savepoint)
    throw checkpoint_error(dir.string() + " is a checkpoint, not a savepoint; it is not disposed");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec)
    throw checkpoint_error("cannot dispose savepoint " + dir.string() + ": " + ec.message());
}

} // namespace sluice::runtime
