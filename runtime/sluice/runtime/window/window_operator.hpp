#pragma once

#include "sluice/runtime/process_function.hpp"
#include "sluice/runtime/window/assigners.hpp"
#include "sluice/runtime/window/merging_window_set.hpp"
#include "sluice/runtime/window/time_window.hpp"
#include "sluice/runtime/window/triggers.hpp"

#include <functional>
#include <map>
#include <memory>
#include <vector>

/// Keyed windows: Flink's WindowOperator. Elements are assigned to windows,
/// kept in keyed state namespaced by window (so every backend and, later,
/// every checkpoint sees them), and emitted when the trigger fires.
namespace sluice::runtime {

/// What a process window function knows when it runs.
template <class W>
struct window_context {
  const W& window;
  int64_t current_watermark;
  int64_t current_processing_time;
};

/// Full-window processing (Flink's ProcessWindowFunction): gets every
/// element of the window (or the pre-aggregated result) at once.
template <class K, class In, class Out, class W = time_window>
class process_window_function : public rich_function {
public:
  using key_type = K;
  using input_type = In;
  using output_type = Out;
  using window_type = W;
  virtual void process(const K& key, const window_context<W>& ctx, const std::vector<In>& elements,
                       collector<Out>& out) = 0;
};

/// Where a window operator keeps a window's contents and how it emits them.
template <class K, class T, class W, class Out>
class window_contents {
public:
  virtual ~window_contents() = default;
  virtual void open(const runtime_context& ctx) = 0;
  virtual void close() {}
  virtual void set_namespace(const W& w) = 0;
  virtual void add(const T& value) = 0;
  virtual void clear() = 0;
  virtual void merge_namespaces(const std::vector<W>& sources) = 0;
  /// Emits the current namespace's result; false when it holds nothing.
  virtual bool emit(const K& key, const window_context<W>& ctx, collector<Out>& out) = 0;
  [[nodiscard]] virtual std::unique_ptr<window_contents> clone() const = 0;
};

/// Incremental contents: one accumulated value per window (reducing or
/// aggregating state whose result is R), emitted as is or through a process
/// window function with the window's metadata.
template <class K, class T, class W, class Out, class R, class State>
class incremental_contents final : public window_contents<K, T, W, Out> {
public:
  using make_state_fn = std::function<State(state::keyed_state_backend_base&)>;
  using process_fn = std::shared_ptr<process_window_function<K, R, Out, W>>;
  incremental_contents(make_state_fn make, process_fn p)
    : make_(std::move(make)), process_(std::move(p)) {}
  void open(const runtime_context& ctx) override {
    state_ = make_(ctx.keyed_backend());
    if (process_)
      process_->open(ctx);
  }
  void close() override {
    if (process_)
      process_->close();
  }
  void set_namespace(const W& w) override { state_.set_namespace(w); }
  void add(const T& v) override { state_.add(v); }
  void clear() override { state_.clear(); }
  void merge_namespaces(const std::vector<W>& s) override { state_.merge_namespaces(s); }
  bool emit(const K& key, const window_context<W>& ctx, collector<Out>& out) override {
    auto v = state_.get();
    if (!v)
      return false;
    if (process_) {
      std::vector<R> one{std::move(*v)};
      process_->process(key, ctx, one, out);
    } else if constexpr (std::is_same_v<R, Out>) {
      out.collect(std::move(*v));
    }
    return true;
  }
  std::unique_ptr<window_contents<K, T, W, Out>> clone() const override {
    return std::make_unique<incremental_contents>(make_, process_);
  }

private:
  make_state_fn make_;
  process_fn process_;
  State state_;
};

/// Window contents folded by a reduce function.
template <class K, class T, class W, class Out>
std::shared_ptr<window_contents<K, T, W, Out>>
make_reduce_contents(std::function<T(const T&, const T&)> reduce,
                     std::shared_ptr<process_window_function<K, T, Out, W>> process) {
  using state_type = state::reducing_state<T, W>;
  return std::make_shared<incremental_contents<K, T, W, Out, T, state_type>>(
    [reduce](state::keyed_state_backend_base& b) {
      return state_type(b, state::reducing_state_descriptor<T>("window-contents", reduce));
    },
    std::move(process));
}

/// Window contents folded by an aggregate_function.
template <class K, class T, class Acc, class R, class W, class Out>
std::shared_ptr<window_contents<K, T, W, Out>>
make_aggregate_contents(std::shared_ptr<const state::aggregate_function<T, Acc, R>> agg,
                        std::shared_ptr<process_window_function<K, R, Out, W>> process) {
  using state_type = state::aggregating_state<T, Acc, R, W>;
  return std::make_shared<incremental_contents<K, T, W, Out, R, state_type>>(
    [agg](state::keyed_state_backend_base& b) {
      return state_type(b, state::aggregating_state_descriptor<T, Acc, R>("window-contents", agg));
    },
    std::move(process));
}

/// All elements in list state, handed to a process window function.
template <class K, class T, class W, class Out>
class list_contents final : public window_contents<K, T, W, Out> {
public:
  using process_fn = std::shared_ptr<process_window_function<K, T, Out, W>>;
  explicit list_contents(process_fn p) : process_(std::move(p)) {}
  void open(const runtime_context& ctx) override {
    state_ = state::list_state<T, W>(ctx.keyed_backend(),
                                     state::list_state_descriptor<T>("window-contents"));
    process_->open(ctx);
  }
  void close() override { process_->close(); }
  void set_namespace(const W& w) override { state_.set_namespace(w); }
  void add(const T& v) override { state_.add(v); }
  void clear() override { state_.clear(); }
  void merge_namespaces(const std::vector<W>& s) override { state_.merge_namespaces(s); }
  bool emit(const K& key, const window_context<W>& ctx, collector<Out>& out) override {
    auto all = state_.get();
    if (all.empty())
      return false;
    process_->process(key, ctx, all, out);
    return true;
  }
  std::unique_ptr<window_contents<K, T, W, Out>> clone() const override {
    return std::make_unique<list_contents>(process_);
  }

private:
  process_fn process_;
  state::list_state<T, W> state_;
};

/// How a windowed stream is set up; shared by every subtask (each clones
/// the trigger and contents).
template <class K, class T, class W, class Out>
struct window_spec {
  std::shared_ptr<const window_assigner<W>> assigner;
  std::shared_ptr<const trigger<T, W>> trigger_prototype;
  std::shared_ptr<const window_contents<K, T, W, Out>> contents_prototype;
  int64_t allowed_lateness = 0;
  /// Receives elements that were dropped as late (side output), if set.
  std::function<void(const T&, int64_t ts)> late_sink;
};

/// The window operator of one subtask.
template <class K, class T, class W, class Out, class KeySel>
class window_operator final : public keyed_operator<K, T, Out>,
                              private trigger_context<W>,
                              private processing_time_callback {
public:
  window_operator(std::string name, KeySel sel, window_spec<K, T, W, Out> spec)
    : keyed_operator<K, T, Out>(std::move(name)), sel_(std::move(sel)), spec_(std::move(spec)) {}

  void open(const runtime_context& ctx) override {
    const auto& kctx = this->open_keyed_state(ctx);
    element_ = &ctx.element();
    time_ = ctx.time_service();
    trigger_ = spec_.trigger_prototype->clone();
    contents_ = spec_.contents_prototype->clone();
    this->call_user([&] { contents_->open(kctx); });
    if (spec_.assigner->is_merging()) {
      merging_ = state::value_state<std::vector<std::pair<W, W>>>(
        *this->backend_,
        state::value_state_descriptor<std::vector<std::pair<W, W>>>("merging-window-set"));
      if (!trigger_->can_merge())
        throw std::invalid_argument("operator '" + this->name() +
                                    "': the trigger cannot merge, but the windows do (sessions)");
    }
  }
  void close() override {
    if (contents_)
      contents_->close();
    this->close_keyed_state();
  }

  void collect(T&& value) override {
    key_ = sel_(static_cast<const T&>(value));
    this->backend_->set_current_key(key_);
    auto ts = element_->timestamp;
    auto windows =
      this->call_user([&] { return spec_.assigner->assign_windows(ts, processing_now()); });
    bool skipped = true;
    if (spec_.assigner->is_merging()) {
      auto set = load_merging();
      for (auto& w : windows) {
        auto actual = set.add_window(
          w, *spec_.assigner,
          [&](const W& result, const std::vector<W>& merged, const W& state_result,
              const std::vector<W>& merged_states) {
            window_ = result;
            trigger_->on_merge(result, *this);
            for (auto& m : merged) {
              window_ = m;
              trigger_->clear(m, *this);
              delete_cleanup_timer(m);
            }
            contents_->set_namespace(state_result);
            contents_->merge_namespaces(merged_states);
          });
        if (is_window_late(actual)) {
          set.retire_window(actual);
          continue;
        }
        skipped = false;
        auto state_window = set.state_window(actual);
        if (!state_window)
          throw std::logic_error("window without a state window");
        contents_->set_namespace(*state_window);
        contents_->add(value);
        window_ = actual;
        auto r = this->call_user([&] { return trigger_->on_element(value, ts, actual, *this); });
        if (is_fire(r))
          emit(actual);
        if (is_purge(r))
          contents_->clear();
        register_cleanup_timer(actual);
      }
      save_merging(set);
    } else {
      for (auto& w : windows) {
        if (is_window_late(w))
          continue;
        skipped = false;
        contents_->set_namespace(w);
        contents_->add(value);
        window_ = w;
        auto r = this->call_user([&] { return trigger_->on_element(value, ts, w, *this); });
        if (is_fire(r))
          emit(w);
        if (is_purge(r))
          contents_->clear();
        register_cleanup_timer(w);
      }
    }
    if (skipped && is_element_late(ts)) {
      ++late_dropped_;
      if (spec_.late_sink)
        this->call_user([&] { spec_.late_sink(value, ts); });
    }
  }

  /// Elements dropped because they came too late (Flink's
  /// numLateRecordsDropped).
  [[nodiscard]] uint64_t late_records_dropped() const noexcept { return late_dropped_; }

protected:
  void on_watermark(int64_t wm) override {
    timers_.advance_watermark(wm, [&](const typename keyed_timers<K, W>::timer& t) {
      on_timer(t, true);
    });
  }

private:
  void on_processing_time(int64_t now) override {
    timers_.advance_processing_time(now, [&](const typename keyed_timers<K, W>::timer& t) {
      on_timer(t, false);
    });
  }

  void on_timer(const typename keyed_timers<K, W>::timer& t, bool event_time) {
    key_ = t.key;
    this->backend_->set_current_key(key_);
    window_ = t.ns;
    std::optional<merging_window_set<W>> set;
    W state_window = t.ns;
    if (spec_.assigner->is_merging()) {
      set = load_merging();
      auto sw = set->state_window(t.ns);
      if (!sw)
        return; // the window merged away or was cleaned up
      state_window = *sw;
    }
    contents_->set_namespace(state_window);
    auto r = this->call_user([&] {
      return event_time ? trigger_->on_event_time(t.time, t.ns, *this)
                        : trigger_->on_processing_time(t.time, t.ns, *this);
    });
    if (is_fire(r))
      emit(t.ns);
    if (is_purge(r))
      contents_->clear();
    if (spec_.assigner->is_event_time() == event_time && t.time == cleanup_time(t.ns)) {
      contents_->clear();
      trigger_->clear(t.ns, *this);
      if (set) {
        set->retire_window(t.ns);
        save_merging(*set);
      }
    }
  }

  void emit(const W& w) {
    auto saved = element_->timestamp;
    element_->timestamp = w.max_timestamp();
    window_context<W> ctx{w, element_->watermark, processing_now()};
    this->call_user([&] { contents_->emit(key_, ctx, *this->out_); });
    element_->timestamp = saved;
  }

  int64_t cleanup_time(const W& w) const {
    auto t = w.max_timestamp();
    if (!spec_.assigner->is_event_time())
      return t;
    return t > INT64_MAX - spec_.allowed_lateness ? INT64_MAX : t + spec_.allowed_lateness;
  }
  bool is_window_late(const W& w) const {
    return spec_.assigner->is_event_time() && cleanup_time(w) <= element_->watermark;
  }
  bool is_element_late(int64_t ts) const {
    return spec_.assigner->is_event_time() && ts != INT64_MIN &&
           (ts > INT64_MAX - spec_.allowed_lateness ? INT64_MAX : ts + spec_.allowed_lateness) <=
             element_->watermark;
  }
  void register_cleanup_timer(const W& w) {
    auto t = cleanup_time(w);
    if (t == INT64_MAX)
      return; // global windows are never cleaned up
    if (spec_.assigner->is_event_time())
      register_event_time_timer(t);
    else
      register_processing_time_timer(t);
  }
  void delete_cleanup_timer(const W& w) {
    auto t = cleanup_time(w);
    if (t == INT64_MAX)
      return;
    if (spec_.assigner->is_event_time())
      delete_event_time_timer(t);
    else
      delete_processing_time_timer(t);
  }

  merging_window_set<W> load_merging() {
    std::map<W, W> m;
    if (merging_)
      if (auto v = merging_.value())
        for (auto& [a, b] : *v)
          m.emplace(a, b);
    return merging_window_set<W>(std::move(m));
  }
  void save_merging(const merging_window_set<W>& set) {
    if (!merging_)
      return;
    if (set.mapping().empty()) {
      merging_.clear();
      return;
    }
    merging_.update(std::vector<std::pair<W, W>>(set.mapping().begin(), set.mapping().end()));
  }

  int64_t processing_now() const { return time_ != nullptr ? time_->now_ms() : 0; }

  // trigger_context
  int64_t current_watermark() const override { return element_->watermark; }
  int64_t current_processing_time() const override { return processing_now(); }
  void register_event_time_timer(int64_t t) override { timers_.add_event(t, key_, window_); }
  void delete_event_time_timer(int64_t t) override { timers_.remove_event(t, key_, window_); }
  void register_processing_time_timer(int64_t t) override {
    if (time_ != nullptr && timers_.add_processing(t, key_, window_))
      time_->register_timer(t, this);
  }
  void delete_processing_time_timer(int64_t t) override {
    timers_.remove_processing(t, key_, window_);
  }
  state::keyed_state_backend_base& state_backend() override { return *this->backend_; }
  const W& window() const override { return window_; }

  KeySel sel_;
  window_spec<K, T, W, Out> spec_;
  std::unique_ptr<trigger<T, W>> trigger_;
  std::unique_ptr<window_contents<K, T, W, Out>> contents_;
  state::value_state<std::vector<std::pair<W, W>>> merging_;
  keyed_timers<K, W> timers_;
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  K key_{};
  W window_{};
  uint64_t late_dropped_ = 0;
};

} // namespace sluice::runtime
