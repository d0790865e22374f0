#include "sluice/runtime/file_sink.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::runtime {

namespace {

constexpr size_t write_out_bytes = 64 * 1024;
constexpr size_t batch_write_out_bytes = 4096;

std::string errno_text(int err) {
  return std::strerror(err);
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

/// Makes renames and creations in `dir` durable.
void fsync_directory(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error("file sink: cannot open directory '" + dir +
                             "' to sync it: " + errno_text(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    throw std::runtime_error("file sink: cannot sync directory '" + dir + "': " + errno_text(err));
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

/// Deletes `path`; a file that is gone already is fine.
void remove_if_exists(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("file sink: cannot delete '" + path + "': " + errno_text(errno));
}

/// 64 random bits in hex: names of one sink instance's run never collide
/// with those of an earlier attempt.
std::string random_uid() {
  std::random_device rd;
  std::mt19937_64 gen(
      (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(gen()));
  return buf;
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

} // namespace

std::string file_sink_transaction::finished_name(uint64_t counter) const {
  return prefix + "-" + std::to_string(subtask) + "-" + std::to_string(counter) + "-" + uid +
         suffix;
}

std::string file_sink_transaction::in_progress_name(uint64_t counter) const {
  return "." + finished_name(counter) + ".inprogress";
}

std::string file_sink_transaction::pending_name(uint64_t counter) const {
  return "." + finished_name(counter) + ".pending";
}

namespace internal {

void file_sink_writer::open(const runtime_context& ctx) {
  if (options_.directory.empty())
    throw std::runtime_error("file sink: no output directory given");
  std::error_code ec;
  std::filesystem::create_directories(options_.directory, ec);
  if (ec)
    throw std::runtime_error("file sink: cannot create output directory '" + options_.directory +
                             "': " + ec.message());
  time_ = ctx.time_service();
  uid_ = random_uid();
  subtask_ = ctx.subtask_index();
  next_counter_ = 0;
}

int64_t file_sink_writer::now_ms() const {
  if (time_ != nullptr)
    return time_->now_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

file_sink_transaction file_sink_writer::begin() const {
  file_sink_transaction txn;
  txn.directory = options_.directory;
  txn.prefix = options_.part_prefix;
  txn.suffix = options_.part_suffix;
  txn.uid = uid_;
  txn.subtask = subtask_;
  txn.first_counter = next_counter_;
  return txn;
}

bool file_sink_writer::roll_on_time(int64_t now) const {
  auto rollover = options_.rollover_interval.count();
  auto inactivity = options_.inactivity_interval.count();
  return (rollover > 0 && now - part_opened_ms_ >= rollover) ||
         (inactivity > 0 && now - last_write_ms_ >= inactivity);
}

void file_sink_writer::before_record(file_sink_transaction& txn) {
  auto now = now_ms();
  if (fd_ >= 0 && (part_bytes_ >= options_.max_part_bytes || roll_on_time(now)))
    close_part();
  if (fd_ < 0)
    open_part(txn, now);
  last_write_ms_ = now;
}

void file_sink_writer::after_record(size_t bytes) {
  part_bytes_ += bytes;
  if (buf_.size() >= write_out_bytes)
    write_out();
}

void file_sink_writer::flush(file_sink_transaction& /*txn*/) {
  if (fd_ < 0)
    return;
  if (roll_on_time(now_ms()))
    close_part();
  else if (buf_.size() >= batch_write_out_bytes)
    write_out();
}

void file_sink_writer::open_part(file_sink_transaction& txn, int64_t now) {
  auto counter = next_counter_++;
  auto path = join(txn.directory, txn.in_progress_name(counter));
  // O_EXCL: a name is never reused; overwriting a file would lose data.
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error("file sink: cannot create part file '" + path +
                             "': " + errno_text(errno));
  txn.parts.push_back(counter);
  open_path_ = std::move(path);
  open_counter_ = counter;
  part_bytes_ = 0;
  part_opened_ms_ = now;
  last_write_ms_ = now;
}

void file_sink_writer::write_out() {
  size_t done = 0;
  while (done < buf_.size()) {
    auto n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw std::runtime_error("file sink: cannot write part file '" + open_path_ +
                               "': " + errno_text(errno));
    }
    done += static_cast<size_t>(n);
  }
  buf_.clear();
}

void file_sink_writer::close_part() {
  write_out();
  if (::fsync(fd_) != 0)
    throw std::runtime_error("file sink: cannot sync part file '" + open_path_ +
                             "': " + errno_text(errno));
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0)
    throw std::runtime_error("file sink: cannot close part file '" + open_path_ +
                             "': " + errno_text(errno));
  open_path_.clear();
}

void file_sink_writer::pre_commit(file_sink_transaction& txn) {
  if (fd_ >= 0)
    close_part();
  for (auto counter : txn.parts) {
    auto from = join(txn.directory, txn.in_progress_name(counter));
    auto to = join(txn.directory, txn.pending_name(counter));
    if (::rename(from.c_str(), to.c_str()) != 0)
      throw std::runtime_error("file sink: cannot rename part file '" + from + "' to '" + to +
                               "': " + errno_text(errno));
  }
  if (!txn.parts.empty())
    fsync_directory(txn.directory);
}

void file_sink_writer::commit(const file_sink_transaction& txn) const {
  for (auto counter : txn.parts) {
    auto from = join(txn.directory, txn.pending_name(counter));
    auto to = join(txn.directory, txn.finished_name(counter));
    if (::rename(from.c_str(), to.c_str()) == 0)
      continue;
    int err = errno;
    // Committed before a failure and committed again after the restore.
    if (err == ENOENT && exists(to))
      continue;
    if (err == ENOENT)
      throw std::runtime_error("file sink: cannot commit part file '" + from +
                               "': it is missing and the finished part '" + to +
                               "' does not exist either, so its records are lost");
    throw std::runtime_error("file sink: cannot rename part file '" + from + "' to '" + to +
                             "': " + errno_text(err));
  }
  if (!txn.parts.empty())
    fsync_directory(txn.directory);
}

void file_sink_writer::abort(const file_sink_transaction& txn) {
  if (fd_ >= 0 && txn.uid == uid_ && txn.subtask == subtask_ &&
      std::find(txn.parts.begin(), txn.parts.end(), open_counter_) != txn.parts.end())
    close();
  for (auto counter : txn.parts) {
    remove_if_exists(join(txn.directory, txn.in_progress_name(counter)));
    remove_if_exists(join(txn.directory, txn.pending_name(counter)));
  }
}

void file_sink_writer::recover_and_abort(const file_sink_transaction& txn) {
  abort(txn);
  // The checkpoint recorded `txn` when it began; the parts the failed
  // attempt wrote after that (in progress, or pending for a checkpoint that
  // never completed) are known only by name: same instance, counter at or
  // above the transaction's first.
  const std::string head = "." + txn.prefix + "-" + std::to_string(txn.subtask) + "-";
  const std::string tail = "-" + txn.uid + txn.suffix;
  std::error_code ec;
  std::filesystem::directory_iterator it(txn.directory.empty() ? "." : txn.directory, ec);
  if (ec)
    return; // no directory: nothing to clean up
  std::vector<std::string> doomed;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    auto name = it->path().filename().string();
    std::string_view rest(name);
    if (rest.substr(0, head.size()) != head)
      continue;
    rest.remove_prefix(head.size());
    uint64_t counter = 0;
    auto [end, rc] = std::from_chars(rest.data(), rest.data() + rest.size(), counter);
    if (rc != std::errc() || end == rest.data())
      continue;
    rest.remove_prefix(static_cast<size_t>(end - rest.data()));
    bool ours = false;
    for (std::string_view state : {".inprogress", ".pending"})
      ours = ours || (ends_with(rest, state) && rest.size() == tail.size() + state.size() &&
                      rest.substr(0, tail.size()) == tail);
    if (ours && counter >= txn.first_counter)
      doomed.push_back(join(txn.directory, name));
  }
  for (auto& path : doomed)
    remove_if_exists(path);
}

void file_sink_writer::close() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  open_path_.clear();
  buf_.clear();
}

} // namespace internal
} // namespace sluice::runtime
