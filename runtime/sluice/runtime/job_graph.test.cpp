#include "sluice/runtime/environment.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace sluice::runtime;
using nlohmann::json;

TEST_SUITE("runtime.job_graph") {

TEST_CASE("forward edges of equal parallelism are chained into one vertex") {
  stream_environment env;
  env.set_parallelism(2);
  env.from_generator(10, [](uint64_t i) { return i; })
    .map([](uint64_t x) { return x + 1; })
    .filter([](uint64_t x) { return x % 2 == 0; })
    .discard();
  auto plan = json::parse(env.explain("chain"));
  REQUIRE(plan["nodes"].size() == 1);
  CHECK(plan["nodes"][0]["description"] == "Source: Generator Source -> Map -> Filter -> Sink: Discard");
  CHECK(plan["nodes"][0]["parallelism"] == 2);
  CHECK(plan["name"] == "chain");
}

TEST_CASE("key_by, a parallelism change and disable_chaining break chains") {
  stream_environment env;
  env.set_parallelism(2);
  auto words = env.from_elements(std::string("a"), std::string("b"));
  auto pairs = words.map([](const std::string& w) { return std::make_pair(w, 1); });
  pairs.key_by([](const std::pair<std::string, int>& p) { return p.first; })
    .sum(&std::pair<std::string, int>::second)
    .map([](std::pair<std::string, int> p) { return p.second; })
    .disable_chaining()
    .print();
  auto plan = json::parse(env.explain());
  auto& nodes = plan["nodes"];
  REQUIRE(nodes.size() == 5);
  CHECK(nodes[0]["description"] == "Source: Collection Source");
  CHECK(nodes[0]["parallelism"] == 1);
  CHECK(nodes[1]["description"] == "Map");
  CHECK(nodes[1]["inputs"][0]["ship_strategy"] == "REBALANCE");
  CHECK(nodes[2]["description"] == "Keyed Aggregation");
  CHECK(nodes[2]["inputs"][0]["ship_strategy"] == "HASH");
  CHECK(nodes[2]["inputs"][0]["id"] == nodes[1]["id"]);
  CHECK(nodes[3]["description"] == "Map");
  CHECK(nodes[3]["inputs"][0]["ship_strategy"] == "FORWARD");
  CHECK(nodes[4]["description"] == "Sink: Print to Std. Out");
  CHECK(nodes[4]["inputs"][0]["ship_strategy"] == "FORWARD");
}

TEST_CASE("an implicit forward between different parallelism becomes rebalance") {
  stream_environment env;
  env.set_parallelism(3);
  env.from_elements(1, 2, 3).map([](int x) { return x; }).discard();
  auto plan = json::parse(env.explain());
  REQUIRE(plan["nodes"].size() == 2);
  CHECK(plan["nodes"][1]["inputs"][0]["ship_strategy"] == "REBALANCE");
}

TEST_CASE("an explicit forward between different parallelism is rejected") {
  stream_environment env;
  env.set_parallelism(3);
  env.from_elements(1, 2, 3).forward().map([](int x) { return x; }).discard();
  CHECK_THROWS_AS(env.explain(), invalid_program);
}

TEST_CASE("start_new_chain and slot sharing groups split chains") {
  stream_environment env;
  env.set_parallelism(1);
  auto s = env.from_generator(5, [](uint64_t i) { return i; });
  auto m = s.map([](uint64_t x) { return x; });
  m.start_new_chain();
  auto f = m.filter([](uint64_t) { return true; });
  f.slot_sharing_group("other");
  f.discard().slot_sharing_group("other");
  auto job = env.job();
  REQUIRE(job->vertices().size() == 3);
  CHECK(job->vertices()[1].name == "Map");
  CHECK(job->vertices()[2].name == "Filter -> Sink: Discard");
  CHECK(job->required_slots() == 2);
}

TEST_CASE("union feeds one operator from several inputs") {
  stream_environment env;
  env.set_parallelism(2);
  auto a = env.from_elements(1, 2);
  auto b = env.from_generator(3, [](uint64_t i) { return static_cast<int>(i); });
  a.union_with(b).map([](int x) { return x * 2; }).discard();
  auto job = env.job();
  const auto& v = job->vertices().back();
  CHECK(v.in_edges.size() == 2);
  // The single collection subtask rebalances to both; the generator
  // forwards pointwise, one channel each.
  CHECK(job->input_channels(v.id, 0).size() == 2);
  CHECK(job->input_channels(v.id, 1).size() == 2);
}

TEST_CASE("pointwise rescale connects contiguous ranges") {
  stream_environment env;
  auto s = env.from_generator(10, [](uint64_t i) { return i; });
  s.set_parallelism(2);
  auto m = s.rescale().map([](uint64_t x) { return x; });
  m.set_parallelism(4);
  m.discard().set_parallelism(4);
  auto job = env.job();
  CHECK(job->connected_subtasks(0, 0) == std::vector<int32_t>{0, 1});
  CHECK(job->connected_subtasks(0, 1) == std::vector<int32_t>{2, 3});
  auto ins = job->input_channels(1, 3);
  REQUIRE(ins.size() == 1);
  CHECK(ins[0].upstream_subtask == 1);
  CHECK(ins[0].upstream_channel == 1);
}

TEST_CASE("vertex ids are stable for the same program and follow uids") {
  auto build = [](const std::string& uid) {
    stream_environment env;
    env.set_parallelism(1);
    env.from_elements(1).map([](int x) { return x; }).uid(uid).disable_chaining().discard();
    return json::parse(env.explain());
  };
  CHECK(build("m")["nodes"][1]["id"] == build("m")["nodes"][1]["id"]);
  CHECK(build("m")["nodes"][1]["id"] != build("n")["nodes"][1]["id"]);
  CHECK(build("m")["nodes"][1]["id"].get<std::string>().size() == 32);
}

TEST_CASE("a duplicate uid and max parallelism below parallelism are rejected") {
  stream_environment env;
  env.set_parallelism(2);
  auto s = env.from_elements(1);
  s.map([](int x) { return x; }).uid("same").discard();
  s.map([](int x) { return x; }).uid("same").discard();
  CHECK_THROWS_WITH_AS(env.explain(), doctest::Contains("uid 'same'"), invalid_program);

  stream_environment env2;
  env2.set_parallelism(4);
  env2.set_max_parallelism(2);
  env2.from_elements(1).map([](int x) { return x; }).discard();
  CHECK_THROWS_AS(env2.explain(), invalid_program);
}

} // TEST_SUITE
