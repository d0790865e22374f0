#pragma once

#include "sluice/functions/envelope.hpp"
#include "sluice/functions/function_registry.hpp"
#include "sluice/runtime/time/timer_service.hpp"
#include "sluice/state/keyed_state.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

/// The function dispatcher: runs the functions of the addresses one keyed
/// operator subtask owns. The logic lives in `dispatcher`, a plain class
/// driven by explicit calls (testable without actors); the operator adapter
/// (dispatcher_function.hpp) feeds it.
namespace sluice::functions {

/// How a dispatcher behaves.
struct dispatcher_options {
  /// Where messages that no function could handle go, as dead_letter
  /// payloads.
  egress_id dead_letter_egress{"sluice", "dead-letters"};
  /// Most messages in one batch to an async function (StateFun's
  /// maxNumBatchRequests); an address whose backlog reaches it reports
  /// backpressure. A binding's own, smaller limit
  /// (function_binding::max_batch_requests) applies to its function.
  size_t max_batch_requests = 1000;
};

/// What a dispatcher needs from where it runs. Called on the subtask's
/// thread only.
class dispatcher_host {
public:
  virtual ~dispatcher_host() = default;
  /// The clocks and timers of the backend's current key.
  virtual runtime::timer_service& timers() = 0;
  /// Sends an envelope downstream (to a function: the feedback edge; to an
  /// egress: the egress sinks).
  virtual void emit(envelope&& e) = 0;
  /// The completion to give an async invocation of `target`: called on any
  /// thread, it must bring the result back to the subtask's thread and call
  /// dispatcher::on_complete(target, result) there, with `target` as the
  /// current key of the backend and of timers(). Empty when the host has no
  /// such route (the invocation then fails into dead letters).
  virtual async_completion completion_for(const address& target) = 0;
};

/// What dispatch() tells its caller.
enum class dispatch_status : uint8_t {
  accepted,
  /// Accepted, but an async function's backlog at this address reached
  /// max_batch_requests: stop the input until backpressured() is false.
  backpressure,
};

/// Per address, a stored persisted value: its typename, its bytes and the
/// time (the backend's TTL clock) its expiration counts from.
struct stored_value {
  std::string type_name;
  std::string bytes;
  int64_t stamp = 0;

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "functions.stored_value";
  SLUICE_SERIALIZABLE(type_name, bytes, stamp)
};

/// Per address of an async function: the size of the batch in flight (0:
/// none) and of the backlog waiting for it.
struct async_status {
  uint32_t in_flight = 0;
  uint32_t backlog = 0;

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "functions.async_status";
  SLUICE_SERIALIZABLE(in_flight, backlog)
};

/// Runs functions for the addresses whose state lives in one keyed state
/// backend (one dispatcher operator subtask). Per address, messages are
/// handled one at a time in arrival order.
///
/// State layout (keyed by address, fixed names so any snapshot restores
/// before the functions are known):
/// - "functions/values": map value name -> stored_value, the persisted
///   values of every function type; expiration is checked on access against
///   the backend's TTL clock (specs differ per value, the backend's TTL is
///   per state);
/// - "functions/delayed": map id -> delayed_message, the delayed messages the
///   address sent and that are not delivered yet (id "t"+token, or "s"+a
///   sequence for messages without token); a timer per due time and key;
/// - "functions/async-status", "functions/in-flight", "functions/backlog":
///   for async functions, the batch in flight and the messages waiting.
///
/// Owned by one subtask; every call on its thread.
class dispatcher {
public:
  static constexpr const char* values_state = "functions/values";
  static constexpr const char* delayed_state = "functions/delayed";
  static constexpr const char* status_state = "functions/async-status";
  static constexpr const char* in_flight_state = "functions/in-flight";
  static constexpr const char* backlog_state = "functions/backlog";

  /// Declares the states in `backend`; `registry`, `backend` and `host`
  /// must outlive the dispatcher.
  dispatcher(std::shared_ptr<const function_registry> registry,
             state::keyed_state_backend<address>& backend, dispatcher_host& host,
             dispatcher_options options = {});
  ~dispatcher();
  dispatcher(const dispatcher&) = delete;
  dispatcher& operator=(const dispatcher&) = delete;

  /// Handles one envelope. A message to a function must have its target as
  /// the backend's current key (and the host's timers'); an egress envelope
  /// passes through to the output. Never throws for what a function or its
  /// input does wrong: that becomes a dead letter.
  dispatch_status dispatch(const envelope& e);

  /// A timer of the current key fired at `time`: delivers the delayed
  /// messages the key sent that are due in `domain`.
  void on_timer(runtime::time_domain domain, int64_t time);

  /// The result of the async invocation in flight for `target` (on the
  /// subtask's thread; see dispatcher_host::completion_for). Makes `target`
  /// the backend's current key; the host's timers must follow it. A result
  /// for an address with nothing in flight (stale) is ignored.
  void on_complete(const address& target, async_result result);

  /// After a restore: invokes again every async batch that was in flight
  /// when the snapshot was taken (at-least-once, as StateFun does). Changes
  /// the backend's current key.
  void resume_in_flight();

  /// Whether some address's backlog is at max_batch_requests (the caller
  /// should stop its input until it is not).
  [[nodiscard]] bool backpressured() const noexcept { return !full_.empty(); }

  /// The persisted value `name` of the current key, as stored, expired or
  /// not (for tests and tools).
  [[nodiscard]] std::optional<stored_value> stored(const std::string& name);
  /// The delayed messages the current key has pending (for tests and tools).
  [[nodiscard]] std::vector<delayed_message> pending_delayed();
  /// The async status of the current key (for tests and tools).
  [[nodiscard]] async_status status();

  class invocation; // the context of one embedded invocation (dispatcher.cpp)

private:
  struct function_entry;

  function_entry& lookup(const function_type& type);
  void send_dead_letter(const address& target, const std::optional<address>& caller,
                        const typed_value& payload, std::optional<int64_t> event_time,
                        std::string reason);
  /// The batch (and backlog) bound of an async function.
  [[nodiscard]] size_t batch_limit(const function_entry& fn) const;
  dispatch_status dispatch_async(function_entry& fn, const envelope& e);
  void invoke_async(function_entry& fn, const address& target, std::vector<async_invocation> batch);
  void next_batch(function_entry& fn, const address& target, async_status st);
  /// Fails the batch in flight and the backlog of `target` and forgets them.
  void drop_async(const address& target, const std::string& reason);
  void fail_batch(const address& target, const std::vector<async_invocation>& batch,
                  const std::string& reason);
  [[nodiscard]] std::string check_result(function_entry& fn, const address& target,
                                         const invocation_result& r);
  void apply_result(function_entry& fn, const address& target, invocation_result&& r,
                    std::optional<int64_t> event_time);

  /// A persisted value as the current key holds it, if set and not expired.
  std::optional<stored_value> load_live(const value_spec& spec, int64_t now);
  /// Writes (or, with no value, removes) value `spec.name`, stamped `now`.
  void store(const value_spec& spec, const std::optional<typed_value>& v, int64_t now);

  /// Whether the current key has a delayed message pending under `token`.
  bool token_pending(const std::string& token);
  /// Stores a delayed message of the current key and sets its timer.
  void schedule(delayed_message m);
  /// Removes the current key's delayed message under `token`, if pending.
  void cancel(const std::string& token);
  [[nodiscard]] int64_t ttl_now() const;

  std::shared_ptr<const function_registry> registry_;
  state::keyed_state_backend<address>& backend_;
  dispatcher_host& host_;
  dispatcher_options options_;

  state::map_state<std::string, stored_value> values_;
  state::map_state<std::string, delayed_message> delayed_;
  state::value_state<async_status> status_;
  state::value_state<std::vector<async_invocation>> in_flight_;
  state::list_state<async_invocation> backlog_;

  std::unordered_map<function_type, std::unique_ptr<function_entry>> functions_;
  function_entry* last_ = nullptr;
  /// Addresses whose backlog is at the bound.
  std::unordered_set<address> full_;
  uint64_t next_sequence_ = 0;
};

} // namespace sluice::functions
