#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace sluice::runtime {

/// What a running function knows about the subtask that runs it.
class runtime_context {
public:
  runtime_context() = default;
  runtime_context(std::string task_name, int32_t subtask_index, int32_t parallelism,
                  int32_t max_parallelism)
    : task_name_(std::move(task_name)),
      subtask_index_(subtask_index),
      parallelism_(parallelism),
      max_parallelism_(max_parallelism) {}

  /// Name of the task (the chain of operators) this subtask runs.
  const std::string& task_name() const noexcept { return task_name_; }
  /// Zero-based index of this parallel subtask.
  int32_t subtask_index() const noexcept { return subtask_index_; }
  /// Number of parallel subtasks of this operator.
  int32_t parallelism() const noexcept { return parallelism_; }
  /// Max parallelism (number of key groups) of this operator.
  int32_t max_parallelism() const noexcept { return max_parallelism_; }
  /// "name (i/p)" as Flink names a subtask in logs and errors.
  std::string task_name_with_subtasks() const {
    return task_name_ + " (" + std::to_string(subtask_index_ + 1) + "/" +
           std::to_string(parallelism_) + ")";
  }

private:
  std::string task_name_;
  int32_t subtask_index_ = 0;
  int32_t parallelism_ = 1;
  int32_t max_parallelism_ = 128;
};

/// Base for user functions that need a lifecycle: derive from it and the
/// runtime calls open() before the first record and close() after the last
/// (or on cancel), on the subtask's own thread.
class rich_function {
public:
  virtual ~rich_function() = default;
  virtual void open(const runtime_context& /*ctx*/) {}
  virtual void close() {}
};

/// Type-erased base of every collector, so the graph can wire operators of
/// different record types; wiring casts back to collector<T> once.
class any_collector {
public:
  virtual ~any_collector() = default;
};

/// Receives records: the output of an operator and the input of the next.
/// One virtual call per record; chained operators call each other directly.
template <class T>
class collector : public any_collector {
public:
  virtual void collect(T&& value) = 0;
  void collect(const T& value) {
    T copy(value);
    collect(std::move(copy));
  }
};

/// Thrown (and caught by the runtime) when user code fails; carries the name
/// of the operator whose function threw, so the job's failure names it.
class user_code_error : public std::runtime_error {
public:
  user_code_error(const std::string& op, const std::string& what)
    : std::runtime_error("operator '" + op + "' failed: " + what), operator_(op) {}
  const std::string& operator_name() const noexcept { return operator_; }

private:
  std::string operator_;
};

namespace internal {

template <class F>
void open_if_rich(F& f, const runtime_context& ctx) {
  if constexpr (std::is_base_of_v<rich_function, F>)
    f.open(ctx);
}

template <class F>
void close_if_rich(F& f) {
  if constexpr (std::is_base_of_v<rich_function, F>)
    f.close();
}

} // namespace internal
} // namespace sluice::runtime
