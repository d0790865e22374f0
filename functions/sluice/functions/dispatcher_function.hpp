#pragma once

#include "sluice/functions/dispatcher.hpp"
#include "sluice/runtime/process_function.hpp"

#include <memory>
#include <stdexcept>

namespace sluice::functions {

/// The dispatcher as an operator: a keyed process function over envelopes
/// keyed by target address (`key_by(envelope_target{})`). Its output holds
/// the messages functions send (route the to-function ones back into the
/// dispatcher through the feedback edge) and the egress messages, dead
/// letters included. Each subtask gets its own copy; the registry is
/// shared and read-only.
class dispatcher_function final
    : public runtime::keyed_process_function<address, envelope, envelope>,
      private dispatcher_host {
public:
  using base = runtime::keyed_process_function<address, envelope, envelope>;

  explicit dispatcher_function(std::shared_ptr<const function_registry> registry,
                               dispatcher_options options = {})
      : registry_(std::move(registry))
      , options_(std::move(options)) {
    if (registry_ == nullptr)
      throw std::invalid_argument("a dispatcher needs a function registry");
  }
  // Copies are what each subtask runs: they share the registry and the
  // options, never a running core.
  dispatcher_function(const dispatcher_function& other)
      : base()
      , dispatcher_host()
      , registry_(other.registry_)
      , options_(other.options_) {}
  dispatcher_function& operator=(const dispatcher_function&) = delete;

  void open(const runtime::runtime_context& ctx) override {
    auto* backend = dynamic_cast<state::keyed_state_backend<address>*>(&ctx.keyed_backend());
    if (backend == nullptr)
      throw std::logic_error("the function dispatcher must run on a stream keyed by address "
                             "(key_by(envelope_target{}))");
    backend_ = backend;
    dispatcher_host& host = *this;
    core_ = std::make_unique<dispatcher>(registry_, *backend, host, options_);
    resumed_ = false;
    input_ = ctx.input_control();
    holding_ = false;
  }
  void close() override { core_.reset(); }

  void process_element(const envelope& e, base::context& ctx,
                       runtime::collector<envelope>& out) override {
    enter(ctx, out);
    dispatch_status st;
    if (!e.is_egress() && !e.event_time && ctx.timestamp()) {
      // The record's timestamp is the message's event time.
      envelope timed = e;
      timed.event_time = ctx.timestamp();
      st = core_->dispatch(timed);
    } else {
      st = core_->dispatch(e);
    }
    (void)st; // backpressured() says when to hold the input
    sync_input_hold();
  }

  void on_timer(int64_t time, base::context& ctx, runtime::collector<envelope>& out) override {
    enter(ctx, out);
    core_->on_timer(ctx.time_domain(), time);
    sync_input_hold();
  }

  /// The result of an async invocation of `target`, on the subtask's thread
  /// with `target` as the current key: the keyed action completion_for()
  /// posts to the subtask's keyed mailbox.
  void complete(const address& target, async_result result, base::context& ctx,
                runtime::collector<envelope>& out) {
    enter(ctx, out);
    if (ctx.current_key() != target)
      throw std::logic_error("an async completion for " + target.to_string() +
                             " arrived with current key " + ctx.current_key().to_string());
    core_->on_complete(target, std::move(result));
    sync_input_hold();
  }

  /// Whether an async function's backlog reached max_batch_requests: the
  /// runtime should hold this subtask's input until it is false.
  [[nodiscard]] bool backpressured() const noexcept { return core_ && core_->backpressured(); }

  /// The running core (after open()).
  [[nodiscard]] dispatcher& core() { return *core_; }

private:
  /// Holds the subtask's input while an async function's backlog is full
  /// (dispatch answered backpressure), and releases it once drained.
  void sync_input_hold() {
    if (input_ == nullptr)
      return;
    bool full = core_->backpressured();
    if (full == holding_)
      return;
    holding_ = full;
    if (full)
      input_->hold_input();
    else
      input_->release_input();
  }

  void enter(base::context& ctx, runtime::collector<envelope>& out) {
    ctx_ = &ctx;
    out_ = &out;
    if (!resumed_) {
      // The first call after open(), and so after any restore: batches that
      // were in flight at the checkpoint go out again.
      resumed_ = true;
      core_->resume_in_flight();
      backend_->set_current_key(ctx.current_key());
    }
  }

  // dispatcher_host
  runtime::timer_service& timers() override { return ctx_->timer_service(); }
  void emit(envelope&& e) override { out_->collect(std::move(e)); }
  /// The completion hop: called on any thread, the result becomes a keyed
  /// action of `target`, run on the subtask's thread with that address as
  /// the current key (only while the subtask, and so this function, runs).
  /// Without a running subtask there is no mailbox, and async invocations
  /// fail into dead letters that say so.
  async_completion completion_for(const address& target) override {
    auto mailbox = keyed_actions();
    if (!mailbox)
      return {};
    return [mailbox, target, fn = this](async_result r) {
      mailbox->post(target, [fn, target, r = std::move(r)](base::context& ctx,
                                                           runtime::collector<envelope>& out) mutable {
        fn->complete(target, std::move(r), ctx, out);
      });
    };
  }

  std::shared_ptr<const function_registry> registry_;
  dispatcher_options options_;
  std::unique_ptr<dispatcher> core_;
  runtime::input_hold* input_ = nullptr;
  bool holding_ = false;
  state::keyed_state_backend<address>* backend_ = nullptr;
  base::context* ctx_ = nullptr;
  runtime::collector<envelope>* out_ = nullptr;
  bool resumed_ = false;
};

} // namespace sluice::functions
