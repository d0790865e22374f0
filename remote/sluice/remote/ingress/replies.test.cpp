#include "sluice/remote/ingress/replies.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace sluice;
using namespace sluice::remote::ingress;
using namespace std::chrono_literals;
namespace fn = sluice::functions;

namespace {

template <class Pred>
bool within(std::chrono::milliseconds timeout, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::yield();
  }
  return true;
}

struct recorded {
  std::mutex mtx;
  std::vector<reply_outcome> outcomes;
  reply_registry::completion record() {
    return [this](reply_outcome o) {
      std::lock_guard<std::mutex> lock{mtx};
      outcomes.push_back(std::move(o));
    };
  }
  size_t size() {
    std::lock_guard<std::mutex> lock{mtx};
    return outcomes.size();
  }
};

} // namespace

TEST_SUITE("remote.ingress.replies") {

TEST_CASE("a reply completes its request once; a second or unknown one is dropped") {
  recorded got; // outlives the registry, which completes what waits on destruction
  reply_registry r(10);
  auto id = r.add(10s, got.record());
  REQUIRE(id);
  CHECK(r.waiting() == 1);
  CHECK(r.complete(*id, fn::make_typed(std::string{"hi"})));
  CHECK_FALSE(r.complete(*id, fn::make_typed(std::string{"again"})));
  CHECK_FALSE(r.complete("nobody", fn::make_typed(std::string{"x"})));
  REQUIRE(got.size() == 1);
  CHECK(got.outcomes[0].what == reply_outcome::kind::answered);
  CHECK(got.outcomes[0].value == fn::make_typed(std::string{"hi"}));
  CHECK(r.waiting() == 0);
}

TEST_CASE("a request without a reply times out, and its late reply is dropped") {
  recorded got; // outlives the registry, which completes what waits on destruction
  reply_registry r(10);
  auto slow = r.add(30ms, got.record());
  auto answered = r.add(10s, got.record());
  REQUIRE(slow);
  REQUIRE(answered);
  CHECK(within(5s, [&] { return got.size() == 1; }));
  CHECK(got.outcomes[0].what == reply_outcome::kind::timed_out);
  CHECK_FALSE(r.complete(*slow, fn::make_typed(std::string{"late"})));
  CHECK(r.waiting() == 1);
  CHECK(r.complete(*answered, fn::make_typed(std::string{"ok"})));
}

TEST_CASE("ids are unique and the registry refuses beyond its capacity") {
  recorded got; // outlives the registry, which completes what waits on destruction
  reply_registry r(2);
  auto a = r.add(10s, got.record());
  auto b = r.add(10s, got.record());
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a != *b);
  CHECK_FALSE(r.add(10s, got.record()));
  r.cancel(*a);
  CHECK(got.size() == 0); // cancelled: no completion
  CHECK(r.add(10s, got.record()));
}

TEST_CASE("shut_down ends waiting requests and refuses new ones") {
  recorded got; // outlives the registry, which completes what waits on destruction
  reply_registry r(10);
  REQUIRE(r.add(10s, got.record()));
  r.shut_down();
  REQUIRE(got.size() == 1);
  CHECK(got.outcomes[0].what == reply_outcome::kind::shut_down);
  CHECK_FALSE(r.add(10s, got.record()));
}

TEST_CASE("replies from many threads each complete their own request") {
  reply_registry r(1000);
  std::atomic<int> right{0};
  std::vector<std::string> ids;
  for (int i = 0; i < 400; ++i) {
    auto expect = std::to_string(i);
    auto id = r.add(10s, [&right, expect](reply_outcome o) {
      if (o.what == reply_outcome::kind::answered && fn::typed_as<std::string>(o.value) == expect)
        ++right;
    });
    REQUIRE(id);
    ids.push_back(*id);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < ids.size(); i += 4)
        r.complete(ids[i], fn::make_typed(std::to_string(i)));
    });
  for (auto& t : threads)
    t.join();
  CHECK(right == 400);
}

TEST_CASE("the reply sink completes requests from reply egress records only") {
  auto r = std::make_shared<reply_registry>(10);
  recorded got;
  auto id = r->add(10s, got.record());
  REQUIRE(id);
  reply_sink sink(r);
  sink.invoke(fn::envelope::to_egress(fn::egress_id{"other", "egress"},
                                      fn::make_typed(http_reply_record{*id, {}})));
  CHECK(got.size() == 0);
  sink.invoke(fn::envelope::to_egress(
      reply_egress(), fn::make_typed(http_reply_record{*id, fn::make_typed(int64_t{5})})));
  REQUIRE(got.size() == 1);
  CHECK(got.outcomes[0].value == fn::make_typed(int64_t{5}));
}

TEST_CASE("the reply sink fails a request whose message became a dead letter") {
  auto r = std::make_shared<reply_registry>(10);
  recorded got;
  auto id = r->add(10s, got.record());
  REQUIRE(id);
  reply_sink sink(r, fn::egress_id{"sluice", "dead-letters"});
  // A dead letter of another caller is not this request's business.
  fn::dead_letter other{fn::address{{"a", "b"}, "c"}, fn::address{{"x", "y"}, *id},
                        fn::make_typed(std::string{"m"}), "no function"};
  sink.invoke(fn::envelope::to_egress(fn::egress_id{"sluice", "dead-letters"}, fn::make_typed(other)));
  CHECK(got.size() == 0);
  fn::dead_letter mine{fn::address{{"a", "b"}, "c"}, fn::address{reply_function_type(), *id},
                       fn::make_typed(std::string{"m"}), "no function bound to a/b"};
  sink.invoke(fn::envelope::to_egress(fn::egress_id{"sluice", "dead-letters"}, fn::make_typed(mine)));
  REQUIRE(got.size() == 1);
  CHECK(got.outcomes[0].what == reply_outcome::kind::failed);
  CHECK(got.outcomes[0].reason ==
        "the message to a/b/c could not be handled: no function bound to a/b");
}

TEST_CASE("the reply function is bound once") {
  fn::function_registry reg;
  CHECK_FALSE(bind_reply_function(reg));
  CHECK(reg.resolve(reply_function_type()));
  CHECK(bind_reply_function(reg));
}

}
