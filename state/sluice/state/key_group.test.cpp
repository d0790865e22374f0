#include "sluice/state/key_group.hpp"

#include <doctest/doctest.h>

#include <map>
#include <vector>

using namespace sluice::state;

TEST_SUITE("state.key_group") {

TEST_CASE("murmur hash matches Flink's MathUtils.murmurHash on known values") {
  // Reference values computed from the algorithm in Flink's MathUtils
  // (c1/c2 mixing, fmix32, abs with INT_MIN -> 0).
  CHECK(murmur_hash(0) == 593689054);
  CHECK(murmur_hash(1) == 68075478);
  CHECK(murmur_hash(42) == 1134849565);
  CHECK(murmur_hash(-1) == 1982413648);
  for (int32_t v : {0, 1, -1, 42, 1000, INT32_MIN, INT32_MAX})
    CHECK(murmur_hash(v) >= 0);
}

TEST_CASE("key hashes of built-in types match Java hashCode") {
  CHECK(key_hash<int32_t>{}(7) == 7);
  CHECK(key_hash<int64_t>{}(int64_t{1} << 32) == 1);
  CHECK(key_hash<int64_t>{}(-1) == 0);
  CHECK(key_hash<std::string>{}("hello") == 99162322);
  CHECK(key_hash<std::string>{}("") == 0);
  CHECK(key_hash<bool>{}(true) == 1231);
  CHECK(key_hash<double>{}(1.0) == 1072693248);
  CHECK(key_hash<double>{}(-0.0) == key_hash<double>{}(0.0));
  CHECK(key_hash<std::pair<int32_t, int32_t>>{}({1, 2}) == 994);
}

TEST_CASE("key group to subtask follows Flink's ranges") {
  // kg = murmur(hash) % maxP; subtask = kg * p / maxP.
  CHECK(key_group_for_hash(0, 128) == 593689054 % 128);
  CHECK(subtask_for_key_group(128, 2, 63) == 0);
  CHECK(subtask_for_key_group(128, 2, 64) == 1);
  CHECK(subtask_for_key_group(128, 3, 42) == 0);
  CHECK(subtask_for_key_group(128, 3, 43) == 1);
  CHECK(key_group_range_for_subtask(128, 3, 0) == key_group_range{0, 42});
  CHECK(key_group_range_for_subtask(128, 3, 1) == key_group_range{43, 85});
  CHECK(key_group_range_for_subtask(128, 3, 2) == key_group_range{86, 127});
}

TEST_CASE("every key group belongs to exactly the subtask whose range holds it") {
  for (int32_t maxp : {128, 256, 1000}) {
    for (int32_t p : {1, 2, 3, 4, 7, 128}) {
      if (p > maxp)
        continue;
      int32_t covered = 0;
      for (int32_t i = 0; i < p; ++i) {
        auto r = key_group_range_for_subtask(maxp, p, i);
        covered += r.size();
        for (int32_t kg = r.start; kg <= r.end; ++kg)
          REQUIRE(subtask_for_key_group(maxp, p, kg) == i);
      }
      CHECK(covered == maxp);
    }
  }
}

TEST_CASE("default max parallelism is min(max(roundUpPow2(p + p/2), 128), 32768)") {
  CHECK(default_max_parallelism(1) == 128);
  CHECK(default_max_parallelism(2) == 128);
  CHECK(default_max_parallelism(85) == 128);
  CHECK(default_max_parallelism(86) == 256);
  CHECK(default_max_parallelism(100) == 256);
  CHECK(default_max_parallelism(1000) == 2048);
  CHECK(default_max_parallelism(30000) == 32768);
}

struct user_key {
  int32_t a;
  int32_t hash_code() const { return a * 17; }
};

TEST_CASE("user types hash through their hash_code member") {
  CHECK(key_hash<user_key>{}(user_key{3}) == 51);
  CHECK(key_group_of(user_key{3}, 128) == murmur_hash(51) % 128);
}

} // TEST_SUITE
