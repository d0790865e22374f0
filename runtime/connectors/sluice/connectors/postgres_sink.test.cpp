#include "sluice/connectors/postgres_sink.hpp"
#include "sluice/connectors/testing/postgres_server.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <type_traits>
#include <vector>

using namespace sluice::connectors;
using sluice::state::operator_state_part;
using sluice::state::operator_state_store;

namespace {

struct event {
  int64_t id = 0;
  std::string name;
};

postgres_row event_row(const event& e) {
  return {std::to_string(e.id), e.name.empty() ? std::nullopt : std::optional(e.name)};
}

// add_sink copies the sink into each subtask.
static_assert(std::is_copy_constructible_v<postgres_sink<event>>);

/// A server with an empty table `events (id bigint, name text)`.
struct database {
  testing::postgres_server server;
  database() {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    tx.exec0("CREATE TABLE events (id bigint NOT NULL, name text)");
  }
  postgres_sink_options options(size_t batch_size = 2) const {
    postgres_sink_options o;
    o.connection = server.connection();
    o.table = "events";
    o.columns = {"id", "name"};
    o.sink_id = "job1_sink";
    o.batch_size = batch_size;
    return o;
  }
  /// The committed ids, sorted (what a reader sees).
  std::vector<int64_t> visible() const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    std::vector<int64_t> out;
    for (auto row : tx.exec("SELECT id FROM events ORDER BY id"))
      out.push_back(row[0].as<int64_t>());
    return out;
  }
  std::vector<std::string> prepared() const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    std::vector<std::string> out;
    for (auto row : tx.exec("SELECT gid FROM pg_prepared_xacts ORDER BY gid"))
      out.push_back(row[0].as<std::string>());
    return out;
  }
};

/// One sink subtask with its operator state, opened as an operator opens it
/// (as in two_phase_commit_sink.test.cpp).
struct harness {
  operator_state_store store;
  sluice::runtime::checkpoint_hooks hooks;
  sluice::runtime::runtime_context ctx;
  postgres_sink<event> sink;
  harness(const postgres_sink_options& o, bool checkpointing,
          std::vector<operator_state_part> restore = {}, bool restored = false, int32_t subtask = 0,
          int32_t parallelism = 1, postgres_sink<event>::row_function to_row = event_row)
      : ctx("pg sink", subtask, parallelism, 128)
      , sink(o, std::move(to_row)) {
    hooks.restored = restored;
    store.restore(std::move(restore));
    ctx.set_operator_state(&store);
    ctx.set_checkpoint_hooks(&hooks);
    ctx.set_checkpointing_enabled(checkpointing);
    sluice::runtime::internal::open_if_rich(sink, ctx);
  }
  void write(std::initializer_list<int64_t> ids) {
    for (auto id : ids)
      sink.invoke(event{id, "e" + std::to_string(id)});
    sink.end_of_batch();
  }
  std::vector<operator_state_part> checkpoint(int64_t id) {
    for (auto* f : hooks.checkpointed)
      f->snapshot_state(id, 0);
    return operator_state_store::parse(store.snapshot(), "test");
  }
};

/// The state subtask `index` of `parallelism` restores from `saved` (one
/// snapshot per old subtask).
std::vector<operator_state_part>
restore_of(const std::vector<std::vector<operator_state_part>>& saved, int32_t index = 0,
           int32_t parallelism = 1) {
  return operator_state_store::redistribute(saved, index, parallelism);
}

#define SKIP_WITHOUT_POSTGRES()                                                                    \
  if (!testing::postgres_server::available()) {                                                    \
    MESSAGE("skipped: no PostgreSQL server binaries in " << testing::postgres_server::bin_dir()    \
                                                         << " (set SLUICE_PG_BIN)");               \
    return;                                                                                        \
  }

} // namespace

TEST_SUITE("connectors.postgres") {

  TEST_CASE("a gid names prefix, sink, subtask, counter and random part") {
    using internal::postgres_session;
    CHECK(postgres_session::owner_of("sluice-s1-3-17-00ab12ff", "sluice-s1-") == 3);
    CHECK(postgres_session::owner_of("sluice-s1-0-0-0", "sluice-s1-") == 0);
    CHECK(postgres_session::owner_of("sluice-s2-3-17-00ab12ff", "sluice-s1-") == -1);
    // Another sink whose id starts like ours is not ours.
    CHECK(postgres_session::owner_of("sluice-s1-x-3-17-00ab12ff", "sluice-s1-") == -1);
    CHECK(postgres_session::owner_of("sluice-s1-3-17-00ab12ff-1", "sluice-s1-") == -1);
    CHECK(postgres_session::owner_of("sluice-s1-3-17", "sluice-s1-") == -1);
    CHECK(postgres_session::describe_target("host=db.example port=6543 dbname=shop user=app "
                                            "password=secret") ==
          "host=db.example port=6543 dbname=shop user=app");
  }

  TEST_CASE("rows stay invisible until their checkpoint completes") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    harness h(db.options(), true);
    h.write({1, 2, 3}); // one full batch of 2, one row buffered
    h.checkpoint(1);
    h.write({4});
    CHECK(db.visible().empty());
    auto prepared = db.prepared();
    REQUIRE(prepared.size() == 1);
    CHECK(prepared[0].rfind("sluice-job1_sink-0-", 0) == 0);
    h.checkpoint(2);
    CHECK(h.sink.pending_transactions() == 2);
    h.sink.notify_checkpoint_complete(1);
    CHECK(db.visible() == std::vector<int64_t>{1, 2, 3});
    h.sink.notify_checkpoint_complete(2);
    CHECK(db.visible() == std::vector<int64_t>{1, 2, 3, 4});
    // A checkpoint without records prepares nothing.
    h.checkpoint(3);
    CHECK(db.prepared().empty());
    h.sink.notify_checkpoint_complete(3);
    h.sink.close();
    CHECK(db.prepared().empty());
    CHECK(db.visible() == std::vector<int64_t>{1, 2, 3, 4});
  }

  TEST_CASE("a crash after pre-commit commits the prepared rows exactly once on restore") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    std::vector<operator_state_part> saved;
    {
      harness h(db.options(), true);
      h.write({1, 2, 3});
      saved = h.checkpoint(1); // the notification never comes
      h.write({4, 5, 6});      // lost with the crash; the source replays them
      // crash: no close(); the open transaction dies with its connection
    }
    CHECK(db.visible().empty());
    CHECK(db.prepared().size() == 1);
    harness r(db.options(), true, restore_of({saved}), true);
    CHECK(db.visible() == std::vector<int64_t>{1, 2, 3});
    CHECK(db.prepared().empty());
    CHECK(r.sink.rolled_back_orphans().empty());
    r.write({4, 5, 6});
    r.checkpoint(2);
    r.sink.notify_checkpoint_complete(2);
    CHECK(db.visible() == std::vector<int64_t>{1, 2, 3, 4, 5, 6});
    r.sink.close();
  }

  TEST_CASE("restoring the same checkpoint twice writes no duplicates") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    std::vector<operator_state_part> saved;
    {
      harness h(db.options(), true);
      h.write({1, 2});
      saved = h.checkpoint(1);
      // The checkpoint completes and commits, then the job fails.
      h.sink.notify_checkpoint_complete(1);
    }
    CHECK(db.visible() == std::vector<int64_t>{1, 2});
    for (int i = 0; i < 2; ++i) {
      harness r(db.options(), true, restore_of({saved}), true);
      CHECK(db.visible() == std::vector<int64_t>{1, 2});
      CHECK(db.prepared().empty());
    }
  }

  TEST_CASE("a commit fails loudly when its prepared transaction was rolled back by someone else") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    std::vector<operator_state_part> saved;
    {
      harness h(db.options(), true);
      h.write({1});
      saved = h.checkpoint(1);
    }
    auto gids = db.prepared();
    REQUIRE(gids.size() == 1);
    {
      pqxx::connection c(db.server.connection());
      pqxx::nontransaction tx(c);
      tx.exec0("ROLLBACK PREPARED " + tx.quote(gids[0]));
    }
    CHECK_THROWS_WITH_AS(harness(db.options(), true, restore_of({saved}), true),
                         doctest::Contains("rolled back instead of prepared"), postgres_sink_error);
  }

  TEST_CASE(
      "a transaction prepared for a checkpoint that never completed is rolled back on restore") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    std::vector<operator_state_part> saved;
    {
      harness h(db.options(), true);
      h.write({1});
      saved = h.checkpoint(1);
      h.sink.notify_checkpoint_complete(1);
      h.write({2});
      saved = h.checkpoint(2); // checkpoint 2 completes ...
      h.write({3});
      h.checkpoint(3); // ... checkpoint 3 is prepared but never completes
    }
    CHECK(db.visible() == std::vector<int64_t>{1});
    REQUIRE(db.prepared().size() == 2);
    harness r(db.options(), true, restore_of({saved}), true);
    CHECK(r.sink.rolled_back_orphans().size() == 1);
    CHECK(db.visible() == std::vector<int64_t>{1, 2});
    CHECK(db.prepared().empty());
  }

  TEST_CASE("subtasks roll back only their own orphans, never restored transactions") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    std::vector<std::vector<operator_state_part>> saved(2);
    {
      harness a(db.options(), true, {}, false, 0, 2);
      harness b(db.options(), true, {}, false, 1, 2);
      a.write({1});
      b.write({2});
      saved[0] = a.checkpoint(1);
      saved[1] = b.checkpoint(1);
      a.write({3});
      b.write({4});
      a.checkpoint(2); // never completes: two orphans
      b.checkpoint(2);
    }
    REQUIRE(db.prepared().size() == 4);

    SUBCASE("same parallelism: subtask 1 opens first and leaves subtask 0's transactions alone") {
      harness b(db.options(), true, restore_of(saved, 1, 2), true, 1, 2);
      CHECK(b.sink.rolled_back_orphans().size() == 1);
      CHECK(db.prepared().size() == 2); // subtask 0's restored one and its orphan
      CHECK(db.visible() == std::vector<int64_t>{2});
      harness a(db.options(), true, restore_of(saved, 0, 2), true, 0, 2);
      CHECK(a.sink.rolled_back_orphans().size() == 1);
    }
    SUBCASE("rescaled to one subtask: it cleans up for the subtask that is gone") {
      harness a(db.options(), true, restore_of(saved, 0, 1), true, 0, 1);
      CHECK(a.sink.rolled_back_orphans().size() == 2);
    }
    CHECK(db.prepared().empty());
    CHECK(db.visible() == std::vector<int64_t>{1, 2});
  }

  TEST_CASE("prepared transactions survive a server restart and commit afterwards") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    harness h(db.options(), true);
    h.write({1, 2, 3});
    h.checkpoint(1);
    db.server.restart();
    h.sink.notify_checkpoint_complete(1);
    CHECK(db.visible() == std::vector<int64_t>{1, 2, 3});
    // The open transaction died with the server: writing to it fails clearly.
    CHECK_THROWS_WITH_AS(h.write({4, 5}), doctest::Contains("connection"), postgres_sink_error);
  }

  TEST_CASE("an unreachable server gives an error naming host, port and database") {
    // A port nobody listens on: bound, read and released again.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    auto port = std::to_string(ntohs(addr.sin_port));
    postgres_sink_options o;
    o.connection = "host=127.0.0.1 port=" + port + " dbname=orders user=app password=secret";
    o.table = "events";
    o.columns = {"id", "name"};
    o.sink_id = "job1_sink";
    std::string message;
    try {
      harness h(o, true);
    } catch (const postgres_sink_error& e) {
      message = e.what();
    }
    MESSAGE(message);
    CHECK(message.find("postgres sink 'job1_sink' (host=127.0.0.1 port=" + port +
                       " dbname=orders user=app): cannot connect to PostgreSQL") == 0);
    CHECK(message.find("secret") == std::string::npos);
  }

  TEST_CASE("a database that does not exist gives an error naming it") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    auto o = db.options();
    o.connection = db.server.connection("missing_db");
    CHECK_THROWS_WITH_AS(harness(o, true), doctest::Contains("dbname=missing_db"),
                         postgres_sink_error);
  }

  TEST_CASE("a server without prepared transactions is refused with a clear error") {
    SKIP_WITHOUT_POSTGRES();
    testing::postgres_server server(0);
    postgres_sink_options o;
    o.connection = server.connection();
    o.table = "events";
    o.columns = {"id", "name"};
    o.sink_id = "s";
    CHECK_THROWS_WITH_AS(harness(o, true), doctest::Contains("max_prepared_transactions = 0"),
                         postgres_sink_error);
  }

  TEST_CASE("without checkpointing the end of the input commits") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    harness h(db.options(/*batch_size=*/1000), false);
    h.write({7, 8, 9});
    CHECK(db.visible().empty());
    h.sink.finish();
    h.sink.close();
    CHECK(db.visible() == std::vector<int64_t>{7, 8, 9});
    CHECK(db.prepared().empty());
  }

  TEST_CASE("a bad sink id or a row of the wrong width is an error") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    auto o = db.options();
    o.sink_id = "has-dash";
    CHECK_THROWS_AS(harness(o, true), std::invalid_argument);
    harness h(db.options(), true, {}, false, 0, 1,
              [](const event& e) { return postgres_row{std::to_string(e.id)}; });
    CHECK_THROWS_WITH_AS(h.write({1}),
                         doctest::Contains("a row has 1 values but the sink writes 2"),
                         postgres_sink_error);
    h.sink.close();
  }

} // TEST_SUITE
