#include "sluice/actors/cluster.hpp"

#include "sluice/sluice.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <thread>

using namespace std::chrono_literals;

TEST_SUITE("actors.cluster") {

// The JobManager starts a job's mini-cluster on a REST thread and tears it
// down on another thread while the REST thread lives on. CAF 0.17 pins the
// logger of the last system a thread used in a thread-local reference, and
// ~actor_system waited for that logger forever.
TEST_CASE("a job's mini-cluster started on one thread is torn down on another while the first "
          "thread lives") {
  std::promise<std::shared_ptr<sluice::runtime::job_client>> started;
  std::promise<void> submitter_may_end;
  std::thread submitter([&] {
    sluice::stream_environment env;
    env.set_executor(std::make_shared<sluice::actors::local_executor>());
    env.from_elements(1, 2, 3).discard();
    auto client = env.execute_async("short job");
    started.set_value(std::move(client));
    submitter_may_end.get_future().wait();
  });
  auto client = started.get_future().get();
  auto ended = client->wait_for(30s);
  REQUIRE(ended);
  CHECK(ended->status == sluice::runtime::job_status::finished);

  std::promise<void> torn_down;
  auto done = torn_down.get_future();
  std::thread teardown([&, c = std::move(client)]() mutable {
    c.reset(); // the last reference: the mini-cluster goes here
    torn_down.set_value();
  });
  client = nullptr;
  auto status = done.wait_for(30s);
  CHECK_MESSAGE(status == std::future_status::ready,
                "~actor_system still waits while the submitting thread lives");
  // Ending the submitter releases a pinned logger, so a failure ends too.
  submitter_may_end.set_value();
  submitter.join();
  teardown.join();
}

}
