#pragma once

#include "sluice/runtime/checkpointing.hpp"
#include "sluice/state/keyed_state.hpp"
#include "sluice/state/operator_state.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace sluice::runtime {

/// How keyed operators store their state (from configuration).
struct state_settings {
  state::backend_kind backend = state::backend_kind::rocksdb;
  state::rocksdb_config rocksdb;
  /// The clock state TTL runs on; null = wall clock.
  std::shared_ptr<const state::state_clock> ttl_clock;
  /// How often keyed operators sweep expired state in the background (0 =
  /// only on access), and how many keys one sweep may visit.
  std::chrono::milliseconds ttl_cleanup_interval{1000};
  size_t ttl_cleanup_keys = 1000;
};

/// The record a subtask is processing. One per subtask, shared by its
/// chain: whoever hands a record into the chain (a source, an input feeder,
/// a firing timer) sets the timestamp; operators read it and network
/// outputs copy it into batches. INT64_MIN = the record has no timestamp.
struct element_context {
  int64_t timestamp = INT64_MIN;
  /// The subtask's current event time (last watermark it received).
  int64_t watermark = INT64_MIN;
};

/// Called back on the subtask's thread when a processing-time timer fires.
class processing_time_callback {
public:
  virtual ~processing_time_callback() = default;
  virtual void on_processing_time(int64_t time_ms) = 0;
};

/// Wall-clock time and timers of a subtask (Flink's ProcessingTimeService).
class processing_time_service {
public:
  virtual ~processing_time_service() = default;
  /// Milliseconds since the epoch.
  [[nodiscard]] virtual int64_t now_ms() const = 0;
  /// Calls `target->on_processing_time(time_ms)` at or after `time_ms`, on
  /// the subtask's thread; `target` must outlive the subtask's run.
  virtual void register_timer(int64_t time_ms, processing_time_callback* target) = 0;
};

/// Runs actions on a subtask's thread between records (Flink's mailbox
/// executor): how the results of asynchronous work (remote calls) come back
/// into an operator.
class mailbox_executor {
public:
  virtual ~mailbox_executor() = default;
  /// Queues `action` to run on the subtask's thread, after the record being
  /// processed. Thread-safe and never blocks. Actions run in the order
  /// queued and only while the subtask runs its operators: once it has
  /// ended, failed or been cancelled they are dropped without running.
  virtual void execute(std::function<void()> action) = 0;
};

/// Lets an operator stop its subtask from taking input while it cannot keep
/// up with asynchronous work (the input then backs up under credit, to the
/// sources). Subtask's thread only; holds are counted.
class input_hold {
public:
  virtual ~input_hold() = default;
  /// Stops taking input after the record being processed.
  virtual void hold_input() = 0;
  /// Ends one hold; input resumes when none is left.
  virtual void release_input() = 0;
};

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

  /// Where keyed state goes; never null (defaults when not set).
  const state_settings& state_config() const noexcept {
    static const state_settings defaults;
    return state_ != nullptr ? *state_ : defaults;
  }
  void set_state_config(const state_settings* s) noexcept { state_ = s; }
  /// A name unique to this subtask of this job run, for working files.
  const std::string& instance_id() const noexcept { return instance_id_; }
  void set_instance_id(std::string id) { instance_id_ = std::move(id); }

  /// The keyed state backend of the operator (set on keyed streams only);
  /// handles read and write the entry of the record's key.
  state::keyed_state_backend_base& keyed_backend() const {
    if (keyed_ == nullptr)
      throw std::logic_error("keyed state is only available in functions on a keyed stream "
                             "(after key_by)");
    return *keyed_;
  }
  void set_keyed_backend(state::keyed_state_backend_base* b) noexcept { keyed_ = b; }

  /// The operator state of the function's operator instance: list, union
  /// list and broadcast state by name (Flink's OperatorStateStore).
  state::operator_state_store& operator_state() const {
    if (operator_state_ == nullptr)
      throw std::logic_error("operator state is only available inside a running operator");
    return *operator_state_;
  }
  void set_operator_state(state::operator_state_store* s) noexcept { operator_state_ = s; }
  /// True when the job takes checkpoints (transactional sinks commit on
  /// them; without, at the end of the input).
  [[nodiscard]] bool checkpointing_enabled() const noexcept { return checkpointing_; }
  void set_checkpointing_enabled(bool on) noexcept { checkpointing_ = on; }
  /// Where the operator's checkpointed functions and listeners register.
  [[nodiscard]] checkpoint_hooks* hooks() const noexcept { return hooks_; }
  void set_checkpoint_hooks(checkpoint_hooks* h) noexcept { hooks_ = h; }
  bool has_keyed_state() const noexcept { return keyed_ != nullptr; }

  /// Keyed value state (Flink's getState).
  template <class T>
  state::value_state<T> get_state(const state::value_state_descriptor<T>& d) const {
    return state::value_state<T>(keyed_backend(), d);
  }
  template <class T>
  state::list_state<T> get_list_state(const state::list_state_descriptor<T>& d) const {
    return state::list_state<T>(keyed_backend(), d);
  }
  template <class UK, class UV>
  state::map_state<UK, UV> get_map_state(const state::map_state_descriptor<UK, UV>& d) const {
    return state::map_state<UK, UV>(keyed_backend(), d);
  }
  template <class T>
  state::reducing_state<T> get_reducing_state(const state::reducing_state_descriptor<T>& d) const {
    return state::reducing_state<T>(keyed_backend(), d);
  }
  template <class In, class Acc, class Out>
  state::aggregating_state<In, Acc, Out>
  get_aggregating_state(const state::aggregating_state_descriptor<In, Acc, Out>& d) const {
    return state::aggregating_state<In, Acc, Out>(keyed_backend(), d);
  }

  /// The record being processed (timestamp) and the current watermark.
  element_context& element() const noexcept {
    static thread_local element_context detached;
    return element_ != nullptr ? *element_ : detached;
  }
  void set_element_context(element_context* e) noexcept { element_ = e; }
  /// Processing time and timers; null outside a running subtask.
  processing_time_service* time_service() const noexcept { return time_; }
  void set_time_service(processing_time_service* t) noexcept { time_ = t; }
  /// Where asynchronous work posts back to this subtask; null outside a
  /// running subtask.
  const std::shared_ptr<mailbox_executor>& mailbox() const noexcept { return mailbox_; }
  void set_mailbox(std::shared_ptr<mailbox_executor> m) noexcept { mailbox_ = std::move(m); }
  /// Input flow control of the subtask; null outside a running subtask.
  input_hold* input_control() const noexcept { return input_; }
  void set_input_hold(input_hold* h) noexcept { input_ = h; }

private:
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  std::shared_ptr<mailbox_executor> mailbox_;
  input_hold* input_ = nullptr;
  const state_settings* state_ = nullptr;
  std::string instance_id_;
  state::keyed_state_backend_base* keyed_ = nullptr;
  state::operator_state_store* operator_state_ = nullptr;
  checkpoint_hooks* hooks_ = nullptr;
  bool checkpointing_ = false;

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
/// different record types; wiring casts back to collector<T> once. Besides
/// records, a collector receives the control events that travel in order
/// with them: watermarks and idleness.
class any_collector {
public:
  virtual ~any_collector() = default;
  /// Event time has advanced to `wm` on this input: operators fire what is
  /// due, then pass the watermark on.
  virtual void process_watermark(int64_t /*wm*/) {}
  /// The input stopped (true) or resumed (false) producing records and
  /// watermarks; an idle input does not hold back event time downstream.
  virtual void process_idleness(bool /*idle*/) {}
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
  /// Takes `n` records of an arriving batch (moved from), in order. The
  /// head of a chain may override it to work on several records at once;
  /// the result must equal collecting them one by one.
  virtual void collect_batch(T* records, size_t n) {
    for (size_t i = 0; i < n; ++i)
      collect(std::move(records[i]));
  }
  /// Takes `n` records (moved from) with their event timestamps, in order:
  /// records[i] is processed with element.timestamp = timestamps[i] (the
  /// subtask's element context, left at the last record's). Overridden like
  /// collect_batch; the result must equal collecting them one by one.
  virtual void collect_stamped(T* records, const int64_t* timestamps, size_t n,
                               element_context& element) {
    for (size_t i = 0; i < n; ++i) {
      element.timestamp = timestamps[i];
      collect(std::move(records[i]));
    }
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

/// Initializes a function's operator state if it is checkpointed, registers
/// it for checkpoints and their notifications, then opens it if it is rich.
template <class F>
void open_if_rich(F& f, const runtime_context& ctx) {
  if constexpr (std::is_base_of_v<checkpointed_function, F>) {
    if (auto* h = ctx.hooks()) {
      f.initialize_state(function_initialization_context(ctx.operator_state(), h->restored));
      h->checkpointed.push_back(&f);
    }
  }
  if constexpr (std::is_base_of_v<checkpoint_listener, F>) {
    if (auto* h = ctx.hooks())
      h->listeners.push_back(&f);
  }
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
