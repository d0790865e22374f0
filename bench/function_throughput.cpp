// Stateful-function throughput, one figure per line:
//   embedded: N inv/s          embedded functions in a job (100 k addresses)
//   remote cpp: N inv/s        client -> C++ SDK server on loopback
//   js server alone: N req/s   raw keep-alive requests to the JS SDK server
//   remote js: N inv/s         client -> JS SDK server
//   ingress p50: T ms          ?reply=true round trips through the HTTP
//   ingress p99: T ms          ingress to an embedded function job
//
//   function_throughput [--only NAME] [--seconds S] [--batch B]
//                       [--in-flight K] [--addresses A] [--connections C]
//                       [--requests R] [--messages M] [--backend heap|rocksdb]
//
// Each measurement is one entry in `measurements()`. `embedded` runs M
// messages (embedded_throughput.cpp). The remote measurements keep K
// requests of B invocations in flight over a pool of C keep-alive
// connections, to A addresses of a counter function with one int state.

#include "sluice/remote/invocation_codec.hpp"
#include "sluice/remote/remote_function_client.hpp"
#include "sluice/remote/sdk/function_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

// ingress_latency.cpp and embedded_throughput.cpp (one measurement per file).
std::vector<double> ingress_latencies(int requests, std::string& error);
double embedded_invocations_per_second(uint64_t messages, uint64_t addresses,
                                       const std::string& backend, std::string& error);

namespace {

using namespace sluice::functions;
using namespace sluice::remote;
using clock_type = std::chrono::steady_clock;
namespace net = boost::asio;
namespace http = boost::beast::http;

struct options {
  std::string only;
  double seconds = 3;
  int requests = 3000;
  int batch = 10;
  int in_flight = 64;
  int addresses = 1000;
  uint32_t connections = 8;
  uint64_t messages = 2'000'000;
  std::string backend = "heap";
};

options opts;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "function_throughput: %s\n", why.c_str());
  std::exit(1);
}

// A node process running tests/compat/js/server.js.
class js_server {
public:
  js_server() {
    int out[2];
    if (pipe(out) != 0)
      die("pipe failed");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      close(out[1]);
      if (chdir(SLUICE_COMPAT_JS_DIR) != 0)
        _exit(126);
      execlp("node", "node", "server.js", "0", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    std::string line;
    while (line.find('\n') == std::string::npos) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 30000) <= 0)
        die("node did not start (run scripts/setup.sh)");
      char buf[128];
      auto n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0)
        die("node exited (run scripts/setup.sh)");
      line.append(buf, static_cast<size_t>(n));
    }
    close(out[0]);
    port_ = static_cast<uint16_t>(std::stoi(line.substr(line.find("on ") + 3)));
  }
  ~js_server() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  uint16_t port() const { return port_; }

private:
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

std::shared_ptr<sdk::function_registry> cpp_functions() {
  auto reg = std::make_shared<sdk::function_registry>();
  reg->bind({"example", "counter"}, {sdk::value<int32_t>("count")},
            [](sdk::context& ctx, const sdk::message& msg) {
              auto n = ctx.storage().get<int32_t>("count").value_or(0);
              ctx.storage().set("count", n + msg.as<int32_t>());
            });
  return reg;
}

// The JS server's stateless function takes an int; the C++ one counts.
invocation_request make_request(const char* type, int address_index, bool with_state) {
  invocation_request req;
  req.target = address{{"example", type}, "a" + std::to_string(address_index)};
  if (with_state)
    req.state.push_back(
        {"count", std::string{type_names::int32}, value_codec<int32_t>::encode(address_index)});
  for (int i = 0; i < opts.batch; ++i)
    req.invocations.push_back({std::nullopt, make_typed(int32_t{1})});
  return req;
}

// Keeps `in_flight` calls going for `seconds`; returns invocations/s.
double drive_client(uint16_t port, const char* type, bool with_state) {
  remote_function_client client;
  http_endpoint_spec ep;
  ep.url = *parse_url("http://127.0.0.1:" + std::to_string(port) + "/{function.name}");
  ep.transport.pool_size = opts.connections;
  std::vector<invocation_request> reqs;
  for (int a = 0; a < opts.addresses; ++a)
    reqs.push_back(make_request(type, a, with_state));
  std::mutex mtx;
  std::condition_variable cv;
  std::atomic<uint64_t> done_calls{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<bool> stop{false};
  int outstanding = 0;
  std::string first_error;
  auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                          std::chrono::duration<double>(opts.seconds));
  std::function<void(int)> issue = [&](int i) {
    client.invoke(ep, reqs[static_cast<size_t>(i) % reqs.size()],
                  [&, i](caf::expected<invocation_outcome> r) {
                    if (!r) {
                      failures.fetch_add(1);
                      std::lock_guard<std::mutex> lock{mtx};
                      if (first_error.empty())
                        first_error = describe(r.error());
                    } else {
                      done_calls.fetch_add(1, std::memory_order_relaxed);
                    }
                    if (!stop.load() && clock_type::now() < deadline) {
                      issue(i + opts.in_flight);
                      return;
                    }
                    stop = true;
                    std::lock_guard<std::mutex> lock{mtx};
                    if (--outstanding == 0)
                      cv.notify_all();
                  });
  };
  auto t0 = clock_type::now();
  {
    std::lock_guard<std::mutex> lock{mtx};
    outstanding = opts.in_flight;
  }
  for (int i = 0; i < opts.in_flight; ++i)
    issue(i);
  std::unique_lock<std::mutex> lock{mtx};
  cv.wait(lock, [&] { return outstanding == 0; });
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (failures > 0)
    die(std::to_string(failures.load()) + " calls failed, first: " + first_error);
  return static_cast<double>(done_calls.load()) * opts.batch / secs;
}

// Raw keep-alive HTTP requests (one invocation each) on `connections`
// connections from one thread, without sluice's client: the server's own
// ceiling. Returns requests/s.
double drive_raw(uint16_t port, const char* type) {
  auto saved = opts.batch;
  opts.batch = 1;
  auto body = *encode_request(make_request(type, 0, false));
  opts.batch = saved;
  net::io_context io;
  struct conn {
    explicit conn(net::io_context& io)
        : socket(io) {}
    net::ip::tcp::socket socket;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };
  std::vector<std::unique_ptr<conn>> conns;
  uint64_t replies = 0;
  auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                          std::chrono::duration<double>(opts.seconds));
  std::function<void(conn&)> loop = [&](conn& c) {
    c.res = {};
    http::async_write(c.socket, c.req, [&](boost::beast::error_code ec, size_t) {
      if (ec)
        die("write: " + ec.message());
      http::async_read(c.socket, c.buffer, c.res, [&](boost::beast::error_code ec2, size_t) {
        if (ec2)
          die("read: " + ec2.message());
        if (c.res.result_int() != 200)
          die("status " + std::to_string(c.res.result_int()));
        ++replies;
        if (clock_type::now() < deadline)
          loop(c);
      });
    });
  };
  for (uint32_t i = 0; i < opts.connections; ++i) {
    auto c = std::make_unique<conn>(io);
    c->socket.connect({net::ip::make_address("127.0.0.1"), port});
    c->socket.set_option(net::ip::tcp::no_delay{true});
    c->req = {http::verb::post, "/" + std::string{type}, 11};
    c->req.set(http::field::host, "127.0.0.1");
    c->req.set(http::field::content_type, "application/octet-stream");
    c->req.keep_alive(true);
    c->req.body() = body;
    c->req.prepare_payload();
    conns.push_back(std::move(c));
  }
  auto t0 = clock_type::now();
  for (auto& c : conns)
    loop(*c);
  io.run();
  auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  return static_cast<double>(replies) / secs;
}

// The q-quantile of the ingress latencies, measured once for both lines.
double ingress_quantile(double q) {
  static std::vector<double> ms = [] {
    std::string error;
    auto v = ingress_latencies(opts.requests, error);
    if (v.empty())
      die(error);
    return v;
  }();
  return ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))];
}

struct measurement {
  const char* name;
  const char* unit;
  std::function<double()> run;
  int decimals = 0;
};

std::vector<measurement> measurements() {
  return {
      {"embedded", "inv/s",
       [] {
         std::string error;
         auto v = embedded_invocations_per_second(opts.messages, 100'000, opts.backend, error);
         if (v == 0)
           die(error);
         return v;
       }},
      {"remote cpp", "inv/s",
       [] {
         sdk::server_config cfg;
         cfg.threads = 1;
         auto server = sdk::function_server::start(cpp_functions(), cfg);
         if (!server)
           die(describe(server.error()));
         return drive_client((*server)->port(), "counter", true);
       }},
      {"js server alone", "req/s",
       [] {
         js_server js;
         return drive_raw(js.port(), "stateless");
       }},
      {"remote js", "inv/s",
       [] {
         js_server js;
         return drive_client(js.port(), "stateless", false);
       }},
      {"ingress p50", "ms", [] { return ingress_quantile(0.50); }, 2},
      {"ingress p99", "ms", [] { return ingress_quantile(0.99); }, 2},
  };
}

} // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc)
        die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--only")
      opts.only = next();
    else if (a == "--seconds")
      opts.seconds = std::stod(next());
    else if (a == "--batch")
      opts.batch = std::stoi(next());
    else if (a == "--in-flight")
      opts.in_flight = std::stoi(next());
    else if (a == "--addresses")
      opts.addresses = std::stoi(next());
    else if (a == "--requests")
      opts.requests = std::stoi(next());
    else if (a == "--messages")
      opts.messages = std::stoull(next());
    else if (a == "--backend")
      opts.backend = next();
    else if (a == "--connections")
      opts.connections = static_cast<uint32_t>(std::stoul(next()));
    else
      die("unknown argument " + a);
  }
  for (auto& m : measurements()) {
    if (!opts.only.empty() && opts.only != m.name)
      continue;
    auto v = m.run();
    std::printf("%s: %.*f %s\n", m.name, m.decimals, v, m.unit);
    std::fflush(stdout);
  }
}
