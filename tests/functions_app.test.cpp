// `sluice functions run module.yaml`: the binary runs a module's remote
// functions behind the HTTP ingress, end to end on loopback.

#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/sdk/function_server.hpp"
#include "child_process.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

using namespace std::chrono_literals;
using namespace sluice::remote;
using sluice::remote::internal::test_http_client;
using sluice::test::child_process;

namespace {

/// example/greeter on the C++ SDK: counts visits per id and greets the
/// caller, or the example/greets egress when there is none.
std::unique_ptr<sdk::function_server> greeter_server() {
  auto functions = std::make_shared<sdk::function_registry>();
  functions->bind({"example", "greeter"}, {sdk::value<int32_t>("seen")},
                  [](sdk::context& ctx, const sdk::message& msg) {
                    auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
                    ctx.storage().set("seen", seen);
                    auto text = "Hello " + msg.as<std::string>() + " #" + std::to_string(seen);
                    if (ctx.caller())
                      ctx.send(*ctx.caller(), sluice::functions::make_typed(text));
                    else
                      ctx.send_egress({"example", "greets"}, sluice::functions::make_typed(text));
                  });
  auto server = sdk::function_server::start(functions);
  REQUIRE(server);
  return std::move(*server);
}

std::string module_text(uint16_t function_port, const std::string& dir) {
  std::ostringstream m;
  m << "kind: io.statefun.endpoints.v2/http\n"
       "spec:\n"
       "  functions: example/*\n"
       "  urlPathTemplate: http://127.0.0.1:"
    << function_port
    << "/statefun\n"
       "  transport:\n"
       "    call: 2s\n"
       "    connect: 500ms\n"
       "---\n"
       "kind: sluice.io/v1/file-egress\n"
       "spec:\n"
       "  id: example/greets\n"
       "  path: "
    << dir
    << "/greets.txt\n"
       "  format: raw\n"
       "---\n"
       "kind: sluice.io/v1/dead-letter-egress\n"
       "spec:\n"
       "  path: "
    << dir << "/dead-letters.jsonl\n";
  return m.str();
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// `sluice functions run <module> --port 0 ...`, up and listening.
struct running_app {
  running_app(const std::string& module, const std::string& dir)
    : process({SLUICE_BINARY, "functions", "run", module, "--port", "0",
               "--checkpoint-interval", "100ms", "--checkpoint-dir", dir + "/checkpoints"}) {
    auto line = process.wait_for_line("HTTP ingress on ", 30s);
    REQUIRE_MESSAGE(line, "sluice did not report its ingress");
    port = static_cast<uint16_t>(sluice::test::number_after(*line, "127.0.0.1:"));
  }
  child_process process;
  uint16_t port = 0;
};

} // namespace

TEST_SUITE("integration.functions_app") {

TEST_CASE("sluice functions run: requests with replies, egress lines, and a clean stop") {
  sluice::test::temp_dir dir;
  auto server = greeter_server();
  auto module = write_file(dir.file("module.yaml"), module_text(server->port(), dir.path()));
  running_app app(module, dir.path());
  test_http_client http(app.port);

  auto r = http.request("POST", "/functions/example/greeter/alice?reply=true", "Alice", {},
                        "text/plain");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; charset=utf-8");
  CHECK(r.body == "Hello Alice #1");
  r = http.request("POST", "/functions/example/greeter/alice?reply=true", "Alice", {},
                   "text/plain");
  CHECK(r.body == "Hello Alice #2"); // the function's state lives in sluice

  // Without ?reply=true: accepted, and the greeting goes to the file egress.
  r = http.request("POST", "/functions/example/greeter/bob", "Bob", {}, "text/plain");
  CHECK(r.status == 202);
  CHECK(sluice::test::eventually(
    [&] { return read_file(dir.file("greets.txt")).find("Hello Bob #1\n") != std::string::npos; },
    20s));

  // A function type the module does not declare: a dead letter, at once.
  r = http.request("POST", "/functions/other/nobody/x?reply=true", "hi", {}, "text/plain");
  CHECK(r.status == 500);
  CHECK(sluice::test::eventually(
    [&] { return read_file(dir.file("dead-letters.jsonl")).find("other/nobody") != std::string::npos; },
    20s));

  CHECK(app.process.stop(SIGTERM, 30s) == 0);
}

TEST_CASE("sluice functions run: a function endpoint that is down dead-letters, the rest keeps running") {
  sluice::test::temp_dir dir;
  uint16_t down_port = 0;
  {
    auto probe = greeter_server(); // a port nobody listens on once it stops
    down_port = probe->port();
  }
  auto module = write_file(dir.file("module.yaml"), module_text(down_port, dir.path()));
  running_app app(module, dir.path());
  test_http_client http(app.port);
  auto r = http.request("POST", "/functions/example/greeter/carol?reply=true", "Carol", {},
                        "text/plain", 30s);
  CHECK(r.status == 500);
  CHECK(r.body.find("example/greeter") != std::string::npos);
  CHECK(sluice::test::eventually(
    [&] { return read_file(dir.file("dead-letters.jsonl")).find("carol") != std::string::npos; },
    30s));
  // The job did not fail: it still takes requests.
  r = http.request("POST", "/functions/example/greeter/dave", "Dave", {}, "text/plain");
  CHECK(r.status == 202);
  CHECK(app.process.stop(SIGTERM, 30s) == 0);
}

TEST_CASE("sluice functions run: a bad module file is refused with its line") {
  sluice::test::temp_dir dir;
  auto module = write_file(dir.file("bad.yaml"), "kind: io.statefun.endpoints.v2/http\n"
                                                 "spec:\n"
                                                 "  functions: example/*\n"
                                                 "  urlPathTemplate: http://127.0.0.1:1/x\n"
                                                 "  maxNumBatchRequests: lots\n");
  child_process p({SLUICE_BINARY, "functions", "run", module, "--port", "0"});
  CHECK(p.stop(0, 30s) == 2); // signal 0: just wait for the exit
  child_process empty({SLUICE_BINARY, "functions", "run",
                       write_file(dir.file("empty.yaml"), "kind: sluice.io/v1/dead-letter-egress\n"
                                                          "spec: {path: /tmp/x.jsonl}\n"),
                       "--port", "0"});
  CHECK(empty.stop(0, 30s) == 1);
}

TEST_CASE("sluice functions run: settings from a file and -D, invalid ones refused") {
  sluice::test::temp_dir dir;
  auto server = greeter_server();
  auto module = write_file(dir.file("module.yaml"), module_text(server->port(), dir.path()));
  auto conf = write_file(dir.file("sluice-conf.yaml"), "parallelism:\n"
                                                       "  default: 1\n"
                                                       "state.backend.type: hashmap\n"
                                                       "execution.checkpointing.interval: 200 ms\n");
  {
    child_process p({SLUICE_BINARY, "functions", "run", module, "--port", "0", "--config", conf,
                     "-D", "restart-strategy.type=fixed-delay"});
    auto line = p.wait_for_line("HTTP ingress on ", 30s);
    REQUIRE(line);
    test_http_client http(static_cast<uint16_t>(sluice::test::number_after(*line, "127.0.0.1:")));
    auto r = http.request("POST", "/functions/example/greeter/eve?reply=true", "Eve", {},
                          "text/plain");
    CHECK(r.body == "Hello Eve #1");
    CHECK(p.stop(SIGTERM, 30s) == 0);
  }
  child_process bad_value({SLUICE_BINARY, "functions", "run", module, "--port", "0", "-D",
                           "parallelism.default=zero"});
  CHECK(bad_value.stop(0, 30s) == 1);
  child_process bad_file({SLUICE_BINARY, "functions", "run", module, "--port", "0", "--config",
                          write_file(dir.file("bad.yaml"), "a: [1\n")});
  CHECK(bad_file.stop(0, 30s) == 2);
}

}
