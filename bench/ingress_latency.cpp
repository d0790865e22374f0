// The `ingress p50/p99` measurement of function_throughput: request/reply
// latency through the HTTP ingress.

#include "sluice/sluice.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/ingress/functions_job.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace fn = sluice::functions;
namespace ing = sluice::remote::ingress;

/// One keep-alive connection sends `requests` POST ?reply=true (after 200
/// for warm-up) to an embedded function that answers its caller, in a
/// functions job at parallelism 2 with buffer timeout 0 and no
/// checkpointing. The latencies in ms, sorted; empty with `error` set when
/// something failed.
std::vector<double> ingress_latencies(int requests, std::string& error) {
  auto started = ing::http_ingress::start({});
  if (!started) {
    error = sluice::remote::describe(started.error());
    return {};
  }
  auto ingress = *started;
  auto reg = std::make_shared<fn::function_registry>();
  auto bound = reg->bind({"bench", "echo"}, [](fn::context& ctx, const fn::message& m) {
    if (ctx.caller())
      ctx.send(*ctx.caller(), m.payload);
  });
  if (bound) {
    error = "cannot bind bench/echo";
    return {};
  }
  sluice::configuration cfg;
  cfg.parallelism = 2;
  cfg.buffer_timeout = std::chrono::milliseconds{0};
  sluice::stream_environment env(cfg);
  if (!ing::run_http_functions(env, *ingress, reg, sluice::remote::module{})) {
    error = "cannot build the ingress job";
    return {};
  }
  auto job = env.execute_async("ingress bench");
  std::vector<double> ms;
  try {
    net::io_context io;
    net::ip::tcp::socket socket(io);
    socket.connect({net::ip::make_address("127.0.0.1"), ingress->port()});
    socket.set_option(net::ip::tcp::no_delay{true});
    boost::beast::flat_buffer buffer;
    const int warm_up = 200;
    for (int i = 0; i < warm_up + requests; ++i) {
      http::request<http::string_body> req{
          http::verb::post, "/functions/bench/echo/" + std::to_string(i % 100) + "?reply=true",
          11};
      req.set(http::field::host, "127.0.0.1");
      req.set(http::field::content_type, "text/plain");
      req.keep_alive(true);
      req.body() = "ping " + std::to_string(i);
      req.prepare_payload();
      auto t0 = std::chrono::steady_clock::now();
      http::write(socket, req);
      http::response<http::string_body> res;
      http::read(socket, buffer, res);
      auto t1 = std::chrono::steady_clock::now();
      if (res.result_int() != 200 || res.body() != req.body()) {
        error = "ingress reply " + std::to_string(res.result_int()) + ": " + res.body();
        ms.clear();
        break;
      }
      if (i >= warm_up)
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
  } catch (const std::exception& e) {
    error = std::string("ingress client: ") + e.what();
    ms.clear();
  }
  job->cancel();
  job->wait();
  ingress->stop();
  std::sort(ms.begin(), ms.end());
  return ms;
}
