#include "sluice/runtime/file_sink.hpp"

#include "sluice/runtime/environment.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace sluice::runtime;
using sluice::state::operator_state_part;
using sluice::state::operator_state_store;
namespace fs = std::filesystem;

namespace {

/// Processing time the test moves by hand.
struct manual_clock final : processing_time_service {
  int64_t now = 0;
  int64_t now_ms() const override { return now; }
  void register_timer(int64_t, processing_time_callback*) override {}
};

/// A fresh directory, removed with everything in it at the end.
struct temp_dir {
  std::string path;
  temp_dir() {
    static int n = 0;
    path = (fs::temp_directory_path() /
            ("sluice-file-sink-" + std::to_string(::getpid()) + "-" + std::to_string(n++)))
               .string();
    fs::remove_all(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  /// File names in the directory: visible (finished) or hidden.
  std::vector<std::string> names(bool hidden) const {
    std::vector<std::string> out;
    if (!fs::exists(path))
      return out;
    for (auto& e : fs::directory_iterator(path)) {
      auto n = e.path().filename().string();
      if ((n[0] == '.') == hidden)
        out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> visible() const { return names(false); }
  std::vector<std::string> hidden() const { return names(true); }
  std::string read(const std::string& name) const {
    std::ifstream in(path + "/" + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  /// Every line of every finished part, sorted (parts of different attempts
  /// have no order among each other).
  std::vector<std::string> visible_lines() const {
    std::vector<std::string> lines;
    for (auto& n : visible()) {
      std::istringstream in(read(n));
      for (std::string l; std::getline(in, l);)
        lines.push_back(l);
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }
};

/// One file sink subtask with its operator state, opened as an operator
/// does.
template <class T = std::string>
struct sink_harness {
  operator_state_store store;
  checkpoint_hooks hooks;
  runtime_context ctx;
  manual_clock clock;
  file_sink<T> sink;

  sink_harness(file_sink_options options, bool checkpointing,
               std::vector<operator_state_part> restore = {}, bool restored = false,
               int32_t index = 0, int32_t parallelism = 1)
    : ctx("sink", index, parallelism, 128), sink(std::move(options)) {
    hooks.restored = restored;
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    ctx.set_checkpointing_enabled(checkpointing);
    ctx.set_time_service(&clock);
    internal::open_if_rich(sink, ctx);
  }
  void write(std::initializer_list<T> values) {
    for (auto v : values)
      sink.invoke(std::move(v));
    sink.end_of_batch();
  }
  std::vector<operator_state_part> checkpoint(int64_t id) {
    for (auto* f : hooks.checkpointed)
      f->snapshot_state(id, 0);
    return operator_state_store::parse(store.snapshot(), "test");
  }
};

file_sink_options options_for(const temp_dir& dir) {
  file_sink_options o;
  o.directory = dir.path;
  return o;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

} // namespace

TEST_SUITE("runtime.file_sink") {

  TEST_CASE("only finished part files are visible, once their checkpoint completes") {
    temp_dir dir;
    sink_harness<> h(options_for(dir), true);
    h.write({"a", "b"});
    CHECK(dir.visible().empty());
    REQUIRE(dir.hidden().size() == 1);
    CHECK(std::regex_match(dir.hidden()[0], std::regex(R"(\.part-0-0-[0-9a-f]{16}\.inprogress)")));
    h.checkpoint(1);
    REQUIRE(dir.hidden().size() == 1);
    CHECK(std::regex_match(dir.hidden()[0], std::regex(R"(\.part-0-0-[0-9a-f]{16}\.pending)")));
    h.write({"c"});
    CHECK(dir.visible().empty());
    h.sink.notify_checkpoint_complete(1);
    REQUIRE(dir.visible().size() == 1);
    CHECK(std::regex_match(dir.visible()[0], std::regex(R"(part-0-0-[0-9a-f]{16})")));
    CHECK(dir.read(dir.visible()[0]) == "a\nb\n");
    REQUIRE(dir.hidden().size() == 1); // "c", in progress
    CHECK(std::regex_match(dir.hidden()[0], std::regex(R"(\.part-0-1-[0-9a-f]{16}\.inprogress)")));
    // Closing without another checkpoint aborts "c".
    h.sink.close();
    CHECK(dir.hidden().empty());
    CHECK(dir.visible_lines() == std::vector<std::string>{"a", "b"});
  }

  TEST_CASE("an empty checkpoint interval writes no part file") {
    temp_dir dir;
    sink_harness<> h(options_for(dir), true);
    h.checkpoint(1);
    h.sink.notify_checkpoint_complete(1);
    CHECK(dir.visible().empty());
    CHECK(dir.hidden().empty());
    h.sink.close();
  }

  TEST_CASE("parts roll by size, several pending parts in one transaction") {
    temp_dir dir;
    auto o = options_for(dir);
    o.max_part_bytes = 10;
    o.part_prefix = "out";
    o.part_suffix = ".txt";
    sink_harness<> h(o, true);
    h.write({"abcd", "efgh", "ijkl", "mnop", "qrst"}); // 5 bytes a line
    CHECK(dir.hidden().size() == 3);
    h.checkpoint(1);
    CHECK(h.sink.pending_transactions() == 1);
    CHECK(dir.hidden().size() == 3);
    h.sink.notify_checkpoint_complete(1);
    auto parts = dir.visible();
    REQUIRE(parts.size() == 3);
    std::map<std::string, std::string> by_counter;
    for (auto& p : parts) {
      std::smatch m;
      REQUIRE(std::regex_match(p, m, std::regex(R"(out-0-(\d+)-[0-9a-f]{16}\.txt)")));
      by_counter[m[1]] = dir.read(p);
    }
    CHECK(by_counter == std::map<std::string, std::string>{
                            {"0", "abcd\nefgh\n"}, {"1", "ijkl\nmnop\n"}, {"2", "qrst\n"}});
    h.sink.close();
  }

  TEST_CASE("parts roll on the rollover and the inactivity interval") {
    temp_dir dir;
    auto o = options_for(dir);
    o.rollover_interval = std::chrono::milliseconds(1000);
    o.inactivity_interval = std::chrono::milliseconds(500);
    sink_harness<> h(o, true);
    h.write({"a"});
    h.clock.now = 400;
    h.write({"b"});
    h.clock.now = 1000; // open for 1000 ms: rolls
    h.write({"c"});
    h.clock.now = 1400;
    h.write({"d"});
    h.clock.now = 1900; // idle for 500 ms: rolls
    h.write({"e"});
    CHECK(dir.hidden().size() == 3);
    h.clock.now = 2900; // the end of a batch also rolls a part open too long
    h.sink.end_of_batch();
    h.write({"f"});
    CHECK(dir.hidden().size() == 4);
    h.checkpoint(1);
    h.sink.notify_checkpoint_complete(1);
    std::vector<std::string> contents;
    for (auto& p : dir.visible())
      contents.push_back(dir.read(p));
    CHECK(sorted(contents) == std::vector<std::string>{"a\nb\n", "c\nd\n", "e\n", "f\n"});
    h.sink.close();
  }

  TEST_CASE("a restore after a crash between pre-commit and notification commits once") {
    temp_dir dir;
    std::vector<operator_state_part> saved;
    {
      sink_harness<> h(options_for(dir), true);
      h.write({"1", "2"});
      saved = h.checkpoint(1); // pre-commits {1, 2}; the notification never comes
      h.write({"3"});
      h.checkpoint(2); // never completes: the job restores from checkpoint 1
      h.write({"4"});
      CHECK(dir.hidden().size() == 3);
      // crash: no close(), the files stay as they are
    }
    sink_harness<> r(options_for(dir), true, operator_state_store::redistribute({saved}, 0, 1),
                     true);
    CHECK(dir.visible_lines() == std::vector<std::string>{"1", "2"});
    // The pending part of checkpoint 2 and the in-progress "4" are gone: the
    // sources replay 3 and 4.
    CHECK(dir.hidden().empty());
    r.write({"3", "4"});
    r.checkpoint(2);
    r.sink.notify_checkpoint_complete(2);
    CHECK(dir.visible_lines() == std::vector<std::string>{"1", "2", "3", "4"});
    r.sink.close();

    // Restoring the same checkpoint again is a no-op: its parts are finished.
    sink_harness<> again(options_for(dir), true, operator_state_store::redistribute({saved}, 0, 1),
                         true);
    CHECK(dir.visible_lines() == std::vector<std::string>{"1", "2", "3", "4"});
    CHECK(dir.hidden().empty());
    again.sink.close();
  }

  TEST_CASE("a restore at another parallelism commits every subtask's pending parts once") {
    for (int32_t new_p : {1, 3}) {
      CAPTURE(new_p);
      temp_dir dir;
      std::vector<std::vector<operator_state_part>> saved;
      {
        sink_harness<> s0(options_for(dir), true, {}, false, 0, 2);
        sink_harness<> s1(options_for(dir), true, {}, false, 1, 2);
        s0.write({"a0", "b0"});
        s1.write({"a1"});
        saved.push_back(s0.checkpoint(1));
        saved.push_back(s1.checkpoint(1));
        s0.write({"c0"});
        s1.write({"c1"});
      }
      std::vector<std::unique_ptr<sink_harness<>>> restored;
      for (int32_t i = 0; i < new_p; ++i)
        restored.push_back(std::make_unique<sink_harness<>>(
            options_for(dir), true, operator_state_store::redistribute(saved, i, new_p), true, i,
            new_p));
      CHECK(dir.visible_lines() == std::vector<std::string>{"a0", "a1", "b0"});
      CHECK(dir.hidden().empty());
      for (auto& r : restored)
        r->sink.close();
    }
  }

  TEST_CASE("restored transactions whose files are gone already are fine") {
    temp_dir dir;
    std::vector<operator_state_part> saved;
    {
      sink_harness<> h(options_for(dir), true);
      h.write({"x"});
      h.checkpoint(1);
      h.sink.notify_checkpoint_complete(1); // committed before the crash
      h.write({"y"});
      saved = h.checkpoint(2);
      h.sink.notify_checkpoint_complete(2);
      h.write({"z"});
    }
    // Someone cleaned up the hidden files; the output directory stays.
    for (auto& n : dir.hidden())
      fs::remove(dir.path + "/" + n);
    sink_harness<> r(options_for(dir), true, operator_state_store::redistribute({saved}, 0, 1),
                     true);
    CHECK(dir.visible_lines() == std::vector<std::string>{"x", "y"});
    r.sink.close();
  }

  TEST_CASE("a pending part that is missing on restore is an error naming it") {
    temp_dir dir;
    std::vector<operator_state_part> saved;
    {
      sink_harness<> h(options_for(dir), true);
      h.write({"lost"});
      saved = h.checkpoint(1);
    }
    REQUIRE(dir.hidden().size() == 1);
    auto pending = dir.hidden()[0];
    fs::remove(dir.path + "/" + pending);
    std::string error;
    try {
      sink_harness<> r(options_for(dir), true, operator_state_store::redistribute({saved}, 0, 1),
                       true);
    } catch (const std::exception& e) {
      error = e.what();
    }
    CHECK(error.find(pending) != std::string::npos);
    CHECK(error.find("lost") != std::string::npos);
  }

  TEST_CASE("without checkpointing the end of the input commits") {
    temp_dir dir;
    sink_harness<int> h(options_for(dir), false);
    h.write({5, 6});
    CHECK(dir.visible().empty());
    h.sink.finish();
    h.sink.close();
    REQUIRE(dir.visible().size() == 1);
    CHECK(dir.read(dir.visible()[0]) == "5\n6\n");
    CHECK(dir.hidden().empty());
  }

  TEST_CASE("two attempts of the same subtask never share a part name") {
    temp_dir dir;
    sink_harness<> first(options_for(dir), false);
    sink_harness<> second(options_for(dir), false);
    first.write({"one"});
    second.write({"two"});
    CHECK(dir.hidden().size() == 2);
    first.sink.finish();
    second.sink.finish();
    CHECK(dir.visible().size() == 2);
    CHECK(dir.visible_lines() == std::vector<std::string>{"one", "two"});
    first.sink.close();
    second.sink.close();
  }

  TEST_CASE("a file sink transaction survives a serializer round trip") {
    file_sink_transaction t;
    t.directory = "/out";
    t.prefix = "p";
    t.suffix = ".csv";
    t.uid = "00ff";
    t.subtask = 3;
    t.first_counter = 7;
    t.parts = {7, 8};
    auto back = sluice::state::deserialize<file_sink_transaction>(sluice::state::serialize(t));
    CHECK(back.finished_name(8) == "p-3-8-00ff.csv");
    CHECK(back.in_progress_name(7) == ".p-3-7-00ff.csv.inprogress");
    CHECK(back.pending_name(7) == ".p-3-7-00ff.csv.pending");
    CHECK(back.parts == std::vector<uint64_t>{7, 8});
    CHECK(back.directory == "/out");
    CHECK(back.first_counter == 7);
  }

  TEST_CASE("sink_to_files adds a sink named FileSink") {
    stream_environment env;
    file_sink_options o;
    o.directory = "unused";
    env.from_elements(1, 2).sink_to_files(o);
    auto plan = nlohmann::json::parse(env.explain());
    REQUIRE(plan["nodes"].size() == 2);
    CHECK(plan["nodes"][1]["description"] == "Sink: FileSink");
  }

} // TEST_SUITE
