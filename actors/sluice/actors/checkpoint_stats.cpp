#include "sluice/actors/checkpoint_stats.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

namespace sluice::actors {

namespace {

using nlohmann::json;

int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

json min_max_avg(const std::vector<int64_t>& v);

json record_json(const checkpoint_record& r) {
  json tasks = json::object();
  for (auto& [task, subs] : r.tasks) {
    uint64_t size = 0;
    int64_t latest = 0;
    std::vector<int64_t> sync, async;
    for (auto& s : subs) {
      size += s.state_size;
      latest = std::max(latest, s.ack_timestamp_ms);
      sync.push_back(s.sync_ms);
      async.push_back(s.async_ms);
    }
    tasks[task] = {{"id", r.id},
                   {"status", r.status},
                   {"latest_ack_timestamp", latest},
                   {"state_size", size},
                   {"checkpointed_size", size},
                   {"end_to_end_duration", latest > 0 ? latest - r.trigger_timestamp_ms : 0},
                   {"num_subtasks", subs.size()},
                   {"num_acknowledged_subtasks", subs.size()},
                   // Flink's task checkpoint summary: the synchronous part
                   // (snapshot on the subtask's thread) and the asynchronous
                   // one (files written by the worker), per subtask.
                   {"summary",
                    {{"checkpoint_duration",
                      {{"sync", min_max_avg(sync)}, {"async", min_max_avg(async)}}}}}};
  }
  json j = {{"className", r.status == "COMPLETED" ? "completed"
                          : r.status == "FAILED"  ? "failed"
                                                  : "in_progress"},
            {"id", r.id},
            {"status", r.status},
            {"is_savepoint", r.savepoint},
            {"savepointFormat", r.savepoint ? json("CANONICAL") : json(nullptr)},
            {"trigger_timestamp", r.trigger_timestamp_ms},
            {"latest_ack_timestamp", r.latest_ack_timestamp_ms},
            {"state_size", r.state_size},
            {"checkpointed_size", r.state_size},
            {"end_to_end_duration", r.end_to_end_duration_ms},
            {"alignment_buffered", 0},
            {"processed_data", 0},
            {"persisted_data", r.persisted_data},
            {"unaligned", r.unaligned},
            {"num_subtasks", r.num_subtasks},
            {"num_acknowledged_subtasks", r.num_acknowledged_subtasks},
            {"checkpoint_type", r.savepoint ? "SAVEPOINT" : "CHECKPOINT"},
            {"tasks", tasks}};
  if (r.status == "COMPLETED") {
    j["external_path"] = r.external_path;
    j["discarded"] = false;
  }
  if (r.status == "FAILED") {
    j["failure_timestamp"] = r.latest_ack_timestamp_ms;
    j["failure_message"] = r.failure_message;
  }
  return j;
}

json min_max_avg(const std::vector<int64_t>& v) {
  if (v.empty())
    return {{"min", 0}, {"max", 0}, {"avg", 0}};
  int64_t sum = 0;
  for (auto x : v)
    sum += x;
  return {{"min", *std::min_element(v.begin(), v.end())},
          {"max", *std::max_element(v.begin(), v.end())},
          {"avg", sum / static_cast<int64_t>(v.size())}};
}

} // namespace

void checkpoint_stats::triggered(checkpoint_record r) {
  std::lock_guard<std::mutex> guard(mtx_);
  ++triggered_;
  history_.push_front(std::move(r));
  while (history_.size() > 10)
    history_.pop_back();
}

void checkpoint_stats::completed(int64_t id, const std::string& path) {
  std::lock_guard<std::mutex> guard(mtx_);
  ++completed_;
  for (auto& r : history_)
    if (r.id == id) {
      r.status = "COMPLETED";
      r.external_path = path;
      r.end_to_end_duration_ms = std::max<int64_t>(0, r.latest_ack_timestamp_ms -
                                                         r.trigger_timestamp_ms);
      if (r.savepoint) {
        latest_savepoint_ = r;
        have_savepoint_ = true;
      } else {
        latest_completed_ = r;
        have_completed_ = true;
      }
      done_.push_back(r);
      if (done_.size() > 100)
        done_.erase(done_.begin());
    }
}

void checkpoint_stats::failed(int64_t id, const std::string& why) {
  std::lock_guard<std::mutex> guard(mtx_);
  ++failed_;
  for (auto& r : history_)
    if (r.id == id) {
      r.status = "FAILED";
      r.failure_message = why;
      r.latest_ack_timestamp_ms = wall_ms();
      latest_failed_ = r;
      have_failed_ = true;
    }
}

void checkpoint_stats::restored(int64_t id, const std::string& path, bool savepoint) {
  std::lock_guard<std::mutex> guard(mtx_);
  ++restored_;
  restored_id_ = id;
  restored_path_ = path;
  restored_savepoint_ = savepoint;
  restored_ms_ = wall_ms();
}

int64_t checkpoint_stats::completed_count() const {
  std::lock_guard<std::mutex> guard(mtx_);
  return completed_;
}

std::string checkpoint_stats::to_json() const {
  std::lock_guard<std::mutex> guard(mtx_);
  int64_t in_progress = 0;
  for (auto& r : history_)
    if (r.status == "IN_PROGRESS")
      ++in_progress;
  std::vector<int64_t> sizes, durations, alignments, persisted;
  for (auto& r : done_) {
    sizes.push_back(static_cast<int64_t>(r.state_size));
    persisted.push_back(static_cast<int64_t>(r.persisted_data));
    durations.push_back(r.end_to_end_duration_ms);
    alignments.push_back(r.alignment_ms);
  }
  json history = json::array();
  for (auto& r : history_)
    history.push_back(record_json(r));
  json latest = {{"completed", have_completed_ ? record_json(latest_completed_) : json(nullptr)},
                 {"savepoint", have_savepoint_ ? record_json(latest_savepoint_) : json(nullptr)},
                 {"failed", have_failed_ ? record_json(latest_failed_) : json(nullptr)},
                 {"restored", restored_id_ < 0 ? json(nullptr)
                                               : json{{"id", restored_id_},
                                                      {"restore_timestamp", restored_ms_},
                                                      {"is_savepoint", restored_savepoint_},
                                                      {"external_path", restored_path_}}}};
  json doc = {{"counts",
               {{"restored", restored_},
                {"total", triggered_},
                {"in_progress", in_progress},
                {"completed", completed_},
                {"failed", failed_}}},
              {"summary",
               {{"state_size", min_max_avg(sizes)},
                {"checkpointed_size", min_max_avg(sizes)},
                {"end_to_end_duration", min_max_avg(durations)},
                {"alignment_buffered", min_max_avg({})},
                {"processed_data", min_max_avg({})},
                {"persisted_data", min_max_avg(persisted)},
                {"alignment_duration", min_max_avg(alignments)}}},
              {"latest", latest},
              {"history", history}};
  return doc.dump();
}

} // namespace sluice::actors
