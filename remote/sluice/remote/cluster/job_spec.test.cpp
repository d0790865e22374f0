#include "sluice/remote/cluster/job_spec.hpp"

#include <doctest/doctest.h>

#include <filesystem>

using namespace sluice::remote::cluster;
namespace fs = std::filesystem;

TEST_SUITE("remote.cluster.job_spec") {

TEST_CASE("a job spec survives encoding, and anything else is refused with a reason") {
  job_spec s;
  s.library_name = "wordcount_job.so";
  s.library = std::string("\x7f" "ELF\0\1\2", 7);
  s.request.entry = "other_main";
  s.request.args = {"--input", "a file", ""};
  s.request.parallelism = 3;
  s.settings = {{"state.backend", "rocksdb"}, {"parallelism.default", "2"}};
  s.vertex_ids = {"0123", "4567"};
  auto bytes = encode_job_spec(s);
  auto back = decode_job_spec(bytes);
  CHECK(back.library_name == s.library_name);
  CHECK(back.library == s.library);
  CHECK(back.request.entry == "other_main");
  CHECK(back.request.args == s.request.args);
  CHECK(back.request.parallelism == 3);
  CHECK(back.settings == s.settings);
  CHECK(back.vertex_ids == s.vertex_ids);

  CHECK_THROWS_WITH_AS(decode_job_spec("nonsense"), doctest::Contains("not a job spec"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(decode_job_spec(bytes.substr(0, bytes.size() - 3)),
                       doctest::Contains("malformed job spec"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(decode_job_spec(bytes + "x"), doctest::Contains("trailing bytes"),
                       std::invalid_argument);
  auto newer = bytes;
  newer[4] = 9;
  CHECK_THROWS_WITH_AS(decode_job_spec(newer), doctest::Contains("job spec version 9"),
                       std::invalid_argument);
}

TEST_CASE("a TaskManager that cannot rebuild a job says which job and why") {
  char pattern[] = "/tmp/sluice-spec-test-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  job_library_cache cache((fs::path(pattern) / "libs").string());
  job_spec s;
  s.library_name = "broken.so";
  s.library = "not a shared object";
  CHECK_THROWS_WITH_AS((void) cache.resolve("job-1", encode_job_spec(s)),
                       doctest::Contains("cannot rebuild job job-1 on this TaskManager: job "
                                         "library 'broken.so': cannot be loaded"),
                       std::runtime_error);
  // Stored once under its content hash, whatever the number of attempts.
  CHECK_THROWS((void) cache.resolve("job-2", encode_job_spec(s)));
  size_t files = 0;
  for (auto& e : fs::directory_iterator(cache.directory())) {
    CHECK(e.path().filename().string().find("-broken.so") == 16);
    ++files;
  }
  CHECK(files == 1);
  CHECK_THROWS_WITH_AS((void) cache.resolve("job-3", "garbage"),
                       doctest::Contains("cannot rebuild job job-3"), std::runtime_error);
  fs::remove_all(pattern);
}

} // TEST_SUITE
