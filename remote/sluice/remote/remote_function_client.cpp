#include "sluice/remote/remote_function_client.hpp"

#include "sluice/remote/internal/http_compression.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace sluice::remote {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

bool is_retryable_status(unsigned status) {
  return status == 408 || status == 409 || status == 420 || status == 429 || status == 499 ||
         status >= 500;
}

namespace {

std::string_view sv(beast::string_view s) {
  return {s.data(), s.size()};
}

std::string ms_text(clock_type::duration d) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(d).count()) + " ms";
}

bool iequals_prefix(std::string_view value, std::string_view expected) {
  // The media type, without parameters and surrounding blanks.
  auto semi = value.find(';');
  value = value.substr(0, semi);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
    value.remove_suffix(1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  if (value.size() != expected.size())
    return false;
  for (size_t i = 0; i < value.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(value[i])) != expected[i])
      return false;
  return true;
}

struct pool;

// One call: a request to one address, retried until it succeeds, fails for
// good or the client shuts down. Lives in a shared_ptr held by the handlers
// of its current step and by the client's registry of live calls.
struct call_state {
  pool* owner = nullptr;
  invocation_request req;
  remote_function_client::completion done;
  http::request<http::string_body> request;
  std::string url_text;
  std::string where; // "remote function X (address Y) at URL"
  clock_type::time_point started;
  clock_type::time_point deadline;
  milliseconds call_timeout{0};
  milliseconds connect_timeout{0};
  milliseconds initial_backoff{0};
  milliseconds max_backoff{0};
  uint32_t max_attempts = 0;
  uint64_t payload_max_bytes = 0;
  uint32_t attempts = 0;
  std::string last_error;
  std::optional<net::steady_timer> backoff_timer;
  bool finished = false;
};

using call_ptr = std::shared_ptr<call_state>;

// One keep-alive TCP connection of a pool.
struct connection {
  explicit connection(net::io_context& io)
      : stream(io) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  clock_type::time_point idle_since;
  bool reused = false;
};

using connection_ptr = std::shared_ptr<connection>;

// The connections to one host:port and the calls waiting for one.
struct pool {
  std::string authority;
  std::string host;
  uint16_t port = 0;
  uint32_t max_connections = 1;
  milliseconds ttl{0};
  std::optional<tcp::endpoint> numeric;
  std::optional<tcp::resolver::results_type> resolved;
  uint32_t open = 0; // open or connecting
  std::vector<connection_ptr> idle;
  std::unordered_set<connection*> busy;
  std::unordered_map<connection*, connection_ptr> all;
  std::deque<call_ptr> waiting;
};

} // namespace

struct remote_function_client::impl {
  explicit impl(client_config cfg)
      : config(cfg)
      , guard(net::make_work_guard(io))
      , resolver(io)
      , rng(std::random_device{}()) {
    thread = std::thread{[this] { io.run(); }};
  }

  client_config config;
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> guard;
  tcp::resolver resolver;
  std::thread thread;
  std::mutex lifecycle;
  bool stopping = false;   // guarded by lifecycle; read on the I/O thread too
  bool stopped_io = false; // I/O thread only
  std::unordered_map<std::string, std::unique_ptr<pool>> pools;
  std::unordered_map<call_state*, call_ptr> live;
  std::minstd_rand rng;
  std::atomic<uint64_t> attempts{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> calls_completed{0};

  // -- completion ------------------------------------------------------------

  void finish(const call_ptr& call, caf::expected<functions::invocation_outcome> result) {
    if (call->finished)
      return;
    call->finished = true;
    if (call->backoff_timer)
      call->backoff_timer->cancel();
    live.erase(call.get());
    calls_completed.fetch_add(1, std::memory_order_relaxed);
    auto done = std::move(call->done);
    try {
      done(std::move(result));
    } catch (...) {
      // A throwing completion must not take the I/O thread down; the
      // contract says completions only hand results on.
    }
  }

  void fail(const call_ptr& call, remote_errc code, const std::string& what) {
    finish(call, make_error(code, call->where + ": " + what));
  }

  // -- attempts ----------------------------------------------------------------

  void start_attempt(const call_ptr& call) {
    if (call->finished)
      return;
    if (stopped_io)
      return fail(call, remote_errc::shut_down, "the client shut down");
    auto now = clock_type::now();
    if (now >= call->deadline)
      return give_up_on_time(call);
    ++call->attempts;
    attempts.fetch_add(1, std::memory_order_relaxed);
    if (call->attempts > 1)
      retries.fetch_add(1, std::memory_order_relaxed);
    auto& p = *call->owner;
    while (!p.idle.empty()) {
      auto conn = std::move(p.idle.back());
      p.idle.pop_back();
      if (now - conn->idle_since < p.ttl && conn->stream.socket().is_open()) {
        send(call, std::move(conn));
        return;
      }
      close(p, conn.get());
    }
    if (p.open < p.max_connections) {
      open_connection(call);
      return;
    }
    if (p.waiting.size() >= config.max_waiting_calls)
      return fail(call, remote_errc::overloaded,
                  std::to_string(p.waiting.size()) + " calls are already waiting for a connection");
    p.waiting.push_back(call);
  }

  void give_up_on_time(const call_ptr& call) {
    fail(call, remote_errc::retries_exhausted,
         "no reply within the call timeout of " + ms_text(call->call_timeout) + " after " +
             std::to_string(call->attempts) + " attempt(s)" +
             (call->last_error.empty() ? std::string{} : "; last error: " + call->last_error));
  }

  // An attempt failed in a way that may succeed later.
  void retry_later(const call_ptr& call, std::string why) {
    if (call->finished)
      return;
    call->last_error = std::move(why);
    if (stopped_io)
      return fail(call, remote_errc::shut_down, "the client shut down");
    if (call->max_attempts != 0 && call->attempts >= call->max_attempts)
      return fail(call, remote_errc::retries_exhausted,
                  "gave up after " + std::to_string(call->attempts) + " attempt(s) in " +
                      ms_text(clock_type::now() - call->started) +
                      "; last error: " + call->last_error);
    // Exponential backoff with jitter in [d/2, d], so clients that failed
    // together do not retry together.
    auto base = call->initial_backoff.count();
    auto cap = call->max_backoff.count();
    int64_t d = base;
    for (uint32_t i = 1; i < call->attempts && d < cap; ++i)
      d *= 2;
    d = std::min<int64_t>(d, cap);
    int64_t jittered = d / 2;
    if (d > 0)
      jittered += static_cast<int64_t>(rng() % static_cast<uint64_t>(d / 2 + 1));
    auto at = clock_type::now() + milliseconds{jittered};
    if (at >= call->deadline)
      return give_up_on_time(call);
    call->backoff_timer.emplace(io);
    call->backoff_timer->expires_at(at);
    call->backoff_timer->async_wait([this, call](beast::error_code ec) {
      if (ec == net::error::operation_aborted && call->finished)
        return;
      start_attempt(call);
    });
  }

  // -- connections ---------------------------------------------------------------

  void open_connection(const call_ptr& call) {
    auto& p = *call->owner;
    ++p.open;
    auto conn = std::make_shared<connection>(io);
    p.all.emplace(conn.get(), conn);
    p.busy.insert(conn.get());
    connections_opened.fetch_add(1, std::memory_order_relaxed);
    auto connect_deadline = std::min(call->deadline, clock_type::now() + call->connect_timeout);
    conn->stream.expires_at(connect_deadline);
    auto on_connect = [this, call, conn](beast::error_code ec) {
      if (ec) {
        auto& pl = *call->owner;
        if (ec != net::error::operation_aborted)
          pl.resolved.reset(); // resolve again next time
        close(pl, conn.get());
        if (call->finished)
          return;
        if (ec == beast::error::timeout && clock_type::now() >= call->deadline)
          return give_up_on_time(call);
        return retry_later(call, "connect to " + pl.authority + " failed: " +
                                     (ec == beast::error::timeout ? std::string{"connect timeout"}
                                                                  : ec.message()));
      }
      beast::error_code ignore;
      conn->stream.socket().set_option(tcp::no_delay{true}, ignore);
      send(call, conn);
    };
    if (p.numeric) {
      conn->stream.async_connect(*p.numeric, on_connect);
    } else if (p.resolved) {
      conn->stream.async_connect(
          *p.resolved,
          [on_connect](beast::error_code ec, const tcp::endpoint&) { on_connect(ec); });
    } else {
      resolver.async_resolve(
          p.host, std::to_string(p.port),
          [this, call, conn, on_connect](beast::error_code ec,
                                         tcp::resolver::results_type results) {
            if (ec)
              return on_connect(ec);
            call->owner->resolved = results;
            conn->stream.async_connect(
                results,
                [on_connect](beast::error_code ec2, const tcp::endpoint&) { on_connect(ec2); });
          });
    }
  }

  void close(pool& p, connection* conn) {
    auto i = p.all.find(conn);
    if (i == p.all.end())
      return;
    auto keep = i->second; // outlives the erase below
    beast::error_code ignore;
    keep->stream.socket().shutdown(tcp::socket::shutdown_both, ignore);
    keep->stream.socket().close(ignore);
    p.all.erase(i);
    p.busy.erase(conn);
    --p.open;
    // A slot freed: a waiting call may open a connection now.
    if (!stopped_io && !p.waiting.empty() && p.open < p.max_connections) {
      auto next = std::move(p.waiting.front());
      p.waiting.pop_front();
      net::post(io, [this, next] { resume_waiting(next); });
    }
  }

  // A waiting call got its turn: it has already counted its attempt.
  void resume_waiting(const call_ptr& call) {
    if (call->finished)
      return;
    if (clock_type::now() >= call->deadline)
      return give_up_on_time(call);
    auto& p = *call->owner;
    if (!p.idle.empty()) {
      auto conn = std::move(p.idle.back());
      p.idle.pop_back();
      send(call, std::move(conn));
    } else if (p.open < p.max_connections) {
      open_connection(call);
    } else {
      p.waiting.push_front(call);
    }
  }

  // The call is done with `conn`; keep it for the next call or close it.
  void release(pool& p, const connection_ptr& conn, bool keep_alive) {
    if (!keep_alive || stopped_io) {
      close(p, conn.get());
      return;
    }
    while (!p.waiting.empty()) {
      auto next = std::move(p.waiting.front());
      p.waiting.pop_front();
      if (next->finished)
        continue;
      if (clock_type::now() >= next->deadline) {
        give_up_on_time(next);
        continue;
      }
      send(next, conn);
      return;
    }
    p.busy.erase(conn.get());
    conn->idle_since = clock_type::now();
    conn->reused = true;
    p.idle.push_back(conn);
  }

  // -- one exchange ----------------------------------------------------------------

  void send(const call_ptr& call, connection_ptr conn) {
    auto& p = *call->owner;
    p.busy.insert(conn.get());
    conn->stream.expires_at(call->deadline);
    conn->parser.emplace();
    conn->parser->body_limit(call->payload_max_bytes);
    http::async_write(
        conn->stream, call->request, [this, call, conn](beast::error_code ec, size_t) {
          if (ec)
            return exchange_failed(call, conn, ec, "sending the request");
          // Header first: Beast 1.74 does not apply body_limit to a
          // response's Content-Length, so the client checks it itself.
          http::async_read_header(
              conn->stream, conn->buffer, *conn->parser,
              [this, call, conn](beast::error_code ec2, size_t) {
                if (ec2)
                  return exchange_failed(call, conn, ec2, "reading the reply");
                auto length = conn->parser->content_length();
                if (length && *length > call->payload_max_bytes)
                  return exchange_failed(call, conn, http::error::body_limit, "reading the reply");
                http::async_read(conn->stream, conn->buffer, *conn->parser,
                                 [this, call, conn](beast::error_code ec3, size_t) {
                                   if (ec3)
                                     return exchange_failed(call, conn, ec3, "reading the reply");
                                   if (conn->parser->get().body().size() > call->payload_max_bytes)
                                     return exchange_failed(call, conn, http::error::body_limit,
                                                            "reading the reply");
                                   on_response(call, conn);
                                 });
              });
        });
  }

  void exchange_failed(const call_ptr& call, const connection_ptr& conn, beast::error_code ec,
                       const char* during) {
    auto& p = *call->owner;
    close(p, conn.get());
    if (call->finished)
      return;
    if (ec == http::error::body_limit)
      return fail(call, remote_errc::malformed_response,
                  "the reply is larger than payload_max_bytes (" +
                      std::to_string(call->payload_max_bytes) + " bytes)");
    if (ec == beast::error::timeout)
      return give_up_on_time(call);
    retry_later(call, std::string{"I/O error while "} + during + ": " + ec.message());
  }

  void on_response(const call_ptr& call, const connection_ptr& conn) {
    auto& p = *call->owner;
    auto res = conn->parser->release();
    conn->parser.reset();
    bool keep_alive = res.keep_alive();
    release(p, conn, keep_alive);
    if (call->finished)
      return;
    auto status = res.result_int();
    if (status < 200 || status >= 300) {
      auto body = res.body().substr(0, 200);
      auto why = "HTTP " + std::to_string(status) + " " + std::string{sv(res.reason())} +
                 (body.empty() ? std::string{} : ": " + body);
      if (is_retryable_status(status))
        return retry_later(call, std::move(why));
      return fail(call, remote_errc::http_status, why + " (not retried)");
    }
    auto ct = sv(res[http::field::content_type]);
    if (!iequals_prefix(ct, "application/octet-stream"))
      return fail(call, remote_errc::malformed_response,
                  "the reply has Content-Type '" + std::string{ct} +
                      "', expected application/octet-stream");
    std::string body = std::move(res.body());
    auto encoding = sv(res[http::field::content_encoding]);
    if (!encoding.empty() && !iequals_prefix(encoding, "identity")) {
      auto plain = internal::decompress(encoding, body, call->payload_max_bytes);
      if (!plain)
        return fail(call, remote_errc::malformed_response, describe(plain.error()));
      body = std::move(*plain);
    }
    auto outcome = decode_response(body, call->req);
    if (!outcome) {
      // The codec names function and address; `where` names them and the URL.
      auto why = describe(outcome.error());
      auto prefix = reply_error_prefix(call->req.target);
      if (why.compare(0, prefix.size(), prefix) == 0)
        why = "invalid reply: " + why.substr(prefix.size());
      return fail(call, remote_errc::malformed_response, why);
    }
    finish(call, std::move(outcome));
  }

  // -- entry points --------------------------------------------------------------

  // The pool of `host:port`, created with the settings of the first
  // endpoint that uses it.
  pool& pool_for(const std::string& host, uint16_t port, uint32_t pool_size, milliseconds ttl) {
    auto key = host + ":" + std::to_string(port);
    auto i = pools.find(key);
    if (i != pools.end())
      return *i->second;
    auto p = std::make_unique<pool>();
    p->authority = key;
    p->host = host;
    p->port = port;
    p->max_connections = std::max<uint32_t>(1, pool_size);
    p->ttl = ttl;
    beast::error_code ec;
    auto ip = net::ip::make_address(host, ec);
    if (!ec)
      p->numeric = tcp::endpoint{ip, port};
    return *pools.emplace(key, std::move(p)).first->second;
  }

  void shutdown_io() {
    stopped_io = true;
    resolver.cancel();
    std::vector<call_ptr> calls;
    calls.reserve(live.size());
    for (auto& kv : live)
      calls.push_back(kv.second);
    for (auto& call : calls)
      fail(call, remote_errc::shut_down, "the client shut down");
    for (auto& kv : pools) {
      auto& p = *kv.second;
      p.waiting.clear();
      p.idle.clear();
      std::vector<connection*> conns;
      for (auto& c : p.all)
        conns.push_back(c.first);
      for (auto* c : conns)
        close(p, c);
    }
  }
};

remote_function_client::remote_function_client(client_config config)
    : impl_(std::make_unique<impl>(config)) {}

remote_function_client::~remote_function_client() {
  shutdown();
}

void remote_function_client::invoke(const http_endpoint_spec& endpoint, invocation_request req,
                                    completion done) {
  auto where = "remote function " + req.target.type.to_string() + " (address " +
               req.target.to_string() + ") at ";
  auto path = substitute_function_name(endpoint.url.target, req.target.type.name);
  auto url_text = endpoint.url.scheme + "://" + endpoint.url.authority() + path;
  where += url_text;
  if (endpoint.url.scheme != "http") {
    done(make_error(remote_errc::unsupported, where + ": scheme '" + endpoint.url.scheme +
                                                  "' is not supported (sluice calls functions over "
                                                  "plain http only)"));
    return;
  }
  auto body = encode_request(req);
  if (!body) {
    done(make_error(remote_errc::invalid_request, where + ": " + describe(body.error())));
    return;
  }
  auto call = std::make_shared<call_state>();
  call->req = std::move(req);
  call->done = std::move(done);
  call->where = std::move(where);
  call->url_text = std::move(url_text);
  call->call_timeout = endpoint.transport.call;
  call->initial_backoff = endpoint.transport.initial_backoff;
  call->max_backoff = endpoint.transport.max_backoff;
  call->max_attempts = endpoint.transport.max_attempts;
  call->payload_max_bytes = endpoint.transport.payload_max_bytes;
  call->connect_timeout = endpoint.transport.connect;
  auto& r = call->request;
  r.method(http::verb::post);
  r.target(path);
  r.version(11);
  r.set(http::field::host, endpoint.url.port == 80 ? endpoint.url.host : endpoint.url.authority());
  r.set(http::field::content_type, "application/octet-stream");
  r.set(http::field::accept, "application/octet-stream");
  r.set(http::field::accept_encoding, "gzip, deflate");
  r.set(http::field::connection, "keep-alive");
  r.set(http::field::user_agent, "statefun");
  r.body() = std::move(*body);
  r.prepare_payload();
  {
    std::lock_guard<std::mutex> lock{impl_->lifecycle};
    if (impl_->stopping) {
      auto cb = std::move(call->done);
      cb(make_error(remote_errc::shut_down, call->where + ": the client shut down"));
      return;
    }
    // Posted under the lock: shutdown posts after us, so the single I/O
    // thread runs this before it fails everything still live.
    net::post(impl_->io,
              [this, call, host = endpoint.url.host, port = endpoint.url.port,
               pool_size = endpoint.transport.pool_size, ttl = endpoint.transport.pool_ttl] {
                auto& self = *impl_;
                call->owner = &self.pool_for(host, port, pool_size, ttl);
                call->started = clock_type::now();
                call->deadline = call->started + call->call_timeout;
                self.live.emplace(call.get(), call);
                self.start_attempt(call);
              });
  }
}

void remote_function_client::shutdown() {
  {
    std::lock_guard<std::mutex> lock{impl_->lifecycle};
    if (impl_->stopping)
      return;
    impl_->stopping = true;
    net::post(impl_->io, [this] {
      impl_->shutdown_io();
      impl_->io.stop();
    });
  }
  impl_->guard.reset();
  if (!impl_->thread.joinable())
    return;
  // Called from a completion (against the contract): the thread cannot join
  // itself; it ends on its own once the posted shutdown ran.
  if (std::this_thread::get_id() == impl_->thread.get_id())
    impl_->thread.detach();
  else
    impl_->thread.join();
}

client_stats remote_function_client::stats() const {
  client_stats s;
  s.attempts = impl_->attempts.load(std::memory_order_relaxed);
  s.retries = impl_->retries.load(std::memory_order_relaxed);
  s.connections_opened = impl_->connections_opened.load(std::memory_order_relaxed);
  s.calls_completed = impl_->calls_completed.load(std::memory_order_relaxed);
  return s;
}

} // namespace sluice::remote
