// Queryable state through the REST API: GET /jobs/:jobid/state/:uid/:key on
// an unbounded keyed job at parallelism 2, on the heap and on RocksDB, with
// keys owned by each subtask, values that grow while the job runs, and the
// error statuses.

#include "sluice/sluice.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/internal/test_http_client.hpp"
#include "sluice/remote/rest/rest_api.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <utility>

using namespace sluice;
using namespace std::chrono_literals;
using nlohmann::json;
using remote::internal::test_http_client;

namespace {

constexpr int32_t max_p = 128;
constexpr int64_t keys = 8;

/// Per key: a count (value state), the last three records (list state) and
/// counts of even and odd records (map state).
struct tally final : keyed_process_function<int64_t, int64_t, int64_t> {
  state::value_state<int64_t> count;
  state::list_state<std::string> recent;
  state::map_state<std::string, int64_t> parity;
  void open(const runtime_context& ctx) override {
    count = ctx.get_state(value_state_descriptor<int64_t>("count"));
    recent = ctx.get_list_state(list_state_descriptor<std::string>("recent"));
    parity = ctx.get_map_state(map_state_descriptor<std::string, int64_t>("parity"));
  }
  void process_element(const int64_t& v, context&, collector<int64_t>& out) override {
    auto c = count.value().value_or(0) + 1;
    count.update(c);
    auto last = recent.get();
    last.push_back("r" + std::to_string(v));
    if (last.size() > 3)
      last.erase(last.begin());
    recent.update(std::move(last));
    const std::string side = v % 2 == 0 ? "even" : "odd";
    parity.put(side, parity.get(side).value_or(0) + 1);
    out.collect(v);
  }
};

/// The last record per key, keyed by a string.
struct last_name final : keyed_process_function<std::string, std::string, std::string> {
  state::value_state<std::string> last;
  void open(const runtime_context& ctx) override {
    last = ctx.get_state(value_state_descriptor<std::string>("last"));
  }
  void process_element(const std::string& v, context&, collector<std::string>& out) override {
    last.update(v);
    out.collect(v);
  }
};

/// Passes records on; keyed by a pair, which a URL cannot name.
struct pass_pair final
  : keyed_process_function<std::pair<int64_t, int64_t>, std::string, std::string> {
  void process_element(const std::string& v, context&, collector<std::string>& out) override {
    out.collect(v);
  }
};

std::shared_ptr<runtime::job_client> start_job(state::backend_kind backend) {
  configuration cfg;
  cfg.parallelism = 2;
  cfg.max_parallelism = max_p;
  cfg.state.backend = backend;
  stream_environment env(cfg);
  env.from_generator(stream_environment::unbounded,
                     [](uint64_t i) { return static_cast<int64_t>(i); }, 4000)
    .uid("numbers")
    .key_by([](int64_t i) { return i % keys; })
    .process(tally{})
    .uid("tally")
    .map([](int64_t i) { return "name " + std::to_string(i % 3); })
    .uid("namer")
    .key_by([](const std::string& s) { return s; })
    .process(last_name{})
    .uid("names")
    .key_by([](const std::string& s) { return std::make_pair(int64_t(s.size()), int64_t(0)); })
    .process(pass_pair{})
    .uid("pairs")
    .discard();
  return env.execute_async("queryable state");
}

/// Which of the 2 subtasks owns `key`.
int32_t owner(int64_t key) {
  auto kg = state::key_group_for_hash(state::key_hash<int64_t>{}(key), max_p);
  return state::key_group_range_for_subtask(max_p, 2, 0).contains(kg) ? 0 : 1;
}

json get_json(test_http_client& c, const std::string& target) {
  auto r = c.request("GET", target);
  REQUIRE_MESSAGE(r.status == 200, target << " -> " << r.status << " " << r.body);
  CHECK(r.content_type == "application/json");
  return json::parse(r.body);
}

/// The first message of a Flink-shaped error with status `status`.
std::string error_of(test_http_client& c, const std::string& target, unsigned status) {
  auto r = c.request("GET", target);
  CHECK_MESSAGE(r.status == status, target << " -> " << r.status << " " << r.body);
  auto j = json::parse(r.body, nullptr, false);
  REQUIRE(j.is_object());
  REQUIRE(j["errors"].is_array());
  REQUIRE(!j["errors"].empty());
  return j["errors"][0].get<std::string>();
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

} // namespace

TEST_SUITE("integration.queryable_state") {

TEST_CASE("GET /jobs/:jobid/state/:uid/:key reads keyed state of a running job from the "
          "subtask that owns the key") {
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
    CAPTURE(state::to_string(backend));
    auto job = start_job(backend);
    auto server = remote::rest::rest_server::start_local({});
    REQUIRE_MESSAGE(server, remote::describe(server.error()));
    test_http_client c{(*server)->port()};
    const auto base = "/jobs/" + job->job_id() + "/state/";

    // Every key has state once records flow.
    REQUIRE(test::eventually([&] {
      auto r = c.request("GET", base + "tally/" + std::to_string(keys - 1));
      return r.status == 200 && json::parse(r.body)["states"]["count"].is_number();
    }, 15s));

    std::set<int32_t> owners;
    for (int64_t k = 0; k < keys; ++k) {
      CAPTURE(k);
      owners.insert(owner(k));
      auto first = get_json(c, base + "tally/" + std::to_string(k));
      CHECK(first["key"] == k);
      const auto& s = first["states"];
      REQUIRE(s["count"].is_number_integer());
      REQUIRE(s["recent"].is_array());
      CHECK(s["recent"].size() <= 3);
      CHECK(s["recent"][0].get<std::string>().rfind('r', 0) == 0);
      REQUIRE(s["parity"].is_object());
      CHECK(s["parity"][k % 2 == 0 ? "even" : "odd"].get<int64_t>() == s["count"].get<int64_t>());
      // Values grow while the job runs.
      auto before = s["count"].get<int64_t>();
      CHECK(test::eventually([&] {
        return get_json(c, base + "tally/" + std::to_string(k))["states"]["count"]
                 .get<int64_t>() > before;
      }, 10s));
    }
    CHECK(owners == std::set<int32_t>{0, 1}); // keys of both subtasks were read

    // A key without state: every state is null.
    auto none = get_json(c, base + "tally/1000");
    CHECK(none["states"] == json{{"count", nullptr}, {"recent", nullptr}, {"parity", nullptr}});
    // String keys arrive URL-decoded.
    auto name = get_json(c, base + "names/name%201");
    CHECK(name["key"] == "name 1");
    CHECK(name["states"]["last"] == "name 1");

    CHECK(contains(error_of(c, base + "nope/1", 404), "'nope'"));
    CHECK(contains(error_of(c, base + "nope/1", 404), "tally, namer, names, pairs"));
    CHECK(contains(error_of(c, base + "namer/1", 400), "no keyed state"));
    CHECK(contains(error_of(c, base + "pairs/1", 400), "cannot be read from a URL"));
    CHECK(contains(error_of(c, base + "tally/abc", 400), "'abc'"));
    CHECK(contains(error_of(c, "/jobs/00000000000000000000000000000000/state/tally/1", 404),
                   "not found"));

    job->cancel();
    REQUIRE(job->wait_for(15s));
    CHECK(error_of(c, base + "tally/1", 409) == "the job is not running");
  }
}

} // TEST_SUITE
