#include "sluice/runtime/channel_state.hpp"

#include "sluice/runtime/checkpoint_storage.hpp"
#include "sluice/runtime/exchange.hpp"

#include <doctest/doctest.h>

using namespace sluice::runtime;

TEST_SUITE("runtime.channel_state") {

TEST_CASE("channel state round trips its batches per channel") {
  channel_state cs;
  cs.inputs = {{"a", "bc"}, {}, {std::string(1000, 'x')}};
  cs.outputs = {{{"o1"}, {}}, {}};
  auto bytes = cs.encode();
  auto back = channel_state::decode(bytes, "f");
  CHECK(back.inputs == cs.inputs);
  CHECK(back.outputs == cs.outputs);
  CHECK(back.bytes() == 1005);
  CHECK_FALSE(back.empty());
  CHECK(channel_state{}.empty());
}

TEST_CASE("corrupt or foreign channel state files are errors naming the file") {
  channel_state cs;
  cs.inputs = {{"abc"}};
  auto bytes = cs.encode();
  auto flipped = bytes;
  flipped[9] ^= 0x20;
  CHECK_THROWS_WITH_AS(channel_state::decode(flipped, "chk-3/x.chan"),
                       doctest::Contains("chk-3/x.chan: channel state is corrupt"),
                       checkpoint_error);
  CHECK_THROWS_WITH_AS(channel_state::decode("hello world", "y"),
                       doctest::Contains("y: not a sluice channel state file"), checkpoint_error);
  CHECK_THROWS_AS(channel_state::decode(bytes.substr(0, bytes.size() - 2), "z"),
                  checkpoint_error);
}

TEST_CASE("a batch of records round trips with its timestamps") {
  record_batch<std::pair<std::string, int64_t>> b;
  b.records.reserve(4);
  b.timestamps.reserve(4);
  b.records.push_back({"a", 1});
  b.records.push_back({"b", 2});
  b.timestamps.push_back(10);
  b.timestamps.push_back(20);
  std::string out;
  b.write_records(out);
  sluice::state::byte_reader r(out);
  auto back = read_record_batch<std::pair<std::string, int64_t>>(r, 16);
  CHECK(r.at_end());
  REQUIRE(back->records.size() == 2);
  CHECK(back->records.capacity() == 16);
  CHECK(back->records[1].first == "b");
  CHECK(back->timestamps[1] == 20);
}

}
