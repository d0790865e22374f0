#pragma once

#include "sluice/functions/envelope.hpp"
#include "sluice/functions/function_registry.hpp"
#include "sluice/runtime/sink.hpp"

#include <caf/error.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

/// The request/response path of the HTTP ingress: a `?reply=true` request
/// sends its message with a caller address of the reserved function type
/// `sluice/http-reply` (id: the request id). The function bound to that
/// type (bind_reply_function) turns the first message it gets into a
/// record on the reserved egress `sluice/http-replies`; its sink
/// (reply_sink) completes the waiting request in the reply_registry.
namespace sluice::remote::ingress {

/// The function type of the caller addresses of waiting requests.
[[nodiscard]] const functions::function_type& reply_function_type();
/// The egress of replies to waiting requests.
[[nodiscard]] const functions::egress_id& reply_egress();

/// A reply on its way to a waiting request (payload of a reply_egress()
/// record, typed `sluice.types/http-reply`).
struct http_reply_record {
  std::string request_id;
  functions::typed_value value;

  static constexpr uint32_t sluice_version = 1;
  static constexpr const char* sluice_type_name = "remote.http_reply_record";
  SLUICE_SERIALIZABLE(request_id, value)
};

/// How a waiting request ended.
struct reply_outcome {
  /// answered: `value` is the reply; failed: the request's message became a
  /// dead letter (`reason` says why); timed_out; shut_down.
  enum class kind : uint8_t { answered, failed, timed_out, shut_down };
  kind what = kind::answered;
  /// The reply, when answered.
  functions::typed_value value;
  /// Why, when failed.
  std::string reason;
};

/// The requests waiting for a reply, each with a deadline. Thread-safe;
/// owns a timer thread that ends requests whose deadline passed. Each
/// request ends exactly once; its completion runs on the thread that ends
/// it (a sink subtask, the timer thread, or the caller of shut_down),
/// outside the registry's lock, and must not block.
class reply_registry {
public:
  /// Runs `completion` once when the request ends.
  using completion = std::function<void(reply_outcome)>;

  /// A registry of at most `capacity` waiting requests.
  explicit reply_registry(size_t capacity);
  /// Ends the waiting requests as shut_down and joins the timer thread.
  ~reply_registry();
  reply_registry(const reply_registry&) = delete;
  reply_registry& operator=(const reply_registry&) = delete;

  /// Registers a request that waits at most `timeout`; its new unique id,
  /// or nullopt when `capacity` requests wait already or after shut_down.
  [[nodiscard]] std::optional<std::string> add(std::chrono::milliseconds timeout,
                                               completion done);
  /// Ends request `id` with `value`; false when no request waits under
  /// that id (timed out, answered already, unknown): the value is dropped.
  bool complete(const std::string& id, functions::typed_value value);
  /// Ends request `id` as failed with `reason`; false as for complete().
  bool fail(const std::string& id, std::string reason);
  /// Forgets request `id` without running its completion (its message was
  /// not accepted after all).
  void cancel(const std::string& id);
  /// Ends every waiting request as shut_down, refuses new ones, and waits
  /// until completions running on other threads returned (so what they
  /// use may be destroyed after it). Not from inside a completion.
  void shut_down();
  /// Requests waiting now.
  [[nodiscard]] size_t waiting() const;

private:
  struct entry {
    std::chrono::steady_clock::time_point deadline;
    completion done;
  };
  using deadline_item = std::pair<std::chrono::steady_clock::time_point, std::string>;
  void expire_loop();
  /// Ends request `id` with `outcome`; false when it does not wait.
  bool end(const std::string& id, reply_outcome outcome);
  /// Runs a completion taken out of `waiting_` (counted in `running_`).
  void run(completion done, reply_outcome outcome);

  const size_t capacity_;
  const std::string prefix_;
  mutable std::mutex mtx_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  size_t running_ = 0;
  bool stopping_ = false;
  uint64_t next_id_ = 0;
  std::unordered_map<std::string, entry> waiting_;
  std::priority_queue<deadline_item, std::vector<deadline_item>, std::greater<>> deadlines_;
  std::thread timer_;
};

/// Binds the embedded function that forwards the first message sent to a
/// `sluice/http-reply` address to reply_egress(); fails if the type is
/// bound already.
[[nodiscard]] caf::error bind_reply_function(functions::function_registry& registry);

/// Completes waiting requests from reply_egress() records, and fails those
/// whose message became a dead letter (a record of `dead_letters` whose
/// caller is a reply address), so they need not wait for the timeout.
/// Other records are ignored. Any parallelism; copies share the registry.
class reply_sink final : public runtime::sink_function<functions::envelope> {
public:
  explicit reply_sink(std::shared_ptr<reply_registry> replies,
                      functions::egress_id dead_letters = {"sluice", "dead-letters"})
      : replies_(std::move(replies))
      , dead_letters_(std::move(dead_letters)) {}
  void invoke(functions::envelope&& e) override;

private:
  std::shared_ptr<reply_registry> replies_;
  functions::egress_id dead_letters_;
};

} // namespace sluice::remote::ingress

namespace sluice::functions {
/// Replies as typed values (the sluice serializer's encoding).
template <> struct value_codec<remote::ingress::http_reply_record> {
  static constexpr std::string_view type_name = "sluice.types/http-reply";
  static std::string encode(const remote::ingress::http_reply_record& v);
  static std::optional<remote::ingress::http_reply_record> decode(std::string_view bytes);
};
} // namespace sluice::functions
