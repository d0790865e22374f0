#include "sluice/functions/file_egress.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::functions {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw std::runtime_error("file egress: " + what + " '" + path + "': " + std::strerror(err));
}

/// Writes all of `data` to `fd`.
void write_fully(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR)
        continue;
      fail("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

int open_for_append(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("cannot open", path, errno);
  return fd;
}

void sync_and_close(int fd, const std::string& path) {
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    fail("cannot sync", path, err);
}

/// Makes a rename in the directory of `path` durable.
void sync_parent(const std::string& path) {
  auto dir = fs::path(path).parent_path();
  auto name = dir.empty() ? std::string{"."} : dir.string();
  int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    fail("cannot open directory", name, errno);
  sync_and_close(fd, name);
}

/// The size of `path`; 0 if it does not exist.
uint64_t size_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT)
      return 0;
    fail("cannot stat", path, errno);
  }
  return static_cast<uint64_t>(st.st_size);
}

/// Appends the whole file `from` to `to` and syncs `to`.
void append_file(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0)
    fail("cannot open", from, errno);
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    int err = errno;
    ::close(in);
    fail("cannot open", to, err);
  }
  std::string chunk(64 * 1024, '\0');
  for (;;) {
    auto n = ::read(in, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      ::close(in);
      ::close(out);
      fail("cannot read", from, err);
    }
    if (n == 0)
      break;
    try {
      write_fully(out, std::string_view(chunk.data(), static_cast<size_t>(n)), to);
    } catch (...) {
      ::close(in);
      ::close(out);
      throw;
    }
  }
  ::close(in);
  sync_and_close(out, to);
}

std::string random_hex64() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static const char* digits = "0123456789abcdef";
  auto v = rng();
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4)
    out[static_cast<size_t>(i)] = digits[v & 0xf];
  return out;
}

/// The JSON members of a value: "typename" and "value" or "value_base64".
void add_value(nlohmann::ordered_json& j, const typed_value& v) {
  j["typename"] = v.type_name;
  if (auto s = typed_as<std::string>(v))
    j["value"] = *s;
  else if (auto b = typed_as<bool>(v))
    j["value"] = *b;
  else if (auto i = typed_as<int32_t>(v))
    j["value"] = *i;
  else if (auto l = typed_as<int64_t>(v))
    j["value"] = *l;
  else if (auto f = typed_as<float>(v))
    j["value"] = *f;
  else if (auto d = typed_as<double>(v))
    j["value"] = *d;
  else
    j["value_base64"] = base64_encode(v.bytes);
}

std::string json_line(const nlohmann::ordered_json& j) {
  // Invalid UTF-8 in a string value is replaced, not a failed write.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

} // namespace

std::string base64_encode(std::string_view bytes) {
  static const char* alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = at(i) << 16 | at(i + 1) << 8 | at(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6)
      out += alphabet[(n >> shift) & 0x3f];
  }
  auto rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = at(i) << 16 | (rest == 2 ? at(i + 1) << 8 : 0);
    out += alphabet[(n >> 18) & 0x3f];
    out += alphabet[(n >> 12) & 0x3f];
    out += rest == 2 ? alphabet[(n >> 6) & 0x3f] : '=';
    out += '=';
  }
  return out;
}

std::string egress_line(const typed_value& payload, egress_line_format format) {
  switch (format) {
    case egress_line_format::raw: {
      auto text = typed_as<std::string>(payload);
      return (text ? *text : payload.bytes) + "\n";
    }
    case egress_line_format::json: {
      nlohmann::ordered_json j = nlohmann::ordered_json::object();
      add_value(j, payload);
      return json_line(j);
    }
    case egress_line_format::dead_letter: {
      auto d = typed_as<dead_letter>(payload);
      if (!d)
        return egress_line(payload, egress_line_format::json);
      nlohmann::ordered_json j = nlohmann::ordered_json::object();
      j["target"] = d->target.to_string();
      j["caller"] = d->caller ? nlohmann::ordered_json(d->caller->to_string())
                              : nlohmann::ordered_json(nullptr);
      add_value(j, d->payload);
      j["reason"] = d->reason;
      return json_line(j);
    }
  }
  return {};
}

std::string file_egress_transaction::staging_path() const {
  auto p = fs::path(path);
  auto name = "." + p.filename().string() + "." + uid + "-" + std::to_string(number) + ".staged";
  return (p.parent_path() / name).string();
}

file_egress_sink::~file_egress_sink() {
  close_staging();
}

void file_egress_sink::open_sink(const runtime::runtime_context& ctx) {
  if (options_.path.empty())
    throw std::runtime_error("file egress: no path given");
  if (ctx.parallelism() != 1)
    throw std::runtime_error("file egress '" + options_.path +
                             "': must run at parallelism 1 (one writer per file), not " +
                             std::to_string(ctx.parallelism()));
  checkpointing_ = ctx.checkpointing_enabled();
  uid_ = random_hex64();
  next_number_ = 0;
  // Fail early, naming the file, if it cannot be written.
  ::close(open_for_append(options_.path));
}

file_egress_transaction file_egress_sink::begin_transaction() {
  return file_egress_transaction{options_.path, uid_, next_number_++};
}

void file_egress_sink::write(file_egress_transaction& txn, envelope&& e) {
  buffer_ += egress_line(e.payload, options_.format);
  if (buffer_.size() >= 64 * 1024)
    write_out(txn);
}

void file_egress_sink::flush(file_egress_transaction& txn) {
  write_out(txn);
}

void file_egress_sink::write_out(const file_egress_transaction& txn) {
  if (buffer_.empty())
    return;
  if (!checkpointing_) {
    int fd = open_for_append(options_.path);
    try {
      write_fully(fd, buffer_, options_.path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    buffer_.clear();
    return;
  }
  if (staging_fd_ >= 0 && staging_number_ != txn.number)
    close_staging();
  auto staging = txn.staging_path();
  if (staging_fd_ < 0) {
    staging_fd_ = open_for_append(staging);
    staging_number_ = txn.number;
  }
  write_fully(staging_fd_, buffer_, staging);
  buffer_.clear();
}

void file_egress_sink::close_staging() {
  if (staging_fd_ >= 0)
    ::close(staging_fd_);
  staging_fd_ = -1;
}

void file_egress_sink::pre_commit(file_egress_transaction& txn) {
  write_out(txn);
  if (staging_fd_ >= 0 && staging_number_ == txn.number) {
    int fd = staging_fd_;
    staging_fd_ = -1;
    sync_and_close(fd, txn.staging_path());
    sync_parent(txn.staging_path());
  }
}

void file_egress_sink::commit(file_egress_transaction& txn) {
  auto staging = txn.staging_path();
  std::string committing;
  uint64_t target_size = 0;
  if (fs::exists(staging)) {
    // Record where the lines go before appending, so a repeated commit
    // can cut a half-done append off instead of writing the lines twice.
    target_size = size_of(txn.path);
    committing = staging + "@" + std::to_string(target_size);
    if (::rename(staging.c_str(), committing.c_str()) != 0)
      fail("cannot rename", staging, errno);
    sync_parent(staging);
  } else {
    // Committed already, empty, or an append interrupted by a failure.
    auto dir = fs::path(staging).parent_path();
    auto prefix = fs::path(staging).filename().string() + "@";
    std::error_code ec;
    for (auto& entry : fs::directory_iterator(dir.empty() ? fs::path(".") : dir, ec)) {
      auto name = entry.path().filename().string();
      auto size = name.substr(std::min(prefix.size(), name.size()));
      if (name.compare(0, prefix.size(), prefix) == 0 && !size.empty() &&
          size.find_first_not_of("0123456789") == std::string::npos) {
        committing = entry.path().string();
        target_size = std::stoull(size);
        break;
      }
    }
    if (committing.empty())
      return;
    if (size_of(txn.path) > target_size && ::truncate(txn.path.c_str(),
                                                      static_cast<off_t>(target_size)) != 0)
      fail("cannot truncate", txn.path, errno);
  }
  append_file(committing, txn.path);
  std::error_code ec;
  fs::remove(committing, ec);
}

void file_egress_sink::abort(file_egress_transaction& txn) {
  if (staging_fd_ >= 0 && staging_number_ == txn.number)
    close_staging();
  buffer_.clear();
  std::error_code ec;
  fs::remove(txn.staging_path(), ec);
}

void file_egress_sink::recover_and_abort(file_egress_transaction& txn) {
  abort(txn);
  // The failed attempt's later transactions (after the checkpoint) left
  // staging files of the same instance; they were never committed.
  auto p = fs::path(txn.staging_path());
  auto dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  auto prefix = "." + fs::path(txn.path).filename().string() + "." + txn.uid + "-";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (auto& entry : fs::directory_iterator(dir, ec)) {
    auto name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0 || name.size() < prefix.size() + 8 ||
        name.compare(name.size() - 7, 7, ".staged") != 0)
      continue;
    auto number = name.substr(prefix.size(), name.size() - 7 - prefix.size());
    if (number.find_first_not_of("0123456789") == std::string::npos &&
        std::stoull(number) >= txn.number)
      stale.push_back(entry.path());
  }
  for (auto& s : stale)
    fs::remove(s, ec);
}

void file_egress_sink::close_sink() {
  close_staging();
  buffer_.clear();
}

} // namespace sluice::functions
