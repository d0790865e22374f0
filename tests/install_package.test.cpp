// sluice installed and used as a user does: `cmake --install` of this build
// into a scratch prefix, a job library outside the tree built with
// find_package(sluice) + sluice_add_job() (tests/package_consumer), and the
// installed `sluice` binary running it as a JobManager. SLUICE_BINARY is the
// installed binary, so the helpers of cluster_processes.hpp run that one.

#include "cluster_processes.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <string>

namespace {

namespace fs = std::filesystem;
using sluice::test::cli_result;
using sluice::test::final_counts;
using sluice::test::finished_parts;
using sluice::test::job_manager_process;
using sluice::test::sh_quoted;
using sluice::test::sluice_cli;

using sluice::test::run_shell;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// `cmake` configuring `source` into `build` for a project using the
/// package installed in `prefix`, with this build's compiler (a job library
/// must match the sluice binary's ABI) and ccache when this build uses it.
std::string configure_command(const fs::path& source, const fs::path& build,
                              const fs::path& prefix) {
  std::string cmd = sh_quoted(SLUICE_CMAKE) + " -S " + sh_quoted(source.string()) + " -B " +
                    sh_quoted(build.string()) +
                    " -DCMAKE_PREFIX_PATH=" + sh_quoted(prefix.string()) +
                    " -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_EXPORT_COMPILE_COMMANDS=ON" +
                    " -DCMAKE_CXX_COMPILER=" + sh_quoted(SLUICE_CXX_COMPILER);
  if (std::string(SLUICE_CCACHE).size() > 0)
    cmd += " -DCMAKE_CXX_COMPILER_LAUNCHER=" + sh_quoted(SLUICE_CCACHE);
  return cmd;
}

} // namespace

TEST_SUITE("integration.install_package") {

TEST_CASE("a job library built against an installed sluice runs on the installed binary") {
  // A fixed scratch directory under the build tree (SLUICE_BINARY names the
  // binary in it), emptied first and removed when the test passes.
  const fs::path scratch = SLUICE_PACKAGE_SCRATCH;
  const fs::path prefix = scratch / "prefix";
  fs::remove_all(scratch);
  fs::create_directories(scratch);

  auto install = run_shell(sh_quoted(SLUICE_CMAKE) + " --install " + sh_quoted(SLUICE_BUILD_DIR) +
                             " --prefix " + sh_quoted(prefix.string()));
  REQUIRE_MESSAGE(install.exit_code == 0, install.output);
  REQUIRE(fs::path(SLUICE_BINARY) == prefix / "bin" / "sluice");
  for (const char* file :
       {"bin/sluice", "include/sluice/job.hpp", "include/sluice/sluice.hpp",
        "include/sluice/runtime/environment.hpp", "include/sluice/state/key_group.hpp",
        "include/sluice/actors/cluster.hpp", "lib/cmake/sluice/sluiceConfig.cmake",
        "lib/cmake/sluice/sluiceConfigVersion.cmake", "lib/cmake/sluice/sluiceTargets.cmake",
        "lib/cmake/sluice/FindCAF.cmake", "lib/cmake/sluice/sluice_add_job.cmake",
        "share/sluice/conf/sluice-conf.yaml", "share/sluice/scripts/start-cluster.sh",
        "share/sluice/scripts/stop-cluster.sh"})
    CHECK_MESSAGE(fs::exists(prefix / file), file);
  CHECK_FALSE(fs::exists(prefix / "include/sluice/runtime/internal"));

  // The installed cluster scripts find the installed binary and conf/.
  {
    const auto daemon = sh_quoted((prefix / "share/sluice/scripts/sluice-daemon.sh").string());
    const std::string env = "env -u SLUICE_BIN -u SLUICE_CONF_DIR SLUICE_LOG_DIR=" +
                            sh_quoted((scratch / "log").string()) + " SLUICE_PID_DIR=" +
                            sh_quoted((scratch / "pid").string()) +
                            " SLUICE_IDENT_STRING=package-test ";
    auto start = run_shell(env + daemon +
                             " start jobmanager 0 --rest-port 0 -D jobmanager.rpc.port=0");
    auto stop = run_shell(env + daemon + " stop jobmanager all");
    CHECK_MESSAGE(start.exit_code == 0, start.output);
    CHECK_MESSAGE(start.output.find("started jobmanager") != std::string::npos, start.output);
    CHECK_MESSAGE(stop.output.find("stopped jobmanager") != std::string::npos, stop.output);
  }
  // Relocatable: nothing installed points back into the source or build tree.
  for (const auto& f : fs::recursive_directory_iterator(prefix / "lib/cmake/sluice")) {
    auto text = read_file(f.path());
    CHECK_MESSAGE(text.find(SLUICE_SOURCE_DIR) == std::string::npos, f.path());
  }

  // The consumer project in a directory of its own, outside sluice's tree.
  const fs::path source = scratch / "my_job";
  const fs::path build = scratch / "my_job-build";
  fs::copy(SLUICE_PACKAGE_CONSUMER, source, fs::copy_options::recursive);
  auto configure = run_shell(configure_command(source, build, prefix));
  REQUIRE_MESSAGE(configure.exit_code == 0, configure.output);
  CHECK_MESSAGE(read_file(build / "CMakeCache.txt")
                    .find("sluice_DIR:PATH=" + (prefix / "lib/cmake/sluice").string()) !=
                  std::string::npos,
                "find_package(sluice) did not take the installed package");
  auto make = run_shell(sh_quoted(SLUICE_CMAKE) + " --build " + sh_quoted(build.string()) +
                          " -j2");
  REQUIRE_MESSAGE(make.exit_code == 0, make.output);
  const fs::path job = build / "my_job.so";
  REQUIRE(fs::exists(job));
  // Compiled against the installed headers, not the source tree's.
  auto commands = read_file(build / "compile_commands.json");
  CHECK(commands.find((prefix / "include").string()) != std::string::npos);
  for (const char* folder : {"/state", "/runtime", "/actors"})
    CHECK_MESSAGE(commands.find(std::string(SLUICE_SOURCE_DIR) + folder) == std::string::npos,
                  commands);

  {
    job_manager_process jm(0);
    const fs::path out = scratch / "counts";
    auto run = sluice_cli("run " + jm.m() + sh_quoted(job.string()) + " --output " +
                          sh_quoted(out.string()));
    REQUIRE_MESSAGE(run.exit_code == 0, run.output);
    CHECK(run.output.find("has finished") != std::string::npos);
    std::map<std::string, long> want{{"to", 3},  {"be", 3},  {"or", 1},   {"not", 1},
                                     {"that", 1}, {"is", 1}, {"the", 1}, {"question", 1}};
    CHECK(final_counts(finished_parts(out)) == want);
  }
  fs::remove_all(scratch);
}

TEST_CASE("find_package(sluice) refuses a newer version than the installed one, saying so") {
  const fs::path scratch = std::string(SLUICE_PACKAGE_SCRATCH) + "-version";
  const fs::path prefix = scratch / "prefix";
  fs::remove_all(scratch);
  fs::create_directories(scratch / "newer");
  auto install = run_shell(sh_quoted(SLUICE_CMAKE) + " --install " + sh_quoted(SLUICE_BUILD_DIR) +
                             " --prefix " + sh_quoted(prefix.string()));
  REQUIRE_MESSAGE(install.exit_code == 0, install.output);
  const std::string newer =
    std::to_string(SLUICE_VERSION_MAJOR) + "." + std::to_string(SLUICE_VERSION_MINOR + 1);
  std::ofstream(scratch / "newer" / "CMakeLists.txt")
    << "cmake_minimum_required(VERSION 3.25)\nproject(newer LANGUAGES NONE)\n"
    << "find_package(sluice " << newer << " REQUIRED)\n";
  auto configure = run_shell(sh_quoted(SLUICE_CMAKE) + " -S " +
                               sh_quoted((scratch / "newer").string()) + " -B " +
                               sh_quoted((scratch / "newer-build").string()) +
                               " -DCMAKE_PREFIX_PATH=" + sh_quoted(prefix.string()));
  CHECK(configure.exit_code != 0);
  INFO(configure.output);
  // CMake wraps its messages: compare with every run of blanks as one space.
  auto said = std::regex_replace(configure.output, std::regex("\\s+"), " ");
  CHECK(said.find("compatible with requested version \"" + newer + "\"") !=
        std::string::npos);
  CHECK(said.find("version: " + std::string(SLUICE_VERSION)) != std::string::npos);
  fs::remove_all(scratch);
}

}
