#include "sluice/sluice.hpp"
#include "test_util.hpp"
#include "word_count.hpp"

#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <algorithm>
#include <atomic>
#include <map>
#include <netinet/in.h>
#include <random>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace sluice;
using namespace std::chrono_literals;
using sluice::test::eventually;
using sluice::test::temp_dir;

namespace {

using sluice::examples::word_count;
const sluice::examples::tokenizer tokenize{};

/// Writes a corpus of random words with punctuation, mixed case, empty
/// lines and a last line without newline; returns the reference counts.
std::map<std::string, int64_t> write_corpus(const std::string& path, int lines) {
  std::mt19937 rng(42);
  const char* vocab[] = {"Alpha", "beta", "GAMMA", "delta", "epsilon", "zeta", "eta",
                         "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron"};
  const char* seps[] = {" ", ", ", ". ", "--", "3", "\t", " (", ") ", "'", "é"};
  std::string text;
  for (int l = 0; l < lines; ++l) {
    int n = static_cast<int>(rng() % 12);
    for (int w = 0; w < n; ++w) {
      text += vocab[rng() % 15];
      text += seps[rng() % 10];
    }
    if (l + 1 < lines)
      text += "\n";
  }
  std::ofstream(path) << text;
  // Reference: a plain single-threaded count.
  std::map<std::string, int64_t> ref;
  std::string word;
  for (char c : text + "\n") {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (!word.empty()) {
      ++ref[word];
      word.clear();
    }
  }
  return ref;
}

} // namespace

TEST_SUITE("integration.pipeline") {

TEST_CASE("word count at parallelism 1, 2 and 4 equals a single-threaded count") {
  temp_dir dir;
  auto ref = write_corpus(dir.file("corpus.txt"), 20000);
  for (int p : {1, 2, 4}) {
    CAPTURE(p);
    stream_environment env;
    env.set_parallelism(p);
    auto out = env.read_text_file(dir.file("corpus.txt"))
                 .flat_map<word_count>(tokenize)
                 .key_by([](const word_count& wc) { return wc.first; })
                 .sum(&word_count::second)
                 .collect();
    auto result = env.execute("wordcount");
    REQUIRE_MESSAGE(result.ok(), result.error);
    std::map<std::string, int64_t> final_counts;
    std::map<std::string, int64_t> updates;
    for (auto& [w, c] : out->values()) {
      final_counts[w] = std::max(final_counts[w], c);
      ++updates[w];
    }
    CHECK(final_counts == ref);
    CHECK(updates == ref); // one update per occurrence
  }
}

TEST_CASE("each key is counted on exactly one subtask, the one owning its key group") {
  stream_environment env;
  env.set_parallelism(3);
  auto out = env.from_generator(30000, [](uint64_t i) { return static_cast<int64_t>(i % 100); })
               .key_by([](const int64_t& k) { return k; })
               .process<std::pair<int64_t, int32_t>>(
                 [](int64_t v, runtime::keyed_process_context<int64_t>& ctx,
                    collector<std::pair<int64_t, int32_t>>& o) {
                   CHECK(ctx.current_key() == v);
                   o.collect(std::make_pair(v, ctx.runtime().subtask_index()));
                 })
               .collect();
  REQUIRE(env.execute().ok());
  std::map<int64_t, std::set<int32_t>> where;
  for (auto& [k, s] : out->values())
    where[k].insert(s);
  REQUIRE(where.size() == 100);
  for (auto& [k, subtasks] : where) {
    REQUIRE(subtasks.size() == 1);
    auto kg = state::key_group_of<int64_t>(k, 128);
    CHECK(*subtasks.begin() == state::subtask_for_key_group(128, 3, kg));
  }
}

TEST_CASE("partitioners distribute records as specified end to end") {
  auto run = [](auto partition, int32_t up, int32_t down, uint64_t n) {
    stream_environment env;
    auto src = env.from_generator(n, [](uint64_t i) { return static_cast<int64_t>(i); });
    src.set_parallelism(up);
    auto tagged = partition(src)
                    .template process<std::pair<int32_t, int64_t>>(
                      [](int64_t v, runtime::process_context& ctx,
                         collector<std::pair<int32_t, int64_t>>& o) {
                        o.collect(std::make_pair(ctx.runtime().subtask_index(), v));
                      });
    tagged.set_parallelism(down);
    auto out = tagged.collect();
    auto r = env.execute();
    REQUIRE_MESSAGE(r.ok(), r.error);
    std::map<int32_t, std::vector<int64_t>> per;
    for (auto& [s, v] : out->values())
      per[s].push_back(v);
    return per;
  };
  using S = data_stream<int64_t>;
  SUBCASE("rebalance: an even share for every subtask") {
    auto per = run([](const S& s) { return s.rebalance(); }, 1, 4, 40000);
    REQUIRE(per.size() == 4);
    for (auto& [s, v] : per)
      CHECK(v.size() == 10000);
  }
  SUBCASE("broadcast: every record to every subtask") {
    auto per = run([](const S& s) { return s.broadcast(); }, 2, 3, 3000);
    REQUIRE(per.size() == 3);
    for (auto& [s, v] : per)
      CHECK(v.size() == 3000);
  }
  SUBCASE("global: everything to subtask 0") {
    auto per = run([](const S& s) { return s.global(); }, 2, 3, 3000);
    REQUIRE(per.size() == 1);
    CHECK(per[0].size() == 3000);
  }
  SUBCASE("forward: subtask i to subtask i, in order") {
    auto per = run([](const S& s) { return s.forward(); }, 2, 2, 1000);
    REQUIRE(per.size() == 2);
    std::vector<int64_t> first(per[0]);
    CHECK(std::is_sorted(first.begin(), first.end()));
    CHECK(first.front() == 0);
    CHECK(first.back() == 499);
    CHECK(per[1].front() == 500);
  }
  SUBCASE("rescale: each upstream subtask to its own pair of downstream subtasks") {
    auto per = run([](const S& s) { return s.rescale(); }, 2, 4, 2000);
    REQUIRE(per.size() == 4);
    for (auto v : per[0])
      CHECK(v < 1000);
    for (auto v : per[1])
      CHECK(v < 1000);
    for (auto v : per[2])
      CHECK(v >= 1000);
    CHECK(per[0].size() == 500);
  }
  SUBCASE("shuffle: every subtask gets a share") {
    auto per = run([](const S& s) { return s.shuffle(); }, 1, 4, 40000);
    REQUIRE(per.size() == 4);
    for (auto& [s, v] : per) {
      CHECK(v.size() > 8000);
      CHECK(v.size() < 12000);
    }
  }
  SUBCASE("custom: the user partitioner decides") {
    auto per = run(
      [](const S& s) {
        return s.partition_custom([](int64_t k, int32_t n) { return static_cast<int32_t>(k % n); },
                                  [](const int64_t& v) { return v; });
      },
      1, 3, 3000);
    REQUIRE(per.size() == 3);
    for (auto& [s, v] : per)
      for (auto x : v)
        REQUIRE(x % 3 == s);
  }
}

TEST_CASE("rolling aggregations per key: reduce, sum, min, max, min_by, max_by") {
  using rec = std::pair<std::string, int>;
  std::vector<rec> input{{"a", 3}, {"b", 5}, {"a", 1}, {"b", 7}, {"a", 2}, {"b", 5}};
  auto last_per_key = [&](auto op) {
    stream_environment env;
    env.set_parallelism(2);
    auto keyed = env.from_collection(input).key_by([](const rec& r) { return r.first; });
    auto out = op(keyed).collect();
    REQUIRE(env.execute().ok());
    std::map<std::string, std::vector<int>> seen;
    for (auto& [k, v] : out->values())
      seen[k].push_back(v);
    return seen;
  };
  CHECK(last_per_key([](const auto& k) { return k.sum(&rec::second); })["a"] ==
        std::vector<int>{3, 4, 6});
  CHECK(last_per_key([](const auto& k) { return k.min(&rec::second); })["a"] ==
        std::vector<int>{3, 1, 1});
  CHECK(last_per_key([](const auto& k) { return k.max(&rec::second); })["b"] ==
        std::vector<int>{5, 7, 7});
  CHECK(last_per_key([](const auto& k) {
          return k.reduce([](const rec& a, const rec& b) { return rec{a.first, a.second * b.second}; });
        })["b"] == std::vector<int>{5, 35, 175});
  CHECK(last_per_key([](const auto& k) { return k.min_by(&rec::second); })["a"] ==
        std::vector<int>{3, 1, 1});
  CHECK(last_per_key([](const auto& k) { return k.max_by(&rec::second); })["b"] ==
        std::vector<int>{5, 7, 7});
}

TEST_CASE("a keyed running sum of small records, taken in blocks, emits a running total per "
          "record rising to each key's total") {
  // Generated pairs travel in blocks (source -> exchange -> keyed fold on
  // the heap backend's dense table), and new keys arrive inside blocks.
  using rec = std::pair<uint64_t, int64_t>;
  constexpr uint64_t n = 200'000;
  auto key_of = [](uint64_t i) { return (i * 2654435761u) % 3001; };
  for (auto backend : {state::backend_kind::heap, state::backend_kind::rocksdb}) {
  CAPTURE(static_cast<int>(backend));
  temp_dir dir;
  configuration cfg;
  cfg.state.backend = backend;
  cfg.state.rocksdb.local_dir = dir.path();
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto out = env
               .from_generator(n,
                               [key_of](uint64_t i) {
                                 return rec{key_of(i), static_cast<int64_t>(i % 97)};
                               })
               .key_by([](const rec& r) { return r.first; })
               .sum(&rec::second)
               .collect();
  REQUIRE(env.execute().ok());
  std::map<uint64_t, std::vector<int64_t>> got;
  for (auto& [k, v] : out->values())
    got[k].push_back(v);
  std::map<uint64_t, int64_t> expected;
  for (uint64_t i = 0; i < n; ++i)
    expected[key_of(i)] += static_cast<int64_t>(i % 97);
  size_t total = 0;
  for (auto& [k, sums] : got) {
    total += sums.size();
    // Values are non-negative: the running totals rise to the key's total.
    CHECK(std::is_sorted(sums.begin(), sums.end()));
    CHECK(sums.back() == expected[k]);
  }
  CHECK(total == n);
  CHECK(got.size() == 3001);
  }
}

TEST_CASE("union merges streams into one operator") {
  stream_environment env;
  env.set_parallelism(2);
  auto a = env.from_elements<int64_t>(1, 2, 3);
  auto b = env.from_generator(100, [](uint64_t i) { return static_cast<int64_t>(1000 + i); });
  auto c = env.from_collection(std::vector<int64_t>{-1, -2});
  auto out = a.union_with(b, c).map([](int64_t x) { return x * 2; }).collect();
  REQUIRE(env.execute().ok());
  auto v = out->values();
  CHECK(v.size() == 105);
  int64_t sum = 0;
  for (auto x : v)
    sum += x;
  int64_t expect = 2 * (6 + (1000 * 100 + 99 * 100 / 2) - 3);
  CHECK(sum == expect);
}

struct lifecycle_probe : rich_function {
  std::shared_ptr<std::atomic<int>> opened = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> closed = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::mutex> mtx = std::make_shared<std::mutex>();
  std::shared_ptr<std::set<std::string>> seen = std::make_shared<std::set<std::string>>();
  void open(const runtime_context& ctx) override {
    ++*opened;
    std::lock_guard<std::mutex> g(*mtx);
    seen->insert(ctx.task_name() + "|" + std::to_string(ctx.subtask_index()) + "/" +
                 std::to_string(ctx.parallelism()));
  }
  void close() override { ++*closed; }
  int64_t operator()(int64_t v) const { return v + 1; }
};

TEST_CASE("rich functions are opened and closed once per subtask with their context") {
  stream_environment env;
  env.set_parallelism(3);
  lifecycle_probe probe;
  auto out = env.from_generator(300, [](uint64_t i) { return static_cast<int64_t>(i); })
               .map(probe)
               .name("plus one")
               .collect();
  REQUIRE(env.execute().ok());
  CHECK(out->size() == 300);
  CHECK(*probe.opened == 3);
  CHECK(*probe.closed == 3);
  std::set<std::string> expect;
  for (int i = 0; i < 3; ++i)
    expect.insert("Source: Generator Source -> plus one -> Sink: Collect|" + std::to_string(i) + "/3");
  CHECK(*probe.seen == expect);
}

TEST_CASE("read_text_file splits a file by byte range without losing or repeating lines") {
  temp_dir dir;
  std::vector<std::string> lines;
  std::string text;
  for (int i = 0; i < 5000; ++i) {
    auto l = std::string(static_cast<size_t>(i % 37), 'x') + std::to_string(i);
    if (i % 11 == 0)
      l = "";
    lines.push_back(l);
    text += l + (i + 1 < 5000 ? "\n" : "");
  }
  std::ofstream(dir.file("lines.txt")) << text;
  for (int p : {1, 3, 7}) {
    stream_environment env;
    env.set_parallelism(p);
    auto out = env.read_text_file(dir.file("lines.txt")).collect();
    REQUIRE(env.execute().ok());
    auto got = out->values();
    std::multiset<std::string> a(got.begin(), got.end()), b(lines.begin(), lines.end());
    CHECK(a == b);
  }
}

TEST_CASE("a throwing map fails the job with its message and operator name") {
  stream_environment env;
  env.set_parallelism(2);
  env.from_generator(100000,
                     [](uint64_t i) { return static_cast<int64_t>(i); })
    .map([](int64_t v) -> int64_t {
      if (v == 777)
        throw std::runtime_error("record 777 is cursed");
      return v;
    })
    .name("cursed map")
    .rebalance()
    .discard();
  auto client = env.execute_async("fails");
  auto r = client->wait_for(10s);
  REQUIRE(r.has_value());
  CHECK(r->status == job_status::failed);
  CHECK(r->error.find("record 777 is cursed") != std::string::npos);
  CHECK(r->error.find("operator 'cursed map' failed") != std::string::npos);
}

TEST_CASE("a missing input file fails the job with a clear error") {
  stream_environment env;
  env.read_text_file("/nonexistent/sluice-input.txt").print();
  auto r = env.execute();
  CHECK(r.status == job_status::failed);
  CHECK(r.error.find("cannot open input file '/nonexistent/sluice-input.txt'") != std::string::npos);
}

TEST_CASE("an unreachable socket fails the job with a clear error") {
  stream_environment env;
  auto port = sluice::test::free_port();
  env.socket_text_stream("127.0.0.1", port).print();
  auto r = env.execute();
  CHECK(r.status == job_status::failed);
  CHECK(r.error.find("cannot connect to 127.0.0.1:" + std::to_string(port)) != std::string::npos);
}

TEST_CASE("socket_text_stream reads lines until the peer closes") {
  int srv = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &len);
  REQUIRE(::listen(srv, 1) == 0);
  std::thread server([srv] {
    int c = ::accept(srv, nullptr, nullptr);
    std::string data;
    for (int i = 0; i < 1000; ++i)
      data += "line " + std::to_string(i) + "\r\n";
    data += "tail";
    ::send(c, data.data(), data.size(), MSG_NOSIGNAL);
    ::close(c);
  });
  stream_environment env;
  env.set_parallelism(2);
  auto out = env.socket_text_stream("127.0.0.1", ntohs(addr.sin_port)).collect();
  auto r = env.execute();
  server.join();
  ::close(srv);
  REQUIRE_MESSAGE(r.ok(), r.error);
  auto v = out->values();
  REQUIRE(v.size() == 1001);
  CHECK(v[0] == "line 0");
  CHECK(v[999] == "line 999");
  CHECK(v[1000] == "tail");
}

TEST_CASE("a rate-limited generator does not exceed its rate") {
  stream_environment env;
  env.set_parallelism(1);
  env.from_generator(600, [](uint64_t i) { return i; }, 2000.0).discard();
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(env.execute().ok());
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 250ms); // 600 records at 2000/s need at least 0.3 s
}

TEST_CASE("the buffer timeout sends partly filled batches of a slow source") {
  stream_environment env;
  env.set_parallelism(1);
  env.set_buffer_timeout(20ms);
  auto out = env.from_generator(stream_environment::unbounded,
                                [](uint64_t i) { return static_cast<int64_t>(i); }, 200.0)
               .rebalance()
               .map([](int64_t x) { return x; })
               .disable_chaining()
               .collect();
  auto client = env.execute_async("slow");
  // 200 records/s never fill a batch: only the timeout can deliver them.
  CHECK(eventually([&] { return out->size() >= 5; }, 5s));
  client->cancel();
  REQUIRE(client->wait_for(5s).has_value());
}

TEST_CASE("cancelling an unbounded job ends it within a second") {
  // Heap state: this measures the engine's cancel path. With RocksDB a
  // subtask inside a stalled write (memtables full, flush running) answers
  // only after the stall, about a second here; see docs/architecture.md.
  sluice::configuration cfg;
  cfg.state.backend = sluice::state::backend_kind::heap;
  stream_environment env(cfg);
  env.set_parallelism(2);
  auto out = env.from_generator(stream_environment::unbounded,
                                [](uint64_t i) { return static_cast<int64_t>(i % 1000); })
               .key_by([](const int64_t& v) { return v; })
               .reduce([](const int64_t& a, const int64_t& b) { return a + b; })
               .discard();
  (void)out;
  auto client = env.execute_async("forever");
  REQUIRE(eventually([&] {
    auto m = client->metrics().of_task("Keyed Reduce");
    return !m.empty() && m[0].records_in > 100000;
  }));
  CHECK(client->status() == job_status::running);
  auto t0 = std::chrono::steady_clock::now();
  client->cancel();
  auto r = client->wait_for(1s);
  REQUIRE(r.has_value());
  CHECK(r->status == job_status::canceled);
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
}

TEST_CASE("metrics count records in and out per subtask") {
  stream_environment env;
  env.set_parallelism(2);
  env.from_generator(100000, [](uint64_t i) { return static_cast<int64_t>(i); })
    .rebalance()
    .filter([](const int64_t& v) { return v % 2 == 0; })
    .discard();
  auto client = env.execute_async("counted");
  auto r = client->wait();
  REQUIRE(r.ok());
  auto m = client->metrics();
  uint64_t out = 0, in = 0;
  for (auto& s : m.of_task("Source"))
    out += s.records_out;
  for (auto& s : m.of_task("Filter"))
    in += s.records_in;
  CHECK(out == 100000);
  CHECK(in == 100000);
  for (auto& s : m.subtasks)
    CHECK(s.state == runtime::execution_state::finished);
}

TEST_CASE("too few configured slots fail the job with a clear error") {
  configuration cfg;
  cfg.slots_per_taskmanager = 1;
  stream_environment env(cfg);
  env.set_parallelism(2);
  env.from_generator(10, [](uint64_t i) { return i; }).discard();
  auto r = env.execute();
  CHECK(r.status == job_status::failed);
  CHECK(r.error.find("not enough task slots") != std::string::npos);
}

} // TEST_SUITE
