#include "sluice/sluice.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace sluice;

namespace {

/// Counts the records of its subtask in operator list state and tags each
/// record with the count so far.
struct count_in_operator_state final : rich_function {
  std::string tag;
  state::operator_list_state<int64_t>* seen = nullptr;
  explicit count_in_operator_state(std::string t) : tag(std::move(t)) {}
  void open(const runtime_context& ctx) override {
    seen = &ctx.operator_state().list_state<int64_t>("seen");
  }
  std::string operator()(const std::string& in) {
    seen->add(1);
    return in + "|" + tag + std::to_string(seen->get().size());
  }
};

} // namespace

TEST_SUITE("integration.operator_state") {

TEST_CASE("each operator instance of a chain has its own operator state") {
  stream_environment env;
  env.set_parallelism(1);
  auto out = env.from_elements<std::string>("a", "b", "c")
               .map(count_in_operator_state("x"))
               .map(count_in_operator_state("y"))
               .collect();
  auto r = env.execute("operator state");
  REQUIRE_MESSAGE(r.ok(), r.error);
  // Same state name in two chained operators: two separate lists.
  CHECK(out->values() == std::vector<std::string>{"a|x1|y1", "b|x2|y2", "c|x3|y3"});
}

TEST_CASE("operator state declared with two shapes under one name is an error") {
  struct confused final : rich_function {
    void open(const runtime_context& ctx) override {
      ctx.operator_state().list_state<int64_t>("s");
      ctx.operator_state().union_list_state<int64_t>("s");
    }
    int64_t operator()(int64_t v) { return v; }
  };
  stream_environment env;
  env.from_elements<int64_t>(1).map(confused{}).discard();
  auto r = env.execute("confused");
  CHECK(!r.ok());
  CHECK(r.error.find("operator state 's' is declared as") != std::string::npos);
}

} // TEST_SUITE
