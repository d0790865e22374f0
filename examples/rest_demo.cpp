// A job to watch and steer through the REST API: an unbounded generator
// (rate-limited), counted per key with checkpoints, on the local
// mini-cluster, with the REST server of this process on --rest-port.
//
//   rest_demo [--rest-port P] [--rate N] [--parallelism N] [--checkpoint-dir D]
//             [--token T] [--state heap|rocksdb]
//
// Then open the web dashboard at http://127.0.0.1:8081/ (with --token T:
// http://127.0.0.1:8081/#token=T), or, for example:
//   curl localhost:8081/jobs/overview
//   curl -X POST -d '{"target-directory":"/tmp/sp"}' localhost:8081/jobs/<jid>/savepoints
//   curl -X POST -d '{"drain":false}' localhost:8081/jobs/<jid>/stop
//   curl -X PATCH 'localhost:8081/jobs/<jid>?mode=cancel'
//   curl localhost:8081/jobs/<jid>/state/counter/42    (queryable state: the
//        count of key 42 in the operator with uid "counter", while it runs)
// The program ends when the job ends (stopped, cancelled or failed).

#include "example_args.hpp"
#include "sluice/remote/errors.hpp"
#include "sluice/remote/rest/rest_api.hpp"
#include "sluice/sluice.hpp"

#include <iostream>

namespace {

/// Counts records per key; emits the running count.
struct count_per_key final : sluice::keyed_process_function<int64_t, int64_t, int64_t> {
  sluice::state::value_state<int64_t> n;
  void open(const sluice::runtime_context& ctx) override {
    n = ctx.get_state(sluice::value_state_descriptor<int64_t>("count"));
  }
  void process_element(const int64_t&, context&, sluice::collector<int64_t>& out) override {
    auto c = n.value().value_or(0) + 1;
    n.update(c);
    out.collect(c);
  }
};

} // namespace

int main(int argc, char** argv) {
  using namespace sluice;
  int64_t port = 8081, rate = 10000, parallelism = 2;
  std::string checkpoint_dir, token, backend = "rocksdb";
  examples::example_args args(argc, argv);
  while (args.next()) {
    const auto& arg = args.flag();
    if (arg == "--rest-port")
      port = args.number(0);
    else if (arg == "--rate")
      rate = args.number(1);
    else if (arg == "--parallelism")
      parallelism = args.number(1);
    else if (arg == "--checkpoint-dir")
      checkpoint_dir = args.text();
    else if (arg == "--token")
      token = args.text();
    else if (arg == "--state")
      backend = args.text();
    else {
      std::cerr << "error: unknown argument '" << arg << "'\n"
                << "usage: " << argv[0]
                << " [--rest-port P] [--rate N] [--parallelism N] [--checkpoint-dir D]"
                   " [--token T] [--state heap|rocksdb]\n";
      return 2;
    }
  }
  if (backend != "heap" && backend != "rocksdb") {
    std::cerr << "error: --state must be heap or rocksdb, not '" << backend << "'\n";
    return 2;
  }
  if (port > 65535) {
    std::cerr << "error: --rest-port needs a number <= 65535\n";
    return 2;
  }
  remote::rest::rest_config rest;
  rest.port = static_cast<uint16_t>(port);
  rest.bearer_token = token;
  auto server = remote::rest::rest_server::start_local(rest);
  if (!server) {
    std::cerr << "error: " << remote::describe(server.error()) << "\n";
    return 1;
  }

  configuration cfg;
  cfg.parallelism = static_cast<int32_t>(parallelism);
  cfg.checkpoints.interval = std::chrono::seconds(1);
  cfg.checkpoints.directory = checkpoint_dir;
  cfg.state.backend = state::parse_backend_kind(backend);
  stream_environment env(cfg);
  env.from_generator(stream_environment::unbounded,
                     [](uint64_t i) { return static_cast<int64_t>(i); },
                     static_cast<double>(rate))
    .uid("numbers")
    .key_by([](int64_t i) { return i % 100; })
    .process(count_per_key{})
    .uid("counter")
    .discard();
  auto job = env.execute_async("rest demo");
  std::cout << "job " << job->job_id() << " running; REST API and dashboard on http://127.0.0.1:"
            << (*server)->port() << "/" << std::endl;
  auto r = job->wait();
  (*server)->stop();
  std::cout << "job ended: " << runtime::to_string(r.status)
            << (r.error.empty() ? "" : " (" + r.error + ")") << std::endl;
  return r.status == runtime::job_status::failed ? 1 : 0;
}
