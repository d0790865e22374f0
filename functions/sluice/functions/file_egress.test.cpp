#include "sluice/functions/file_egress.hpp"

#include "sluice/runtime/environment.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace sluice;
using namespace sluice::functions;
using sluice::state::operator_state_part;
using sluice::state::operator_state_store;
namespace fs = std::filesystem;

namespace {

struct scratch_dir {
  std::string path;
  scratch_dir() {
    char tmpl[] = "/tmp/sluice-egress-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~scratch_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  /// Hidden files (staging files) in the directory.
  size_t hidden() const {
    size_t n = 0;
    for (auto& e : fs::directory_iterator(path))
      n += e.path().filename().string().front() == '.' ? 1 : 0;
    return n;
  }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

envelope out(const std::string& text) {
  return envelope::to_egress(egress_id{"test", "out"}, make_typed(text));
}

/// One file egress subtask with its operator state, opened as an operator
/// does.
struct egress_harness {
  operator_state_store store;
  runtime::checkpoint_hooks hooks;
  runtime::runtime_context ctx{"egress", 0, 1, 128};
  file_egress_sink sink;

  egress_harness(file_egress_options options, bool checkpointing,
                 std::vector<operator_state_part> restore = {}, bool restored = false)
      : sink(std::move(options)) {
    hooks.restored = restored;
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    ctx.set_checkpointing_enabled(checkpointing);
    runtime::internal::open_if_rich(sink, ctx);
  }
  void write(std::initializer_list<const char*> lines) {
    for (auto l : lines)
      sink.invoke(out(l));
    sink.end_of_batch();
  }
  std::vector<operator_state_part> checkpoint(int64_t id) {
    for (auto* f : hooks.checkpointed)
      f->snapshot_state(id, 0);
    return operator_state_store::parse(store.snapshot(), "test");
  }
};

} // namespace

TEST_SUITE("functions.file_egress") {

TEST_CASE("raw lines are a string's text or a value's bytes") {
  CHECK(egress_line(make_typed(std::string{"hi there"}), egress_line_format::raw) ==
        "hi there\n");
  CHECK(egress_line(typed_value{"com.example/Blob", "\x01\x02"}, egress_line_format::raw) ==
        "\x01\x02\n");
}

TEST_CASE("json lines carry the typename and the value as text, number or base64") {
  CHECK(egress_line(make_typed(std::string{"say \"hi\"\n"}), egress_line_format::json) ==
        "{\"typename\":\"io.statefun.types/string\",\"value\":\"say \\\"hi\\\"\\n\"}\n");
  CHECK(egress_line(make_typed(int32_t{42}), egress_line_format::json) ==
        "{\"typename\":\"io.statefun.types/int\",\"value\":42}\n");
  CHECK(egress_line(make_typed(true), egress_line_format::json) ==
        "{\"typename\":\"io.statefun.types/bool\",\"value\":true}\n");
  CHECK(egress_line(typed_value{"com.example/Blob", std::string("\x00\xff", 2)},
                    egress_line_format::json) ==
        "{\"typename\":\"com.example/Blob\",\"value_base64\":\"AP8=\"}\n");
}

TEST_CASE("base64 pads to whole groups of four") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
}

TEST_CASE("a dead letter line names the target, caller, message and reason") {
  dead_letter d{address{{"test", "a"}, "7"}, address{{"test", "b"}, "1"},
                make_typed(std::string{"hello"}), "no function bound to test/a"};
  CHECK(egress_line(make_typed(d), egress_line_format::dead_letter) ==
        "{\"target\":\"test/a/7\",\"caller\":\"test/b/1\",\"typename\":"
        "\"io.statefun.types/string\",\"value\":\"hello\",\"reason\":"
        "\"no function bound to test/a\"}\n");
  dead_letter no_caller{address{{"test", "a"}, "7"}, std::nullopt, make_typed(int64_t{5}), "x"};
  CHECK(egress_line(make_typed(no_caller), egress_line_format::dead_letter).find(
            "\"caller\":null") != std::string::npos);
  // A function's own record on the dead-letter egress is still written.
  CHECK(egress_line(make_typed(std::string{"odd"}), egress_line_format::dead_letter) ==
        "{\"typename\":\"io.statefun.types/string\",\"value\":\"odd\"}\n");
}

TEST_CASE("with checkpointing, lines appear when their checkpoint completes") {
  scratch_dir dir;
  auto path = dir.file("out.txt");
  egress_harness h({path, egress_line_format::raw}, true);
  h.write({"a", "b"});
  CHECK(read_all(path).empty());
  h.checkpoint(1);
  h.write({"c"});
  CHECK(read_all(path).empty());
  h.sink.notify_checkpoint_complete(1);
  CHECK(read_all(path) == "a\nb\n");
  h.checkpoint(2);
  h.sink.notify_checkpoint_complete(2);
  CHECK(read_all(path) == "a\nb\nc\n");
  CHECK(dir.hidden() == 0);
  h.sink.close();
}

TEST_CASE("without checkpointing every batch is appended at once") {
  scratch_dir dir;
  auto path = dir.file("out.txt");
  egress_harness h({path, egress_line_format::raw}, false);
  h.write({"a"});
  CHECK(read_all(path) == "a\n");
  h.write({"b", "c"});
  CHECK(read_all(path) == "a\nb\nc\n");
  h.sink.close();
  CHECK(dir.hidden() == 0);
}

TEST_CASE("a restore commits the restored checkpoint's lines once and drops later ones") {
  scratch_dir dir;
  auto path = dir.file("out.txt");
  std::vector<operator_state_part> saved;
  {
    egress_harness h({path, egress_line_format::raw}, true);
    h.write({"1", "2"});
    saved = h.checkpoint(1); // the notification never comes
    h.write({"3"});
    h.checkpoint(2); // never completes
    h.write({"4"});
    CHECK(dir.hidden() == 3); // staged for checkpoints 1 and 2, and "4"
    // crash: no close()
  }
  egress_harness r({path, egress_line_format::raw}, true,
                   operator_state_store::redistribute({saved}, 0, 1), true);
  CHECK(read_all(path) == "1\n2\n");
  CHECK(dir.hidden() == 0);
  r.write({"3", "4"});
  r.checkpoint(2);
  r.sink.notify_checkpoint_complete(2);
  CHECK(read_all(path) == "1\n2\n3\n4\n");
  r.sink.close();

  // Restoring the same checkpoint again changes nothing.
  egress_harness again({path, egress_line_format::raw}, true,
                       operator_state_store::redistribute({saved}, 0, 1), true);
  CHECK(read_all(path) == "1\n2\n3\n4\n");
  again.sink.close();
}

TEST_CASE("a commit interrupted halfway is cut back and appended once when repeated") {
  scratch_dir dir;
  auto path = dir.file("out.txt");
  std::vector<operator_state_part> saved;
  {
    egress_harness h({path, egress_line_format::raw}, true);
    h.write({"before"});
    h.checkpoint(1);
    h.sink.notify_checkpoint_complete(1);
    h.write({"x", "y"});
    saved = h.checkpoint(2);
  }
  // Simulate a crash inside commit 2: renamed with the target's size, and
  // half of its lines appended.
  for (auto& e : fs::directory_iterator(dir.path)) {
    auto name = e.path().filename().string();
    if (name.front() == '.')
      fs::rename(e.path(), e.path().string() + "@7");
  }
  { std::ofstream(path, std::ios::app) << "x\n"; }
  CHECK(read_all(path) == "before\nx\n");
  egress_harness r({path, egress_line_format::raw}, true,
                   operator_state_store::redistribute({saved}, 0, 1), true);
  CHECK(read_all(path) == "before\nx\ny\n");
  CHECK(dir.hidden() == 0);
  r.sink.close();
}

TEST_CASE("a file egress refuses a parallel run and names an unwritable file") {
  scratch_dir dir;
  operator_state_store store;
  runtime::checkpoint_hooks hooks;
  runtime::runtime_context ctx{"egress", 0, 2, 128};
  ctx.set_operator_state(&store);
  ctx.set_checkpoint_hooks(&hooks);
  file_egress_sink parallel({dir.file("out.txt"), egress_line_format::raw});
  CHECK_THROWS_WITH(runtime::internal::open_if_rich(parallel, ctx),
                    doctest::Contains("parallelism 1"));

  runtime::runtime_context one{"egress", 0, 1, 128};
  one.set_operator_state(&store);
  one.set_checkpoint_hooks(&hooks);
  file_egress_sink missing({dir.file("no/such/dir/out.txt"), egress_line_format::raw});
  CHECK_THROWS_WITH(runtime::internal::open_if_rich(missing, one),
                    doctest::Contains("no/such/dir/out.txt"));
}

TEST_CASE("a file egress transaction survives a serializer round trip") {
  file_egress_transaction t{"/tmp/x.txt", "abc", 7};
  auto back = state::deserialize<file_egress_transaction>(state::serialize(t));
  CHECK(back.path == "/tmp/x.txt");
  CHECK(back.uid == "abc");
  CHECK(back.number == 7);
  CHECK(t.staging_path() == "/tmp/.x.txt.abc-7.staged");
}

}
