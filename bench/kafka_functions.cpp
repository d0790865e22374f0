// Kafka ingress -> embedded stateful function -> Kafka egress, on librdkafka's
// in-process mock cluster, one figure per line:
//   kafka functions at-least-once: N records/s
//   kafka functions exactly-once: N records/s
//
//   kafka_functions [--records N] [--parallelism P]
//
// N records (100 keys) are written to the input topic first; the figure is
// N / the time from the job's start until all N outputs are in the output
// topic (exactly-once: committed, i.e. after their checkpoint completed;
// checkpoints every 100 ms).

#include "sluice/functions/application.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/kafka/kafka_egress.hpp"
#include "sluice/remote/kafka/kafka_ingress.hpp"
#include "sluice/remote/kafka/testing/kafka_test_util.hpp"
#include "sluice/remote/kafka_record.hpp"
#include "sluice/sluice.hpp"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

using namespace sluice;
namespace fn = sluice::functions;
namespace rk = sluice::remote::kafka;
using clock_type = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "kafka_functions: %s\n", why.c_str());
  std::exit(1);
}

/// Records in the log of `topic` (the mock writes no transaction markers).
int64_t records_in(rd_kafka_t* client, const std::string& topic, int partitions) {
  int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    int64_t low = 0;
    int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(client, topic.c_str(), p, &low, &high, 5000) ==
        RD_KAFKA_RESP_ERR_NO_ERROR)
      total += high;
  }
  return total;
}

double measure(const std::string& semantic, int records, int parallelism) {
  auto in = rk::testing::new_topic("bench-in", 4);
  auto out = rk::testing::new_topic("bench-out", 4);
  auto markers = rk::testing::new_topic("bench-markers", 1);
  std::vector<rk::testing::test_record> input;
  input.reserve(static_cast<size_t>(records));
  for (int i = 0; i < records; ++i)
    input.push_back({"k" + std::to_string(i % 100), "v" + std::to_string(i)});
  rk::testing::produce(in, input);

  auto bootstrap = rk::testing::mock().bootstrap_servers();
  auto yaml = "kind: io.statefun.kafka.v1/ingress\nspec:\n  id: bench/in\n  address: " +
              bootstrap + "\n  consumerGroupId: bench\n  startupPosition:\n    type: earliest\n"
              "  topics:\n    - topic: " + in + "\n      valueType: bench/raw\n"
              "      targets: [bench/counter]\n---\n"
              "kind: io.statefun.kafka.v1/egress\nspec:\n  id: bench/out\n  address: " +
              bootstrap + "\n  deliverySemantic:\n    type: " + semantic +
              "\n  properties:\n    - sluice.marker.topic: " + markers + "\n";
  auto m = remote::parse_module(yaml, "bench.yaml");
  if (!m)
    die(remote::describe(m.error()));

  auto reg = std::make_shared<fn::function_registry>();
  if (auto err = reg->bind(
        fn::function_type{"bench", "counter"},
        [out](fn::context& ctx, const fn::message& msg) {
          auto seen = ctx.storage().get<int32_t>("seen").value_or(0) + 1;
          ctx.storage().set<int32_t>("seen", seen);
          ctx.send_egress(fn::egress_id{"bench", "out"},
                          remote::make_kafka_record(out, ctx.self().id,
                                                    msg.payload.bytes + ":" +
                                                      std::to_string(seen)));
        },
        {fn::value_spec::of<int32_t>("seen")}))
    die("bind failed");

  configuration cfg;
  cfg.parallelism = parallelism;
  cfg.checkpoints.interval = std::chrono::milliseconds(100);
  cfg.checkpoints.directory = "/tmp/sluice-bench-kafka-" + std::to_string(::getpid());
  stream_environment env(cfg);
  auto ingress = rk::add_kafka_ingresses(env, *m);
  if (!ingress)
    die(remote::describe(ingress.error()));
  auto egress = fn::run_functions(*ingress, reg);
  if (auto err = rk::add_kafka_egresses(egress, *m))
    die(remote::describe(err));

  char errstr[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof errstr);
  auto* client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  auto start = clock_type::now();
  auto job = env.execute_async("kafka functions bench");
  while (records_in(client, out, 4) < records) {
    if (runtime::is_globally_terminal(job->status()))
      die("the job ended: " + job->wait().error);
    if (clock_type::now() - start > std::chrono::minutes(5))
      die("timed out");
    std::this_thread::sleep_for(std::chrono::milliseconds(5)); // polling interval
  }
  double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  job->cancel();
  job->wait();
  rd_kafka_destroy(client);
  std::system(("rm -rf '" + cfg.checkpoints.directory + "'").c_str());
  return records / seconds;
}

} // namespace

int main(int argc, char** argv) {
  int records = 200000;
  int parallelism = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--records")
      records = std::atoi(argv[i + 1]);
    else if (a == "--parallelism")
      parallelism = std::atoi(argv[i + 1]);
    else
      die("unknown option " + a);
  }
  for (auto semantic : {"at-least-once", "exactly-once"})
    std::printf("kafka functions %s: %.0f records/s\n", semantic,
                measure(semantic, records, parallelism));
  return 0;
}
