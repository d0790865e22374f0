// Functions jobs behind the HTTP ingress on loopback: messages, replies,
// file and dead-letter egresses, and exactly-once under subtask kills.

#include "sluice/sluice.hpp"
#include "sluice/remote/ingress/functions_job.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "exactly_once_util.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace fn = sluice::functions;
namespace ing = sluice::remote::ingress;
using sluice::remote::internal::test_http_client;
using sluice::test::eventually;

namespace {

const fn::egress_id out_egress{"test", "out"};

/// test/echo counts its messages per id, writes "<id>:<count>:<text>" to
/// test/out and answers its caller, if any, with "echo <text>" (a string)
/// or the value itself (any other type). test/silent never answers.
std::shared_ptr<fn::function_registry> test_functions() {
  auto reg = std::make_shared<fn::function_registry>();
  auto echo = [](fn::context& ctx, const fn::message& m) {
    auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
    ctx.storage().set<int32_t>("seen", seen);
    auto text = m.try_as<std::string>();
    ctx.send_egress(out_egress, ctx.self().id + ":" + std::to_string(seen) + ":" +
                                    (text ? *text : m.payload.type_name));
    if (ctx.caller()) {
      if (text)
        ctx.send(*ctx.caller(), std::string{"echo " + *text});
      else
        ctx.send(*ctx.caller(), m.payload);
    }
  };
  REQUIRE(!reg->bind({"test", "echo"}, echo, {fn::value_spec::of<int32_t>("seen")}));
  REQUIRE(!reg->bind({"test", "silent"}, [](fn::context&, const fn::message&) {}));
  return reg;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

remote::module egresses(const std::string& dir) {
  remote::module m;
  remote::file_egress_spec out;
  out.id = {"test", "out"};
  out.path = dir + "/out.txt";
  out.line_format = remote::file_egress_spec::format::raw;
  m.file_egresses.push_back(out);
  remote::dead_letter_egress_spec dead;
  dead.path = dir + "/dead.jsonl";
  m.dead_letters = dead;
  return m;
}

std::shared_ptr<ing::http_ingress> start_ingress(ing::http_ingress_config cfg = {}) {
  auto in = ing::http_ingress::start(std::move(cfg));
  REQUIRE(in);
  return *in;
}

} // namespace

TEST_SUITE("integration.http_ingress") {

TEST_CASE("messages, replies, file and dead-letter egresses through the HTTP ingress") {
  sluice::test::temp_dir dir;
  ing::http_ingress_config icfg;
  icfg.reply_timeout = 3s;
  auto ingress = start_ingress(icfg);
  configuration cfg;
  cfg.parallelism = 2;
  cfg.buffer_timeout = 1ms;
  stream_environment env(cfg);
  auto egress = ing::run_http_functions(env, *ingress, test_functions(), egresses(dir.path()));
  REQUIRE(egress);
  auto job = env.execute_async("http ingress");
  sluice::test::exactly_once::job_guard guard(job);
  REQUIRE(eventually([&] { return job->status() == runtime::job_status::running; }, 30s));
  test_http_client c(ingress->port());

  // text/plain and vnd messages reach the function and the file egress.
  CHECK(c.request("POST", "/functions/test/echo/ann", "hello", {}, "text/plain").status == 202);
  CHECK(c.request("POST", "/functions/test/echo/ann", "again", {}, "text/plain").status == 202);
  CHECK(c.request("PUT", "/functions/test/echo/bob", "\x01", {}, "application/vnd.com.example/Raw")
            .status == 202);
  auto out = dir.path() + "/out.txt";
  CHECK(eventually([&] { return lines_of(out).size() == 3; }, 30s));
  std::set<std::string> got;
  for (auto& l : lines_of(out))
    got.insert(l);
  CHECK(got == std::set<std::string>{"ann:1:hello", "ann:2:again", "bob:1:com.example/Raw"});

  // A reply request gets the function's answer as its response.
  auto r = c.request("POST", "/functions/test/echo/ann?reply=true", "hi", {}, "text/plain");
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; charset=utf-8");
  CHECK(r.body == "echo hi");
  r = c.request("POST", "/functions/test/echo/bob?reply=true", std::string("\x00\x01", 2), {},
                "application/vnd.com.example/Raw");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/vnd.com.example/Raw");
  CHECK(r.body == std::string("\x00\x01", 2));

  // Concurrent reply requests each get their own answer.
  std::atomic<int> right{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t)
    clients.emplace_back([&, t] {
      test_http_client mine(ingress->port());
      for (int i = 0; i < 25; ++i) {
        auto text = std::to_string(t) + "-" + std::to_string(i);
        auto reply = mine.request(
            "POST", "/functions/test/echo/id" + std::to_string(i % 5) + "?reply=true", text, {},
            "text/plain");
        if (reply.status == 200 && reply.body == "echo " + text)
          ++right;
      }
    });
  for (auto& t : clients)
    t.join();
  CHECK(right == 200);
  CHECK(ingress->replies()->waiting() == 0);

  // A function that never answers makes the request time out with 504.
  r = c.request("POST", "/functions/test/silent/x?reply=true", "hi", {}, "text/plain");
  CHECK(r.status == 504);
  CHECK(r.body.find("no reply from test/silent/x within 3000 ms") != std::string::npos);

  // A message to an unbound function is written to the dead-letter file.
  CHECK(c.request("POST", "/functions/nobody/here/7", "lost", {}, "text/plain").status == 202);
  auto dead = dir.path() + "/dead.jsonl";
  REQUIRE(eventually([&] { return lines_of(dead).size() == 1; }, 30s));
  auto j = nlohmann::json::parse(lines_of(dead)[0]);
  CHECK(j["target"] == "nobody/here/7");
  CHECK(j["caller"].is_null());
  CHECK(j["typename"] == "io.statefun.types/string");
  CHECK(j["value"] == "lost");
  CHECK(j["reason"].get<std::string>().find("nobody/here") != std::string::npos);

  // A reply request whose message becomes a dead letter fails at once.
  auto t0 = std::chrono::steady_clock::now();
  r = c.request("POST", "/functions/nobody/here/8?reply=true", "lost", {}, "text/plain");
  CHECK(r.status == 500);
  CHECK(r.body.find("the message to nobody/here/8 could not be handled") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

TEST_CASE("accepted messages are neither lost nor duplicated when subtasks are killed") {
  sluice::test::temp_dir dir;
  auto ingress = start_ingress();
  auto cfg = sluice::test::exactly_once::checkpointed(dir.path(), state::backend_kind::rocksdb, 2);
  cfg.checkpoints.interval = 40ms;
  cfg.buffer_timeout = 1ms;
  stream_environment env(cfg);
  REQUIRE(ing::run_http_functions(env, *ingress, test_functions(), egresses(dir.path())));
  auto job = env.execute_async("http ingress under failures");
  sluice::test::exactly_once::job_guard guard(job);

  constexpr int messages = 600;
  constexpr int ids = 20;
  constexpr int kills = 4;
  test_http_client c(ingress->port());
  int posted = 0;
  // Posts the next share of the messages; they all must be accepted.
  auto post_batch = [&] {
    for (int n = 0; n < messages / (kills + 1); ++n, ++posted) {
      auto r = c.request("POST", "/functions/test/echo/k" + std::to_string(posted % ids),
                         "m" + std::to_string(posted), {}, "text/plain");
      REQUIRE(r.status == 202);
    }
  };
  auto completed = [&] {
    return nlohmann::json::parse(job->checkpoint_stats_json())["counts"]["completed"]
        .get<int64_t>();
  };
  REQUIRE(eventually([&] { return job->status() == runtime::job_status::running; }, 30s));
  auto source = sluice::test::exactly_once::vertex_of(*job, "HTTP Ingress");
  auto dispatcher = sluice::test::exactly_once::vertex_of(*job, "Functions");
  REQUIRE(source >= 0);
  REQUIRE(dispatcher >= 0);
  std::mt19937_64 rng(5);
  post_batch();
  for (int round = 0; round < kills; ++round) {
    REQUIRE(eventually([&] {
      return job->status() == runtime::job_status::running && job->restarts() >= round;
    }, 30s));
    auto before = completed();
    REQUIRE(eventually([&] { return completed() >= before + 2; }, 30s));
    if (round % 2 == 0)
      job->kill_subtask(source, 0);
    else
      job->kill_subtask(dispatcher, static_cast<int32_t>(rng() % 2));
    // Accepted while the kill lands and the job restarts.
    post_batch();
    REQUIRE(eventually([&] { return job->restarts() >= round + 1; }, 30s));
  }
  REQUIRE(posted == messages);
  auto out = dir.path() + "/out.txt";
  CHECK(eventually([&] { return lines_of(out).size() >= static_cast<size_t>(messages); }, 60s));
  job->cancel();
  (void)job->wait_for(60s);

  // Every message once, and each id's count runs 1, 2, ... without a gap
  // or repeat (its state was restored exactly once too).
  std::map<std::string, int> payloads;
  std::map<std::string, std::set<int>> counts;
  auto lines = lines_of(out);
  for (auto& l : lines) {
    auto a = l.find(':');
    auto b = l.find(':', a + 1);
    REQUIRE(b != std::string::npos);
    ++payloads[l.substr(b + 1)];
    counts[l.substr(0, a)].insert(std::stoi(l.substr(a + 1, b - a - 1)));
  }
  CHECK(lines.size() == static_cast<size_t>(messages));
  CHECK(payloads.size() == static_cast<size_t>(messages));
  for (auto& [p, n] : payloads)
    CHECK_MESSAGE(n == 1, p);
  for (auto& [id, seen] : counts)
    CHECK_MESSAGE((static_cast<int>(seen.size()) == *seen.rbegin() && *seen.begin() == 1), id);
  CHECK(job->restarts() == kills);
  // Completed checkpoints truncated the journal.
  CHECK(ingress->journal()->size() < static_cast<size_t>(messages));
}

}
