#pragma once

#include "sluice/runtime/function.hpp"
#include "sluice/runtime/queryable_state.hpp"
#include "sluice/runtime/side_output.hpp"
#include "sluice/runtime/words.hpp"
#include "sluice/state/key_group.hpp"
#include "sluice/state/queryable_state.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

/// The operators a chain is made of. Each subtask owns its own instances;
/// chained operators hand records to each other through collector<T>.
namespace sluice::runtime {

/// One operator instance inside a subtask's chain.
/// Lifecycle, all on the subtask's thread: set_output, open, records...,
/// finish (input ended: emit what is buffered), close.
class stream_operator {
public:
  explicit stream_operator(std::string name) : name_(std::move(name)) {}
  virtual ~stream_operator() = default;
  stream_operator(const stream_operator&) = delete;
  stream_operator& operator=(const stream_operator&) = delete;

  /// The operator's name as shown in plans and errors.
  const std::string& name() const noexcept { return name_; }

  virtual void open(const runtime_context& /*ctx*/) {}
  /// Opens the operator (what a subtask calls): the context it and its
  /// functions see reaches this instance's operator state. With `restore`,
  /// operator state is restored before the functions initialize it, keyed
  /// state after open() declared the states.
  void open_operator(const runtime_context& ctx, operator_restore* restore = nullptr) {
    ctx_ = ctx;
    ctx_.set_operator_state(&operator_state_);
    ctx_.set_checkpoint_hooks(&hooks_);
    hooks_.restored = restore != nullptr;
    if (restore != nullptr)
      operator_state_.restore(std::move(restore->operator_state));
    open(ctx_);
    if (restore != nullptr && !restore->keyed.empty()) {
      std::vector<std::string_view> views(restore->keyed.begin(), restore->keyed.end());
      restore_keyed(views);
    }
    if (restore != nullptr && !restore->native_keyed.empty())
      restore_keyed_native(restore->native_keyed);
  }
  /// A checkpoint barrier reached the operator: its functions update their
  /// operator state, then keyed and operator state are copied out. With
  /// `incremental`, keyed state on RocksDB is a native snapshot (the rest
  /// of the work is the checkpoint writer's); otherwise it is a full
  /// snapshot in the canonical format (savepoints, the heap backend).
  operator_snapshot snapshot_operator(int64_t checkpoint_id, int64_t timestamp_ms,
                                      bool incremental = false);
  /// Checkpoint `id` is complete (every subtask acknowledged it).
  void notify_checkpoint_complete(int64_t id);
  /// Checkpoint `id` was aborted.
  void notify_checkpoint_aborted(int64_t id);
  /// Keyed state and timers in the snapshot format ("" = none).
  [[nodiscard]] virtual std::string snapshot_keyed() { return {}; }
  /// Keyed state as a native snapshot for checkpoint `id`, or null when
  /// the operator has no keyed state or its backend has no native format.
  [[nodiscard]] virtual std::shared_ptr<state::native_snapshot> snapshot_keyed_native(int64_t) {
    return nullptr;
  }
  /// Restores keyed state (after open()); only keyed operators have any.
  virtual void restore_keyed(const std::vector<std::string_view>& /*snapshots*/) {
    throw state::state_error("operator '" + name_ +
                             "' has no keyed state but the checkpoint has keyed state for it");
  }
  /// Restores keyed state from native snapshots (after open()).
  virtual void
  restore_keyed_native(const std::vector<std::shared_ptr<state::native_restore_source>>&) {
    throw state::state_error("operator '" + name_ +
                             "' has no keyed state but the checkpoint has keyed state for it");
  }
  /// Reads the keyed state of `key` (URL text) for queryable state: on the
  /// subtask's thread, between batches. Only keyed operators have any.
  [[nodiscard]] virtual state_query_result query_keyed_state(std::string_view /*key*/) {
    return {state_query_status::no_keyed_state, {}};
  }
  /// This instance's operator state (snapshotted with the operator).
  [[nodiscard]] state::operator_state_store& operator_state() noexcept { return operator_state_; }
  /// All input has ended; emit what is still buffered.
  virtual void finish() {}
  virtual void close() {}
  /// Called after each input batch or source step; sinks flush here.
  virtual void end_of_batch() {}
  /// The operator's record input (nullptr for sources).
  virtual any_collector* input() { return nullptr; }
  /// Wires the operator's output, once, before open().
  virtual void set_output(any_collector* /*out*/) {}
  /// Wires side output `tag` (records of `type`) to `out`, before open().
  void set_side_output(std::string tag, std::type_index type, any_collector* out) {
    side_.wire(std::move(tag), type, out);
  }

protected:
  /// Side outputs somebody reads; the rest are dropped.
  side_outputs side_;

  /// Checkpoint `id` completed / was aborted (before the listeners hear
  /// it): keyed operators tell their backend.
  virtual void on_checkpoint_complete(int64_t /*id*/) {}
  virtual void on_checkpoint_aborted(int64_t /*id*/) {}

  /// Runs user code, turning any exception into a user_code_error that
  /// names this operator.
  template <class F, class... Args>
  decltype(auto) call_user(F&& f, Args&&... args) {
    try {
      return f(std::forward<Args>(args)...);
    } catch (const user_code_error&) {
      throw;
    } catch (const std::exception& e) {
      throw user_code_error(name_, e.what());
    } catch (...) {
      throw user_code_error(name_, "unknown exception");
    }
  }

private:
  std::string name_;
  runtime_context ctx_;
  state::operator_state_store operator_state_;
  checkpoint_hooks hooks_;
};

inline operator_snapshot stream_operator::snapshot_operator(int64_t checkpoint_id,
                                                            int64_t timestamp_ms,
                                                            bool incremental) {
  for (auto* f : hooks_.checkpointed)
    call_user([&] { f->snapshot_state(checkpoint_id, timestamp_ms); });
  operator_snapshot out;
  if (incremental)
    out.native_keyed = snapshot_keyed_native(checkpoint_id);
  if (!out.native_keyed)
    out.keyed = snapshot_keyed();
  if (!operator_state_.empty())
    out.operator_state = operator_state_.snapshot();
  return out;
}

inline void stream_operator::notify_checkpoint_complete(int64_t id) {
  on_checkpoint_complete(id);
  for (auto* l : hooks_.listeners)
    call_user([&] { l->notify_checkpoint_complete(id); });
}

inline void stream_operator::notify_checkpoint_aborted(int64_t id) {
  on_checkpoint_aborted(id);
  for (auto* l : hooks_.listeners)
    call_user([&] { l->notify_checkpoint_aborted(id); });
}

/// Base of operators with one typed input and one typed output.
template <class In, class Out>
class one_input_operator : public stream_operator, public collector<In> {
public:
  using stream_operator::stream_operator;
  using collector<In>::collect;

  any_collector* input() override { return this; }
  void set_output(any_collector* out) override {
    out_ = dynamic_cast<collector<Out>*>(out);
    if (out_ == nullptr)
      throw std::logic_error("operator '" + name() + "' wired to an output of the wrong type");
  }
  void process_watermark(int64_t wm) override {
    on_watermark(wm);
    out_->process_watermark(wm);
    side_.process_watermark(wm);
  }
  void process_idleness(bool idle) override {
    out_->process_idleness(idle);
    side_.process_idleness(idle);
  }

protected:
  /// Event time reached `wm` (before it is passed on): fire what is due.
  virtual void on_watermark(int64_t /*wm*/) {}

  collector<Out>* out_ = nullptr;
};

/// Applies a user function's open/close around an operator's lifecycle.
template <class F>
class with_function {
protected:
  explicit with_function(F f) : fn_(std::move(f)) {}
  void open_function(const runtime_context& ctx) { internal::open_if_rich(fn_, ctx); }
  void close_function() { internal::close_if_rich(fn_); }
  F fn_;
};

/// Base of operators on a keyed stream: owns the subtask's keyed state
/// backend (for the key groups this subtask owns) and gives user functions
/// a context that reaches it.
template <class K, class In, class Out>
class keyed_operator : public one_input_operator<In, Out> {
public:
  using one_input_operator<In, Out>::one_input_operator;

  /// This subtask's keyed state and timers in the snapshot format of
  /// state/snapshot.hpp (after open()).
  [[nodiscard]] std::string snapshot_keyed_state() { return backend_->snapshot(); }
  [[nodiscard]] std::string snapshot_keyed() override { return snapshot_keyed_state(); }
  [[nodiscard]] std::shared_ptr<state::native_snapshot> snapshot_keyed_native(int64_t id) override {
    return backend_->snapshot_native(id);
  }
  void restore_keyed(const std::vector<std::string_view>& snapshots) override {
    restore_keyed_state(snapshots);
  }
  void restore_keyed_native(
    const std::vector<std::shared_ptr<state::native_restore_source>>& sources) override {
    backend_->restore_native(sources);
    on_keyed_state_restored();
  }

  /// Restores keyed state and timers from `snapshots` (any backend kind and
  /// parallelism): after open(), which declares the states and registers
  /// the timer queues, before the first record. Processing-time timers are
  /// armed again with the subtask's clock. Throws state::state_error.
  void restore_keyed_state(const std::vector<std::string_view>& snapshots) {
    backend_->restore(snapshots);
    on_keyed_state_restored();
  }

  /// Prints every void-namespace state of `key` as
  /// {"key": ..., "states": {"<name>": <value or null>, ...}} when this
  /// subtask owns the key's group (not_owner otherwise). The backend's
  /// current key is restored afterwards, so the next record sees what it
  /// would have seen.
  [[nodiscard]] state_query_result query_keyed_state(std::string_view key) override {
    if (!backend_)
      return {state_query_status::not_running, {}};
    if constexpr (!state::is_url_key_v<K>) {
      (void)key;
      return {state_query_status::key_type_unreadable, {}};
    } else {
      auto k = state::parse_key<K>(key);
      if (!k)
        return {state_query_status::bad_key, state::internal::type_label<K>()};
      if (!backend_->key_groups().contains(backend_->key_group_of_key(*k)))
        return {state_query_status::not_owner, {}};
      // The previous current key, if one is set: paths that route by key
      // group alone (the heap's dense tables) leave the key itself stale.
      std::optional<K> previous;
      if (backend_->current_key_group() >= 0 &&
          backend_->key_group_of_key(backend_->current_key()) == backend_->current_key_group())
        previous = backend_->current_key();
      struct restore_key {
        state::keyed_state_backend<K>& b;
        std::optional<K>& previous;
        ~restore_key() {
          try {
            if (previous)
              b.set_current_key(*previous);
          } catch (const std::exception&) { // NOLINT(bugprone-empty-catch): the next record sets its key
          }
        }
      } restore{*backend_, previous};
      backend_->set_current_key(*k);
      std::string out = "{\"key\":";
      state::print_json(out, *k);
      out += ",\"states\":{";
      bool first = true;
      const auto& states = backend_->states();
      for (uint32_t i = 0; i < states.size(); ++i) {
        if (!states[i].printer)
          continue; // namespaced (window) state
        if (!first)
          out += ',';
        first = false;
        state::internal::append_json_string(out, states[i].name);
        out += ':';
        states[i].printer(*backend_, i, out);
      }
      out += "}}";
      return {state_query_status::ok, std::move(out)};
    }
  }

protected:
  /// Called after restore_keyed_state restored the backend (operators with
  /// processing-time timers arm them here).
  virtual void on_keyed_state_restored() {}

  void on_checkpoint_complete(int64_t id) override {
    if (backend_)
      backend_->checkpoint_completed(id);
  }
  void on_checkpoint_aborted(int64_t id) override {
    if (backend_)
      backend_->checkpoint_aborted(id);
  }

  /// Creates the backend; call first in open(). Returns the context to
  /// open user functions with.
  const runtime_context& open_keyed_state(const runtime_context& ctx) {
    auto range = state::key_group_range_for_subtask(ctx.max_parallelism(), ctx.parallelism(),
                                                    ctx.subtask_index());
    const auto& cfg = ctx.state_config();
    backend_ = state::make_keyed_backend<K>(cfg.backend, range, ctx.max_parallelism(),
                                            cfg.ttl_clock, cfg.rocksdb,
                                            instance_name(ctx));
    keyed_ctx_ = ctx;
    keyed_ctx_.set_keyed_backend(backend_.get());
    sweeper_.start(backend_.get(), ctx.time_service(), cfg.ttl_cleanup_interval.count(),
                   cfg.ttl_cleanup_keys);
    return keyed_ctx_;
  }
  /// Drops the backend (and a RocksDB instance's working files).
  void close_keyed_state() noexcept {
    sweeper_.stop();
    keyed_ctx_.set_keyed_backend(nullptr);
    backend_.reset();
  }

  std::unique_ptr<state::keyed_state_backend<K>> backend_;
  runtime_context keyed_ctx_;

private:
  /// Removes expired state in the background, a bounded number of keys per
  /// processing-time tick, while any declared state has a TTL (Flink's
  /// incremental cleanup, driven by time instead of by access).
  class ttl_sweeper final : public processing_time_callback {
  public:
    void start(state::keyed_state_backend_base* b, processing_time_service* time,
               int64_t interval_ms, size_t keys) {
      backend_ = b;
      time_ = time;
      interval_ = interval_ms;
      keys_ = keys;
      if (time_ != nullptr && interval_ > 0)
        time_->register_timer(time_->now_ms() + interval_, this);
    }
    void stop() noexcept { backend_ = nullptr; }
    void on_processing_time(int64_t now) override {
      if (backend_ == nullptr)
        return;
      const auto& states = backend_->states();
      if (std::any_of(states.begin(), states.end(),
                      [](const state::state_meta& m) { return m.ttl.enabled(); }))
        swept_ += backend_->cleanup_expired(keys_);
      time_->register_timer(now + interval_, this);
    }
    [[nodiscard]] uint64_t swept() const noexcept { return swept_; }

  private:
    state::keyed_state_backend_base* backend_ = nullptr;
    processing_time_service* time_ = nullptr;
    int64_t interval_ = 0;
    size_t keys_ = 0;
    uint64_t swept_ = 0;
  };
  ttl_sweeper sweeper_;

  std::string instance_name(const runtime_context& ctx) const {
    std::string n = "sluice-" + (ctx.instance_id().empty() ? std::string("local") : ctx.instance_id()) +
                    "-" + this->name();
    for (auto& c : n)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
        c = '_';
    return n;
  }
};

template <class In, class Out, class F>
class map_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  map_operator(std::string name, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override { this->open_function(ctx); }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    this->out_->collect(this->call_user(this->fn_, std::move(value)));
  }
};

template <class In, class F>
class filter_operator final : public one_input_operator<In, In>, with_function<F> {
public:
  filter_operator(std::string name, F f)
    : one_input_operator<In, In>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override { this->open_function(ctx); }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    if (this->call_user(this->fn_, static_cast<const In&>(value)))
      this->out_->collect(std::move(value));
  }
};

/// flat_map: the user function gets the record and a collector<Out>&.
template <class In, class Out, class F>
class flat_map_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  flat_map_operator(std::string name, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override { this->open_function(ctx); }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    this->call_user(this->fn_, std::move(value), *this->out_);
  }
};

/// Context of a non-keyed process function.
class process_context {
public:
  explicit process_context(const runtime_context* rc, side_outputs* side = nullptr)
    : rc_(rc), side_(side) {}
  const runtime_context& runtime() const { return *rc_; }
  /// The record's event timestamp, if it has one.
  [[nodiscard]] std::optional<int64_t> timestamp() const {
    auto ts = rc_->element().timestamp;
    return ts == INT64_MIN ? std::nullopt : std::optional<int64_t>(ts);
  }
  /// The operator's current event time.
  [[nodiscard]] int64_t current_watermark() const { return rc_->element().watermark; }
  /// Wall-clock time of the subtask in milliseconds.
  [[nodiscard]] int64_t current_processing_time() const {
    if (auto* t = rc_->time_service())
      return t->now_ms();
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
  /// The operator's side outputs (null outside an operator).
  [[nodiscard]] side_outputs* side() const noexcept { return side_; }
  /// Emits `value` to side output `tag` (with the record's timestamp).
  template <class T>
  void output(const output_tag<T>& tag, T value) {
    if (side_ != nullptr)
      side_->emit(tag, std::move(value));
  }

private:
  const runtime_context* rc_;
  side_outputs* side_;
};

/// Context of a keyed process function: the key of the current record.
template <class K>
class keyed_process_context : public process_context {
public:
  using process_context::process_context;
  const K& current_key() const { return *key_; }
  void set_current_key(const K* k) { key_ = k; }

private:
  const K* key_ = nullptr;
};

/// A process function on a non-keyed stream (Flink's ProcessFunction):
/// per-record logic with the record's timestamp, the current watermark and
/// processing time, and side outputs. Timers need a key: use
/// keyed_process_function after key_by.
template <class In, class Out>
class process_function : public rich_function {
public:
  using input_type = In;
  using output_type = Out;
  virtual void process_element(const In& value, process_context& ctx, collector<Out>& out) = 0;
};

namespace internal {
template <class F, class = void>
struct is_process_function : std::false_type {};
template <class F>
struct is_process_function<
  F, std::enable_if_t<std::is_base_of_v<
       process_function<typename F::input_type, typename F::output_type>, F>>> : std::true_type {};

/// Calls a process_function class as the process operator's function.
template <class Fn>
struct process_function_call : rich_function {
  explicit process_function_call(Fn f) : fn(std::move(f)) {}
  void open(const runtime_context& ctx) override { fn.open(ctx); }
  void close() override { fn.close(); }
  void operator()(typename Fn::input_type&& v, process_context& ctx,
                  collector<typename Fn::output_type>& out) {
    fn.process_element(v, ctx, out);
  }
  Fn fn;
};
} // namespace internal

/// process: f(In&&, process_context&, collector<Out>&).
template <class In, class Out, class F>
class process_operator final : public one_input_operator<In, Out>, with_function<F> {
public:
  process_operator(std::string name, F f)
    : one_input_operator<In, Out>(std::move(name)), with_function<F>(std::move(f)) {}
  void open(const runtime_context& ctx) override {
    rc_ = ctx;
    this->open_function(ctx);
  }
  void close() override { this->close_function(); }
  void collect(In&& value) override {
    process_context pc{&rc_, &this->side_};
    this->call_user(this->fn_, std::move(value), pc, *this->out_);
  }

private:
  runtime_context rc_;
};

/// Keyed process: f(In&&, keyed_process_context<K>&, collector<Out>&).
template <class K, class In, class Out, class KeySel, class F>
class keyed_process_operator final : public keyed_operator<K, In, Out>, with_function<F> {
public:
  keyed_process_operator(std::string name, KeySel sel, F f)
    : keyed_operator<K, In, Out>(std::move(name)), with_function<F>(std::move(f)),
      sel_(std::move(sel)) {}
  void open(const runtime_context& ctx) override { this->open_function(this->open_keyed_state(ctx)); }
  void close() override {
    this->close_function();
    this->close_keyed_state();
  }
  void collect(In&& value) override {
    K key = sel_(static_cast<const In&>(value));
    this->backend_->set_current_key(key);
    keyed_process_context<K> pc{&this->keyed_ctx_, &this->side_};
    pc.set_current_key(&key);
    this->call_user(this->fn_, std::move(value), pc, *this->out_);
  }

private:
  KeySel sel_;
};


/// Rolling per-key fold: fold(acc&, value&&) updates the key's accumulator in
/// place, and every update is emitted (as Flink's keyed reduce does). The
/// accumulator is keyed value state, so it lives in the configured backend;
/// on the heap it is folded in place with one hash lookup per record.
template <class K, class T, class KeySel, class Fold>
class keyed_fold_operator final : public keyed_operator<K, T, T> {
public:
  keyed_fold_operator(std::string name, KeySel sel, Fold fold)
    : keyed_operator<K, T, T>(std::move(name)), sel_(std::move(sel)), fold_(std::move(fold)) {}
  void open(const runtime_context& ctx) override {
    const auto& kctx = this->open_keyed_state(ctx);
    auto& b = *this->backend_;
    state::value_state_descriptor<T> d("_aggregate");
    auto idx = b.template declare<state::void_namespace, T>(d, state::state_kind::value,
                                                            "value<record>");
    heap_backend_ = dynamic_cast<state::heap_keyed_backend<K>*>(this->backend_.get());
    // A plain fold on the heap keeps its accumulators in a dense table: one
    // probe per record. A rich fold may read other keyed state of the
    // record's key, which needs the key set on the backend: the cell path.
    if (heap_backend_ != nullptr && !std::is_base_of_v<rich_function, Fold>)
      dense_ = &heap_backend_->template dense_value<T>(idx);
    else
      acc_ = state::internal::make_value<state::void_namespace, T>(b, idx);
    heap_ = dynamic_cast<state::heap_value_state<state::void_namespace, T>*>(acc_.get());
    // Queryable state: the accumulator may sit in the dense table, which
    // only this operator knows.
    b.set_state_printer(idx, [this](state::keyed_state_backend_base& be, uint32_t i,
                                     std::string& out) {
      const T* acc = nullptr;
      // Owns what get() points to (RocksDB reads into it).
      std::shared_ptr<state::internal_value_state<state::void_namespace, T>> handle;
      if (dense_ != nullptr) {
        const K& key = heap_backend_->current_key();
        acc = dense_->find(key, heap_backend_->dense_hash(key));
      } else {
        handle = state::internal::make_value<state::void_namespace, T>(be, i);
        acc = handle->get();
      }
      if (acc != nullptr)
        state::print_json(out, *acc);
      else
        out += "null";
    });
    internal::open_if_rich(fold_, kctx);
  }
  void close() override {
    internal::close_if_rich(fold_);
    heap_ = nullptr;
    dense_ = nullptr;
    heap_backend_ = nullptr;
    acc_.reset();
    this->close_keyed_state();
  }
  void collect(T&& value) override {
    if (dense_ != nullptr) {
      const K key = sel_(static_cast<const T&>(value));
      fold_dense(key, heap_backend_->dense_hash(key), std::move(value));
      return;
    }
    if (heap_ != nullptr) {
      // The heap backend class is final: this call is direct and inlines.
      heap_backend_->set_current_key(sel_(static_cast<const T&>(value)));
      if (auto* acc = heap_->find_mutable()) {
        fold_and_emit(*acc, std::move(value));
      } else {
        this->out_->collect(static_cast<const T&>(heap_->insert(std::move(value))));
      }
      return;
    }
    this->backend_->set_current_key(sel_(static_cast<const T&>(value)));
    if (const T* cur = acc_->get()) {
      T acc = *cur;
      this->call_user(fold_, acc, std::move(value));
      acc_->put(acc);
      this->out_->collect(std::move(acc));
    } else {
      acc_->put(value);
      this->out_->collect(std::move(value));
    }
  }

  /// On the dense table, a block of records at a time: their hashes first
  /// (independent computations the CPU overlaps) with a prefetch of each
  /// one's slot, then the folds, whose probes then hit the cache.
  void collect_batch(T* records, size_t n) override {
    if (dense_ == nullptr) {
      collector<T>::collect_batch(records, n);
      return;
    }
    constexpr size_t block = 16;
    K keys[block];
    uint32_t hashes[block];
    for (size_t base = 0; base < n; base += block) {
      const size_t m = std::min(block, n - base);
      T* r = records + base;
      for (size_t j = 0; j < m; ++j) {
        keys[j] = sel_(static_cast<const T&>(r[j]));
        hashes[j] = heap_backend_->dense_hash(keys[j]);
        dense_->prefetch(hashes[j]);
      }
      for (size_t j = 0; j < m; ++j)
        fold_dense(keys[j], hashes[j], std::move(r[j]));
    }
  }

private:
  void fold_dense(const K& key, uint32_t hash, T&& value) {
    if (auto* acc = dense_->find(key, hash))
      fold_and_emit(*acc, std::move(value));
    else
      this->out_->collect(static_cast<const T&>(dense_->insert(key, hash, std::move(value))));
  }

  /// Folds `value` into the accumulator `acc` (in heap memory) and emits
  /// the result.
  void fold_and_emit(T& acc, T&& value) {
    if constexpr (word_record_v<T> && std::is_default_constructible_v<T>) {
      // Fold a copy and store it back, copying word by word: folding in
      // place and then copying the accumulator out for the emit reloads,
      // whole, what was just stored in part, and a whole-record copy into
      // the temporary stalls the fold's update of one of its words. Either
      // way the CPU waits on every record.
      T next;
      copy_words(next, acc);
      this->call_user(fold_, next, std::move(value));
      copy_words(acc, next);
      this->out_->collect(std::move(next));
    } else if constexpr (std::is_trivially_copy_constructible_v<T>) {
      // Fold a copy and store it back (see above).
      T next = acc;
      this->call_user(fold_, next, std::move(value));
      acc = next;
      this->out_->collect(std::move(next));
    } else {
      this->call_user(fold_, acc, std::move(value));
      this->out_->collect(static_cast<const T&>(acc));
    }
  }

  KeySel sel_;
  Fold fold_;
  std::shared_ptr<state::internal_value_state<state::void_namespace, T>> acc_;
  state::heap_value_state<state::void_namespace, T>* heap_ = nullptr;
  state::dense_value_table<K, T>* dense_ = nullptr;
  state::heap_keyed_backend<K>* heap_backend_ = nullptr;
};

/// Passes records through unchanged: the head of a union of several inputs.
template <class T>
class identity_operator final : public one_input_operator<T, T> {
public:
  using one_input_operator<T, T>::one_input_operator;
  void collect(T&& value) override { this->out_->collect(std::move(value)); }
};

/// Sends every record to several collectors (an operator whose output feeds
/// more than one downstream operator or channel).
template <class T>
class fanout_collector final : public collector<T> {
public:
  explicit fanout_collector(std::vector<collector<T>*> targets) : targets_(std::move(targets)) {}
  using collector<T>::collect;
  void collect(T&& value) override {
    for (size_t i = 0; i + 1 < targets_.size(); ++i)
      targets_[i]->collect(static_cast<const T&>(value));
    targets_.back()->collect(std::move(value));
  }
  void process_watermark(int64_t wm) override {
    for (auto* t : targets_)
      t->process_watermark(wm);
  }
  void process_idleness(bool idle) override {
    for (auto* t : targets_)
      t->process_idleness(idle);
  }

private:
  std::vector<collector<T>*> targets_;
};

/// Swallows records: the output of an operator nobody consumes.
template <class T>
class discarding_collector final : public collector<T> {
public:
  using collector<T>::collect;
  void collect(T&&) override {}
};

} // namespace sluice::runtime
