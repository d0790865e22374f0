// The REST API over TLS as a user runs it: `sluice jobmanager` with
// security.ssl.rest.* and a self-signed certificate made by the openssl
// command, reached by the CLI's client and `sluice list -m https://...`.

#include "cluster_processes.hpp"

#include "sluice/remote/cluster/rest_client.hpp"
#include "sluice/remote/errors.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;
using sluice::remote::describe;
using sluice::remote::cluster::job_manager_url;
using sluice::remote::cluster::rest_client;
using sluice::test::child_process;
using sluice::test::sluice_cli;
using namespace std::chrono_literals;

/// A temp directory with a self-signed certificate for 127.0.0.1 and
/// localhost (cert.pem, key.pem) and an unrelated key (other-key.pem).
struct certificate_dir {
  fs::path dir;
  certificate_dir() {
    char pattern[] = "/tmp/sluice-tls-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    dir = pattern;
    auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
               "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -days 1 -keyout " +
               file("key.pem") + " -out " + file("cert.pem") +
               " 2>/dev/null && openssl genrsa -out " + file("other-key.pem") + " 2048 2>/dev/null";
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "the openssl command failed");
  }
  ~certificate_dir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

/// A JobManager serving REST over TLS on a free port; stopped at the end.
struct tls_job_manager {
  const certificate_dir& certs;
  std::unique_ptr<child_process> jm;
  uint16_t port = 0;

  explicit tls_job_manager(const certificate_dir& c)
      : certs(c) {
    jm = std::make_unique<child_process>(std::vector<std::string>{
        SLUICE_BINARY, "jobmanager", "--rest-port", "0", "-D", "jobmanager.rpc.port=0", "-D",
        "web.upload.dir=" + certs.file("uploads"), "-D", "security.ssl.rest.enabled=true", "-D",
        "security.ssl.rest.cert-file=" + certs.file("cert.pem"), "-D",
        "security.ssl.rest.key-file=" + certs.file("key.pem")});
    auto line = jm->wait_for_line("REST API on", 30s);
    REQUIRE_MESSAGE(line, "the jobmanager did not start");
    REQUIRE_MESSAGE(line->find("REST API on https://127.0.0.1:") != std::string::npos, *line);
    port = static_cast<uint16_t>(sluice::test::number_after(*line, "127.0.0.1:"));
  }
  ~tls_job_manager() { CHECK(jm->stop(SIGTERM, 30s) == 0); }

  caf::expected<sluice::remote::cluster::rest_reply> get(const std::string& path, bool tls = true) {
    rest_client c{job_manager_url{"127.0.0.1", port, tls}, certs.file("cert.pem")};
    return c.request("GET", path, {}, "application/json", std::chrono::seconds(10));
  }
  std::string m() const { return "-m https://127.0.0.1:" + std::to_string(port) + " "; }
};

/// `sluice jobmanager` with these -D settings, which must make it exit
/// (within 30 s: `timeout` ends one that serves after all).
sluice::test::cli_result start_failing(const std::string& settings) {
  return sluice_cli("jobmanager --rest-port 0 -D jobmanager.rpc.port=0 " + settings,
                    "SLUICE_CONF_DIR= timeout 30 ");
}

} // namespace

TEST_SUITE("integration.cluster_tls") {

TEST_CASE("the jobmanager serves /overview and the dashboard over TLS, and plain HTTP fails "
          "without harming it") {
  certificate_dir certs;
  tls_job_manager f{certs};
  auto overview = f.get("/overview");
  REQUIRE_MESSAGE(overview, describe(overview.error()));
  CHECK(overview->status == 200);
  auto j = nlohmann::json::parse(overview->body, nullptr, false);
  CHECK(j.is_object());
  CHECK(j.contains("taskmanagers"));
  auto plain = f.get("/overview", false);
  CHECK_FALSE(plain);
  auto again = f.get("/overview");
  REQUIRE_MESSAGE(again, describe(again.error()));
  CHECK(again->status == 200);
  auto page = f.get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  auto jars = f.get("/jars");
  REQUIRE(jars);
  CHECK(nlohmann::json::parse(jars->body)["address"].get<std::string>().rfind("https://", 0) ==
        0);
}

TEST_CASE("sluice list -m https:// verifies the JobManager with the trust file") {
  certificate_dir certs;
  tls_job_manager f{certs};
  auto trusted = sluice_cli("list " + f.m() +
                            "-D security.ssl.rest.trust-cert-file=" + certs.file("cert.pem"));
  CHECK_MESSAGE(trusted.exit_code == 0, trusted.output);
  CHECK(trusted.output.find("No running jobs.") != std::string::npos);
  // The same key from the settings file in $SLUICE_CONF_DIR.
  {
    std::ofstream conf{certs.file("sluice-conf.yaml")};
    conf << "security.ssl.rest.trust-cert-file: " << certs.file("cert.pem") << "\n";
  }
  auto from_conf = sluice_cli("list " + f.m(), "SLUICE_CONF_DIR=" + certs.dir.string() + " ");
  CHECK_MESSAGE(from_conf.exit_code == 0, from_conf.output);
  // Self-signed: without the trust file the system's store refuses it.
  auto untrusted = sluice_cli("list " + f.m(), "SLUICE_CONF_DIR= ");
  CHECK(untrusted.exit_code == 1);
  CHECK_MESSAGE(untrusted.output.find("certificate did not verify") != std::string::npos,
                untrusted.output);
  CHECK(untrusted.output.find("security.ssl.rest.trust-cert-file") != std::string::npos);
  // A trust file that is not there is an error of its own.
  auto missing = sluice_cli("list " + f.m() +
                            "-D security.ssl.rest.trust-cert-file=" + certs.file("nothing.pem"));
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find("security.ssl.rest.trust-cert-file: cannot read") !=
        std::string::npos);
  // -m host:port stays plain HTTP, which the TLS port does not answer.
  auto plain = sluice_cli("list -m 127.0.0.1:" + std::to_string(f.port));
  CHECK(plain.exit_code == 1);
  CHECK(plain.output.find("cannot reach the JobManager") != std::string::npos);
CHECK_MESSAGE(plain.output.find("use -m https://127.0.0.1:") != std::string::npos, plain.output);
  auto still = f.get("/overview");
  REQUIRE_MESSAGE(still, describe(still.error()));
  CHECK(still->status == 200);
}

TEST_CASE("bad TLS settings stop the jobmanager at startup, naming the key") {
  certificate_dir certs;
  auto enabled = std::string("-D security.ssl.rest.enabled=true ");
  auto cert = "-D security.ssl.rest.cert-file=" + certs.file("cert.pem") + " ";
  auto key = "-D security.ssl.rest.key-file=" + certs.file("key.pem") + " ";
  auto expect = [](const sluice::test::cli_result& r, const std::string& text) {
    CHECK_MESSAGE(r.exit_code == 2, r.output);
    CHECK_MESSAGE(r.output.find(text) != std::string::npos, r.output);
  };
  expect(start_failing(enabled), "security.ssl.rest.cert-file is not set");
  expect(start_failing(enabled + cert), "security.ssl.rest.key-file is not set");
  expect(start_failing(enabled + key +
                       "-D security.ssl.rest.cert-file=" + certs.file("missing.pem")),
         "security.ssl.rest.cert-file: cannot read");
  expect(start_failing(enabled + cert + "-D security.ssl.rest.key-file=" + certs.dir.string()),
         "security.ssl.rest.key-file");
  auto mismatch = start_failing(enabled + cert +
                                "-D security.ssl.rest.key-file=" + certs.file("other-key.pem"));
  expect(mismatch, "security.ssl.rest.key-file");
  CHECK(mismatch.output.find("does not match") != std::string::npos);
  expect(start_failing("-D security.ssl.rest.enabled=maybe"), "security.ssl.rest.enabled");
}

} // TEST_SUITE
