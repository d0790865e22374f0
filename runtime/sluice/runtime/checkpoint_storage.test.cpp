#include "sluice/runtime/checkpoint_storage.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace sluice::runtime;
namespace fs = std::filesystem;

namespace {

struct scratch {
  fs::path dir;
  scratch() {
    char tmpl[] = "/tmp/sluice-chk-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

checkpoint_metadata metadata_for(int64_t id, const std::string& file) {
  checkpoint_metadata md;
  md.job_id = "job1";
  md.checkpoint_id = id;
  md.timestamp_ms = 1000 + id;
  operator_state_handle op;
  op.uid = "sum";
  op.parallelism = 2;
  op.max_parallelism = 128;
  op.subtasks.push_back({0, file, "", 3, {}, ""});
  op.subtasks.push_back({1, "", "", 0, {}, ""});
  md.operators.push_back(op);
  return md;
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << s;
}

} // namespace

TEST_SUITE("runtime.checkpoint_storage") {

TEST_CASE("a completed checkpoint has its files and metadata in chk-N") {
  scratch s;
  checkpoint_storage st(s.dir, "job1");
  st.begin(1);
  st.write_file(1, "sum-0.keyed", "abc");
  CHECK(st.completed().empty()); // no _metadata yet: incomplete
  st.complete(metadata_for(1, "sum-0.keyed"));
  CHECK(st.completed() == std::vector<int64_t>{1});
  CHECK(fs::exists(s.dir / "job1" / "chk-1" / "_metadata"));
  CHECK(!fs::exists(s.dir / "job1" / "chk-1" / "_metadata.inprogress"));
  auto md = st.read_metadata(1);
  CHECK(md.job_id == "job1");
  CHECK(md.checkpoint_id == 1);
  REQUIRE(md.operators.size() == 1);
  CHECK(md.operators[0].uid == "sum");
  CHECK(md.operators[0].subtasks[0].keyed_state_file == "sum-0.keyed");
  CHECK(md.operators[0].subtasks[0].bytes == 3);
  CHECK(st.read_file(1, "sum-0.keyed") == "abc");
}

TEST_CASE("only the configured number of completed checkpoints is retained") {
  scratch s;
  checkpoint_storage st(s.dir, "job1", 2);
  for (int64_t id = 1; id <= 4; ++id) {
    st.begin(id);
    st.write_file(id, "f", "x");
    auto dropped = st.complete(metadata_for(id, "f"));
    if (id > 2)
      CHECK(dropped == std::vector<int64_t>{id - 2});
  }
  CHECK(st.completed() == std::vector<int64_t>{3, 4});
  CHECK(st.latest_completed() == std::optional<int64_t>(4));
  CHECK(!fs::exists(st.checkpoint_dir(1)));
}

TEST_CASE("finalize writes the metadata and deletes no older checkpoint") {
  // The JobMaster finalizes and deletes what is no longer retained itself,
  // once it counts the new checkpoint as complete: until then the older one
  // is its restore point.
  scratch s;
  checkpoint_storage st(s.dir, "job1", 1);
  for (int64_t id = 1; id <= 2; ++id) {
    st.begin(id);
    st.write_file(id, "f", "x");
    st.finalize(metadata_for(id, "f"));
  }
  CHECK(st.completed() == std::vector<int64_t>{1, 2});
  CHECK_THROWS_WITH_AS(st.finalize(metadata_for(3, "f")), doctest::Contains("was not begun"),
                       checkpoint_error);
}

TEST_CASE("discarding a checkpoint that is gone is no error") {
  scratch s;
  checkpoint_storage st(s.dir, "job1");
  st.begin(1);
  st.discard(1);
  CHECK(!fs::exists(st.checkpoint_dir(1)));
  st.discard(1);
  st.discard(7);
}

TEST_CASE("the coordinator's order keeps the restore point's shared files through aborts") {
  // As the JobMaster does it: finalize, count complete, then discard the
  // retained-out checkpoint; a checkpoint aborted after its finalize drops
  // only its own references.
  scratch s;
  checkpoint_storage st(s.dir, "job1", 1);
  auto job = st.job_dir();
  auto upload = [&](const std::string& rel, const std::string& bytes) {
    fs::create_directories((job / rel).parent_path());
    write_text(job / rel, bytes);
  };
  auto md_with = [&](int64_t id, std::vector<std::string> shared) {
    st.begin(id);
    st.write_file(id, "f", "meta");
    auto md = metadata_for(id, "f");
    for (auto& rel : shared)
      md.operators[0].subtasks[0].native_files.push_back(
        {rel.substr(rel.rfind('/') + 1), rel, fs::file_size(job / rel), 0, true});
    return md;
  };
  upload("shared/c1/i-a.sst", "aa");
  upload("shared/c1/i-b.sst", "bbb");
  st.finalize(md_with(1, {"shared/c1/i-a.sst", "shared/c1/i-b.sst"}));
  upload("shared/c2/i-c.sst", "c");
  st.finalize(md_with(2, {"shared/c1/i-a.sst", "shared/c2/i-c.sst"}));
  CHECK(st.shared_references("shared/c1/i-a.sst") == 2);

  // Aborted after its metadata was written: 1 stays the restore point.
  st.discard(2);
  CHECK(st.completed() == std::vector<int64_t>{1});
  CHECK(fs::exists(job / "shared/c1/i-a.sst"));
  CHECK(fs::exists(job / "shared/c1/i-b.sst"));
  CHECK_FALSE(fs::exists(job / "shared/c2"));
  CHECK(st.shared_references("shared/c1/i-a.sst") == 1);

  // A writer of 2 that finished after the discard, and one of 4 still in
  // flight.
  upload("shared/c2/i-late.sst", "late");
  st.begin(2);
  st.write_file(2, "f", "late");
  upload("shared/c4/i-new.sst", "new");
  st.begin(4);

  upload("shared/c3/i-d.sst", "dddd");
  st.finalize(md_with(3, {"shared/c1/i-a.sst", "shared/c3/i-d.sst"}));
  // 3 counts complete: 1 is no longer retained.
  st.discard(1);
  st.delete_orphans(3, {4});
  CHECK(st.completed() == std::vector<int64_t>{3});
  CHECK(fs::exists(job / "shared/c1/i-a.sst")); // 3 references it
  CHECK_FALSE(fs::exists(job / "shared/c1/i-b.sst"));
  CHECK(fs::exists(job / "shared/c3/i-d.sst"));
  CHECK_FALSE(fs::exists(job / "shared/c2"));
  CHECK_FALSE(fs::exists(st.checkpoint_dir(2)));
  CHECK(fs::exists(job / "shared/c4/i-new.sst")); // in flight
  CHECK(fs::exists(st.checkpoint_dir(4)));
  CHECK(st.shared_references("shared/c1/i-a.sst") == 1);

  // A new coordinator on the directory counts the same.
  checkpoint_storage again(s.dir, "job1", 1);
  CHECK(again.shared_references("shared/c1/i-a.sst") == 1);
  CHECK(again.shared_references("shared/c1/i-b.sst") == 0);
}

TEST_CASE("incomplete checkpoints are cleaned up and never listed") {
  scratch s;
  checkpoint_storage st(s.dir, "job1");
  st.begin(1);
  st.write_file(1, "f", "x");
  st.complete(metadata_for(1, "f"));
  st.begin(2);
  st.write_file(2, "f", "partial");
  st.begin(3);
  fs::create_directories(s.dir / "job1" / "not-a-checkpoint");
  CHECK(st.latest_completed() == std::optional<int64_t>(1));
  CHECK(st.cleanup_incomplete() == 2);
  CHECK(!fs::exists(st.checkpoint_dir(2)));
  CHECK(fs::exists(st.checkpoint_dir(1)));
  CHECK(fs::exists(s.dir / "job1" / "not-a-checkpoint"));
  CHECK_THROWS_WITH_AS(st.read_metadata(2), doctest::Contains("missing or incomplete"),
                       checkpoint_error);
}

TEST_CASE("metadata naming a file that was not written is refused") {
  scratch s;
  checkpoint_storage st(s.dir, "job1");
  st.begin(1);
  CHECK_THROWS_WITH_AS(st.complete(metadata_for(1, "missing.keyed")),
                       doctest::Contains("names missing file missing.keyed"), checkpoint_error);
  CHECK(st.completed().empty());
}

TEST_CASE("corrupt or foreign metadata gives an error naming the file, never a crash") {
  scratch s;
  checkpoint_storage st(s.dir, "job1");
  st.begin(7);
  st.write_file(7, "f", "x");
  st.complete(metadata_for(7, "f"));
  auto meta = s.dir / "job1" / "chk-7" / "_metadata";
  std::string good;
  {
    std::ifstream in(meta);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  // Every truncation is either refused or (for a whitespace-only cut) reads
  // back the same checkpoint.
  for (size_t cut = 0; cut < good.size(); ++cut) {
    write_text(meta, good.substr(0, cut));
    try {
      auto md = st.read_metadata(7);
      CHECK(md.checkpoint_id == 7);
    } catch (const checkpoint_error& e) {
      CHECK(std::string(e.what()).find("_metadata") != std::string::npos);
    }
  }
  auto with = [&](const std::string& from, const std::string& to) {
    auto text = good;
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    write_text(meta, text);
  };
  with("\"version\": 2", "\"version\": 9");
  CHECK_THROWS_WITH_AS(st.read_metadata(7), doctest::Contains("version 9 is not supported"),
                       checkpoint_error);
  with("\"checkpoint_id\": 7", "\"checkpoint_id\": 8");
  CHECK_THROWS_WITH_AS(st.read_metadata(7), doctest::Contains("expected 7"), checkpoint_error);
  with("\"keyed_state\": \"f\"", "\"keyed_state\": \"../../etc/passwd\"");
  CHECK_THROWS_WITH_AS(st.read_metadata(7), doctest::Contains("invalid state file name"),
                       checkpoint_error);
  with("\"subtask\": 1", "\"subtask\": 0");
  CHECK_THROWS_WITH_AS(st.read_metadata(7), doctest::Contains("repeated"), checkpoint_error);
  with("\"checkpoint_id\": 7", "\"checkpoint_id\": \"seven\"");
  CHECK_THROWS_WITH_AS(st.read_metadata(7), doctest::Contains("malformed"), checkpoint_error);
  write_text(meta, "{\"hello\": 1}");
  CHECK_THROWS_WITH_AS(st.read_metadata(7), doctest::Contains("not a sluice checkpoint"),
                       checkpoint_error);
}

TEST_CASE("bad names and ids are rejected before touching the disk") {
  scratch s;
  CHECK_THROWS_AS(checkpoint_storage(s.dir, "a/b"), std::invalid_argument);
  checkpoint_storage st(s.dir, "job1");
  CHECK_THROWS_AS(st.begin(0), std::invalid_argument);
  CHECK_THROWS_WITH_AS(st.write_file(5, "f", "x"), doctest::Contains("was not begun"),
                       checkpoint_error);
  st.begin(5);
  CHECK_THROWS_AS(st.write_file(5, "../escape", "x"), checkpoint_error);
  CHECK_THROWS_AS(st.write_file(5, "_metadata", "x"), std::invalid_argument);
}

} // TEST_SUITE

TEST_SUITE("runtime.checkpoint_storage") {

TEST_CASE("channel state is read back per subtask; rescaling it or a corrupt file is an error") {
  scratch s;
  channel_state cs;
  cs.inputs = {{"batch-a"}, {}};
  write_text(s.dir / "n1-head-s1.chan", cs.encode());
  restore_point rp;
  rp.dir = s.dir;
  rp.metadata = metadata_for(1, "");
  auto& op = rp.metadata.operators[0];
  op.subtasks[0].keyed_state_file = "";
  op.subtasks[1].channel_state_file = "n1-head-s1.chan";
  // Round trip through _metadata keeps the field.
  auto again = checkpoint_metadata::from_json(rp.metadata.to_json(), "md");
  CHECK(again.operators[0].subtasks[1].channel_state_file == "n1-head-s1.chan");

  CHECK_FALSE(load_channel_state(rp, op, 0, 2));
  auto got = load_channel_state(rp, op, 1, 2);
  REQUIRE(got);
  CHECK(got->inputs == cs.inputs);
  CHECK_THROWS_WITH_AS((void)load_channel_state(rp, op, 0, 3),
                       doctest::Contains("cannot be restored at another parallelism (2 -> 3)"),
                       checkpoint_error);
  write_text(s.dir / "n1-head-s1.chan", "SLCHAN garbage");
  CHECK_THROWS_WITH_AS((void)load_channel_state(rp, op, 1, 2),
                       doctest::Contains("n1-head-s1.chan"), checkpoint_error);
  op.subtasks[1].channel_state_file = "../escape.chan";
  CHECK_THROWS_AS((void)load_channel_state(rp, op, 1, 2), checkpoint_error);
}

}
