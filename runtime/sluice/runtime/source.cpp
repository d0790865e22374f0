#include "sluice/runtime/source.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace sluice::runtime {

namespace {
constexpr size_t read_chunk = 256 * 1024;

std::string errno_text(int err) { return std::strerror(err); }
} // namespace

index_split internal::initial_index_split(uint64_t count, uint64_t i, uint64_t p) {
  constexpr uint64_t unbounded = std::numeric_limits<uint64_t>::max();
  if (count == unbounded)
    return {i * (unbounded / p), (i + 1 == p) ? unbounded : (i + 1) * (unbounded / p)};
  return {static_cast<uint64_t>((static_cast<__uint128_t>(count) * i) / p),
          static_cast<uint64_t>((static_cast<__uint128_t>(count) * (i + 1)) / p)};
}

text_file_source::~text_file_source() { close(); }

void text_file_source::initialize_state(const function_initialization_context& ctx) {
  splits_.initialize(ctx);
}

void text_file_source::snapshot_state(int64_t /*checkpoint_id*/, int64_t /*timestamp_ms*/) {
  // The front split is being read: its position is the first byte of the
  // buffer not handed out yet, always the start of a line (or the end).
  if (reading_ && !splits_.empty())
    splits_.front().next = pos_ + head_;
  splits_.snapshot();
}

void text_file_source::open(const runtime_context& ctx) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error("cannot open input file '" + path_ + "': " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    close();
    throw std::runtime_error("input '" + path_ + "' is not a regular file");
  }
  file_size_ = static_cast<uint64_t>(st.st_size);
  buf_.resize(read_chunk);
  if (!splits_.restored()) {
    auto p = static_cast<uint64_t>(ctx.parallelism());
    auto i = static_cast<uint64_t>(ctx.subtask_index());
    file_split s{file_size_ * i / p, file_size_ * (i + 1) / p, 0};
    s.next = first_line_at_or_after(s.begin);
    if (s.next < s.end)
      splits_.push_back(s);
  }
  if (!splits_.empty())
    seek(splits_.front().next);
  reading_ = true;
}

uint64_t text_file_source::first_line_at_or_after(uint64_t offset) {
  if (offset == 0)
    return 0;
  // The partial line `offset` falls in belongs to the previous range.
  // Reading from offset - 1 makes a line that begins exactly at `offset`
  // count as ours.
  seek(offset - 1);
  for (;;) {
    if (head_ == tail_ && !fill())
      return pos_ + head_;
    auto* nl = static_cast<char*>(std::memchr(buf_.data() + head_, '\n', tail_ - head_));
    if (nl != nullptr)
      return pos_ + static_cast<uint64_t>(nl - buf_.data()) + 1;
    head_ = tail_;
  }
}

void text_file_source::seek(uint64_t offset) {
  pos_ = offset;
  head_ = tail_ = 0;
  eof_ = false;
}

void text_file_source::next_split() {
  splits_.pop_front();
  if (!splits_.empty())
    seek(splits_.front().next);
}

bool text_file_source::fill() {
  if (eof_)
    return false;
  // Keep the unread bytes, then read behind them.
  if (head_ > 0) {
    std::memmove(buf_.data(), buf_.data() + head_, tail_ - head_);
    pos_ += head_;
    tail_ -= head_;
    head_ = 0;
  }
  if (tail_ == buf_.size())
    buf_.resize(buf_.size() * 2); // a line longer than the buffer
  auto n = ::pread(fd_, buf_.data() + tail_, buf_.size() - tail_,
                   static_cast<off_t>(pos_ + tail_));
  if (n < 0)
    throw std::runtime_error("cannot read input file '" + path_ + "': " + errno_text(errno));
  if (n == 0) {
    eof_ = true;
    return false;
  }
  tail_ += static_cast<size_t>(n);
  return true;
}

source_step text_file_source::run(collector<std::string>& out, size_t max_records) {
  if (fd_ < 0)
    return source_step::finished();
  for (size_t emitted = 0; emitted < max_records;) {
    if (splits_.empty())
      return source_step::finished();
    if (pos_ + head_ >= splits_.front().end) {
      next_split();
      continue;
    }
    auto* begin = buf_.data() + head_;
    auto* nl = static_cast<char*>(std::memchr(begin, '\n', tail_ - head_));
    if (nl == nullptr) {
      if (fill())
        continue;
      if (head_ < tail_) { // last line without a newline
        out.collect(std::string(buf_.data() + head_, tail_ - head_));
        head_ = tail_;
        ++emitted;
      }
      next_split();
      continue;
    }
    size_t len = static_cast<size_t>(nl - begin);
    if (len > 0 && begin[len - 1] == '\r')
      --len;
    out.collect(std::string(begin, len));
    head_ = static_cast<size_t>(nl - buf_.data()) + 1;
    ++emitted;
  }
  return splits_.empty() ? source_step::finished() : source_step::more();
}

void text_file_source::close() {
  if (fd_ >= 0) {
    if (reading_ && !splits_.empty())
      splits_.front().next = pos_ + head_;
    reading_ = false;
    ::close(fd_);
    fd_ = -1;
  }
}

socket_text_source::~socket_text_source() { close(); }

void socket_text_source::open(const runtime_context&) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  auto port = std::to_string(port_);
  if (int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); rc != 0)
    throw std::runtime_error("cannot resolve socket source host '" + host_ +
                             "': " + ::gai_strerror(rc));
  fd_ = ::socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    ::freeaddrinfo(res);
    throw std::runtime_error("cannot create socket: " + errno_text(errno));
  }
  int rc = ::connect(fd_, res->ai_addr, res->ai_addrlen);
  int err = errno;
  ::freeaddrinfo(res);
  if (rc != 0 && err != EINPROGRESS) {
    close();
    throw std::runtime_error("cannot connect to " + host_ + ":" + port + ": " + errno_text(err));
  }
  connected_ = rc == 0;
  connect_deadline_ = std::chrono::steady_clock::now() + connect_timeout_;
}

source_step socket_text_source::run(collector<std::string>& out, size_t max_records) {
  using namespace std::chrono_literals;
  if (fd_ < 0)
    return source_step::finished();
  if (!connected_) {
    pollfd pfd{fd_, POLLOUT, 0};
    int n = ::poll(&pfd, 1, 0);
    if (n == 0) {
      if (std::chrono::steady_clock::now() > connect_deadline_) {
        close();
        throw std::runtime_error("cannot connect to " + host_ + ":" + std::to_string(port_) +
                                 ": timed out");
      }
      return source_step::wait(5ms);
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close();
      throw std::runtime_error("cannot connect to " + host_ + ":" + std::to_string(port_) +
                               ": " + errno_text(err));
    }
    connected_ = true;
  }
  size_t emitted = 0;
  char buf[64 * 1024];
  while (emitted < max_records) {
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return emitted > 0 ? source_step::more() : source_step::wait(2ms);
      if (errno == EINTR)
        continue;
      auto msg = errno_text(errno);
      close();
      throw std::runtime_error("socket source " + host_ + ":" + std::to_string(port_) +
                               " failed: " + msg);
    }
    if (n == 0) { // peer closed: emit the unterminated tail, then finish
      if (!pending_.empty())
        out.collect(std::move(pending_));
      pending_.clear();
      close();
      return source_step::finished();
    }
    size_t start = 0;
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      if (buf[i] != delimiter_)
        continue;
      pending_.append(buf + start, i - start);
      if (!pending_.empty() && pending_.back() == '\r' && delimiter_ == '\n')
        pending_.pop_back();
      out.collect(std::move(pending_));
      pending_.clear();
      ++emitted;
      start = i + 1;
    }
    pending_.append(buf + start, static_cast<size_t>(n) - start);
  }
  return source_step::more();
}

void socket_text_source::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

} // namespace sluice::runtime
