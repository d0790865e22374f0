#include "sluice/connectors/postgres_sink.hpp"

#include <libpq-fe.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <random>
#include <utility>

namespace sluice::connectors::internal {

namespace {

/// SQLSTATE undefined_object: COMMIT/ROLLBACK PREPARED of a gid that is not
/// prepared (anymore).
constexpr const char* no_such_prepared_transaction = "42704";
/// A PostgreSQL statement takes at most 65535 parameters.
constexpr size_t max_parameters = 65535;
/// Idle connections kept for the next transactions (one is the usual need).
constexpr size_t max_idle_connections = 2;

bool is_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '_';
  });
}

std::string insert_sql(const postgres_sink_options& o, size_t rows) {
  std::string cols;
  for (size_t i = 0; i < o.columns.size(); ++i)
    cols += (i == 0 ? "" : ", ") + o.columns[i];
  std::string sql = "INSERT INTO " + o.table + " (" + cols + ") VALUES ";
  size_t n = 1;
  for (size_t r = 0; r < rows; ++r) {
    sql += r == 0 ? "(" : ", (";
    for (size_t c = 0; c < o.columns.size(); ++c)
      sql += (c == 0 ? "$" : ", $") + std::to_string(n++);
    sql += ')';
  }
  if (!o.on_conflict.empty())
    sql += " " + o.on_conflict;
  return sql;
}

} // namespace

struct postgres_session::impl {
  /// A transaction that has begun and is not prepared or rolled back yet.
  struct open_txn {
    std::unique_ptr<pqxx::connection> conn;
    /// Buffered rows, flattened: columns.size() values per row.
    std::vector<std::optional<std::string>> values;
    size_t rows_buffered = 0;
    size_t rows_written = 0;
  };

  postgres_sink_options options;
  int32_t subtask;
  int32_t parallelism;
  std::string target;    ///< describe_target(options.connection)
  std::string gid_start; ///< "<prefix>-<sink id>-"
  size_t batch_rows;
  std::string full_batch_sql;
  std::unique_ptr<pqxx::connection> control;
  std::vector<std::unique_ptr<pqxx::connection>> idle;
  std::map<std::string, open_txn> open;
  std::set<std::string> prepared;
  uint64_t counter = 0;
  std::mt19937_64 random{std::random_device{}()};

  [[noreturn]] void fail(const std::string& what, const std::exception& e) const {
    std::string msg =
        "postgres sink '" + options.sink_id + "' (" + target + "): " + what + ": " + e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    throw postgres_sink_error(msg);
  }

  /// Runs `f`, turning libpqxx's exceptions into a postgres_sink_error that
  /// says what failed and where.
  template <class F> decltype(auto) guarded(const std::string& what, F&& f) const {
    try {
      return f();
    } catch (const postgres_sink_error&) {
      throw;
    } catch (const pqxx::broken_connection& e) {
      fail(what + " (connection lost)", e);
    } catch (const std::exception& e) {
      fail(what, e);
    }
  }

  std::unique_ptr<pqxx::connection> connect() const {
    try {
      return std::make_unique<pqxx::connection>(options.connection);
    } catch (const std::exception& e) {
      fail("cannot connect to PostgreSQL", e);
    }
  }

  std::unique_ptr<pqxx::connection> take_connection() {
    if (!idle.empty()) {
      auto c = std::move(idle.back());
      idle.pop_back();
      if (c->is_open())
        return c;
    }
    auto c = connect();
    // A transaction here spans several libpqxx statements. libpqxx would
    // silently reconnect a broken connection between them, and the rest of
    // the rows would then be written outside the transaction, committed at
    // once: a lost connection must fail the transaction instead.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    c->inhibit_reactivation(true);
#pragma GCC diagnostic pop
    c->prepare("sluice_insert", full_batch_sql);
    return c;
  }

  void give_back(std::unique_ptr<pqxx::connection> c) {
    if (c && c->is_open() && idle.size() < max_idle_connections)
      idle.push_back(std::move(c));
  }

  open_txn& open_of(const pg_transaction& txn) {
    auto it = open.find(txn.gid);
    if (it == open.end())
      throw postgres_sink_error("postgres sink '" + options.sink_id + "': transaction " + txn.gid +
                                " is not open");
    return it->second;
  }

  void flush(const std::string& gid, open_txn& t) {
    if (t.rows_buffered == 0)
      return;
    std::vector<const char*> params;
    params.reserve(t.values.size());
    for (auto& v : t.values)
      params.push_back(v ? v->c_str() : nullptr);
    guarded("INSERT into " + options.table + " in transaction " + gid, [&] {
      pqxx::nontransaction tx(*t.conn);
      auto values = pqxx::prepare::make_dynamic_params(params);
      if (t.rows_buffered == batch_rows)
        tx.exec_prepared("sluice_insert", values);
      else
        tx.exec_params(insert_sql(options, t.rows_buffered), values);
    });
    t.rows_written += t.rows_buffered;
    t.rows_buffered = 0;
    t.values.clear();
  }

  std::string new_gid() {
    static const char* hex = "0123456789abcdef";
    std::string rnd(8, '0');
    auto bits = random();
    for (auto& ch : rnd) {
      ch = hex[bits & 0xf];
      bits >>= 4;
    }
    return gid_start + std::to_string(subtask) + "-" + std::to_string(counter++) + "-" + rnd;
  }

  /// Runs an autocommit statement on the control connection (reconnecting
  /// once if it was lost); returns the SQLSTATE of a server error, "" on
  /// success.
  std::string control_exec(const std::string& what, const std::string& sql,
                           const char* tolerated_state) {
    return guarded(what, [&]() -> std::string {
      for (int attempt = 0;; ++attempt) {
        try {
          pqxx::nontransaction tx(*control);
          tx.exec0(sql);
          return "";
        } catch (const pqxx::sql_error& e) {
          if (tolerated_state != nullptr && e.sqlstate() == tolerated_state)
            return e.sqlstate();
          throw;
        } catch (const pqxx::broken_connection&) {
          // The server restarted or the network dropped the idle control
          // connection: connect again, once. Repeating COMMIT/ROLLBACK
          // PREPARED is safe, a second run reports the gid as gone.
          if (attempt > 0)
            throw;
          control = connect();
        }
      }
    });
  }
};

postgres_session::postgres_session(postgres_sink_options options, int32_t subtask,
                                   int32_t parallelism)
    : impl_(std::make_unique<impl>()) {
  auto& s = *impl_;
  if (!is_name(options.sink_id))
    throw std::invalid_argument("postgres sink needs a sink_id of letters, digits and '_' (got '" +
                                options.sink_id + "')");
  if (!is_name(options.gid_prefix))
    throw std::invalid_argument("postgres sink '" + options.sink_id +
                                "': gid_prefix must be letters, digits and '_' (got '" +
                                options.gid_prefix + "')");
  if (options.table.empty() || options.columns.empty())
    throw std::invalid_argument("postgres sink '" + options.sink_id +
                                "' needs a table and columns");
  s.options = std::move(options);
  s.subtask = subtask;
  s.parallelism = parallelism;
  s.target = describe_target(s.options.connection);
  s.gid_start = s.options.gid_prefix + "-" + s.options.sink_id + "-";
  s.batch_rows =
      std::clamp<size_t>(s.options.batch_size, 1, max_parameters / s.options.columns.size());
  if (s.batch_rows == 0)
    throw std::invalid_argument("postgres sink '" + s.options.sink_id + "': more than " +
                                std::to_string(max_parameters) + " columns");
  s.full_batch_sql = insert_sql(s.options, s.batch_rows);
  s.control = s.connect();
  auto max_prepared = s.guarded("reading max_prepared_transactions", [&] {
    pqxx::nontransaction tx(*s.control);
    return tx.exec1("SHOW max_prepared_transactions")[0].as<int64_t>();
  });
  if (max_prepared <= 0)
    throw postgres_sink_error("postgres sink '" + s.options.sink_id + "' (" + s.target +
                              "): the server has max_prepared_transactions = 0, which disables "
                              "PREPARE TRANSACTION; set it above 0 (e.g. 64) for exactly-once "
                              "writes");
}

postgres_session::~postgres_session() = default;

pg_transaction postgres_session::begin() {
  auto& s = *impl_;
  pg_transaction txn;
  txn.gid = s.new_gid();
  impl::open_txn t;
  t.conn = s.take_connection();
  txn.xid = s.guarded("BEGIN of transaction " + txn.gid, [&] {
    pqxx::nontransaction tx(*t.conn);
    tx.exec0("BEGIN");
    return tx.exec1("SELECT txid_current()")[0].as<int64_t>();
  });
  s.open.emplace(txn.gid, std::move(t));
  return txn;
}

void postgres_session::add_row(const pg_transaction& txn, postgres_row row) {
  auto& s = *impl_;
  if (row.size() != s.options.columns.size())
    throw postgres_sink_error("postgres sink '" + s.options.sink_id + "': a row has " +
                              std::to_string(row.size()) + " values but the sink writes " +
                              std::to_string(s.options.columns.size()) + " columns");
  auto& t = s.open_of(txn);
  for (auto& v : row)
    t.values.push_back(std::move(v));
  if (++t.rows_buffered == s.batch_rows)
    s.flush(txn.gid, t);
}

void postgres_session::prepare(pg_transaction& txn) {
  auto& s = *impl_;
  auto& t = s.open_of(txn);
  s.flush(txn.gid, t);
  if (t.rows_written == 0) {
    // Nothing to make durable: end the transaction now and skip the two
    // round trips of PREPARE and COMMIT PREPARED.
    s.guarded("ROLLBACK of empty transaction " + txn.gid, [&] {
      pqxx::nontransaction tx(*t.conn);
      tx.exec0("ROLLBACK");
    });
    txn.prepared = false;
  } else {
    s.guarded("PREPARE TRANSACTION " + txn.gid, [&] {
      pqxx::nontransaction tx(*t.conn);
      tx.exec0("PREPARE TRANSACTION " + tx.quote(txn.gid));
    });
    txn.prepared = true;
    s.prepared.insert(txn.gid);
  }
  // A prepared transaction no longer belongs to its session: the connection
  // can carry the next one.
  auto conn = std::move(t.conn);
  s.open.erase(txn.gid);
  s.give_back(std::move(conn));
}

void postgres_session::commit(const pg_transaction& txn) {
  auto& s = *impl_;
  if (!txn.prepared)
    return; // empty: nothing was written
  auto state =
      s.control_exec("COMMIT PREPARED " + txn.gid, "COMMIT PREPARED " + s.control->quote(txn.gid),
                     no_such_prepared_transaction);
  if (!state.empty()) {
    // Not prepared anymore: it was committed (before a failure, and this is
    // a recovery) or rolled back (by someone else). The server knows which
    // while the xid's commit status is retained.
    auto status = s.guarded("checking the status of transaction " + txn.gid, [&] {
      pqxx::nontransaction tx(*s.control);
      auto f = tx.exec1("SELECT txid_status(" + std::to_string(txn.xid) + ")")[0];
      return f.is_null() ? std::string() : f.as<std::string>();
    });
    if (status == "aborted" || status == "in progress")
      throw postgres_sink_error("postgres sink '" + s.options.sink_id + "' (" + s.target +
                                "): transaction " + txn.gid + " of a completed checkpoint is " +
                                (status == "aborted" ? "rolled back" : "still in progress") +
                                " instead of prepared; its records are lost");
    // "committed", or too old for the server to remember: the sink only
    // rolls back prepared gids that no restored checkpoint knows, and this
    // one belongs to a completed checkpoint, so it was committed.
  }
  s.prepared.erase(txn.gid);
}

void postgres_session::abort(const pg_transaction& txn) {
  auto& s = *impl_;
  auto it = s.open.find(txn.gid);
  if (it != s.open.end()) {
    auto conn = std::move(it->second.conn);
    s.open.erase(it);
    try {
      pqxx::nontransaction tx(*conn);
      tx.exec0("ROLLBACK");
      s.give_back(std::move(conn));
    } catch (const std::exception&) {
      // The connection is dropped: the server rolls back a transaction
      // whose session ends.
    }
    return;
  }
  if (txn.prepared) {
    s.control_exec("ROLLBACK PREPARED " + txn.gid, "ROLLBACK PREPARED " + s.control->quote(txn.gid),
                   no_such_prepared_transaction);
    s.prepared.erase(txn.gid);
  }
  // Neither open here nor prepared: the transaction was open in a session
  // that ended (a crash), and the server has rolled it back.
}

std::vector<std::string> postgres_session::abort_orphans(const std::set<std::string>& known) {
  auto& s = *impl_;
  auto gids = s.guarded("listing prepared transactions", [&] {
    pqxx::nontransaction tx(*s.control);
    std::vector<std::string> out;
    for (auto row : tx.exec_params("SELECT gid FROM pg_prepared_xacts WHERE database = "
                                   "current_database() AND left(gid, $1) = $2 ORDER BY gid",
                                   static_cast<int>(s.gid_start.size()), s.gid_start))
      out.push_back(row[0].as<std::string>());
    return out;
  });
  std::vector<std::string> rolled_back;
  for (auto& gid : gids) {
    auto owner = owner_of(gid, s.gid_start);
    if (owner < 0 || known.count(gid) > 0)
      continue;
    // Subtask i cleans up gids of subtask i; subtask 0 also those of
    // subtasks that no longer exist (lower parallelism). Only subtask i
    // creates new gids for i, after this, so nothing new is rolled back.
    bool mine = owner == s.subtask || (s.subtask == 0 && owner >= s.parallelism);
    if (!mine)
      continue;
    s.control_exec("ROLLBACK PREPARED " + gid + " (an orphan)",
                   "ROLLBACK PREPARED " + s.control->quote(gid), no_such_prepared_transaction);
    rolled_back.push_back(gid);
  }
  return rolled_back;
}

const std::set<std::string>& postgres_session::prepared_gids() const noexcept {
  return impl_->prepared;
}

int64_t postgres_session::owner_of(const std::string& gid, const std::string& prefix) {
  // "<prefix><subtask>-<counter>-<random hex>", nothing else.
  if (gid.compare(0, prefix.size(), prefix) != 0)
    return -1;
  std::string rest = gid.substr(prefix.size());
  auto d1 = rest.find('-');
  auto d2 = d1 == std::string::npos ? d1 : rest.find('-', d1 + 1);
  if (d2 == std::string::npos || rest.find('-', d2 + 1) != std::string::npos)
    return -1;
  auto digits = [](const std::string& x) {
    return !x.empty() && x.size() <= 9 &&
           std::all_of(x.begin(), x.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  };
  auto subtask = rest.substr(0, d1);
  auto counter = rest.substr(d1 + 1, d2 - d1 - 1);
  auto rnd = rest.substr(d2 + 1);
  if (!digits(subtask) || counter.empty() ||
      !std::all_of(counter.begin(), counter.end(),
                   [](unsigned char c) { return std::isdigit(c) != 0; }) ||
      rnd.empty() ||
      !std::all_of(rnd.begin(), rnd.end(), [](unsigned char c) { return std::isxdigit(c) != 0; }))
    return -1;
  return std::stoll(subtask);
}

std::string postgres_session::describe_target(const std::string& connection) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(connection.c_str(), &err);
  if (opts == nullptr) {
    std::string msg = err != nullptr ? err : "out of memory";
    if (err != nullptr)
      PQfreemem(err);
    while (!msg.empty() && msg.back() == '\n')
      msg.pop_back();
    return "invalid connection string: " + msg;
  }
  std::map<std::string, std::string> given;
  for (auto* o = opts; o->keyword != nullptr; ++o)
    if (o->val != nullptr && *o->val != '\0')
      given[o->keyword] = o->val;
  PQconninfoFree(opts);
  auto pick = [&](const char* key, const char* env, const char* fallback) {
    if (auto it = given.find(key); it != given.end())
      return it->second;
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0')
      return std::string(v);
    return std::string(fallback);
  };
  std::string host = given.count("host") > 0       ? given["host"]
                     : given.count("hostaddr") > 0 ? given["hostaddr"]
                                                   : pick("host", "PGHOST", "local socket");
  std::string user = pick("user", "PGUSER", "(OS user)");
  std::string db = pick("dbname", "PGDATABASE", user.c_str());
  return "host=" + host + " port=" + pick("port", "PGPORT", "5432") + " dbname=" + db +
         " user=" + user;
}

} // namespace sluice::connectors::internal
