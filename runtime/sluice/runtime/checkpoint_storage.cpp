#include "sluice/runtime/checkpoint_storage.hpp"

#include "sluice/state/key_group.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
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

} // namespace

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
    if (md.version != current_version)
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

std::vector<int64_t> checkpoint_storage::complete(const checkpoint_metadata& md) {
  finalize(md);
  std::vector<int64_t> dropped;
  auto done = completed();
  while (done.size() > static_cast<size_t>(num_retained_)) {
    discard(done.front());
    dropped.push_back(done.front());
    done.erase(done.begin());
  }
  return dropped;
}

void checkpoint_storage::finalize(const checkpoint_metadata& md) const {
  if (md.job_id != job_id_)
    throw std::invalid_argument("metadata of job " + md.job_id + " given to the storage of job " +
                                job_id_);
  auto d = checkpoint_dir(md.checkpoint_id);
  if (!std::filesystem::is_directory(d))
    throw checkpoint_error("checkpoint " + std::to_string(md.checkpoint_id) + " was not begun");
  for (const auto& op : md.operators)
    for (const auto& s : op.subtasks)
      for (const auto* f : {&s.keyed_state_file, &s.operator_state_file})
        if (!f->empty() && !std::filesystem::exists(d / *f))
          throw checkpoint_error("checkpoint " + std::to_string(md.checkpoint_id) +
                                 ": operator '" + op.uid + "' subtask " +
                                 std::to_string(s.subtask) + " names missing file " + *f);
  write_atomically(d / metadata_file, md.to_json());
}

void checkpoint_storage::discard(int64_t id) const {
  std::error_code ec;
  std::filesystem::remove_all(checkpoint_dir(id), ec);
  // remove_all fails with ENOENT when another thread removed an entry it
  // was about to remove; what counts is that the directory is gone.
  if (ec && std::filesystem::exists(checkpoint_dir(id)))
    throw checkpoint_error("cannot delete " + checkpoint_dir(id).string() + ": " + ec.message());
}

size_t checkpoint_storage::cleanup_incomplete() {
  size_t n = 0;
  if (!std::filesystem::is_directory(dir_))
    return n;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    auto id = checkpoint_id_of(e.path().filename().string());
    if (id && e.is_directory() && !std::filesystem::exists(e.path() / metadata_file)) {
      discard(*id);
      ++n;
    }
  }
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

operator_restore load_operator_restore(const restore_point& rp, const operator_state_handle& op,
                                       int32_t index, int32_t parallelism,
                                       int32_t max_parallelism) {
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
        check_file_name(s.keyed_state_file, origin);
        out.keyed.push_back(slurp(rp.dir / s.keyed_state_file, origin));
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
