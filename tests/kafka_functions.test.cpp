// Stateful functions between a Kafka ingress and a Kafka egress declared in
// module YAML, on librdkafka's in-process mock cluster, with checkpoints and
// injected failures.

#include "sluice/sluice.hpp"
#include "sluice/functions/application.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/kafka_record.hpp"
#include "sluice/remote/kafka/kafka_egress.hpp"
#include "sluice/remote/kafka/kafka_ingress.hpp"
#include "sluice/remote/kafka/testing/kafka_test_util.hpp"
#include "exactly_once_util.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <random>

using namespace sluice;
using namespace std::chrono_literals;
namespace fn = sluice::functions;
namespace rk = sluice::remote::kafka;
using sluice::test::eventually;

namespace {

const fn::function_type counter{"test", "counter"};
const fn::egress_id out_egress{"test", "out"};

/// Per id, counts the messages it got (state "seen") and writes
/// "<id>:<value>:<count>" to the egress as a Kafka record to `topic`.
std::shared_ptr<fn::function_registry> counting(const std::string& topic,
                                                std::string payload_type = "") {
  auto reg = std::make_shared<fn::function_registry>();
  auto spec = std::vector<fn::value_spec>{fn::value_spec::of<int32_t>("seen")};
  REQUIRE(!reg->bind(counter,
                     [topic, payload_type](fn::context& ctx, const fn::message& m) {
                       auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
                       ctx.storage().set<int32_t>("seen", seen);
                       auto line = ctx.self().id + ":" + m.payload.bytes + ":" +
                                   std::to_string(seen);
                       auto record = remote::make_kafka_record(topic, ctx.self().id, line);
                       if (!payload_type.empty())
                         record.type_name = payload_type;
                       ctx.send_egress(out_egress, std::move(record));
                     },
                     spec));
  return reg;
}

remote::module module_of(const std::string& in, const std::string& semantic,
                         const std::string& marker_topic) {
  auto yaml = "kind: io.statefun.kafka.v1/ingress\n"
              "spec:\n"
              "  id: test/in\n"
              "  address: " + rk::testing::mock().bootstrap_servers() + "\n"
              "  consumerGroupId: test\n"
              "  startupPosition:\n"
              "    type: earliest\n"
              "  topics:\n"
              "    - topic: " + in + "\n"
              "      valueType: test/raw\n"
              "      targets: [test/counter]\n"
              "  properties:\n"
              "    - fetch.wait.max.ms: 20\n"
              "---\n"
              "kind: io.statefun.kafka.v1/egress\n"
              "spec:\n"
              "  id: test/out\n"
              "  address: " + rk::testing::mock().bootstrap_servers() + "\n"
              "  deliverySemantic:\n"
              "    type: " + semantic + "\n"
              "    transactionTimeout: 1min\n"
              "  properties:\n"
              "    - sluice.marker.topic: " + marker_topic + "\n"
              "    - linger.ms: 5\n";
  auto m = remote::parse_module(yaml, "module.yaml");
  REQUIRE_MESSAGE(m, remote::describe(m.error()));
  return std::move(*m);
}

/// Writes input records and remembers the outputs they must give: key
/// "k<i % keys>", value "v<i>" -> "k:v<i>:<count of k so far>".
class input_writer {
public:
  input_writer(std::string topic, int keys) : topic_(std::move(topic)), keys_(keys) {}
  /// Writes the next `n` records.
  void write(int n) {
    std::vector<rk::testing::test_record> in;
    for (int end = next_ + n; next_ < end; ++next_) {
      auto key = "k" + std::to_string(next_ % keys_);
      auto value = "v" + std::to_string(next_);
      in.push_back({key, value});
      expected_.insert(key + ":" + value + ":" + std::to_string(++count_[key]));
    }
    rk::testing::produce(topic_, in);
  }
  [[nodiscard]] const std::multiset<std::string>& expected() const { return expected_; }

private:
  std::string topic_;
  int keys_;
  int next_ = 0;
  std::map<std::string, int> count_;
  std::multiset<std::string> expected_;
};

std::multiset<std::string> output_lines(const std::string& topic) {
  std::multiset<std::string> out;
  for (auto& r : rk::testing::read_topic(topic))
    out.insert(r.value);
  return out;
}

int64_t completed_checkpoints(runtime::job_client& job) {
  return nlohmann::json::parse(job.checkpoint_stats_json())["counts"]["completed"].get<int64_t>();
}

configuration checkpointed(const sluice::test::temp_dir& dir) {
  configuration cfg;
  cfg.parallelism = 2;
  cfg.checkpoints.interval = 50ms;
  cfg.checkpoints.directory = dir.file("checkpoints");
  cfg.restart.type = runtime::restart_strategy_type::fixed_delay;
  cfg.restart.fixed_delay.attempts = 100;
  cfg.restart.fixed_delay.delay = 0ms;
  return cfg;
}

/// The job: Kafka ingress -> functions -> Kafka egress, all from `m`.
std::shared_ptr<runtime::job_client> start(stream_environment& env, const remote::module& m,
                                           std::shared_ptr<fn::function_registry> reg) {
  auto ingress = rk::add_kafka_ingresses(env, m);
  REQUIRE_MESSAGE(ingress, remote::describe(ingress.error()));
  auto egress = fn::run_functions(*ingress, std::move(reg));
  auto err = rk::add_kafka_egresses(egress, m);
  REQUIRE_MESSAGE(!err, remote::describe(err));
  return env.execute_async("kafka functions");
}

} // namespace

TEST_SUITE("integration.kafka") {

TEST_CASE("Kafka ingress -> functions -> exactly-once Kafka egress: each output once under kills") {
  sluice::test::temp_dir dir;
  auto in = rk::testing::new_topic("in");
  auto out = rk::testing::new_topic("out");
  auto markers = rk::testing::new_topic("markers", 1);
  input_writer input(in, 50);
  input.write(2000);
  auto m = module_of(in, "exactly-once", markers);
  stream_environment env(checkpointed(dir));
  auto job = start(env, m, counting(out));
  sluice::test::exactly_once::job_guard guard(job);

  std::mt19937_64 rng(7);
  const int kills = 3;
  for (int round = 0; round < kills; ++round) {
    REQUIRE(eventually(
      [&] { return job->status() == runtime::job_status::running && job->restarts() >= round; },
      30s));
    // Input keeps coming while the job checkpoints, so that checkpoints
    // hold batches for the egress and kills land between a commit and the
    // next checkpoint.
    auto before = completed_checkpoints(*job);
    REQUIRE(eventually(
      [&] {
        input.write(20);
        return completed_checkpoints(*job) >= before + 2;
      },
      30s));
    // Any subtask: the ingress, the dispatcher or the egress.
    std::vector<std::pair<int32_t, int32_t>> subtasks;
    int32_t vertex = -1;
    for (auto& s : job->metrics().subtasks) {
      if (s.subtask == 0)
        ++vertex;
      subtasks.emplace_back(vertex, s.subtask);
    }
    auto [v, i] = subtasks[rng() % subtasks.size()];
    job->kill_subtask(v, i);
    REQUIRE(eventually([&] { return job->restarts() >= round + 1; }, 30s));
  }
  input.write(1000);
  auto& expected = input.expected();
  std::multiset<std::string> seen;
  CHECK(eventually(
    [&] {
      seen = output_lines(out);
      return seen.size() >= expected.size();
    },
    60s));
  // Nothing more comes (a duplicate would show up here).
  auto settled = completed_checkpoints(*job);
  REQUIRE(eventually([&] { return completed_checkpoints(*job) >= settled + 3; }, 30s));
  job->cancel();
  job->wait();
  seen = output_lines(out);
  CHECK(seen.size() == expected.size());
  CHECK(seen == expected);
  CHECK(job->restarts() == kills);
}

TEST_CASE("an at-least-once Kafka egress delivers every output after a kill") {
  sluice::test::temp_dir dir;
  auto in = rk::testing::new_topic("in");
  auto out = rk::testing::new_topic("out");
  input_writer input(in, 20);
  input.write(1000);
  auto& expected = input.expected();
  auto m = module_of(in, "at-least-once", "unused");
  stream_environment env(checkpointed(dir));
  auto job = start(env, m, counting(out));
  sluice::test::exactly_once::job_guard guard(job);
  REQUIRE(eventually([&] { return completed_checkpoints(*job) >= 2; }, 30s));
  int32_t last_vertex = -1; // the egress
  for (auto& s : job->metrics().subtasks)
    if (s.subtask == 0)
      ++last_vertex;
  job->kill_subtask(last_vertex, 0);
  REQUIRE(eventually([&] { return job->restarts() >= 1; }, 30s));
  std::set<std::string> distinct;
  CHECK(eventually(
    [&] {
      auto lines = output_lines(out);
      distinct = {lines.begin(), lines.end()};
      return distinct.size() >= expected.size();
    },
    60s));
  job->cancel();
  job->wait();
  CHECK(distinct == std::set<std::string>(expected.begin(), expected.end()));
}

TEST_CASE("a function sending a wrong payload typename to the Kafka egress fails the job clearly") {
  auto in = rk::testing::new_topic("in");
  auto out = rk::testing::new_topic("out");
  input_writer(in, 2).write(10);
  auto m = module_of(in, "at-least-once", "unused");
  configuration cfg;
  cfg.parallelism = 1;
  stream_environment env(cfg);
  auto job = start(env, m, counting(out, "test/not-a-kafka-record"));
  auto result = job->wait_for(30s);
  REQUIRE(result);
  CHECK(result->status == runtime::job_status::failed);
  MESSAGE(result->error);
  CHECK(result->error.find("Kafka egress test/out") != std::string::npos);
  CHECK(result->error.find("not 'test/not-a-kafka-record'") != std::string::npos);
}

TEST_CASE("an ingress of a missing topic fails the job naming the topic") {
  auto out = rk::testing::new_topic("out");
  // The mock creates every topic a client asks about; this one answers
  // metadata requests as a missing topic does.
  rk::testing::mock().set_topic_error("no-such-input-topic",
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  auto m = module_of("no-such-input-topic", "at-least-once", "unused");
  configuration cfg;
  cfg.parallelism = 1;
  stream_environment env(cfg);
  auto job = start(env, m, counting(out));
  auto result = job->wait_for(30s);
  REQUIRE(result);
  CHECK(result->status == runtime::job_status::failed);
  MESSAGE(result->error);
  CHECK(result->error.find("no-such-input-topic") != std::string::npos);
}

} // TEST_SUITE
