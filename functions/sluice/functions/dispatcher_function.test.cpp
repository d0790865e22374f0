#include "sluice/functions/dispatcher_function.hpp"
#include "sluice/sluice.hpp"
#include "sluice/state/test_backends.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

using namespace sluice;
using namespace sluice::functions;
using namespace std::chrono_literals;

namespace {

address addr(const std::string& ns, const std::string& type, const std::string& id) {
  return address{function_type{ns, type}, id};
}

const egress_id counts{"example", "counts"};

/// example/counter: counts its messages in "n", reports "id=n" to egress,
/// and greets example/echo/<id> on its first message. example/later
/// schedules an event-time delayed message to example/echo/<id>.
std::shared_ptr<function_registry> pipeline_registry() {
  auto r = std::make_shared<function_registry>();
  auto err = r->bind({"example", "counter"},
                     [](context& ctx, const message&) {
                       auto n = ctx.storage().get<int64_t>("n").value_or(0) + 1;
                       ctx.storage().set("n", n);
                       ctx.send_egress(counts, ctx.self().id + "=" + std::to_string(n));
                       if (n == 1)
                         ctx.send(addr("example", "echo", ctx.self().id), std::string("hello"));
                     },
                     {value_spec::of<int64_t>("n")});
  REQUIRE(!err);
  err = r->bind({"example", "later"}, [](context& ctx, const message&) {
    ctx.send_after_event_time(10ms, addr("example", "echo", ctx.self().id), std::string("late"));
  });
  REQUIRE(!err);
  return r;
}

} // namespace

TEST_SUITE("functions.pipeline") {

  TEST_CASE("a dispatcher in a keyed pipeline keeps per-address state and emits what functions "
            "send") {
    const int addresses = 500;
    std::vector<envelope> input;
    for (int round = 0; round < 3; ++round)
      for (int i = 0; i < addresses; ++i)
        input.push_back(envelope::to_function(addr("example", "counter", std::to_string(i)),
                                              make_typed(int32_t{round})));
    input.push_back(
        envelope::to_function(addr("example", "later", "z"), make_typed(true), std::nullopt, 1000));
    input.push_back(envelope::to_function(addr("example", "missing", "m"), make_typed(true)));

    for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
      CAPTURE(state::to_string(backend));
      configuration cfg;
      cfg.state.backend = backend;
      stream_environment env(cfg);
      env.set_parallelism(2);
      auto out = env.from_collection(input)
                     .key_by(envelope_target{})
                     .process(dispatcher_function(pipeline_registry()))
                     .collect();
      auto result = env.execute("functions pipeline");
      REQUIRE_MESSAGE(result.ok(), result.error);

      std::map<std::string, std::vector<int64_t>> per_id;
      std::set<std::string> greeted;
      std::vector<envelope> late;
      std::vector<dead_letter> dead;
      for (const auto& e : out->values()) {
        if (e.is_egress() && e.egress == counts) {
          auto s = *typed_as<std::string>(e.payload);
          auto eq = s.find('=');
          per_id[s.substr(0, eq)].push_back(std::stoll(s.substr(eq + 1)));
        } else if (e.is_egress()) {
          dead.push_back(*typed_as<dead_letter>(e.payload));
        } else if (*typed_as<std::string>(e.payload) == "hello") {
          CHECK(e.caller == addr("example", "counter", e.target.id));
          greeted.insert(e.target.id);
        } else {
          late.push_back(e);
        }
      }
      REQUIRE(per_id.size() == static_cast<size_t>(addresses));
      for (const auto& [id, seen] : per_id)
        CHECK_MESSAGE((seen == std::vector<int64_t>{1, 2, 3}), id);
      CHECK(greeted.size() == static_cast<size_t>(addresses));
      // The event-time delayed message fired on the final watermark.
      REQUIRE(late.size() == 1);
      CHECK(late[0].target == addr("example", "echo", "z"));
      CHECK(late[0].event_time == 1010);
      REQUIRE(dead.size() == 1);
      CHECK(dead[0].target == addr("example", "missing", "m"));
    }
  }

} // TEST_SUITE

// ---- the operator restored from a snapshot ------------------------------------------

namespace {

constexpr int32_t max_p = 128;

struct vector_collector final : runtime::collector<envelope> {
  std::vector<envelope> items;
  void collect(envelope&& v) override { items.push_back(std::move(v)); }
};

struct fake_clock final : runtime::processing_time_service {
  int64_t now = 0;
  std::multimap<int64_t, runtime::processing_time_callback*> armed;
  int64_t now_ms() const override { return now; }
  void register_timer(int64_t t, runtime::processing_time_callback* cb) override {
    armed.emplace(t, cb);
  }
  void advance(int64_t to) {
    now = to;
    while (!armed.empty() && armed.begin()->first <= to) {
      auto [t, cb] = *armed.begin();
      armed.erase(armed.begin());
      cb->on_processing_time(t);
    }
  }
};

using dispatcher_operator =
    runtime::keyed_process_function_operator<address, envelope, envelope, envelope_target,
                                             dispatcher_function>;

/// One opened dispatcher subtask with its clock and output.
struct subtask {
  runtime::state_settings settings;
  runtime::element_context element;
  fake_clock clock;
  vector_collector out;
  runtime::runtime_context ctx;
  std::unique_ptr<dispatcher_operator> op;

  subtask(std::shared_ptr<const function_registry> r, state::backend_kind kind, int32_t index,
          int32_t parallelism, int64_t now)
      : ctx("dispatcher", index, parallelism, max_p) {
    clock.now = now;
    settings.backend = kind;
    settings.ttl_cleanup_interval = 0ms;
    ctx.set_state_config(&settings);
    ctx.set_element_context(&element);
    ctx.set_time_service(&clock);
    ctx.set_instance_id(state::testing::instance_name());
    op = std::make_unique<dispatcher_operator>("dispatcher", envelope_target{},
                                               dispatcher_function(std::move(r)));
    op->set_output(&out);
    op->open_operator(ctx);
  }
  ~subtask() { op->close(); }
  bool owns(const address& a) const {
    return state::key_group_range_for_subtask(max_p, ctx.parallelism(), ctx.subtask_index())
        .contains(state::key_group_of(a, max_p));
  }
};

std::vector<std::unique_ptr<subtask>> subtasks(std::shared_ptr<const function_registry> r,
                                               state::backend_kind kind, int32_t p, int64_t now) {
  std::vector<std::unique_ptr<subtask>> out;
  for (int32_t i = 0; i < p; ++i)
    out.push_back(std::make_unique<subtask>(r, kind, i, p, now));
  return out;
}

void feed(std::vector<std::unique_ptr<subtask>>& tasks, const envelope& e) {
  for (auto& t : tasks)
    if (t->owns(e.target))
      t->op->collect(envelope(e));
}

} // namespace

TEST_SUITE("functions.restore") {

  TEST_CASE("pending delayed messages and function state survive a snapshot and a rescale") {
    auto r = std::make_shared<function_registry>();
    REQUIRE(!r->bind({"example", "reminder"},
                     [](context& ctx, const message& m) {
                       auto n = ctx.storage().get<int32_t>("n").value_or(0) + 1;
                       ctx.storage().set("n", n);
                       auto delay = std::chrono::milliseconds(m.as<int32_t>());
                       ctx.send_after(delay, addr("example", "sink", ctx.self().id), n,
                                      "t" + std::to_string(n));
                     },
                     {value_spec::of<int32_t>("n")}));
    using state::backend_kind;
    const int64_t t0 = 1'000'000;
    const int ids = 40;
    for (auto [from, to, p_from, p_to] :
         {std::tuple{backend_kind::heap, backend_kind::rocksdb, 2, 3},
          std::tuple{backend_kind::rocksdb, backend_kind::heap, 3, 1}}) {
      CAPTURE(state::to_string(from));
      auto before = subtasks(r, from, p_from, t0);
      for (int i = 0; i < ids; ++i) {
        auto a = addr("example", "reminder", std::to_string(i));
        feed(before, envelope::to_function(a, make_typed(int32_t{10})));  // due t0+10
        feed(before, envelope::to_function(a, make_typed(int32_t{100}))); // due t0+100
      }
      for (auto& t : before)
        t->clock.advance(t0 + 10);
      size_t early = 0;
      for (auto& t : before)
        early += t->out.items.size();
      CHECK(early == static_cast<size_t>(ids));
      std::vector<std::string> snaps;
      for (auto& t : before)
        snaps.push_back(t->op->snapshot_keyed_state());
      before.clear();

      auto after = subtasks(r, to, p_to, t0 + 10);
      std::vector<std::string_view> views(snaps.begin(), snaps.end());
      for (auto& t : after)
        t->op->restore_keyed_state(views);
      for (auto& t : after)
        t->clock.advance(t0 + 99);
      for (auto& t : after)
        CHECK(t->out.items.empty());
      for (auto& t : after)
        t->clock.advance(t0 + 100);
      std::set<std::string> delivered;
      for (auto& t : after)
        for (const auto& e : t->out.items) {
          CHECK(typed_as<int32_t>(e.payload) == 2);
          CHECK(e.caller == addr("example", "reminder", e.target.id));
          delivered.insert(e.target.id);
        }
      CHECK(delivered.size() == static_cast<size_t>(ids));
      // State came along: the next message counts on from 2.
      for (auto& t : after)
        t->out.items.clear();
      feed(after, envelope::to_function(addr("example", "reminder", "7"), make_typed(int32_t{0})));
      for (auto& t : after)
        t->clock.advance(t0 + 100);
      size_t n3 = 0;
      for (auto& t : after)
        for (const auto& e : t->out.items)
          n3 += typed_as<int32_t>(e.payload) == 3 ? 1 : 0;
      CHECK(n3 == 1);
    }
  }

} // TEST_SUITE
