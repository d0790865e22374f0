#include "proto/request_reply.pb.h"

#include <doctest/doctest.h>

namespace rr = io::statefun::sdk::reqreply;

TEST_SUITE("remote.proto") {

TEST_CASE("the generated protocol writes the StateFun wire prefixes") {
  rr::ToFunction to;
  auto* batch = to.mutable_invocation();
  batch->mutable_target()->set_namespace_("ns");
  batch->mutable_target()->set_type("fn");
  batch->mutable_target()->set_id("a");
  auto bytes = to.SerializeAsString();
  REQUIRE(bytes.size() > 2);
  CHECK(static_cast<uint8_t>(bytes[0]) == 0xa2);
  CHECK(static_cast<uint8_t>(bytes[1]) == 0x06);
  rr::FromFunction from;
  from.mutable_incomplete_invocation_context();
  auto reply = from.SerializeAsString();
  REQUIRE(reply.size() >= 2);
  CHECK(static_cast<uint8_t>(reply[0]) == 0xaa);
  CHECK(static_cast<uint8_t>(reply[1]) == 0x06);
}

}
