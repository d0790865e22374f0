#include "sluice/runtime/exchange.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <type_traits>
#include <numeric>

using namespace sluice::runtime;

namespace {

/// Gate with unlimited credit that records what each channel received.
class recording_gate : public output_gate {
public:
  batch_ptr hand_over(uint32_t, uint32_t channel, batch_ptr batch) override {
    auto& recs = static_cast<record_batch<int64_t>&>(*batch).records;
    auto& got = received[channel];
    got.insert(got.end(), recs.begin(), recs.end());
    ++batches;
    recs.clear();
    return batch;
  }
  bool has_credit(uint32_t, uint32_t) const override { return true; }
  void send_event(uint32_t, uint32_t channel, uint8_t kind, int64_t value) override {
    events.push_back({channel, received[channel].size(), kind, value});
  }
  struct event {
    uint32_t channel;
    size_t records_before;
    uint8_t kind;
    int64_t value;
  };
  std::map<uint32_t, std::vector<int64_t>> received;
  std::vector<event> events;
  int batches = 0;
};

std::map<uint32_t, std::vector<int64_t>> run(ship_strategy s, uint32_t channels, int n,
                                             int32_t upstream_index = 0) {
  recording_gate gate;
  auto key = [](const int64_t& v) { return v; };
  typed_exchange<int64_t, int64_t, decltype(key)> ex(s, key);
  exchange_params params;
  auto out = ex.make_output(gate, 0, channels, upstream_index, channels, 128, params, "op");
  auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
  for (int64_t i = 0; i < n; ++i)
    c->collect(int64_t{i});
  out->flush(false);
  CHECK(out->records_out() == static_cast<uint64_t>(n));
  return gate.received;
}

} // namespace

TEST_SUITE("runtime.exchange") {

TEST_CASE("rebalance deals records round robin") {
  auto got = run(ship_strategy::rebalance, 3, 3000, 1);
  REQUIRE(got.size() == 3);
  for (auto& [ch, recs] : got)
    CHECK(recs.size() == 1000);
  CHECK(got[1][0] == 0); // upstream subtask 1 starts at channel 1
  CHECK(got[2][0] == 1);
}

TEST_CASE("shuffle spreads records roughly evenly at random") {
  auto got = run(ship_strategy::shuffle, 4, 40000);
  REQUIRE(got.size() == 4);
  for (auto& [ch, recs] : got) {
    CHECK(recs.size() > 9000);
    CHECK(recs.size() < 11000);
  }
}

TEST_CASE("broadcast sends every record to every channel") {
  auto got = run(ship_strategy::broadcast, 3, 500);
  REQUIRE(got.size() == 3);
  for (auto& [ch, recs] : got)
    CHECK(recs.size() == 500);
}

TEST_CASE("global and forward send everything to the first channel") {
  auto g = run(ship_strategy::global, 1, 100);
  CHECK(g[0].size() == 100);
}

TEST_CASE("hash sends each key to the subtask owning its key group") {
  auto got = run(ship_strategy::hash, 3, 10000);
  size_t total = 0;
  for (auto& [ch, recs] : got) {
    total += recs.size();
    for (auto v : recs) {
      auto kg = sluice::state::key_group_of<int64_t>(v, 128);
      REQUIRE(sluice::state::subtask_for_key_group(128, 3, kg) == static_cast<int32_t>(ch));
    }
  }
  CHECK(total == 10000);
}

TEST_CASE("custom partitioner picks the channel, and an out-of-range one fails") {
  recording_gate gate;
  auto key = [](const int64_t& v) { return v; };
  auto part = [](int64_t k, int32_t n) { return static_cast<int32_t>(k % n); };
  typed_exchange<int64_t, int64_t, decltype(key), decltype(part)> ex(ship_strategy::custom, key,
                                                                      part);
  auto out = ex.make_output(gate, 0, 4, 0, 4, 128, exchange_params{}, "op");
  auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
  for (int64_t i = 0; i < 40; ++i)
    c->collect(int64_t{i});
  out->flush(false);
  for (auto& [ch, recs] : gate.received)
    for (auto v : recs)
      CHECK(v % 4 == ch);

  auto bad = [](int64_t, int32_t) { return 7; };
  typed_exchange<int64_t, int64_t, decltype(key), decltype(bad)> ex2(ship_strategy::custom, key,
                                                                      bad);
  auto out2 = ex2.make_output(gate, 0, 4, 0, 4, 128, exchange_params{}, "op");
  auto* c2 = dynamic_cast<collector<int64_t>*>(out2->collector_ptr());
  CHECK_THROWS_AS(c2->collect(int64_t{1}), user_code_error);
}

TEST_CASE("records collected a block at a time go where and in the order they would one by one") {
  for (auto s : {ship_strategy::hash, ship_strategy::rebalance, ship_strategy::broadcast}) {
    CAPTURE(to_string(s));
    recording_gate gate;
    auto key = [](const int64_t& v) { return v; }; // as run() keys them
    typed_exchange<int64_t, int64_t, decltype(key)> ex(s, key);
    auto out = ex.make_output(gate, 0, 3, 0, 3, 128, exchange_params{}, "op");
    auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
    // Blocks of uneven sizes, around the output's inner block of 16.
    std::vector<int64_t> recs(5000);
    std::iota(recs.begin(), recs.end(), 0);
    size_t at = 0;
    for (size_t len : {size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{33}, size_t{64}})
      for (; at + len <= recs.size() && at < 4000; at += len)
        c->collect_batch(recs.data() + at, len);
    c->collect_batch(recs.data() + at, recs.size() - at);
    out->flush(false);
    CHECK(out->records_out() == 5000);
    CHECK(gate.received == run(s, 3, 5000));
  }
}

TEST_CASE("a custom partitioner that fails on a record of a block fails the block") {
  recording_gate gate;
  auto key = [](const int64_t& v) { return v; };
  auto part = [](int64_t k, int32_t n) { return k == 20 ? n : static_cast<int32_t>(k % n); };
  typed_exchange<int64_t, int64_t, decltype(key), decltype(part)> ex(ship_strategy::custom, key,
                                                                      part);
  auto out = ex.make_output(gate, 0, 4, 0, 4, 128, exchange_params{}, "op");
  auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
  std::vector<int64_t> recs(40);
  std::iota(recs.begin(), recs.end(), 0);
  CHECK_THROWS_AS(c->collect_batch(recs.data(), recs.size()), user_code_error);
}

TEST_CASE("batches are handed over when full, and every record at buffer timeout 0") {
  recording_gate gate;
  typed_exchange<int64_t> ex(ship_strategy::forward);
  exchange_params params;
  params.batch_bytes = 1024 * sizeof(int64_t);
  params.min_batch_records = 1;
  auto out = ex.make_output(gate, 0, 1, 0, 1, 128, params, "op");
  auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
  for (int64_t i = 0; i < 2048; ++i)
    c->collect(int64_t{i});
  CHECK(gate.batches == 2);
  params.flush_every_record = true;
  auto out2 = ex.make_output(gate, 0, 1, 0, 1, 128, params, "op");
  auto* c2 = dynamic_cast<collector<int64_t>*>(out2->collector_ptr());
  c2->collect(int64_t{1});
  CHECK(gate.batches == 3);
}

TEST_CASE("a watermark reaches every channel after the records before it") {
  recording_gate gate;
  exchange_params params;
  typed_exchange<int64_t> ex(ship_strategy::rebalance);
  auto out = ex.make_output(gate, 0, 3, 0, 3, 128, params, "op");
  auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
  REQUIRE(c != nullptr);
  for (int64_t i = 0; i < 10; ++i)
    c->collect(int64_t{i});
  out->collector_ptr()->process_watermark(42);
  REQUIRE(gate.events.size() == 3);
  size_t total = 0;
  for (auto& e : gate.events) {
    CHECK(e.kind == static_cast<uint8_t>(channel_event::watermark));
    CHECK(e.value == 42);
    CHECK(e.records_before == gate.received[e.channel].size());
    total += e.records_before;
  }
  CHECK(total == 10);
}

TEST_CASE("timestamps travel with records on edges that carry them") {
  // A gate that keeps the handed-over batch instead of emptying it.
  struct keep_gate : output_gate {
    batch_ptr last;
    batch_ptr hand_over(uint32_t, uint32_t, batch_ptr b) override {
      last = b;
      return nullptr;
    }
    bool has_credit(uint32_t, uint32_t) const override { return true; }
    void send_event(uint32_t, uint32_t, uint8_t, int64_t) override {}
  } keep;
  exchange_params params;
  typed_exchange<int64_t> ex(ship_strategy::forward);
  auto out = ex.make_output(keep, 0, 1, 0, 1, 128, params, "op");
  element_context send_ctx;
  out->set_element_context(&send_ctx, true);
  auto* c = dynamic_cast<collector<int64_t>*>(out->collector_ptr());
  for (int64_t i = 0; i < 5; ++i) {
    send_ctx.timestamp = 1000 + i;
    c->collect(i * 10);
  }
  out->flush(false);
  REQUIRE(static_cast<bool>(keep.last));
  struct stamp_sink : collector<int64_t> {
    element_context* ctx = nullptr;
    std::vector<std::pair<int64_t, int64_t>> seen;
    using collector<int64_t>::collect;
    void collect(int64_t&& v) override { seen.emplace_back(v, ctx->timestamp); }
  } sink;
  element_context recv_ctx;
  sink.ctx = &recv_ctx;
  auto feeder = ex.make_feeder(&sink);
  feeder->set_element_context(&recv_ctx);
  CHECK(feeder->feed(*keep.last) == 5);
  REQUIRE(sink.seen.size() == 5);
  for (int64_t i = 0; i < 5; ++i)
    CHECK(sink.seen[static_cast<size_t>(i)] == std::pair<int64_t, int64_t>{i * 10, 1000 + i});
}

TEST_CASE("stamped records keep their timestamps across recycled batches on every channel") {
  // Small batches that the gate empties and hands back, as the credit loop
  // does: the output reuses each buffer many times. Word records are
  // streamed through the output's lanes, strings take the copying path.
  auto check = [](auto sample) {
    using T = decltype(sample);
    struct recycling_gate : output_gate {
      std::map<uint32_t, std::vector<std::pair<T, int64_t>>> got;
      int batches = 0;
      batch_ptr hand_over(uint32_t, uint32_t ch, batch_ptr b) override {
        auto& rb = static_cast<record_batch<T>&>(*b);
        REQUIRE(rb.timestamps.size() == rb.records.size());
        for (size_t i = 0; i < rb.records.size(); ++i)
          got[ch].emplace_back(rb.records[i], rb.timestamps[i]);
        ++batches;
        rb.clear();
        return b;
      }
      bool has_credit(uint32_t, uint32_t) const override { return true; }
      void send_event(uint32_t, uint32_t, uint8_t, int64_t) override {}
    } gate;
    auto key = [](const T& v) { return v; };
    typed_exchange<T, T, decltype(key)> ex(ship_strategy::hash, key);
    exchange_params params;
    params.batch_bytes = 1;
    params.min_batch_records = 7; // 1000 records make many batches per channel
    auto out = ex.make_output(gate, 0, 3, 0, 3, 128, params, "op");
    element_context ctx;
    out->set_element_context(&ctx, true);
    auto* c = dynamic_cast<collector<T>*>(out->collector_ptr());
    std::vector<T> recs;
    std::vector<int64_t> stamps;
    for (int i = 0; i < 1000; ++i) {
      if constexpr (std::is_same_v<T, std::string>)
        recs.push_back("k" + std::to_string(i));
      else
        recs.push_back(static_cast<T>(i));
      stamps.push_back(5000 + i);
    }
    // Blocks of uneven sizes, then single records with the context's timestamp.
    auto sent = recs;
    size_t at = 0;
    for (size_t len : {size_t{1}, size_t{13}, size_t{64}, size_t{5}})
      for (; at + len <= 900; at += len)
        c->collect_stamped(sent.data() + at, stamps.data() + at, len, ctx);
    for (; at < recs.size(); ++at) {
      ctx.timestamp = stamps[at];
      c->collect(T(recs[at]));
    }
    out->flush(false);
    CHECK(gate.batches > 100);
    // Each channel got its records in order, each with its own timestamp.
    std::map<uint32_t, std::vector<std::pair<T, int64_t>>> expected;
    key_group_selector<T, decltype(key)> sel(key, 128, 3);
    for (size_t i = 0; i < recs.size(); ++i)
      expected[sel.select(recs[i])].emplace_back(recs[i], stamps[i]);
    CHECK(gate.got == expected);
  };
  check(int64_t{});
  check(std::string{});
}

} // TEST_SUITE
