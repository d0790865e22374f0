// The exactly_once job (examples/exactly_once_job.hpp) writing through the
// PostgreSQL sink into a real server on loopback: under seeded exceptions
// and killed subtasks, and with failures between a checkpoint's pre-commit
// (PREPARE TRANSACTION) and its commit (COMMIT PREPARED), the table ends up
// equal to the failure-free output, and no prepared transaction is left.
#include "exactly_once_job.hpp"
#include "exactly_once_util.hpp"
#include "test_util.hpp"

#include "sluice/connectors/postgres_sink.hpp"
#include "sluice/connectors/testing/postgres_server.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

using namespace sluice;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using connectors::postgres_row;
using connectors::postgres_sink;
using connectors::postgres_sink_options;
using sluice::test::exactly_once::checkpointed;
using sluice::test::exactly_once::kill_randomly;
using sluice::test::exactly_once::vertex_of;
using sluice::test::exactly_once::write_input;

namespace {

/// The sink's name, found again in task names (metrics, kills).
const std::string sink_name = "PostgresSink";

/// A server of its own with the empty table `running_sums`. No key on it,
/// so a duplicate row is stored and shows, rather than failing the insert.
struct database {
  connectors::testing::postgres_server server;

  database() {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    tx.exec0("CREATE TABLE running_sums (key text NOT NULL, running_sum bigint NOT NULL, "
             "line_number bigint NOT NULL)");
  }

  postgres_sink_options options(const std::string& sink_id) const {
    postgres_sink_options o;
    o.connection = server.connection();
    o.table = "running_sums";
    o.columns = {"key", "running_sum", "line_number"};
    o.sink_id = sink_id;
    o.batch_size = 200;
    return o;
  }

  /// Every row as "key,running_sum,line_number", sorted (duplicates kept).
  std::vector<std::string> rows() const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    std::vector<std::string> out;
    for (auto row : tx.exec("SELECT key, running_sum, line_number FROM running_sums"))
      out.push_back(row[0].as<std::string>() + "," + row[1].as<std::string>() + "," +
                    row[2].as<std::string>());
    std::sort(out.begin(), out.end());
    return out;
  }

  /// Input lines written more than once.
  int64_t duplicated_lines() const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    return tx
        .exec1("SELECT count(*) FROM (SELECT line_number FROM running_sums GROUP BY line_number "
               "HAVING count(*) > 1) AS d")[0]
        .as<int64_t>();
  }

  /// Gids of every prepared transaction on the server.
  std::vector<std::string> prepared() const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    std::vector<std::string> out;
    for (auto row : tx.exec("SELECT gid FROM pg_prepared_xacts ORDER BY gid"))
      out.push_back(row[0].as<std::string>());
    return out;
  }

  /// Prepared transactions of subtask `subtask` of sink `sink_id` as (gid,
  /// txid), oldest first (gids count up per subtask: see postgres_sink).
  std::vector<std::pair<std::string, int64_t>> prepared_of(const std::string& sink_id,
                                                           int32_t subtask) const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    auto prefix = "sluice-" + sink_id + "-" + std::to_string(subtask) + "-";
    std::vector<std::pair<int64_t, std::pair<std::string, int64_t>>> found;
    // A fresh cluster is in xid epoch 0: the 32-bit xid is the txid.
    for (auto row : tx.exec_params("SELECT gid, transaction::text::bigint FROM pg_prepared_xacts "
                                   "WHERE left(gid, $1) = $2",
                                   static_cast<int>(prefix.size()), prefix)) {
      auto gid = row[0].as<std::string>();
      auto counter = std::stoll(gid.substr(prefix.size(), gid.find('-', prefix.size())));
      found.push_back({counter, {gid, row[1].as<int64_t>()}});
    }
    std::sort(found.begin(), found.end());
    std::vector<std::pair<std::string, int64_t>> out;
    for (auto& f : found)
      out.push_back(f.second);
    return out;
  }

  /// "committed", "aborted", "in progress" (txid_status).
  std::string status_of(int64_t txid) const {
    pqxx::connection c(server.connection());
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT txid_status(" + std::to_string(txid) + ")")[0].as<std::string>();
  }
};

/// "key,running_sum,line_number" -> the row of running_sums.
postgres_row to_row(const std::string& line) {
  auto f = ::exactly_once::output_fields(line);
  return {f[0], f[1], f[2]};
}

#define SKIP_WITHOUT_POSTGRES()                                                                    \
  if (!connectors::testing::postgres_server::available()) {                                        \
    MESSAGE("skipped: no PostgreSQL server binaries in "                                           \
            << connectors::testing::postgres_server::bin_dir() << " (set SLUICE_PG_BIN)");         \
    return;                                                                                        \
  }

/// The table and the server after a finished job: every line exactly once
/// with the failure-free sums, nothing left prepared.
void check_table(const database& db, const std::string& input) {
  auto want = ::exactly_once::expected_output(input);
  auto got = db.rows();
  CHECK(db.duplicated_lines() == 0);
  CHECK(got.size() == want.size());
  CHECK(got == want);
  CHECK(db.prepared().empty());
}

void run_with_failures(state::backend_kind backend, int32_t p, int64_t lines, int64_t fail_every,
                       size_t kills, uint64_t seed) {
  database db;
  sluice::test::temp_dir dir;
  auto input = write_input(fs::path(dir.path()), lines, 37, seed);
  auto plan = std::make_shared<::exactly_once::failure_plan>(lines, fail_every, seed);
  stream_environment env(checkpointed(fs::path(dir.path()), backend, p));
  ::exactly_once::build_running_sums(env, input, plan, 40)
      .add_sink(postgres_sink<std::string>(db.options("running_sums"), to_row), sink_name)
      .uid("postgres-sink");
  auto job = env.execute_async("exactly once into PostgreSQL under failures");
  sluice::test::exactly_once::job_guard guard(job);
  auto killed = kill_randomly(*job, sink_name, kills, static_cast<uint64_t>(lines) / 50, seed + 1);
  auto r = job->wait();
  REQUIRE_MESSAGE(r.ok(), r.error);
  sluice::test::exactly_once::check_failures_injected(*plan, killed, *job);
  check_table(db, input);
}

/// Intercepts completed checkpoints at the sink subtasks of one job before
/// they commit, following a plan of actions: the first sink subtask told
/// that a checkpoint completed while it holds prepared rows of it takes the
/// next action, and the next one is only taken once the test called done().
/// Thread-safe (sink subtasks and the test thread).
class commit_interceptor {
public:
  enum class action {
    /// Throw before the commit: the subtask fails.
    fail,
    /// Skip this and every later commit; the test kills the subtask.
    hold_for_kill,
  };
  /// One action as taken.
  struct taken {
    action what = action::fail;
    int32_t subtask = 0;
    int64_t checkpoint = 0;
    /// Transactions with rows that the subtask pre-committed for this
    /// checkpoint or earlier ones and has not committed.
    size_t prepared_transactions = 0;
  };

  explicit commit_interceptor(std::vector<action> plan)
      : plan_(std::move(plan)) {}

  /// Called by a sink subtask; the action to take, if it is its turn.
  std::optional<action> take(int32_t subtask, int64_t checkpoint, size_t prepared) {
    std::lock_guard<std::mutex> guard(mtx_);
    if (current_ || history_.size() == plan_.size())
      return std::nullopt;
    current_ = taken{plan_[history_.size()], subtask, checkpoint, prepared};
    history_.push_back(*current_);
    return current_->what;
  }
  /// The action taken and not done yet.
  std::optional<taken> current() const {
    std::lock_guard<std::mutex> guard(mtx_);
    return current_;
  }
  /// The test has dealt with the current action (the job restarted).
  void done() {
    std::lock_guard<std::mutex> guard(mtx_);
    current_.reset();
  }
  std::vector<taken> history() const {
    std::lock_guard<std::mutex> guard(mtx_);
    return history_;
  }

private:
  mutable std::mutex mtx_;
  std::vector<action> plan_;
  std::vector<taken> history_;
  std::optional<taken> current_;
};

/// Runs sink `S` unchanged, except that a commit_interceptor may stop a
/// checkpoint's completion from reaching it, after S pre-committed the
/// checkpoint's transaction and before it commits it.
template <class T, class S>
class intercepted_sink final : public sluice::test::exactly_once::forwarding_sink<T, S> {
  using base = sluice::test::exactly_once::forwarding_sink<T, S>;

public:
  intercepted_sink(S inner, std::shared_ptr<commit_interceptor> gate)
      : base(std::move(inner))
      , gate_(std::move(gate)) {}

  void invoke(T&& value) override {
    ++rows_open_;
    base::invoke(std::move(value));
  }
  void finish() override {
    // The input has ended: the next checkpoint is the job's final one, and
    // the subtask finishes right after its completion. A commit held back
    // then would never come, so the interceptor leaves it alone.
    input_ended_ = true;
    base::finish();
  }
  void snapshot_state(int64_t checkpoint_id, int64_t timestamp_ms) override {
    base::snapshot_state(checkpoint_id, timestamp_ms);
    if (rows_open_ > 0)
      rows_prepared_[checkpoint_id] = rows_open_;
    rows_open_ = 0;
  }
  void notify_checkpoint_complete(int64_t checkpoint_id) override {
    if (held_)
      return; // waits for the kill with its transactions prepared
    auto upto = rows_prepared_.upper_bound(checkpoint_id);
    auto prepared = static_cast<size_t>(std::distance(rows_prepared_.begin(), upto));
    if (prepared > 0 && !input_ended_) {
      if (auto a = gate_->take(this->subtask_, checkpoint_id, prepared)) {
        if (*a == commit_interceptor::action::fail)
          throw ::exactly_once::injected_failure(
              "injected failure before the commit of checkpoint " + std::to_string(checkpoint_id));
        held_ = true;
        return;
      }
    }
    base::notify_checkpoint_complete(checkpoint_id);
    rows_prepared_.erase(rows_prepared_.begin(), upto);
  }

private:
  std::shared_ptr<commit_interceptor> gate_;
  bool held_ = false;
  bool input_ended_ = false;
  uint64_t rows_open_ = 0;
  /// Rows per checkpoint whose transaction is pre-committed, not committed.
  std::map<int64_t, uint64_t> rows_prepared_;
};

} // namespace

TEST_SUITE("integration.exactly_once.postgres") {

  TEST_CASE("a failure-free checkpointed run writes every line once into PostgreSQL") {
    SKIP_WITHOUT_POSTGRES();
    database db;
    sluice::test::temp_dir dir;
    auto input = write_input(fs::path(dir.path()), 5000, 11, 7);
    stream_environment env(checkpointed(fs::path(dir.path()), state::backend_kind::heap, 2));
    ::exactly_once::build_running_sums(env, input, nullptr)
        .add_sink(postgres_sink<std::string>(db.options("clean"), to_row), sink_name)
        .uid("postgres-sink");
    auto r = env.execute("clean into PostgreSQL");
    REQUIRE_MESSAGE(r.ok(), r.error);
    check_table(db, input);
  }

  TEST_CASE("exceptions and killed subtasks lose and duplicate no row in PostgreSQL (heap)") {
    SKIP_WITHOUT_POSTGRES();
    run_with_failures(state::backend_kind::heap, 3, 30000, 1500, 6, 42);
  }

  TEST_CASE("exceptions and killed subtasks lose and duplicate no row in PostgreSQL (RocksDB)") {
    SKIP_WITHOUT_POSTGRES();
    run_with_failures(state::backend_kind::rocksdb, 2, 12000, 600, 4, 4242);
  }

  TEST_CASE("a PostgreSQL sink that fails or is killed between pre-commit and commit commits the "
            "prepared rows on recovery") {
    SKIP_WITHOUT_POSTGRES();
    using action = commit_interceptor::action;
    database db;
    sluice::test::temp_dir dir;
    // Enough input that all six actions happen before it runs out, also on
    // a loaded machine under ASan (where checkpoints complete less often).
    const int64_t lines = 300000;
    auto input = write_input(fs::path(dir.path()), lines, 23, 99);
    const std::vector<action> plan{action::hold_for_kill, action::fail,
                                   action::hold_for_kill, action::fail,
                                   action::hold_for_kill, action::fail};
    auto gate = std::make_shared<commit_interceptor>(plan);
    auto cfg = checkpointed(fs::path(dir.path()), state::backend_kind::heap, 2);
    // Small batches and few credits: a barrier waits behind at most 512
    // records per channel, so checkpoints complete every few tens of
    // milliseconds while the throttled job runs for seconds.
    cfg.batch_bytes = 8 * 1024;
    cfg.credits_per_channel = 2;
    stream_environment env(cfg);
    using sink_type = postgres_sink<std::string>;
    ::exactly_once::build_running_sums(env, input, nullptr, 40)
        .add_sink(
            intercepted_sink<std::string, sink_type>(sink_type(db.options("gated"), to_row), gate),
            sink_name)
        .uid("postgres-sink");
    auto job = env.execute_async("commits intercepted");
    sluice::test::exactly_once::job_guard guard(job);

    // Transactions of completed checkpoints that were prepared, not committed,
    // when their subtask was killed: recovery must commit them.
    std::vector<std::pair<std::string, int64_t>> must_commit;
    const size_t actions = plan.size();
    for (size_t n = 0; n < actions; ++n) {
      auto restarts = job->restarts();
      REQUIRE_MESSAGE(sluice::test::eventually(
                          [&] {
                            return gate->current().has_value() ||
                                   runtime::is_globally_terminal(job->status());
                          },
                          60s),
                      "action " << n << " was never taken");
      auto taken = gate->current();
      if (!taken) {
        auto r = job->wait();
        FAIL("the job ended before action " << n << ": " << r.error);
      }
      if (taken->what == action::hold_for_kill) {
        // The subtask commits nothing from now on, so what it has prepared up
        // to the completed checkpoint stays prepared until the kill.
        auto prepared = db.prepared_of("gated", taken->subtask);
        REQUIRE(prepared.size() >= taken->prepared_transactions);
        must_commit.insert(must_commit.end(), prepared.begin(),
                           prepared.begin() +
                               static_cast<std::ptrdiff_t>(taken->prepared_transactions));
        auto vertex = vertex_of(*job, sink_name);
        REQUIRE(vertex >= 0);
        job->kill_subtask(vertex, taken->subtask);
      }
      REQUIRE_MESSAGE(sluice::test::eventually([&] { return job->restarts() != restarts; }, 60s),
                      "no restart after action " << n << " (checkpoint " << taken->checkpoint
                                                 << ", subtask " << taken->subtask << "); job "
                                                 << std::string(runtime::to_string(job->status())));
      gate->done();
    }
    auto r = job->wait();
    REQUIRE_MESSAGE(r.ok(), r.error);
    auto history = gate->history();
    CHECK(history.size() == actions);
    CHECK(job->restarts() >= static_cast<int32_t>(actions));
    CHECK(must_commit.size() >= 3);
    for (auto& [gid, txid] : must_commit)
      CHECK_MESSAGE(db.status_of(txid) == "committed", gid);
    check_table(db, input);
  }

} // TEST_SUITE
