#pragma once

#include "sluice/functions/dispatcher.hpp"
#include "sluice/runtime/process_function.hpp"
#include "sluice/state/test_backends.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

/// A dispatcher core driven by hand: its own keyed state backend, timers
/// and clocks, and the envelopes it emits collected. Test code only.
namespace sluice::functions::testing {

/// Records async requests; the test answers them with on_complete.
struct fake_async_function final : async_function {
  std::vector<invocation_request> requests;
  void invoke(invocation_request request, async_completion) override {
    requests.push_back(std::move(request));
  }
};

/// Async completions as they arrive, from any thread, until the test feeds
/// them to the core on its own thread (the runtime's completion hop, by hand).
class completion_queue {
public:
  /// Queues the result of `target`'s invocation; any thread.
  void push(address target, async_result result) {
    {
      std::lock_guard<std::mutex> lock{mtx_};
      queue_.emplace_back(std::move(target), std::move(result));
    }
    cv_.notify_all();
  }

  /// The oldest queued completion, waiting for one until `deadline`.
  std::optional<std::pair<address, async_result>>
  pop(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock{mtx_};
    if (!cv_.wait_until(lock, deadline, [&] { return !queue_.empty(); }))
      return std::nullopt;
    auto front = std::move(queue_.front());
    queue_.pop_front();
    return front;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::pair<address, async_result>> queue_;
};

class core_fixture final : public dispatcher_host, public runtime::timer_service {
public:
  /// A core over a fresh backend of `kind` owning every key group.
  core_fixture(std::shared_ptr<const function_registry> registry, state::backend_kind kind,
               dispatcher_options options = {})
      : clock(std::make_shared<state::manual_state_clock>(1'000'000)) {
    if (kind == state::backend_kind::heap)
      backend = state::testing::heap_fixture::make<address>(clock);
    else
      backend = state::testing::rocksdb_fixture::make<address>(clock);
    timer_queues.register_with(*backend);
    core = std::make_unique<dispatcher>(std::move(registry), *backend, *this, std::move(options));
  }

  /// Hands `e` to the core with its target as the current key.
  dispatch_status send(const envelope& e) {
    if (!e.is_egress())
      backend->set_current_key(e.target);
    return core->dispatch(e);
  }
  dispatch_status send(const address& to, typed_value v) {
    return send(envelope::to_function(to, std::move(v)));
  }

  /// Processing time (and the TTL clock) move to `to`: due timers fire.
  void advance_to(int64_t to) {
    now = to;
    clock->set(to);
    timer_queues.advance_processing_time(to, [&](const auto& t) {
      backend->set_current_key(t.key);
      core->on_timer(runtime::time_domain::processing_time, t.time);
    });
  }
  /// Event time moves to `wm`: due event-time timers fire.
  void watermark_to(int64_t wm) {
    wm_ = wm;
    timer_queues.advance_watermark(wm, [&](const auto& t) {
      backend->set_current_key(t.key);
      core->on_timer(runtime::time_domain::event_time, t.time);
    });
  }

  /// The envelopes emitted so far, and forgets them.
  std::vector<envelope> take() {
    auto v = std::move(out);
    out.clear();
    return v;
  }
  /// The dead letters among `envs`.
  static std::vector<dead_letter> dead_letters(const std::vector<envelope>& envs) {
    std::vector<dead_letter> d;
    for (const auto& e : envs)
      if (e.is_egress() && e.payload.type_name == value_codec<dead_letter>::type_name)
        d.push_back(*typed_as<dead_letter>(e.payload));
    return d;
  }

  /// The stored persisted value `name` of `a`.
  std::optional<stored_value> stored(const address& a, const std::string& name) {
    backend->set_current_key(a);
    return core->stored(name);
  }

  // dispatcher_host
  runtime::timer_service& timers() override { return *this; }
  void emit(envelope&& e) override { out.push_back(std::move(e)); }
  async_completion completion_for(const address& target) override {
    if (!route)
      return {};
    return [q = completions, target](async_result r) { q->push(target, std::move(r)); };
  }

  /// Feeds queued async completions to the core, on this thread, until
  /// `done()` holds; false if it still does not after `timeout`.
  template <class Predicate>
  bool complete_until(Predicate done,
                      std::chrono::milliseconds timeout = std::chrono::seconds{20}) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      auto c = completions->pop(deadline);
      if (!c)
        return done();
      core->on_complete(c->first, std::move(c->second));
      ++completed;
    }
    return true;
  }

  // timer_service (of the backend's current key)
  int64_t current_processing_time() const override { return now; }
  int64_t current_watermark() const override { return wm_; }
  void register_event_time_timer(int64_t t) override {
    timer_queues.add_event(t, backend->current_key(), {});
  }
  void register_processing_time_timer(int64_t t) override {
    timer_queues.add_processing(t, backend->current_key(), {});
  }
  void delete_event_time_timer(int64_t t) override {
    timer_queues.remove_event(t, backend->current_key(), {});
  }
  void delete_processing_time_timer(int64_t t) override {
    timer_queues.remove_processing(t, backend->current_key(), {});
  }

  std::shared_ptr<state::manual_state_clock> clock;
  std::unique_ptr<state::keyed_state_backend<address>> backend;
  runtime::keyed_timers<address> timer_queues;
  std::unique_ptr<dispatcher> core;
  std::vector<envelope> out;
  int64_t now = 1'000'000;
  int64_t wm_ = INT64_MIN;
  bool route = true;
  /// Completions of async invocations, shared with the completions handed
  /// out (they may run after the fixture is gone).
  std::shared_ptr<completion_queue> completions = std::make_shared<completion_queue>();
  /// Completions fed to the core so far.
  size_t completed = 0;
};

inline address addr(const std::string& ns, const std::string& type, const std::string& id) {
  return address{function_type{ns, type}, id};
}

} // namespace sluice::functions::testing
