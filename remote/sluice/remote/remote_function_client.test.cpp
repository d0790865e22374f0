#include "sluice/remote/remote_function_client.hpp"

#include "sluice/remote/internal/test_http_server.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <doctest/doctest.h>
#include <zlib.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

using namespace sluice::functions;
using namespace sluice::remote;
using sluice::remote::internal::closed_port;
using sluice::remote::internal::scripted_reply;
using sluice::remote::internal::seen_request;
using sluice::remote::internal::test_http_server;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

// Collects completions; tests wait on it with a timeout, never a sleep.
class outcomes {
public:
  remote_function_client::completion callback() {
    return [this](caf::expected<invocation_outcome> r) {
      std::lock_guard<std::mutex> lock{mtx_};
      results_.push_back(std::move(r));
      cv_.notify_all();
    };
  }

  bool wait(size_t n, milliseconds timeout = milliseconds{10000}) {
    std::unique_lock<std::mutex> lock{mtx_};
    return cv_.wait_for(lock, timeout, [&] { return results_.size() >= n; });
  }

  caf::expected<invocation_outcome> at(size_t i) {
    std::lock_guard<std::mutex> lock{mtx_};
    return results_.at(i);
  }

  size_t size() {
    std::lock_guard<std::mutex> lock{mtx_};
    return results_.size();
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<caf::expected<invocation_outcome>> results_;
};

http_endpoint_spec endpoint(uint16_t port) {
  http_endpoint_spec ep;
  ep.functions = {"example", std::nullopt};
  ep.url_path_template = "http://127.0.0.1:" + std::to_string(port) + "/fn/{function.name}";
  ep.url = *parse_url(ep.url_path_template);
  ep.transport.call = milliseconds{5000};
  ep.transport.connect = milliseconds{1000};
  ep.transport.initial_backoff = milliseconds{1};
  ep.transport.max_backoff = milliseconds{20};
  return ep;
}

invocation_request request(const char* id = "bob") {
  invocation_request req;
  req.target = address{{"example", "greeter"}, id};
  req.state.push_back({"seen", std::string{type_names::int32}, {}});
  req.invocations.push_back({std::nullopt, make_typed(std::string{"hi"})});
  return req;
}

std::string ok_body() {
  invocation_result r;
  r.mutations.push_back({state_mutation::kind::modify, "seen", make_typed(int32_t{1})});
  return encode_response(invocation_outcome{r});
}

scripted_reply ok() {
  scripted_reply r;
  r.body = ok_body();
  return r;
}

scripted_reply status(unsigned code) {
  scripted_reply r;
  r.status = code;
  r.content_type = "text/plain";
  r.body = "status " + std::to_string(code);
  return r;
}

void check_ok(const caf::expected<invocation_outcome>& r) {
  REQUIRE_MESSAGE(r, describe(r.error()));
  REQUIRE(std::holds_alternative<invocation_result>(*r));
  CHECK(std::get<invocation_result>(*r).mutations.size() == 1);
}

std::string error_of(const caf::expected<invocation_outcome>& r) {
  REQUIRE_FALSE(r);
  return describe(r.error());
}

std::string gzip(const std::string& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                       Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string header(const seen_request& r, const std::string& name) {
  for (auto& [k, v] : r.headers)
    if (k == name)
      return v;
  return "<absent>";
}

} // namespace

TEST_SUITE("remote.client") {

  TEST_CASE("a call posts the StateFun headers to the templated path") {
    test_http_server server{[](const seen_request&, int) { return ok(); }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    check_ok(got.at(0));
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].method == "POST");
    CHECK(reqs[0].target == "/fn/greeter");
    CHECK(header(reqs[0], "Content-Type") == "application/octet-stream");
    CHECK(header(reqs[0], "Accept") == "application/octet-stream");
    CHECK(header(reqs[0], "Accept-Encoding") == "gzip, deflate");
    CHECK(header(reqs[0], "Connection") == "keep-alive");
    CHECK(header(reqs[0], "User-Agent") == "statefun");
    CHECK(header(reqs[0], "Host") == "127.0.0.1:" + std::to_string(server.port()));
    auto decoded = decode_request(reqs[0].body);
    REQUIRE(decoded);
    CHECK(decoded->target == request().target);
  }

  TEST_CASE("sequential calls reuse one keep-alive connection") {
    test_http_server server{[](const seen_request&, int) { return ok(); }};
    remote_function_client client;
    auto ep = endpoint(server.port());
    for (int i = 0; i < 10; ++i) {
      outcomes got;
      client.invoke(ep, request(), got.callback());
      REQUIRE(got.wait(1));
      check_ok(got.at(0));
    }
    CHECK(server.connections() == 1);
    CHECK(client.stats().connections_opened == 1);
  }

  TEST_CASE("concurrent calls stay within the pool size") {
    test_http_server server{[](const seen_request&, int) { return ok(); }};
    remote_function_client client;
    auto ep = endpoint(server.port());
    ep.transport.pool_size = 2;
    outcomes got;
    for (int i = 0; i < 50; ++i)
      client.invoke(ep, request(), got.callback());
    REQUIRE(got.wait(50));
    for (size_t i = 0; i < 50; ++i)
      check_ok(got.at(i));
    CHECK(server.max_open_connections() <= 2);
    CHECK(client.stats().connections_opened <= 2);
  }

  TEST_CASE("a function that keeps answering 500 is retried, then the call fails "
            "with the reason") {
    test_http_server server{[](const seen_request&, int) { return status(500); }};
    remote_function_client client;
    auto ep = endpoint(server.port());
    ep.transport.max_attempts = 4;
    outcomes got;
    auto t0 = clock_type::now();
    client.invoke(ep, request(), got.callback());
    REQUIRE(got.wait(1));
    auto text = error_of(got.at(0));
    CHECK(is(got.at(0).error(), remote_errc::retries_exhausted));
    CHECK(text.find("gave up after 4 attempt(s)") != std::string::npos);
    CHECK(text.find("HTTP 500") != std::string::npos);
    CHECK(text.find("example/greeter/bob") != std::string::npos);
    CHECK(server.requests().size() == 4);
    CHECK(client.stats().retries == 3);
    // Backoff 1, 2, 4 ms with jitter: well under a second.
    CHECK(clock_type::now() - t0 < milliseconds{2000});
  }

  TEST_CASE("429 then 200 succeeds after one retry") {
    test_http_server server{[](const seen_request&, int n) { return n == 0 ? status(429) : ok(); }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    check_ok(got.at(0));
    CHECK(server.requests().size() == 2);
    CHECK(client.stats().retries == 1);
  }

  TEST_CASE("a status that is not retried fails at once") {
    test_http_server server{[](const seen_request&, int) { return status(404); }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    auto text = error_of(got.at(0));
    CHECK(is(got.at(0).error(), remote_errc::http_status));
    CHECK(text.find("HTTP 404") != std::string::npos);
    CHECK(text.find("not retried") != std::string::npos);
    CHECK(server.requests().size() == 1);
  }

  TEST_CASE("a function that never answers fails at the call timeout") {
    test_http_server server{[](const seen_request&, int) {
      scripted_reply r;
      r.what = scripted_reply::kind::hang;
      return r;
    }};
    remote_function_client client;
    auto ep = endpoint(server.port());
    ep.transport.call = milliseconds{300};
    outcomes got;
    auto t0 = clock_type::now();
    client.invoke(ep, request(), got.callback());
    REQUIRE(got.wait(1));
    auto elapsed = clock_type::now() - t0;
    auto text = error_of(got.at(0));
    CHECK(text.find("call timeout of 300 ms") != std::string::npos);
    CHECK(elapsed >= milliseconds{290});
    CHECK(elapsed < milliseconds{3000});
  }

  TEST_CASE("a connection closed without a reply is retried") {
    test_http_server server{[](const seen_request&, int n) {
      if (n == 0) {
        scripted_reply r;
        r.what = scripted_reply::kind::close;
        return r;
      }
      return ok();
    }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    check_ok(got.at(0));
    CHECK(server.requests().size() == 2);
    CHECK(server.connections() == 2);
  }

  TEST_CASE("garbage from a function is an error naming function and address") {
    test_http_server server{[](const seen_request&, int) {
      scripted_reply r;
      r.body = "\xff\xfe not protobuf at all";
      return r;
    }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    auto text = error_of(got.at(0));
    CHECK(is(got.at(0).error(), remote_errc::malformed_response));
    CHECK(text.find("remote function example/greeter") != std::string::npos);
    CHECK(text.find("address example/greeter/bob") != std::string::npos);
    CHECK(server.requests().size() == 1);
  }

  TEST_CASE("a mutation of an unregistered state is an error") {
    test_http_server server{[](const seen_request&, int) {
      invocation_result res;
      res.mutations.push_back({state_mutation::kind::modify, "secret", make_typed(int32_t{1})});
      scripted_reply r;
      r.body = encode_response(invocation_outcome{res});
      return r;
    }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    auto text = error_of(got.at(0));
    CHECK(text.find("'secret', which is not registered") != std::string::npos);
    CHECK(text.find("example/greeter/bob") != std::string::npos);
  }

  TEST_CASE("a reply without the octet-stream content type is an error") {
    test_http_server server{[](const seen_request&, int) {
      auto r = ok();
      r.content_type = "text/html";
      return r;
    }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    CHECK(error_of(got.at(0)).find("Content-Type 'text/html'") != std::string::npos);
  }

  TEST_CASE("a reply over the payload limit is an error") {
    test_http_server server{[](const seen_request&, int) {
      scripted_reply r;
      r.body = std::string(4096, 'x');
      return r;
    }};
    remote_function_client client;
    auto ep = endpoint(server.port());
    ep.transport.payload_max_bytes = 1024;
    outcomes got;
    client.invoke(ep, request(), got.callback());
    REQUIRE(got.wait(1));
    CHECK(error_of(got.at(0)).find("larger than payload_max_bytes (1024") != std::string::npos);
  }

  TEST_CASE("a gzip-encoded reply is decompressed") {
    test_http_server server{[](const seen_request&, int) {
      auto r = ok();
      r.body = gzip(r.body);
      r.headers.emplace_back("Content-Encoding", "gzip");
      return r;
    }};
    remote_function_client client;
    outcomes got;
    client.invoke(endpoint(server.port()), request(), got.callback());
    REQUIRE(got.wait(1));
    check_ok(got.at(0));
  }

  TEST_CASE("an endpoint that is down is retried, then the call fails") {
    remote_function_client client;
    auto ep = endpoint(closed_port());
    ep.transport.max_attempts = 3;
    outcomes got;
    auto t0 = clock_type::now();
    client.invoke(ep, request(), got.callback());
    REQUIRE(got.wait(1));
    auto text = error_of(got.at(0));
    CHECK(is(got.at(0).error(), remote_errc::retries_exhausted));
    CHECK(text.find("gave up after 3 attempt(s)") != std::string::npos);
    CHECK(text.find("connect to 127.0.0.1") != std::string::npos);
    CHECK(client.stats().attempts == 3);
    CHECK(clock_type::now() - t0 < milliseconds{2000});
  }

  TEST_CASE("https and unix sockets are reported as unsupported") {
    remote_function_client client;
    auto ep = endpoint(1);
    ep.url = *parse_url("https://127.0.0.1:8443/{function.name}");
    outcomes got;
    client.invoke(ep, request(), got.callback());
    REQUIRE(got.size() == 1);
    CHECK(is(got.at(0).error(), remote_errc::unsupported));
    ep.url = *parse_url("http+unix:///tmp/fn.sock/{function.name}");
    client.invoke(ep, request(), got.callback());
    REQUIRE(got.size() == 2);
    CHECK(is(got.at(1).error(), remote_errc::unsupported));
  }

  TEST_CASE("an empty batch fails without a request") {
    test_http_server server{[](const seen_request&, int) { return ok(); }};
    remote_function_client client;
    auto req = request();
    req.invocations.clear();
    outcomes got;
    client.invoke(endpoint(server.port()), req, got.callback());
    REQUIRE(got.size() == 1);
    CHECK(is(got.at(0).error(), remote_errc::invalid_request));
    CHECK(server.requests().empty());
  }

  TEST_CASE("shutdown completes pending calls and does not hang") {
    test_http_server server{[](const seen_request&, int) {
      scripted_reply r;
      r.what = scripted_reply::kind::hang;
      return r;
    }};
    outcomes got;
    auto client = std::make_unique<remote_function_client>();
    auto ep = endpoint(server.port());
    ep.transport.call = std::chrono::minutes{2};
    ep.transport.pool_size = 1;
    // One call hangs on the connection, two wait for it.
    for (int i = 0; i < 3; ++i)
      client->invoke(ep, request(), got.callback());
    REQUIRE(server.wait_for_requests(1, milliseconds{5000}));
    auto t0 = clock_type::now();
    client->shutdown();
    CHECK(clock_type::now() - t0 < milliseconds{2000});
    REQUIRE(got.size() == 3);
    for (size_t i = 0; i < 3; ++i)
      CHECK(is(got.at(i).error(), remote_errc::shut_down));
    client->invoke(ep, request(), got.callback());
    REQUIRE(got.size() == 4);
    CHECK(is(got.at(3).error(), remote_errc::shut_down));
  }
}
