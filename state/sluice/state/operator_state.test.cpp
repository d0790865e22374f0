#include "sluice/state/operator_state.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

using namespace sluice::state;

TEST_SUITE("state.operator") {

TEST_CASE("even-split hands out contiguous parts that differ by at most one") {
  std::vector<std::vector<int>> old{{0, 1, 2}, {3, 4}, {5, 6, 7, 8, 9}};
  auto two = redistribute_even(old, 2);
  CHECK(two == std::vector<std::vector<int>>{{0, 1, 2, 3, 4}, {5, 6, 7, 8, 9}});
  auto four = redistribute_even(old, 4);
  CHECK(four == std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}, {6, 7}, {8, 9}});
  auto many = redistribute_even(old, 12);
  size_t total = 0;
  for (size_t i = 0; i < many.size(); ++i) {
    CHECK(many[i].size() == (i < 10 ? 1u : 0u));
    total += many[i].size();
  }
  CHECK(total == 10);
  CHECK_THROWS_AS(redistribute_even(old, 0), state_error);
}

TEST_CASE("scaling in and out keeps every element exactly once") {
  std::vector<std::vector<std::string>> old(5);
  for (int i = 0; i < 23; ++i)
    old[static_cast<size_t>(i % 5)].push_back("offset-" + std::to_string(i));
  for (int32_t p : {1, 2, 3, 7, 30}) {
    auto parts = redistribute_even(old, p);
    REQUIRE(parts.size() == static_cast<size_t>(p));
    std::multiset<std::string> seen;
    for (auto& part : parts)
      seen.insert(part.begin(), part.end());
    CHECK(seen.size() == 23);
    CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 23);
  }
}

TEST_CASE("union redistribution gives every subtask every element") {
  std::vector<std::vector<int>> old{{1, 2}, {3}};
  auto three = redistribute_union(old, 3);
  REQUIRE(three.size() == 3);
  for (auto& part : three)
    CHECK(part == std::vector<int>{1, 2, 3});
}

TEST_CASE("broadcast redistribution copies one subtask's map to all") {
  using rules = std::map<std::string, int>;
  std::vector<rules> old{{{"a", 1}}, {{"a", 1}}};
  auto out = redistribute_broadcast(old, 3);
  REQUIRE(out.size() == 3);
  for (auto& r : out)
    CHECK(r == rules{{"a", 1}});
}

TEST_CASE("operator states are found by name and typed") {
  operator_state_store store;
  auto& offsets = store.list_state<int64_t>("offsets");
  offsets.add(10);
  offsets.add(20);
  CHECK(store.list_state<int64_t>("offsets").get() == std::vector<int64_t>{10, 20});
  auto& rules = store.broadcast_state<std::string, double>("rules");
  rules.put("limit", 100.0);
  CHECK(*store.broadcast_state<std::string, double>("rules").get("limit") == 100.0);
  CHECK_THROWS_AS(store.list_state<std::string>("offsets"), state_error);
  CHECK_THROWS_AS(store.union_list_state<int64_t>("offsets"), state_error);
  CHECK_THROWS_AS(store.list_state<int64_t>(""), state_error);
}


TEST_CASE("operator state snapshots restore at another parallelism") {
  // Three old subtasks, each with offsets (even-split), a union list and a
  // broadcast map that is the same everywhere.
  std::vector<std::vector<operator_state_part>> old;
  for (int s = 0; s < 3; ++s) {
    operator_state_store st;
    auto& offsets = st.list_state<int64_t>("offsets");
    for (int k = 0; k < 3 + s; ++k)
      offsets.add(s * 100 + k);
    st.union_list_state<std::string>("seen").add("s" + std::to_string(s));
    auto& rules = st.broadcast_state<std::string, int>("rules");
    rules.put("a", 1);
    rules.put("b", 2);
    old.push_back(operator_state_store::parse(st.snapshot(), "subtask " + std::to_string(s)));
  }
  for (int32_t p : {1, 2, 5}) {
    std::multiset<int64_t> all;
    for (int32_t i = 0; i < p; ++i) {
      operator_state_store st;
      st.restore(operator_state_store::redistribute(old, i, p));
      for (auto v : st.list_state<int64_t>("offsets").get())
        all.insert(v);
      CHECK(st.union_list_state<std::string>("seen").get() ==
            std::vector<std::string>{"s0", "s1", "s2"});
      auto& rules = st.broadcast_state<std::string, int>("rules");
      REQUIRE(rules.get("b") != nullptr);
      CHECK(*rules.get("b") == 2);
      CHECK(rules.entries().size() == 2);
    }
    CHECK(all.size() == 12);
    CHECK(std::set<int64_t>(all.begin(), all.end()).size() == 12);
  }
}

TEST_CASE("restored operator state nobody declares again stays in the next snapshot") {
  operator_state_store a;
  a.list_state<int>("x").add(7);
  operator_state_store b;
  b.restore(operator_state_store::parse(a.snapshot(), "a"));
  operator_state_store c;
  c.restore(operator_state_store::parse(b.snapshot(), "b"));
  CHECK(c.list_state<int>("x").get() == std::vector<int>{7});
}

TEST_CASE("corrupt or mismatched operator state gives a clear error") {
  operator_state_store a;
  a.list_state<int>("x").add(7);
  auto bytes = a.snapshot();
  auto bad = bytes;
  bad[bad.size() / 2] ^= 0x5a;
  CHECK_THROWS_WITH_AS(operator_state_store::parse(bad, "chk-3/op-1"),
                       doctest::Contains("chk-3/op-1"), state_error);
  CHECK_THROWS_AS(operator_state_store::parse(bytes.substr(0, 10), "f"), state_error);
  CHECK_THROWS_AS(operator_state_store::parse("hello", "f"), state_error);
  operator_state_store b;
  b.restore(operator_state_store::parse(bytes, "a"));
  CHECK_THROWS_WITH_AS(b.list_state<std::string>("x"), doctest::Contains("list<int32>"),
                       state_error);
  operator_state_store c;
  c.restore(operator_state_store::parse(bytes, "a"));
  CHECK_THROWS_AS(c.union_list_state<int>("x"), state_error);
}
} // TEST_SUITE
