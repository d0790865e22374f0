#include "sluice/sluice.hpp"
#include "test_util.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace sluice;
using sluice::test::sorted;

namespace {

std::vector<int64_t> range(int64_t n) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i)
    v.push_back(i);
  return v;
}

} // namespace

TEST_SUITE("integration.side_outputs") {

TEST_CASE("a process function splits a stream into a main and a typed side output") {
  for (int p : {1, 2}) {
    CAPTURE(p);
    stream_environment env;
    env.set_parallelism(p);
    output_tag<std::string> odd("odd");
    auto evens = env.from_collection(range(100)).rebalance().process<int64_t>(
      [odd](int64_t v, process_context& ctx, collector<int64_t>& out) {
        if (v % 2 == 0)
          out.collect(v);
        else
          ctx.output(odd, "odd:" + std::to_string(v));
      });
    auto main_out = evens.collect();
    auto side_out = evens.get_side_output(odd).collect();
    auto r = env.execute("split");
    REQUIRE_MESSAGE(r.ok(), r.error);
    std::vector<int64_t> want_even;
    std::vector<std::string> want_odd;
    for (int64_t i = 0; i < 100; ++i)
      if (i % 2 == 0)
        want_even.push_back(i);
      else
        want_odd.push_back("odd:" + std::to_string(i));
    CHECK(sorted(main_out->values()) == want_even);
    CHECK(sorted(side_out->values()) == sorted(want_odd));
  }
}

TEST_CASE("a side output crosses the network when its consumer runs at another parallelism") {
  stream_environment env;
  env.set_parallelism(2);
  output_tag<int64_t> big("big");
  auto small = env.from_collection(range(1000)).rebalance().process<int64_t>(
    [big](int64_t v, process_context& ctx, collector<int64_t>& out) {
      if (v < 10)
        out.collect(v);
      else
        ctx.output(big, v);
    });
  auto summed = small.get_side_output(big)
                  .map([](int64_t v) { return v; })
                  .set_parallelism(1)
                  .key_by([](const int64_t&) { return 0; })
                  .reduce([](int64_t a, int64_t b) { return a + b; })
                  .collect();
  small.discard();
  auto r = env.execute("side network");
  REQUIRE_MESSAGE(r.ok(), r.error);
  auto got = summed->values();
  REQUIRE(!got.empty());
  CHECK(*std::max_element(got.begin(), got.end()) == 999 * 1000 / 2 - 45);
}

TEST_CASE("records sent to a tag nobody reads are dropped; reading it twice gives one stream") {
  stream_environment env;
  output_tag<int64_t> unused("unused");
  output_tag<int64_t> all("all");
  auto s = env.from_collection(range(10)).process<int64_t>(
    [unused, all](int64_t v, process_context& ctx, collector<int64_t>& out) {
      ctx.output(unused, v);
      ctx.output(all, v * 10);
      out.collect(v);
    });
  auto a = s.get_side_output(all);
  auto b = s.get_side_output(all);
  CHECK(a.node_id() == b.node_id());
  auto side = a.collect();
  auto r = env.execute("unused tag");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(sorted(side->values()) == std::vector<int64_t>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90});
}

TEST_CASE("a tag read with another type than it is written with is an error") {
  stream_environment env;
  auto s = env.from_collection(range(3)).process<int64_t>(
    [](int64_t v, process_context& ctx, collector<int64_t>&) {
      ctx.output(output_tag<int64_t>("t"), v);
    });
  s.get_side_output(output_tag<std::string>("t")).discard();
  CHECK_THROWS_WITH_AS(s.get_side_output(output_tag<int64_t>("t")),
                       doctest::Contains("another type"), std::invalid_argument);
  auto r = env.execute("wrong type");
  CHECK(!r.ok());
  CHECK(r.error.find("different type") != std::string::npos);
}

TEST_CASE("a keyed process function emits to a side output from records and timers") {
  struct flag final : keyed_process_function<int64_t, int64_t, int64_t> {
    output_tag<std::string> alerts{"alerts"};
    void process_element(const int64_t& v, context& ctx, collector<int64_t>& out) override {
      out.collect(v);
      if (v % 3 == 0)
        ctx.output(alerts, "rec:" + std::to_string(v));
      ctx.timer_service().register_event_time_timer(*ctx.timestamp() + 100);
    }
    void on_timer(int64_t t, context& ctx, collector<int64_t>&) override {
      ctx.output(alerts, "timer:" + std::to_string(t));
    }
  };
  stream_environment env;
  env.set_parallelism(2);
  auto main_stream = env.from_elements<int64_t>(1, 3, 6, 7)
                       .assign_timestamps_and_watermarks(
                         watermark_strategy<int64_t>::for_monotonous_timestamps()
                           .with_timestamp_assigner([](const int64_t& v) { return v; }))
                       .key_by([](const int64_t& v) { return v; })
                       .process(flag{});
  auto main_out = main_stream.collect();
  auto side = main_stream.get_side_output(output_tag<std::string>("alerts")).collect();
  auto r = env.execute("keyed side");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(sorted(main_out->values()) == std::vector<int64_t>{1, 3, 6, 7});
  CHECK(sorted(side->values()) ==
        std::vector<std::string>{"rec:3", "rec:6", "timer:101", "timer:103", "timer:106",
                                 "timer:107"});
}

TEST_CASE("a process_function class sees timestamps and watermarks and writes side outputs") {
  struct late_splitter final : process_function<int64_t, int64_t> {
    output_tag<std::string> behind{"behind"};
    int32_t subtask = -1;
    void open(const runtime_context& ctx) override { subtask = ctx.subtask_index(); }
    void process_element(const int64_t& v, process_context& ctx, collector<int64_t>& out) override {
      if (subtask != 0)
        throw std::logic_error("open() was not called");
      // Punctuated watermark after every record: the record at 5 after 9
      // arrives behind event time.
      if (*ctx.timestamp() < ctx.current_watermark())
        ctx.output(behind, std::to_string(v) + "<" + std::to_string(ctx.current_watermark()));
      else
        out.collect(v);
    }
  };
  stream_environment env;
  auto s = env.from_elements<int64_t>(1, 9, 5, 12)
             .assign_timestamps_and_watermarks(
               watermark_strategy<int64_t>::for_generator([] {
                 return std::make_unique<runtime::punctuated_watermarks<int64_t>>(
                   [](const int64_t&, int64_t ts) { return std::optional<int64_t>(ts - 1); });
               }).with_timestamp_assigner([](const int64_t& v) { return v; }))
             .disable_chaining()
             .process(late_splitter{});
  auto main_out = s.collect();
  auto side = s.get_side_output(output_tag<std::string>("behind")).collect();
  auto r = env.execute("process function class");
  REQUIRE_MESSAGE(r.ok(), r.error);
  CHECK(main_out->values() == std::vector<int64_t>{1, 9, 12});
  CHECK(side->values() == std::vector<std::string>{"5<8"});
}

} // TEST_SUITE
