#include "sluice/remote/cluster/job_library.hpp"

#include "sluice/actors/cluster.hpp"
#include "sluice/remote/errors.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace sluice::remote;
using namespace sluice::remote::cluster;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    char pattern[] = "/tmp/sluice-jar-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

} // namespace

TEST_SUITE("remote.cluster.job_library") {

TEST_CASE("an uploaded library is stored under a fresh id until it is removed") {
  temp_dir dir;
  jar_store store((dir.path / "uploads").string());
  auto jar = store.add("/some/where/job.so", "bytes");
  REQUIRE(jar);
  CHECK(jar->name == "job.so");
  CHECK(jar->id.size() == 32 + 1 + 6);
  CHECK(jar->id.substr(32) == "_job.so");
  std::ifstream in(jar->path);
  std::string content;
  in >> content;
  CHECK(content == "bytes");
  CHECK(store.list().size() == 1);
  CHECK(store.find(jar->id)->path == jar->path);
  CHECK(store.remove(jar->id));
  CHECK_FALSE(fs::exists(jar->path));
  CHECK_FALSE(store.find(jar->id));
  CHECK_FALSE(store.remove(jar->id));
}

TEST_CASE("an upload that is empty or not named .so is refused") {
  temp_dir dir;
  jar_store store(dir.path.string());
  CHECK(describe(store.add("job.so", "").error()).find("is empty") != std::string::npos);
  CHECK(describe(store.add("job.jar", "x").error()).find("must end in .so") != std::string::npos);
  CHECK(describe(store.add("", "x").error()).find("must end in .so") != std::string::npos);
  CHECK(store.list().empty());
}

TEST_CASE("a library that cannot be loaded is reported with the loader's reason") {
  auto r = run_job_library("/nonexistent/x.so", "x.so", {}, {},
                           std::make_shared<sluice::actors::local_executor>());
  REQUIRE_FALSE(r);
  auto text = describe(r.error());
  CHECK(text.find("job library 'x.so': cannot be loaded: ") != std::string::npos);
  CHECK(text.find("No such file") != std::string::npos);
}

TEST_CASE("legacy programArgs split on whitespace with quotes grouping") {
  CHECK(split_program_args("") == std::vector<std::string>{});
  CHECK(split_program_args("  --input a.txt\t-p 2 ") ==
        std::vector<std::string>{"--input", "a.txt", "-p", "2"});
  CHECK(split_program_args("--name 'two words' \"x y\" ''") ==
        std::vector<std::string>{"--name", "two words", "x y", ""});
}

}
