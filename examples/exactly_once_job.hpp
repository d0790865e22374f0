#pragma once

#include "sluice/runtime/file_sink.hpp"
#include "sluice/sluice.hpp"

#include <atomic>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

/// The job of examples/exactly_once_demo, shared with the exactly-once
/// tests: lines "key,value" from the replayable file source are numbered,
/// keyed by key, summed per key in keyed state, and written as
/// "key,running_sum,line_number" through a transactional sink (the file
/// sink in build(); tests plug in others with build_running_sums()).
/// Failures are injected at chosen input lines, each once across restarts.
namespace exactly_once {

/// One parsed input line with its 1-based line number.
struct record {
  std::string key;
  int64_t value = 0;
  int64_t line = 0;
  SLUICE_SERIALIZABLE(key, value, line)
};

/// "key,value" -> record; throws std::invalid_argument naming the line.
inline record parse_line(const std::string& text, int64_t line) {
  auto comma = text.find(',');
  if (comma == std::string::npos || comma == 0)
    throw std::invalid_argument("line " + std::to_string(line) + ": expected 'key,value', got '" +
                                text + "'");
  record r{text.substr(0, comma), 0, line};
  try {
    size_t used = 0;
    r.value = std::stoll(text.substr(comma + 1), &used);
    if (used != text.size() - comma - 1)
      throw std::invalid_argument("trailing characters");
  } catch (const std::exception&) {
    throw std::invalid_argument("line " + std::to_string(line) + ": '" + text.substr(comma + 1) +
                                "' is not an integer");
  }
  return r;
}

/// Input lines at which the job fails, each once, whichever attempt gets
/// there first. Shared by every subtask and attempt of one run.
class failure_plan {
public:
  /// About one failure every `every` lines of `lines` (seeded); none if
  /// every <= 0.
  failure_plan(int64_t lines, int64_t every, uint64_t seed) {
    if (every <= 0)
      return;
    std::mt19937_64 rng(seed);
    for (int64_t at = every / 2 + 1; at <= lines;
         at += every / 2 + 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(every)))
      pending_.insert(at);
    planned_ = pending_.size();
  }
  /// True the first time line `line` is a failure point.
  bool take(int64_t line) {
    std::lock_guard<std::mutex> guard(mtx_);
    if (pending_.erase(line) == 0)
      return false;
    ++injected_;
    return true;
  }
  [[nodiscard]] size_t planned() const noexcept { return planned_; }
  [[nodiscard]] size_t injected() const {
    std::lock_guard<std::mutex> guard(mtx_);
    return injected_;
  }

private:
  mutable std::mutex mtx_;
  std::set<int64_t> pending_;
  size_t planned_ = 0;
  size_t injected_ = 0;
};

/// Numbers lines; the count is operator state, so a restored job goes on
/// counting where its checkpoint was taken.
class number_lines final : public sluice::rich_function, public sluice::checkpointed_function {
public:
  void initialize_state(const sluice::runtime::function_initialization_context& ctx) override {
    count_ = &ctx.operator_state().list_state<int64_t>("lines-read");
    for (auto n : count_->get())
      lines_ += n;
  }
  void snapshot_state(int64_t, int64_t) override { count_->update({lines_}); }
  record operator()(const std::string& text) { return parse_line(text, ++lines_); }

private:
  sluice::state::operator_list_state<int64_t>* count_ = nullptr;
  int64_t lines_ = 0;
};

/// Thrown where a failure is injected.
class injected_failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// The running sum per key; fails at the plan's lines.
class running_sum final
  : public sluice::keyed_process_function<std::string, record, std::string> {
public:
  running_sum(std::shared_ptr<failure_plan> plan, int64_t throttle_every)
    : plan_(std::move(plan)), throttle_every_(throttle_every) {}
  void open(const sluice::runtime_context& ctx) override {
    sum_ = ctx.get_state(sluice::state::value_state_descriptor<int64_t>("sum"));
  }
  void process_element(const record& r, context&, sluice::collector<std::string>& out) override {
    if (plan_ && plan_->take(r.line))
      throw injected_failure("injected failure at input line " + std::to_string(r.line));
    if (throttle_every_ > 0 && ++seen_ % throttle_every_ == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto s = sum_.value().value_or(0) + r.value;
    sum_.update(s);
    out.collect(r.key + "," + std::to_string(s) + "," + std::to_string(r.line));
  }

private:
  std::shared_ptr<failure_plan> plan_;
  int64_t throttle_every_ = 0;
  int64_t seen_ = 0;
  sluice::state::value_state<int64_t> sum_;
};

/// Builds the job up to its sink into `env`: file -> number (parallelism 1)
/// -> key by key -> running sum (the environment's parallelism). Returns the
/// "key,running_sum,line_number" lines, for the caller's transactional sink.
inline sluice::data_stream<std::string> build_running_sums(sluice::stream_environment& env,
                                                           const std::string& input,
                                                           std::shared_ptr<failure_plan> plan,
                                                           int64_t throttle_every = 0) {
  auto sums = env.read_text_file(input)
                .set_parallelism(1)
                .uid("lines")
                .map(number_lines{})
                .set_parallelism(1)
                .uid("numbering")
                .key_by([](const record& r) { return r.key; })
                .process(running_sum(std::move(plan), throttle_every));
  sums.uid("running-sum");
  return sums;
}

/// Builds the job into `env`: build_running_sums -> file sink into `output`.
inline void build(sluice::stream_environment& env, const std::string& input,
                  const std::string& output, std::shared_ptr<failure_plan> plan,
                  int64_t throttle_every = 0) {
  sluice::runtime::file_sink_options sink;
  sink.directory = output;
  build_running_sums(env, input, std::move(plan), throttle_every)
    .sink_to_files(sink)
    .uid("file-sink");
}

/// One output line "key,running_sum,line_number" split into its three
/// fields (keys hold no comma: parse_line splits at the first one).
inline std::vector<std::string> output_fields(const std::string& line) {
  auto a = line.find(',');
  auto b = line.find(',', a + 1);
  if (a == std::string::npos || b == std::string::npos)
    throw std::invalid_argument("not an output line 'key,running_sum,line_number': '" + line +
                                "'");
  return {line.substr(0, a), line.substr(a + 1, b - a - 1), line.substr(b + 1)};
}

/// What an uninterrupted run writes, one entry per input line (sorted).
inline std::vector<std::string> expected_output(const std::string& input) {
  std::ifstream in(input);
  std::map<std::string, int64_t> sums;
  std::vector<std::string> out;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    auto r = parse_line(text, ++line);
    auto s = (sums[r.key] += r.value);
    out.push_back(r.key + "," + std::to_string(s) + "," + std::to_string(r.line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Every line of the finished part files in `dir` (sorted); hidden
/// (in-progress, pending) files are not output.
inline std::vector<std::string> finished_output(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (name.empty() || name[0] == '.')
      continue;
    std::ifstream in(e.path());
    std::string text;
    while (std::getline(in, text))
      out.push_back(text);
  }
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace exactly_once
