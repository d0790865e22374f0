#pragma once

#include "sluice/runtime/data_stream.hpp"
#include "sluice/runtime/job.hpp"
#include "sluice/runtime/job_graph.hpp"

#include <memory>
#include <string>
#include <vector>

namespace sluice::runtime {

/// Where a program builds its pipeline and runs it; local (the in-process
/// mini-cluster) by default.
class stream_environment {
public:
  stream_environment() : stream_environment(configuration{}) {}
  explicit stream_environment(configuration config);

  /// Default parallelism of operators without their own.
  stream_environment& set_parallelism(int32_t p);
  int32_t parallelism() const;
  /// Default max parallelism (number of key groups).
  stream_environment& set_max_parallelism(int32_t p);
  /// How long a partly filled batch may wait (0: send every record at once).
  stream_environment& set_buffer_timeout(std::chrono::milliseconds timeout);
  configuration& config() { return env_->config; }
  const configuration& config() const { return env_->config; }
  /// Runs jobs on `executor` instead of the default local mini-cluster.
  void set_executor(std::shared_ptr<job_executor> executor) { env_->executor = std::move(executor); }

  // ---- sources -----------------------------------------------------------

  /// The given elements, in order (a non-parallel source).
  template <class T, class... Ts>
  data_stream<T> from_elements(T first, Ts... rest) {
    std::vector<T> items{std::move(first), T(std::move(rest))...};
    return from_collection(std::move(items));
  }
  /// The elements of a collection, in order (a non-parallel source).
  template <class T>
  data_stream<T> from_collection(std::vector<T> items) {
    auto shared = std::make_shared<const std::vector<T>>(std::move(items));
    return add_source_node<T>(collection_source<T>{shared}, "Collection Source", true);
  }
  /// The lines of a text file, split over the parallel subtasks by byte range.
  data_stream<std::string> read_text_file(const std::string& path);
  /// Lines read from a TCP socket (non-parallel, at-most-once).
  data_stream<std::string> socket_text_stream(const std::string& host, uint16_t port,
                                              char delimiter = '\n',
                                              std::chrono::milliseconds connect_timeout =
                                                std::chrono::seconds(5));
  /// Records f(0), f(1), ..., f(count - 1), split over the parallel subtasks;
  /// at most `records_per_second` in total when that is > 0. Pass
  /// `unbounded` as count for a source that runs until cancelled.
  template <class F>
  auto from_generator(uint64_t count, F f, double records_per_second = 0)
    -> data_stream<std::decay_t<std::invoke_result_t<F&, uint64_t>>> {
    using T = std::decay_t<std::invoke_result_t<F&, uint64_t>>;
    return add_source_node<T>(generator_source<T, F>{count, std::move(f), records_per_second},
                              "Generator Source", false);
  }
  static constexpr uint64_t unbounded = ~uint64_t{0};
  /// A user source: a source_function<T> subclass, copied to each subtask.
  template <class S>
  auto add_source(S source, std::string name = "Custom Source")
    -> data_stream<decltype(internal::source_record_of(static_cast<S*>(nullptr)))> {
    using T = decltype(internal::source_record_of(static_cast<S*>(nullptr)));
    return add_source_node<T>(std::move(source), std::move(name), false);
  }

  // ---- running -----------------------------------------------------------

  /// The job graph of the program built so far. Throws invalid_program if
  /// the program is inconsistent.
  std::shared_ptr<const job_graph> job(const std::string& name = "sluice job") const;
  /// The execution plan as JSON (chained vertices, parallelism, ship
  /// strategy per edge), shaped like Flink's plan JSON.
  std::string explain(const std::string& name = "sluice job") const;
  /// Runs the program and blocks until it ends (bounded input) or fails.
  [[nodiscard]] job_result execute(const std::string& name = "sluice job");
  /// Starts the program and returns at once with a handle on the job.
  std::shared_ptr<job_client> execute_async(const std::string& name = "sluice job");

private:
  template <class T, class S>
  data_stream<T> add_source_node(S source, std::string name, bool non_parallel) {
    stream_node node;
    node.kind = node_kind::source;
    node.name = name;
    node.non_parallel = non_parallel;
    if (non_parallel)
      node.parallelism = 1;
    node.make_operator = [source](const std::string& op_name) {
      return std::make_unique<source_operator<T, S>>(op_name, source);
    };
    internal::add_typed_node_helpers<T>(node);
    auto id = env_->graph.add_node(std::move(node)).id;
    return data_stream<T>(env_, id);
  }

  std::shared_ptr<environment_state> env_;
};

} // namespace sluice::runtime
