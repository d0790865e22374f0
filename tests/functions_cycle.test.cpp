#include "sluice/sluice.hpp"
#include "sluice/functions/application.hpp"
#include "sluice/functions/serialization.hpp"
#include "exactly_once_job.hpp"
#include "exactly_once_util.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
namespace fn = sluice::functions;

namespace {

constexpr int64_t ids = 400;
constexpr int32_t rounds = 10;

/// Two functions play ping-pong per id: each counts the messages it got in
/// its state and sends n + 1 to the other; at n == rounds the receiver
/// reports "id,its count" to the egress.
std::shared_ptr<fn::function_registry> ping_pong_with(bool embedded_a) {
  auto reg = std::make_shared<fn::function_registry>();
  fn::function_type a{"test", "a"}, b{"test", "b"};
  auto play = [](fn::function_type other) {
    return [other](fn::context& ctx, const fn::message& m) {
      auto n = m.as<int32_t>();
      auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
      ctx.storage().set<int32_t>("seen", seen);
      if (n >= rounds)
        ctx.send_egress(fn::egress_id{"test", "out"},
                        ctx.self().id + "," + std::to_string(seen));
      else
        ctx.send(fn::address{other, ctx.self().id}, n + 1);
    };
  };
  auto spec = std::vector<fn::value_spec>{fn::value_spec::of<int32_t>("seen")};
  if (embedded_a)
    REQUIRE(!reg->bind(a, play(b), spec));
  REQUIRE(!reg->bind(b, play(a), spec));
  return reg;
}

std::shared_ptr<fn::function_registry> ping_pong() { return ping_pong_with(true); }

/// An async function that answers on a thread of its own after `delay`, as
/// the HTTP client of a remote function does: the dispatcher gets each
/// result through the subtask's mailbox.
class threaded_function final : public fn::async_function {
public:
  using logic = std::function<fn::async_result(const fn::invocation_request&)>;
  explicit threaded_function(logic l, std::chrono::milliseconds delay = 0ms)
    : logic_(std::move(l)), delay_(delay), worker_([this] { run(); }) {}
  ~threaded_function() override {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    worker_.join();
  }
  void invoke(fn::invocation_request request, fn::async_completion done) override {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      calls_.emplace_back(std::move(request), std::move(done));
    }
    wake_.notify_one();
  }

private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || !calls_.empty(); });
      if (stopping_)
        return;
      auto call = std::move(calls_.front());
      calls_.pop_front();
      lock.unlock();
      if (delay_.count() > 0)
        std::this_thread::sleep_for(delay_); // the remote call's latency
      call.second(logic_(call.first));
      lock.lock();
    }
  }

  logic logic_;
  std::chrono::milliseconds delay_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<fn::invocation_request, fn::async_completion>> calls_;
  bool stopping_ = false;
  std::thread worker_;
};

int32_t stored_int(const fn::invocation_request& req, const std::string& name) {
  for (auto& s : req.state)
    if (s.name == name && s.bytes)
      return fn::typed_as<int32_t>(fn::typed_value{s.type_name, *s.bytes}).value_or(0);
  return 0;
}

/// The ping-pong game with function a asynchronous: its answer is computed
/// from the request alone (state and batch), as a remote function's is.
std::shared_ptr<fn::function_registry> async_ping_pong() {
  auto reg = ping_pong_with(false);
  auto a = std::make_shared<threaded_function>([](const fn::invocation_request& req) {
    auto seen = stored_int(req, "seen");
    fn::invocation_result r;
    for (auto& inv : req.invocations) {
      ++seen;
      auto n = fn::typed_as<int32_t>(inv.argument).value_or(-1);
      if (n >= rounds) {
        fn::egress_message out;
        out.egress = fn::egress_id{"test", "out"};
        out.argument = fn::make_typed(req.target.id + "," + std::to_string(seen));
        r.egress.push_back(std::move(out));
      } else {
        fn::outgoing_message next;
        next.target = fn::address{{"test", "b"}, req.target.id};
        next.argument = fn::make_typed(n + 1);
        r.messages.push_back(std::move(next));
      }
    }
    fn::state_mutation m;
    m.name = "seen";
    m.value = fn::make_typed(seen);
    r.mutations.push_back(std::move(m));
    return fn::async_result::done(std::move(r));
  });
  REQUIRE(!reg->bind_async(fn::function_type{"test", "a"}, a,
                           {fn::value_spec::of<int32_t>("seen")}));
  return reg;
}

/// Ingress: the first `ids` numbers of a source that keeps running (so
/// checkpoint barriers keep coming) start a game each at function a.
runtime::data_stream<fn::envelope> ingress(stream_environment& env) {
  return env.from_generator(uint64_t{1} << 40, [](uint64_t i) { return static_cast<int64_t>(i); },
                            20000)
    .uid("numbers")
    .filter([](int64_t i) { return i < ids; })
    .map([](int64_t i) {
      return fn::envelope::to_function(fn::address{{"test", "a"}, "g" + std::to_string(i)},
                                       fn::make_typed(int32_t{0}));
    });
}

std::string egress_line(const fn::envelope& e) {
  return fn::typed_as<std::string>(e.payload).value_or("?");
}

} // namespace

TEST_SUITE("integration.functions") {

/// Plays every game once without failures: each id reports once, a having
/// got 0, 2, ..., 10 (six messages) when it reports at 10.
void play_once(std::shared_ptr<fn::function_registry> registry) {
  configuration cfg;
  cfg.parallelism = 2;
  stream_environment env(cfg);
  auto out = fn::run_functions(ingress(env), std::move(registry)).map(egress_line).collect();
  auto job = env.execute_async("ping pong");
  CHECK(sluice::test::eventually([&] { return out->size() >= static_cast<size_t>(ids); }, 30s));
  job->cancel();
  job->wait();
  std::map<std::string, int> seen;
  for (auto& l : out->values())
    ++seen[l];
  CHECK(seen.size() == static_cast<size_t>(ids));
  CHECK(seen.count("g7,6") == 1);
  for (auto& [l, n] : seen)
    CHECK_MESSAGE((n == 1 && l.substr(l.find(',')) == ",6"), l);
}

TEST_CASE("functions message each other in a cycle and report to the egress") {
  play_once(ping_pong());
}

void run_cycle_under_failures(bool unaligned,
                              std::shared_ptr<fn::function_registry> registry = ping_pong()) {
  sluice::test::temp_dir dir;
  auto cfg = sluice::test::exactly_once::checkpointed(dir.path(), state::backend_kind::rocksdb, 2);
  cfg.checkpoints.unaligned = unaligned;
  stream_environment env(cfg);
  file_sink_options sink;
  sink.directory = (fs::path(dir.path()) / "out").string();
  fn::run_functions(ingress(env), std::move(registry))
    .map(egress_line)
    .sink_to_files(sink)
    .uid("egress");
  auto job = env.execute_async("ping pong under failures");
  const int kills = 3;
  sluice::test::exactly_once::kill_between_checkpoints(*job, 1, 2, kills, 11);
  std::map<std::string, int> seen;
  auto read = [&] {
    seen.clear();
    for (auto& l : exactly_once::finished_output(sink.directory))
      ++seen[l];
    return seen.size() >= static_cast<size_t>(ids);
  };
  CHECK(sluice::test::eventually(read, 60s));
  job->cancel();
  job->wait();
  read();
  CHECK(seen.size() == static_cast<size_t>(ids));
  for (auto& [l, n] : seen)
    CHECK_MESSAGE((n == 1 && l.substr(l.find(',')) == ",6"), l);
  CHECK(job->restarts() == kills);
}

TEST_CASE("cyclic messaging under failures and checkpoints: state and output exactly once") {
  run_cycle_under_failures(false);
}

TEST_CASE("cyclic messaging with unaligned checkpoints (which StateFun refuses): exactly once") {
  run_cycle_under_failures(true);
}

TEST_CASE("an async function's results come back through the subtask's mailbox") {
  play_once(async_ping_pong());
}

TEST_CASE("cyclic messaging through an async function under failures: exactly once") {
  // Batches in flight at a checkpoint are sent again after a restore; the
  // function answers from the request alone, so effects stay exactly once.
  run_cycle_under_failures(false, async_ping_pong());
}

TEST_CASE("a full async backlog holds the dispatcher's input: nothing lost, order kept") {
  constexpr int32_t messages = 6000;
  constexpr size_t bound = 16;
  auto reg = std::make_shared<fn::function_registry>();
  auto largest = std::make_shared<std::atomic<size_t>>(0);
  auto slow = std::make_shared<threaded_function>(
    [largest](const fn::invocation_request& req) {
      size_t n = req.invocations.size();
      size_t cur = largest->load();
      while (n > cur && !largest->compare_exchange_weak(cur, n)) {
      }
      fn::invocation_result r;
      for (auto& inv : req.invocations) {
        fn::egress_message out;
        out.egress = fn::egress_id{"test", "out"};
        out.argument = fn::make_typed(std::to_string(fn::typed_as<int32_t>(inv.argument).value_or(-1)));
        r.egress.push_back(std::move(out));
      }
      return fn::async_result::done(std::move(r));
    },
    2ms);
  REQUIRE(!reg->bind_async(fn::function_type{"test", "hot"}, slow));
  configuration cfg;
  cfg.parallelism = 2;
  stream_environment env(cfg);
  auto in = env.from_generator(uint64_t{1} << 40, [](uint64_t i) { return static_cast<int64_t>(i); })
              .filter([](int64_t i) { return i < messages; })
              .map([](int64_t i) {
                return fn::envelope::to_function(fn::address{{"test", "hot"}, "one"},
                                                 fn::make_typed(static_cast<int32_t>(i)));
              });
  fn::dispatcher_options options;
  options.max_batch_requests = bound;
  auto out = fn::run_functions(in, reg, options).map(egress_line).collect();
  auto job = env.execute_async("hot address");
  // The function takes ~8 k messages/s: with the input held, the dispatcher
  // has taken in about what it answered, plus its backlog and one batch;
  // without, it would have taken in everything at once.
  REQUIRE(sluice::test::eventually([&] { return out->size() >= 1000; }, 60s));
  uint64_t taken = 0;
  for (auto& m : job->metrics().of_task("Functions"))
    taken += m.records_in;
  CHECK(taken < static_cast<uint64_t>(messages) / 2);
  CHECK(sluice::test::eventually([&] { return out->size() >= static_cast<size_t>(messages); },
                                 60s));
  job->cancel();
  job->wait();
  auto got = out->values();
  REQUIRE(got.size() == static_cast<size_t>(messages));
  for (int32_t i = 0; i < messages; ++i)
    REQUIRE(got[static_cast<size_t>(i)] == std::to_string(i));
  CHECK(largest->load() <= bound);
  CHECK(largest->load() > 1); // messages did wait and go out in batches
}

}
