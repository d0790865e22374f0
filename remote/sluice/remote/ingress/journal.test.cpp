#include "sluice/remote/ingress/journal.hpp"

#include <doctest/doctest.h>

using namespace sluice;
using namespace sluice::remote::ingress;
namespace fn = sluice::functions;

namespace {
fn::envelope msg(const std::string& id, std::string text = "x") {
  return fn::envelope::to_function(fn::address{{"a", "b"}, id}, fn::make_typed(text));
}
} // namespace

TEST_SUITE("remote.ingress.journal") {

TEST_CASE("messages are numbered in order and read from any kept sequence") {
  ingress_journal j(10, 1 << 20);
  CHECK(j.append(msg("0")) == 0u);
  CHECK(j.append(msg("1")) == 1u);
  CHECK(j.append(msg("2")) == 2u);
  std::vector<fn::envelope> out;
  CHECK(j.read(1, 10, out) == 3u);
  REQUIRE(out.size() == 2);
  CHECK(out[0].target.id == "1");
  out.clear();
  CHECK(j.read(0, 1, out) == 1u);
  CHECK(out.size() == 1);
  // Reading does not consume: a rewound source reads the same again.
  out.clear();
  CHECK(j.read(0, 10, out) == 3u);
  CHECK(out.size() == 3);
}

TEST_CASE("truncation drops old messages; a read before them starts at the first kept") {
  ingress_journal j(10, 1 << 20);
  for (int i = 0; i < 5; ++i)
    REQUIRE(j.append(msg(std::to_string(i))));
  j.truncate(3);
  CHECK(j.first() == 3u);
  CHECK(j.end() == 5u);
  CHECK(j.size() == 2u);
  std::vector<fn::envelope> out;
  CHECK(j.read(0, 10, out) == 5u);
  REQUIRE(out.size() == 2);
  CHECK(out[0].target.id == "3");
  j.truncate(100);
  CHECK(j.size() == 0u);
  CHECK(j.bytes() == 0u);
  CHECK(j.append(msg("5")) == 5u);
}

TEST_CASE("a full journal refuses by message count and by bytes, until truncated") {
  ingress_journal by_count(2, 1 << 20);
  CHECK(by_count.append(msg("0")));
  CHECK(by_count.append(msg("1")));
  CHECK_FALSE(by_count.append(msg("2")));
  by_count.truncate(1);
  CHECK(by_count.append(msg("2")) == 2u);

  auto big = std::string(1000, 'x');
  ingress_journal by_bytes(100, 2500);
  CHECK(by_bytes.append(msg("0", big)));
  CHECK(by_bytes.append(msg("1", big)));
  CHECK_FALSE(by_bytes.append(msg("2", big)));
  CHECK(by_bytes.size() == 2u);
  CHECK(by_bytes.bytes() <= 2500u);
}

TEST_CASE("two journals have different instances") {
  ingress_journal a(1, 1), b(1, 1);
  CHECK(a.instance() != b.instance());
}

}
