#include "sluice/runtime/source.hpp"
#include "sluice/runtime/testing/vector_collector.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <unistd.h>
#include <vector>

using namespace sluice::runtime;
using sluice::state::operator_state_part;
using sluice::state::operator_state_store;

namespace {

/// One source subtask with its operator state, opened as a source operator
/// does (initialize_state, then open).
template <class T, class S>
struct source_harness {
  operator_state_store store;
  checkpoint_hooks hooks;
  runtime_context ctx;
  S src;
  testing::vector_collector<T> out;
  source_step last;

  source_harness(S s, int32_t index, int32_t parallelism,
                 std::vector<operator_state_part> restore = {}, bool restored = false)
    : ctx("source", index, parallelism, 128), src(std::move(s)) {
    hooks.restored = restored;
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    internal::open_if_rich(src, ctx);
  }
  ~source_harness() { src.close(); }
  /// Runs `steps` steps of at most `per_step` records (fewer if it ends).
  void run(size_t steps, size_t per_step) {
    for (size_t i = 0; i < steps; ++i) {
      last = src.run(out, per_step);
      if (last.what == source_step::kind::finished)
        return;
    }
  }
  void run_to_end() {
    for (;;) {
      last = src.run(out, 7);
      if (last.what == source_step::kind::finished)
        return;
    }
  }
  std::vector<operator_state_part> checkpoint(int64_t id) {
    REQUIRE(hooks.checkpointed.size() == 1);
    hooks.checkpointed.front()->snapshot_state(id, 0);
    return operator_state_store::parse(store.snapshot(), "test");
  }
};

/// Runs a source at `old_p`, subtask i for `steps[i]` steps of 3 records,
/// checkpoints all subtasks, keeps running (that output is lost with the
/// "failure"), then restores at `new_p` and runs to the end. Returns the
/// records emitted before the checkpoint (per old subtask, in order) and
/// after the restore (per new subtask).
template <class T, class MakeSource>
std::pair<std::vector<std::vector<T>>, std::vector<std::vector<T>>>
checkpoint_and_restore(MakeSource make, int32_t old_p, const std::vector<size_t>& steps,
                       int32_t new_p) {
  std::vector<std::vector<T>> before;
  std::vector<std::vector<operator_state_part>> snapshots;
  {
    std::vector<std::unique_ptr<source_harness<T, decltype(make())>>> old;
    for (int32_t i = 0; i < old_p; ++i)
      old.push_back(std::make_unique<source_harness<T, decltype(make())>>(make(), i, old_p));
    for (int32_t i = 0; i < old_p; ++i) {
      old[static_cast<size_t>(i)]->run(steps[static_cast<size_t>(i) % steps.size()], 3);
      before.push_back(old[static_cast<size_t>(i)]->out.items);
      snapshots.push_back(old[static_cast<size_t>(i)]->checkpoint(1));
    }
    for (auto& h : old)
      h->run(2, 5); // progress after the checkpoint, lost in the failure
  }
  std::vector<std::vector<T>> after;
  for (int32_t i = 0; i < new_p; ++i) {
    source_harness<T, decltype(make())> h(
        make(), i, new_p, operator_state_store::redistribute(snapshots, i, new_p), true);
    h.run_to_end();
    after.push_back(h.out.items);
  }
  return {before, after};
}

template <class T>
std::vector<T> concat(const std::vector<std::vector<T>>& parts) {
  std::vector<T> all;
  for (auto& p : parts)
    all.insert(all.end(), p.begin(), p.end());
  return all;
}

/// Checks that before + after is `input` exactly once and in order: each
/// old subtask emitted a prefix of its share of the input before the
/// checkpoint, and the new subtasks (in order, each running its splits one
/// after another) emit the rest.
template <class T>
void check_exactly_once(const std::vector<T>& input, const std::vector<std::vector<T>>& shares,
                        const std::vector<std::vector<T>>& before,
                        const std::vector<std::vector<T>>& after) {
  REQUIRE(shares.size() == before.size());
  std::vector<T> rest;
  for (size_t i = 0; i < shares.size(); ++i) {
    REQUIRE(before[i].size() <= shares[i].size());
    CHECK(std::equal(before[i].begin(), before[i].end(), shares[i].begin()));
    rest.insert(rest.end(), shares[i].begin() + static_cast<std::ptrdiff_t>(before[i].size()),
                shares[i].end());
  }
  CHECK(concat(after) == rest);
  CHECK(concat(shares) == input);
}

/// What each subtask emits on a fresh start without checkpoints.
template <class T, class MakeSource>
std::vector<std::vector<T>> fresh_shares(MakeSource make, int32_t p) {
  std::vector<std::vector<T>> shares;
  for (int32_t i = 0; i < p; ++i) {
    source_harness<T, decltype(make())> h(make(), i, p);
    h.run_to_end();
    shares.push_back(h.out.items);
  }
  return shares;
}

struct temp_file {
  std::string path;
  explicit temp_file(const std::string& content) {
    path = (std::filesystem::temp_directory_path() /
            ("sluice-source-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++)))
               .string();
    std::ofstream(path, std::ios::binary) << content;
  }
  ~temp_file() { std::remove(path.c_str()); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < text.size()) {
    auto nl = text.find('\n', at);
    if (nl == std::string::npos) {
      out.push_back(text.substr(at));
      break;
    }
    out.push_back(text.substr(at, nl - at));
    at = nl + 1;
  }
  return out;
}

const std::vector<std::vector<size_t>> step_plans = {{0}, {1}, {2, 0, 5}, {4, 1}, {100}};

} // namespace

TEST_SUITE("runtime.source_checkpoint") {

  TEST_CASE("a collection source resumes where the checkpoint cut it, at any parallelism") {
    std::vector<int> input(40);
    std::iota(input.begin(), input.end(), 0);
    auto items = std::make_shared<const std::vector<int>>(input);
    auto make = [&] { return collection_source<int>(items); };
    for (int32_t old_p : {1, 2, 3}) {
      auto shares = fresh_shares<int>(make, old_p);
      for (auto& plan : step_plans)
        for (int32_t new_p : {1, 2, 3}) {
          CAPTURE(old_p);
          CAPTURE(new_p);
          CAPTURE(plan.front());
          auto [before, after] = checkpoint_and_restore<int>(make, old_p, plan, new_p);
          check_exactly_once(input, shares, before, after);
        }
    }
  }

  TEST_CASE("a fresh collection source with checkpoint hooks emits what it always did") {
    auto items = std::make_shared<const std::vector<int>>(std::vector<int>{1, 2, 3, 4, 5, 6, 7});
    auto shares = fresh_shares<int>([&] { return collection_source<int>(items); }, 3);
    CHECK(shares == std::vector<std::vector<int>>{{1, 2}, {3, 4}, {5, 6, 7}});
  }

  TEST_CASE("a restored subtask that gets no splits finishes at once") {
    auto items = std::make_shared<const std::vector<int>>(std::vector<int>{1, 2, 3});
    source_harness<int, collection_source<int>> old(collection_source<int>(items), 0, 1);
    old.run(1, 1);
    auto snap = old.checkpoint(1);
    // One split, three new subtasks: subtasks 1 and 2 have nothing to read.
    source_harness<int, collection_source<int>> empty(
        collection_source<int>(items), 2, 3, operator_state_store::redistribute({snap}, 2, 3),
        true);
    CHECK(empty.src.run(empty.out, 10).what == source_step::kind::finished);
    CHECK(empty.out.items.empty());
    source_harness<int, collection_source<int>> first(
        collection_source<int>(items), 0, 3, operator_state_store::redistribute({snap}, 0, 3),
        true);
    first.run_to_end();
    CHECK(first.out.items == std::vector<int>{2, 3});
  }

  TEST_CASE("a generator source resumes where the checkpoint cut it, at any parallelism") {
    std::vector<std::string> input;
    for (int i = 0; i < 31; ++i)
      input.push_back("g" + std::to_string(i));
    auto f = [](uint64_t i) { return "g" + std::to_string(i); };
    auto make = [&] { return generator_source<std::string, decltype(f)>(31, f, 0); };
    for (int32_t old_p : {1, 2, 3}) {
      auto shares = fresh_shares<std::string>(make, old_p);
      for (auto& plan : step_plans)
        for (int32_t new_p : {1, 2, 3}) {
          CAPTURE(old_p);
          CAPTURE(new_p);
          auto [before, after] = checkpoint_and_restore<std::string>(make, old_p, plan, new_p);
          check_exactly_once(input, shares, before, after);
        }
    }
  }

  TEST_CASE("an unbounded generator checkpoints its position") {
    auto f = [](uint64_t i) { return i; };
    using gen = generator_source<uint64_t, decltype(f)>;
    source_harness<uint64_t, gen> old(gen(gen::unbounded, f, 0), 1, 2);
    old.run(2, 3);
    auto snap = old.checkpoint(1);
    source_harness<uint64_t, gen> restored(gen(gen::unbounded, f, 0), 0, 1,
                                           operator_state_store::redistribute({snap}, 0, 1), true);
    restored.run(1, 4);
    auto base = gen::unbounded / 2;
    CHECK(old.out.items ==
          std::vector<uint64_t>{base, base + 1, base + 2, base + 3, base + 4, base + 5});
    CHECK(restored.out.items == std::vector<uint64_t>{base + 6, base + 7, base + 8, base + 9});
    CHECK(restored.last.what == source_step::kind::more);
  }

  TEST_CASE("a rate-limited generator keeps its rate per subtask after a restore") {
    auto f = [](uint64_t i) { return i; };
    using gen = generator_source<uint64_t, decltype(f)>;
    source_harness<uint64_t, gen> old(gen(100, f, 0), 0, 1);
    old.run(1, 10);
    auto snap = old.checkpoint(1);
    // 10 records per second over 2 subtasks: 5 per second each, so after the
    // first record the next is due in 200 ms.
    source_harness<uint64_t, gen> restored(gen(100, f, 10), 0, 2,
                                           operator_state_store::redistribute({snap}, 0, 2), true);
    CHECK(restored.src.run(restored.out, 100).what == source_step::kind::more);
    CHECK(restored.out.items == std::vector<uint64_t>{10});
    auto step = restored.src.run(restored.out, 100);
    REQUIRE(step.what == source_step::kind::wait);
    CHECK(step.delay > std::chrono::milliseconds(150));
    CHECK(step.delay <= std::chrono::milliseconds(201));
  }

  TEST_CASE("a text file source resumes at the next unread line, at any parallelism") {
    // Empty lines, a CRLF line, and a last line without a trailing newline.
    std::string text;
    for (int i = 0; i < 60; ++i)
      text +=
          (i % 7 == 3 ? std::string() : "line " + std::to_string(i)) + (i == 20 ? "\r\n" : "\n");
    text += "\n\nthe end without newline";
    temp_file file(text);
    auto input = lines_of(text);
    input[20] = "line 20"; // the \r is not part of the line
    auto make = [&] { return text_file_source(file.path); };
    for (int32_t old_p : {1, 2, 3}) {
      auto shares = fresh_shares<std::string>(make, old_p);
      CHECK(concat(shares) == input);
      for (auto& plan : step_plans)
        for (int32_t new_p : {1, 2, 3}) {
          CAPTURE(old_p);
          CAPTURE(new_p);
          CAPTURE(plan.front());
          auto [before, after] = checkpoint_and_restore<std::string>(make, old_p, plan, new_p);
          check_exactly_once(input, shares, before, after);
        }
    }
  }

  TEST_CASE("a text file source checkpoints positions beyond its read buffer") {
    // More than one 256 KiB buffer, with lines that straddle buffer ends.
    std::string text;
    for (int i = 0; i < 9000; ++i)
      text += std::string(static_cast<size_t>(i % 97), 'x') + std::to_string(i) + "\n";
    text += "tail";
    temp_file file(text);
    auto input = lines_of(text);
    auto make = [&] { return text_file_source(file.path); };
    for (int32_t old_p : {1, 2}) {
      auto shares = fresh_shares<std::string>(make, old_p);
      for (int32_t new_p : {1, 3}) {
        CAPTURE(old_p);
        CAPTURE(new_p);
        auto [before, after] =
            checkpoint_and_restore<std::string>(make, old_p, {1500, 2300}, new_p);
        check_exactly_once(input, shares, before, after);
      }
    }
  }

  TEST_CASE("an empty text file and a file of empty lines restore cleanly") {
    for (std::string text : {std::string(), std::string("\n\n\n"), std::string("only")}) {
      temp_file file(text);
      auto make = [&] { return text_file_source(file.path); };
      for (int32_t old_p : {1, 2}) {
        auto shares = fresh_shares<std::string>(make, old_p);
        CHECK(concat(shares) == lines_of(text));
        auto [before, after] = checkpoint_and_restore<std::string>(make, old_p, {1}, 3);
        check_exactly_once(lines_of(text), shares, before, after);
      }
    }
  }

} // TEST_SUITE
