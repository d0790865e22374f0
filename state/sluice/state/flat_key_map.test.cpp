#include "sluice/state/flat_key_map.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace sluice::state;

TEST_SUITE("state.flat_key_map") {

TEST_CASE("an arrival map finds what it holds and walks it in arrival order") {
  arrival_map<std::string, int> m;
  CHECK(m.find("a", 1) == nullptr);
  // Colliding hashes and growth past the first index size.
  std::vector<std::string> keys;
  for (int i = 0; i < 300; ++i) {
    keys.push_back("k" + std::to_string(i));
    m.insert(keys.back(), static_cast<uint32_t>(i % 7), i);
  }
  CHECK(m.size() == 300);
  for (int i = 0; i < 300; ++i) {
    auto* v = m.find(keys[static_cast<size_t>(i)], static_cast<uint32_t>(i % 7));
    REQUIRE(v != nullptr);
    CHECK(*v == i);
  }
  CHECK(m.find("k5", 6) == nullptr); // right key, wrong hash
  CHECK(m.find("k300", 300 % 7) == nullptr);
  *m.find("k3", 3) += 1000;
  std::vector<std::string> walked;
  std::vector<int> values;
  m.for_each([&](const std::string& k, int& v) {
    walked.push_back(k);
    values.push_back(v);
  });
  CHECK(walked == keys);
  CHECK(values[3] == 1003);
  std::vector<uint32_t> hashes;
  m.for_each_key([&](const std::string&, uint32_t h) { hashes.push_back(h); });
  REQUIRE(hashes.size() == 300);
  CHECK(hashes[8] == 1);
}

TEST_CASE("a cleared arrival map is empty and fills again like a new one") {
  arrival_map<int, int> m;
  m.reserve(100);
  for (int i = 0; i < 100; ++i)
    m.insert(i, static_cast<uint32_t>(i * 2654435761u), i);
  m.clear();
  CHECK(m.empty());
  for (int i = 0; i < 100; ++i)
    CHECK(m.find(i, static_cast<uint32_t>(i * 2654435761u)) == nullptr);
  for (int i = 50; i < 60; ++i)
    m.insert(i, static_cast<uint32_t>(i * 2654435761u), -i);
  CHECK(m.size() == 10);
  CHECK(*m.find(55, static_cast<uint32_t>(55 * 2654435761u)) == -55);
  int n = 0;
  m.for_each([&](const int& k, int& v) {
    CHECK(k == 50 + n);
    CHECK(v == -k);
    ++n;
  });
  CHECK(n == 10);
}

} // TEST_SUITE
