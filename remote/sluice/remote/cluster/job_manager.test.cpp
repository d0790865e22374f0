#include "sluice/remote/cluster/job_manager.hpp"

#include "sluice/remote/errors.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

using namespace sluice::remote;
using namespace sluice::remote::cluster;
namespace fs = std::filesystem;

namespace {

/// The error text of a JobManager that does not start with `settings`.
std::string start_error(std::map<std::string, std::string> settings) {
  settings.emplace("rest.port", "0");
  settings.emplace("jobmanager.rpc.port", "0");
  auto jm = job_manager::start(settings);
  REQUIRE_FALSE(jm);
  CHECK(is(jm.error(), remote_errc::invalid_configuration));
  return describe(jm.error());
}

TEST_CASE("the heartbeat defaults are 1 s and 5 s, and a taken RPC port stops the start") {
  auto first = job_manager::start({{"rest.port", "0"}, {"jobmanager.rpc.port", "0"}});
  REQUIRE_MESSAGE(first, describe(first.error()));
  CHECK((*first)->settings().heartbeat_interval == std::chrono::seconds(1));
  CHECK((*first)->settings().heartbeat_timeout == std::chrono::seconds(5));
  auto taken = std::to_string((*first)->rpc_port());
  auto second = job_manager::start({{"rest.port", "0"}, {"jobmanager.rpc.port", taken}});
  REQUIRE_FALSE(second);
  CHECK(is(second.error(), remote_errc::server_failed));
  CHECK_MESSAGE(describe(second.error()).find(":" + taken) != std::string::npos,
                describe(second.error()));
}

} // namespace

TEST_SUITE("remote.cluster.job_manager") {

TEST_CASE("the cluster keys are read without a warning and state.savepoints.dir takes a file URI") {
  auto jm = job_manager::start({{"rest.port", "0"},
                                {"rest.address", "localhost"},
                                {"state.savepoints.dir", "file:///tmp/sluice-sp-test"},
                                {"jobmanager.rpc.address", "127.0.0.1"},
                                {"jobmanager.rpc.port", "0"},
                                {"heartbeat.interval", "5 s"},
                                {"heartbeat.timeout", "30 s"},
                                {"taskmanager.numberOfTaskSlots", "4"}});
  REQUIRE_MESSAGE(jm, describe(jm.error()));
  CHECK((*jm)->warnings().empty());
  const auto& s = (*jm)->settings();
  CHECK(s.rest_address == "127.0.0.1");
  CHECK(s.savepoints_dir == "/tmp/sluice-sp-test");
  CHECK(s.rpc_address == "127.0.0.1");
  CHECK((*jm)->rpc_port() != 0);
  CHECK(s.heartbeat_interval == std::chrono::seconds(5));
  CHECK(s.heartbeat_timeout == std::chrono::seconds(30));
  CHECK((*jm)->rest_port() != 0);
  CHECK((*jm)->held_jobs() == 0);
  auto upload_dir = s.upload_dir;
  CHECK(fs::is_directory(upload_dir));

  auto before = std::chrono::steady_clock::now();
  (*jm)->stop();
  (*jm)->stop(); // idempotent
  CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(2));
  CHECK_FALSE(fs::exists(upload_dir));
}

TEST_CASE("every key the JobManager reads is listed as its own, and an unknown key is a warning") {
  const auto& keys = job_manager_keys();
  for (auto key : {"rest.port", "rest.address", "rest.bind-address", "state.savepoints.dir",
                   "heartbeat.interval", "heartbeat.timeout", "jobmanager.rpc.address",
                   "jobmanager.rpc.port", "web.upload.dir", "rest.server.max-content-length",
                   "security.ssl.rest.enabled", "security.ssl.rest.cert-file",
                   "security.ssl.rest.key-file", "security.ssl.rest.trust-cert-file"})
    CHECK_MESSAGE(std::find(keys.begin(), keys.end(), key) != keys.end(), key);
  auto jm = job_manager::start(
    {{"rest.port", "0"}, {"jobmanager.rpc.port", "0"}, {"no.such.key", "1"}});
  REQUIRE(jm);
  REQUIRE((*jm)->warnings().size() == 1);
  CHECK((*jm)->warnings().front().find("no.such.key") != std::string::npos);
}

TEST_CASE("invalid cluster keys stop the start, naming the key") {
  CHECK(start_error({{"state.savepoints.dir", "s3://bucket/sp"}}).find("state.savepoints.dir") !=
        std::string::npos);
  CHECK(start_error({{"rest.bind-address", "not-an-ip"}}).find("rest.bind-address") !=
        std::string::npos);
  CHECK(start_error({{"jobmanager.rpc.port", "70000"}}).find("jobmanager.rpc.port") !=
        std::string::npos);
  CHECK(start_error({{"jobmanager.rpc.address", ""}}).find("jobmanager.rpc.address") !=
        std::string::npos);
  CHECK(start_error({{"heartbeat.interval", "0 ms"}}).find("heartbeat.interval") !=
        std::string::npos);
  CHECK(start_error({{"heartbeat.timeout", "500 ms"}}).find("heartbeat.timeout") !=
        std::string::npos);
  CHECK(start_error({{"taskmanager.numberOfTaskSlots", "-1"}})
          .find("taskmanager.numberOfTaskSlots") != std::string::npos);
  CHECK(start_error({{"sluice.cluster.placement", "anywhere"}})
          .find("sluice.cluster.placement: 'anywhere' is not auto, local or taskmanagers") !=
        std::string::npos);
  CHECK(start_error({{"slot.request.timeout", "soon"}}).find("slot.request.timeout") !=
        std::string::npos);
  CHECK(start_error({{"slot.request.timeout", "0 s"}}).find("slot.request.timeout") !=
        std::string::npos);
}

TEST_CASE("the heartbeat defaults are 1 s and 5 s, and a taken RPC port stops the start") {
  auto first = job_manager::start({{"rest.port", "0"}, {"jobmanager.rpc.port", "0"}});
  REQUIRE_MESSAGE(first, describe(first.error()));
  CHECK((*first)->settings().heartbeat_interval == std::chrono::seconds(1));
  CHECK((*first)->settings().heartbeat_timeout == std::chrono::seconds(5));
  auto taken = std::to_string((*first)->rpc_port());
  auto second = job_manager::start({{"rest.port", "0"}, {"jobmanager.rpc.port", taken}});
  REQUIRE_FALSE(second);
  CHECK(is(second.error(), remote_errc::server_failed));
  CHECK_MESSAGE(describe(second.error()).find(":" + taken) != std::string::npos,
                describe(second.error()));
}

}
