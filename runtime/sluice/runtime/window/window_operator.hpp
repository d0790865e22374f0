#pragma once

#include "sluice/runtime/process_function.hpp"
#include "sluice/runtime/window/assigners.hpp"
#include "sluice/runtime/window/evictors.hpp"
#include "sluice/runtime/window/merging_window_set.hpp"
#include "sluice/runtime/window/time_window.hpp"
#include "sluice/runtime/window/triggers.hpp"
#include "sluice/state/keyed_state.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <type_traits>
#include <typeinfo>
#include <vector>

/// Keyed windows: Flink's WindowOperator and EvictingWindowOperator.
/// Elements are assigned to windows, kept in keyed state namespaced by
/// window (so every backend and, later, every checkpoint sees them), and
/// emitted when the trigger fires.
namespace sluice::runtime {

/// What a window function knows when it runs.
template <class W>
struct window_context {
  /// The window that fired.
  const W& window;
  /// The operator's event time (its last watermark).
  int64_t current_watermark;
  /// The subtask's clock (nullptr outside a running subtask).
  const processing_time_service* clock = nullptr;

  /// The wall-clock time in milliseconds, read when called.
  [[nodiscard]] int64_t current_processing_time() const {
    return clock != nullptr ? clock->now_ms() : 0;
  }
};

/// Full-window processing (Flink's ProcessWindowFunction): gets every
/// element of the window (or the pre-aggregated result) at once. Each
/// subtask runs its own copy.
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

/// Full-window processing of a non-keyed window (Flink's
/// ProcessAllWindowFunction), for data_stream::window_all. Each subtask (there
/// is one) runs its own copy.
template <class In, class Out, class W = time_window>
class process_all_window_function : public rich_function {
public:
  using input_type = In;
  using output_type = Out;
  using window_type = W;
  virtual void process(const window_context<W>& ctx, const std::vector<In>& elements,
                       collector<Out>& out) = 0;
};

namespace internal {

/// Runs a process_all_window_function as the process_window_function of a
/// window over a constant key (how window_all is built).
template <class K, class Fn>
class all_window_adapter final
  : public process_window_function<K, typename Fn::input_type, typename Fn::output_type,
                                   typename Fn::window_type> {
public:
  using In = typename Fn::input_type;
  using Out = typename Fn::output_type;
  using W = typename Fn::window_type;
  explicit all_window_adapter(Fn fn) : fn_(std::move(fn)) {}
  void open(const runtime_context& ctx) override { fn_.open(ctx); }
  void close() override { fn_.close(); }
  void process(const K&, const window_context<W>& ctx, const std::vector<In>& elements,
               collector<Out>& out) override {
    fn_.process(ctx, elements, out);
  }

private:
  Fn fn_;
};

/// Makes a fresh copy of a process window function for each subtask.
template <class K, class In, class Out, class W>
using process_factory = std::function<std::unique_ptr<process_window_function<K, In, Out, W>>()>;

/// Emits a window's folded result (reduce or aggregate) as it is, or through
/// a process window function with the window's metadata when one is given.
template <class K, class R, class Out, class W>
class result_emitter {
public:
  /// `make` may be empty: then results are emitted as they are.
  explicit result_emitter(process_factory<K, R, Out, W> make) : make_(std::move(make)) {}
  result_emitter(const result_emitter& o) : make_(o.make_) {}

  void open(const runtime_context& ctx) {
    if (make_) {
      process_ = make_();
      process_->open(ctx);
    }
  }
  void close() {
    if (process_)
      process_->close();
  }
  void emit(const K& key, const window_context<W>& ctx, R result, collector<Out>& out) {
    if (process_) {
      std::vector<R> one{std::move(result)};
      process_->process(key, ctx, one, out);
    } else if constexpr (std::is_same_v<R, Out>) {
      out.collect(std::move(result));
    }
  }
  [[nodiscard]] const process_factory<K, R, Out, W>& factory() const noexcept { return make_; }
  /// Whether results go through a process window function.
  [[nodiscard]] bool has_process() const noexcept { return static_cast<bool>(make_); }

private:
  process_factory<K, R, Out, W> make_;
  std::unique_ptr<process_window_function<K, R, Out, W>> process_;
};

/// The accumulator of every window of every key in one keyed state (the
/// storage of a window's reducing or aggregating state), folded in place.
///
/// On the heap backend it works on the backend's cell of the current key
/// directly: a vector of (window, value) entries, one per window the key has
/// in flight. Under a watermark that advances in steps that is hundreds of
/// windows, opened newest last and fired oldest first; the backend's own
/// lookups scan the vector and drop an entry by moving the last one into its
/// place, which makes every new window and every firing cost a scan. Here the
/// entries are kept in "V" order instead: a run of windows in descending
/// order followed by a run in ascending order (W's operator<). The newest
/// window is then at one of the two ends, so the element path finds its
/// window, or learns that it is new, in one or two compares; a new window
/// goes to the end. The first firing that finds its window deep inside the
/// vector turns it into one descending run (linear: reverse the ascending
/// run and merge), after which the windows the watermark passes, oldest
/// first, leave from the end.
///
/// The order is an invariant of this class: every change to these cells goes
/// through it (merge re-sorts after the backend's merge). A restore appends
/// each key's entries in snapshot order (from RocksDB: the byte order of the
/// serialized windows, not V order), so open() has the heap backend sort
/// every cell (sort_descending) at the end of each restore.
///
/// Other backends, and heap state with TTL, go through the value state
/// interface. Owned by one subtask.
template <class W, class Acc>
class window_accumulators {
public:
  /// Declares the state on `b`, whose current key later calls use.
  void open(state::keyed_state_backend_base& b, const state::state_descriptor_base& d,
            state::state_kind kind) {
    idx_ = b.declare<W, Acc>(
      d, kind, state::internal::describe<W>(kind, state::internal::type_label<Acc>()));
    state_ = state::internal::make_value<W, Acc>(b, idx_);
    heap_ = dynamic_cast<state::heap_value_state<W, Acc>*>(state_.get());
    core_ = nullptr;
    if (heap_ != nullptr && !b.states()[idx_].ttl.enabled()) {
      core_ = &state::internal::core_of<state::heap_backend_core>(b);
      core_->register_restore_fixup(idx_, [](state::internal::heap_cell& c) {
        auto* cell = dynamic_cast<cell_type*>(&c);
        if (cell == nullptr)
          throw std::logic_error("window contents: unexpected heap state cell type");
        sort_descending(cell->entries);
      });
    }
  }
  void close() {
    heap_ = nullptr;
    core_ = nullptr;
    state_.reset();
  }
  /// The state's index in the backend.
  [[nodiscard]] uint32_t index() const noexcept { return idx_; }

  /// Folds into window w's accumulator of the current key: fold(Acc&) when
  /// it has one, else stores make(). True when the accumulator is new.
  template <class Fold, class Make>
  bool upsert(const W& w, Fold&& fold, Make&& make) {
    if (core_ != nullptr) {
      auto* c = cell();
      if (c != nullptr) {
        auto i = find(c->entries, w);
        if (i != npos) {
          fold(c->entries[i].second.value);
          return false;
        }
      }
      const size_t at = c != nullptr ? insert_position(c->entries, w) : 0;
      heap_->set_namespace(w);
      heap_->insert(make()); // at the end
      if (c != nullptr && at + 1 < c->entries.size())
        std::rotate(c->entries.begin() + static_cast<std::ptrdiff_t>(at), c->entries.end() - 1,
                    c->entries.end());
      return true;
    }
    state_->set_namespace(w);
    if (const Acc* cur = state_->get()) {
      Acc a = *cur;
      fold(a);
      state_->put(std::move(a));
      return false;
    }
    state_->put(make());
    return true;
  }

  /// Window w's accumulator of the current key, or nullptr; valid until the
  /// next call.
  const Acc* get(const W& w) {
    if (core_ != nullptr) {
      auto* c = cell();
      if (c == nullptr)
        return nullptr;
      auto i = find(c->entries, w);
      return i == npos ? nullptr : &c->entries[i].second.value;
    }
    state_->set_namespace(w);
    return state_->get();
  }

  /// Drops window w's accumulator of the current key.
  void erase(const W& w) {
    if (core_ == nullptr) {
      state_->set_namespace(w);
      state_->clear();
      return;
    }
    auto* c = cell();
    if (c == nullptr)
      return;
    auto& e = c->entries;
    auto i = find(e, w);
    if (i == npos)
      return;
    if (e.size() - 1 - i > deep) {
      sort_descending(e);
      i = find(e, w);
    }
    // Erasing in place keeps both runs in order.
    e.erase(e.begin() + static_cast<std::ptrdiff_t>(i));
    if (e.empty())
      core_->release_if_empty(idx_);
  }

  /// Folds the accumulators of `sources` into `target`'s with `merge`
  /// (merging windows).
  void merge(const W& target, const std::vector<W>& sources,
             const std::function<Acc(const Acc&, const Acc&)>& merge) {
    state_->set_namespace(target);
    state_->merge_namespaces(sources, merge);
    if (core_ != nullptr)
      if (auto* c = cell()) {
        // The backend's merge reorders entries: restore the V order.
        auto newer = [](const auto& a, const auto& b) { return b.first < a.first; };
        std::sort(c->entries.begin(), c->entries.end(), newer);
      }
  }

  /// Puts entries in V order into one descending run, in linear time when
  /// they are in V order already.
  template <class Entries>
  static void sort_descending(Entries& e) {
    auto newer = [](const auto& a, const auto& b) { return b.first < a.first; };
    const size_t n = e.size();
    if (n < 2)
      return;
    // [0, v] descends to the smallest window at v, (v, n) ascends.
    size_t v = n - 1;
    while (v > 0 && e[v - 1].first < e[v].first)
      --v;
    if (!std::is_sorted(e.begin(), e.begin() + static_cast<std::ptrdiff_t>(v + 1), newer)) {
      std::sort(e.begin(), e.end(), newer); // not in V order
      return;
    }
    if (v == n - 1)
      return; // one descending run already
    auto split = e.begin() + static_cast<std::ptrdiff_t>(v + 1);
    if (v == 0 || e[0].first < e[v + 1].first) {
      // The ascending run is newer than the whole descending one (windows
      // opened after the last firing): reverse it all, then the old part.
      std::reverse(e.begin(), e.end());
      std::reverse(e.end() - static_cast<std::ptrdiff_t>(v + 1), e.end());
      return;
    }
    std::reverse(split, e.end());
    std::inplace_merge(e.begin(), split, e.end(), newer);
  }

private:
  using cell_type = state::internal::ns_cell<W, state::internal::stamped<Acc>>;
  using entries_type = decltype(cell_type::entries);
  static constexpr size_t npos = static_cast<size_t>(-1);
  /// An erase with more entries than this behind it sorts them first.
  static constexpr size_t deep = 8;

  cell_type* cell() {
    auto* c = core_->cell(idx_);
    if (c != nullptr && !cell_checked_)
      check_cell(c);
    return static_cast<cell_type*>(c);
  }
  /// The heap backend stores value state in cell_type; check once rather
  /// than trust it blindly.
  void check_cell(state::internal::heap_cell* c) {
    if (dynamic_cast<cell_type*>(c) == nullptr)
      throw std::logic_error("window contents: unexpected heap state cell type");
    cell_checked_ = true;
  }

  /// The index of w in V-ordered entries, or npos: scans the ascending run
  /// from the end and the descending run from the front, each only over
  /// windows newer than w.
  static size_t find(const entries_type& e, const W& w) {
    const size_t n = e.size();
    if (n == 0)
      return npos;
    for (size_t j = n - 1;; --j) {
      const W& x = e[j].first;
      if (x == w)
        return j;
      if (x < w || j == 0 || !(e[j - 1].first < x))
        break;
    }
    for (size_t i = 0; i < n; ++i) {
      const W& x = e[i].first;
      if (x == w)
        return i;
      if (x < w || i + 1 == n || !(e[i + 1].first < x))
        break;
    }
    return npos;
  }

  /// Where a new window w goes to keep V-ordered entries in V order: after
  /// the windows of the ascending run older than it (at the end when it is
  /// the newest), or next to the oldest window when it is older still.
  static size_t insert_position(const entries_type& e, const W& w) {
    size_t j = e.size();
    while (j > 1 && w < e[j - 1].first && e[j - 2].first < e[j - 1].first)
      --j;
    return j;
  }

  uint32_t idx_ = 0;
  std::shared_ptr<state::internal_value_state<W, Acc>> state_;
  state::heap_value_state<W, Acc>* heap_ = nullptr;
  state::heap_backend_core* core_ = nullptr;
  bool cell_checked_ = false;
};

} // namespace internal

/// Window contents kept pane by pane (state::dense_pane_table): for each
/// window, the accumulators of the keys that have one, in arrival order.
/// The window operator's path for tumbling event-time windows with the
/// default trigger and no allowed lateness on the heap backend: records are
/// added without the backend's current key, a window's cleanup timers are
/// implied by its pane (one per key, at its max timestamp, which is also
/// the trigger's timer), and a watermark fires whole panes.
template <class K, class T, class W, class Out>
class window_panes {
public:
  virtual ~window_panes() = default;
  /// Adds *values[i] to window windows[i] of keys[i] (hashes[i] from the
  /// backend's dense_hash).
  virtual void add(const K* keys, const uint32_t* hashes, const W* windows,
                   const T* const* values, size_t n) = 0;
  /// Emits every window whose max timestamp is at most `wm`, oldest first,
  /// each window's keys in arrival order (the order their timers were set),
  /// and drops it. Each result carries the window's max timestamp in
  /// `element`; `enter_key(k)` runs before key k's result is made when a
  /// process window function (which may read keyed state) makes it.
  virtual void fire(int64_t wm, element_context& element, const processing_time_service* clock,
                    collector<Out>& out, const std::function<void(const K&)>& enter_key) = 0;
  /// Calls visit(window, key) for every accumulator held.
  virtual void for_each(const std::function<void(const W&, const K&)>& visit) = 0;
  /// Accumulators held (= implied timers).
  [[nodiscard]] virtual size_t size() const noexcept = 0;
};

/// Where a window operator keeps window contents and how it emits them.
/// Each subtask uses its own clone; all calls concern the backend's current
/// key.
template <class K, class T, class W, class Out>
class window_contents {
public:
  virtual ~window_contents() = default;
  /// After open(): keeps every later element in panes of `b` (see
  /// window_panes) and returns them, or nullptr when these contents cannot
  /// (then nothing changes).
  virtual window_panes<K, T, W, Out>* use_panes(state::heap_keyed_backend<K>& /*b*/) {
    return nullptr;
  }
  /// Declares state on ctx.keyed_backend() and opens user functions.
  virtual void open(const runtime_context& ctx) = 0;
  /// Closes user functions.
  virtual void close() {}
  /// Adds `value` (event timestamp `timestamp`, INT64_MIN if none) to
  /// window w. Returns false only when w certainly held contents before.
  virtual bool add(const W& w, const T& value, int64_t timestamp) = 0;
  /// Drops window w's contents.
  virtual void clear(const W& w) = 0;
  /// Moves the contents of `sources` into `target` (merging windows).
  virtual void merge(const W& target, const std::vector<W>& sources) = 0;
  /// Emits what window w holds through the window function; `ctx` is about
  /// the window that fired (w is its state window). Nothing when w is empty.
  virtual void emit(const W& w, const K& key, const window_context<W>& ctx,
                    collector<Out>& out) = 0;
  /// A fresh, unopened copy for another subtask.
  [[nodiscard]] virtual std::unique_ptr<window_contents> clone() const = 0;
};

/// How a reduce function folds window elements: the accumulator is an
/// element.
template <class T, class F>
struct reduce_ops {
  using acc_type = T;
  using result_type = T;
  /// How the backend records the state.
  static constexpr state::state_kind kind = state::state_kind::reducing;
  /// f(const T&, const T&) -> T.
  F f;
  /// The accumulator of a window's first element.
  T create(const T& v) const { return v; }
  /// Folds `v` into `acc`.
  void add(T& acc, const T& v) const { acc = f(static_cast<const T&>(acc), v); }
  /// Two windows' accumulators as one (merging windows).
  T merge(const T& a, const T& b) const { return f(a, b); }
  /// What the window emits.
  const T& result(const T& acc) const { return acc; }
};

/// How an aggregate_function folds window elements.
template <class In, class Acc, class R>
struct aggregate_ops {
  using acc_type = Acc;
  using result_type = R;
  /// How the backend records the state.
  static constexpr state::state_kind kind = state::state_kind::aggregating;
  /// The aggregation (shared by every subtask: its methods are const).
  std::shared_ptr<const state::aggregate_function<In, Acc, R>> fn;
  /// The accumulator of a window's first element.
  Acc create(const In& v) const {
    Acc a = fn->create_accumulator();
    fn->add(v, a);
    return a;
  }
  /// Folds `v` into `acc`.
  void add(Acc& acc, const In& v) const { fn->add(v, acc); }
  /// Two windows' accumulators as one (merging windows).
  Acc merge(const Acc& a, const Acc& b) const { return fn->merge(a, b); }
  /// What the window emits.
  R result(const Acc& acc) const { return fn->get_result(acc); }
};

/// Incremental contents: one accumulator per window, folded by Ops
/// (reduce_ops or aggregate_ops) as elements arrive, emitted as is or
/// through a process window function with the window's metadata.
template <class K, class T, class W, class Out, class Ops>
class incremental_contents final : public window_contents<K, T, W, Out>,
                                   private window_panes<K, T, W, Out> {
public:
  using acc_type = typename Ops::acc_type;
  using result_type = std::decay_t<typename Ops::result_type>;
  /// Makes the process window function that turns a result into output.
  using make_process = internal::process_factory<K, result_type, Out, W>;

  /// `process` may be empty: then results are emitted as they are.
  incremental_contents(Ops ops, make_process process)
    : ops_(std::move(ops)), emitter_(std::move(process)) {}

  void open(const runtime_context& ctx) override {
    acc_.open(ctx.keyed_backend(), state::value_state_descriptor<acc_type>("window-contents"),
              Ops::kind);
    emitter_.open(ctx);
  }
  void close() override {
    emitter_.close();
    acc_.close();
  }
  bool add(const W& w, const T& v, int64_t) override {
    return acc_.upsert(
      w, [&](acc_type& a) { ops_.add(a, v); }, [&] { return ops_.create(v); });
  }
  void clear(const W& w) override { acc_.erase(w); }
  void merge(const W& target, const std::vector<W>& sources) override {
    const Ops* ops = &ops_;
    acc_.merge(target, sources,
               [ops](const acc_type& a, const acc_type& b) { return ops->merge(a, b); });
  }
  void emit(const W& w, const K& key, const window_context<W>& ctx, collector<Out>& out) override {
    const acc_type* a = acc_.get(w);
    if (a != nullptr)
      emitter_.emit(key, ctx, result_type(ops_.result(*a)), out);
  }
  std::unique_ptr<window_contents<K, T, W, Out>> clone() const override {
    return std::make_unique<incremental_contents>(ops_, emitter_.factory());
  }

  window_panes<K, T, W, Out>* use_panes(state::heap_keyed_backend<K>& b) override {
    if constexpr (std::is_same_v<W, time_window>) {
      panes_ = &b.template dense_panes<W, acc_type>(acc_.index());
      return this;
    } else {
      (void)b;
      return nullptr;
    }
  }

private:
  using pane_table = state::dense_pane_table<K, W, acc_type>;

  // window_panes
  void add(const K* keys, const uint32_t* hashes, const W* windows, const T* const* values,
           size_t n) override {
    // Each record's slot is loaded ahead (a pane's table outgrows the
    // first-level cache), then the folds run.
    constexpr size_t ahead = 16;
    typename pane_table::pane* panes[ahead];
    // Records of one window come in runs: look its pane up once per run.
    typename pane_table::pane* pane = nullptr;
    const W* pane_window = nullptr;
    for (size_t base = 0; base < n; base += ahead) {
      const size_t m = std::min(ahead, n - base);
      for (size_t j = 0; j < m; ++j) {
        const W& w = windows[base + j];
        if (pane_window == nullptr || !(*pane_window == w)) {
          pane = &panes_->pane_of(w);
          pane_window = &w;
        }
        panes[j] = pane;
        pane->prefetch(hashes[base + j]);
      }
      for (size_t j = 0; j < m; ++j) {
        const size_t i = base + j;
        if (acc_type* a = panes[j]->find(keys[i], hashes[i]))
          ops_.add(*a, *values[i]);
        else
          panes_->insert(*panes[j], keys[i], hashes[i], ops_.create(*values[i]));
      }
    }
  }
  void fire(int64_t wm, element_context& element, const processing_time_service* clock,
            collector<Out>& out, const std::function<void(const K&)>& enter_key) override {
    auto& all = panes_->panes();
    const bool keyed = emitter_.has_process();
    for (auto it = all.begin(); it != all.end() && it->first.max_timestamp() <= wm;) {
      const W& w = it->first;
      element.timestamp = w.max_timestamp();
      window_context<W> ctx{w, element.watermark, clock};
      it->second.for_each([&](const K& key, acc_type& a) {
        if (keyed)
          enter_key(key);
        emitter_.emit(key, ctx, result_type(ops_.result(a)), out);
      });
      it = panes_->erase(it);
    }
  }
  void for_each(const std::function<void(const W&, const K&)>& visit) override {
    for (auto& [w, pane] : panes_->panes())
      pane.for_each([&](const K& key, acc_type&) { visit(w, key); });
  }
  size_t size() const noexcept override { return panes_->size(); }

  Ops ops_;
  internal::result_emitter<K, result_type, Out, W> emitter_;
  internal::window_accumulators<W, acc_type> acc_;
  /// The panes, once use_panes switched to them.
  pane_table* panes_ = nullptr;
};

/// What a window does with all its elements when it fires (without
/// incremental aggregation: process windows, and every window with an
/// evictor).
template <class K, class T, class W, class Out>
class elements_function {
public:
  virtual ~elements_function() = default;
  /// Makes and opens this subtask's user function.
  virtual void open(const runtime_context& ctx) = 0;
  /// Closes the user function.
  virtual void close() = 0;
  /// Emits the window's result from `elements` (those left after
  /// evict_before, in arrival order).
  virtual void apply(const K& key, const window_context<W>& ctx, const std::vector<T>& elements,
                     collector<Out>& out) = 0;
  /// A fresh, unopened copy for another subtask.
  [[nodiscard]] virtual std::unique_ptr<elements_function> clone() const = 0;
};

/// Hands the elements to a process window function.
template <class K, class T, class W, class Out>
class process_elements final : public elements_function<K, T, W, Out> {
public:
  /// `make` copies the function for each subtask.
  explicit process_elements(internal::process_factory<K, T, Out, W> make)
    : make_(std::move(make)) {}
  void open(const runtime_context& ctx) override {
    fn_ = make_();
    fn_->open(ctx);
  }
  void close() override {
    if (fn_)
      fn_->close();
  }
  void apply(const K& key, const window_context<W>& ctx, const std::vector<T>& elements,
             collector<Out>& out) override {
    fn_->process(key, ctx, elements, out);
  }
  std::unique_ptr<elements_function<K, T, W, Out>> clone() const override {
    return std::make_unique<process_elements>(make_);
  }

private:
  internal::process_factory<K, T, Out, W> make_;
  std::unique_ptr<process_window_function<K, T, Out, W>> fn_;
};

/// Folds the elements with Ops (reduce_ops or aggregate_ops) when the window
/// fires (Flink's ReduceApplyProcessWindowFunction and
/// AggregateApplyProcessWindowFunction), then emits the result as is or
/// through a process window function. With no elements a reduce emits
/// nothing; an aggregate emits the result of a fresh accumulator, as Flink.
template <class K, class T, class W, class Out, class Ops>
class fold_elements final : public elements_function<K, T, W, Out> {
public:
  using acc_type = typename Ops::acc_type;
  using result_type = std::decay_t<typename Ops::result_type>;
  using make_process = internal::process_factory<K, result_type, Out, W>;

  /// `process` may be empty: then results are emitted as they are.
  fold_elements(Ops ops, make_process process)
    : ops_(std::move(ops)), emitter_(std::move(process)) {}
  void open(const runtime_context& ctx) override { emitter_.open(ctx); }
  void close() override { emitter_.close(); }
  void apply(const K& key, const window_context<W>& ctx, const std::vector<T>& elements,
             collector<Out>& out) override {
    std::optional<acc_type> acc;
    if constexpr (Ops::kind == state::state_kind::aggregating)
      acc = ops_.fn->create_accumulator();
    for (const auto& e : elements) {
      if (acc)
        ops_.add(*acc, e);
      else
        acc = ops_.create(e);
    }
    if (acc)
      emitter_.emit(key, ctx, result_type(ops_.result(*acc)), out);
  }
  std::unique_ptr<elements_function<K, T, W, Out>> clone() const override {
    return std::make_unique<fold_elements>(ops_, emitter_.factory());
  }

private:
  Ops ops_;
  internal::result_emitter<K, result_type, Out, W> emitter_;
};

/// All elements in list state, handed to an elements_function when the
/// window fires.
template <class K, class T, class W, class Out>
class list_contents final : public window_contents<K, T, W, Out> {
public:
  /// `fn` is cloned for each subtask.
  explicit list_contents(std::shared_ptr<const elements_function<K, T, W, Out>> fn)
    : prototype_(std::move(fn)) {}
  void open(const runtime_context& ctx) override {
    state_ = state::list_state<T, W>(ctx.keyed_backend(),
                                     state::list_state_descriptor<T>("window-contents"));
    fn_ = prototype_->clone();
    fn_->open(ctx);
  }
  void close() override {
    if (fn_)
      fn_->close();
  }
  bool add(const W& w, const T& v, int64_t) override {
    state_.set_namespace(w);
    state_.add(v);
    return true;
  }
  void clear(const W& w) override {
    state_.set_namespace(w);
    state_.clear();
  }
  void merge(const W& target, const std::vector<W>& sources) override {
    state_.set_namespace(target);
    state_.merge_namespaces(sources);
  }
  void emit(const W& w, const K& key, const window_context<W>& ctx, collector<Out>& out) override {
    state_.set_namespace(w);
    auto all = state_.get();
    if (all.empty())
      return;
    fn_->apply(key, ctx, all, out);
  }
  std::unique_ptr<window_contents<K, T, W, Out>> clone() const override {
    return std::make_unique<list_contents>(prototype_);
  }

private:
  std::shared_ptr<const elements_function<K, T, W, Out>> prototype_;
  std::unique_ptr<elements_function<K, T, W, Out>> fn_;
  state::list_state<T, W> state_;
};

/// Contents of a window with an evictor (Flink's EvictingWindowOperator):
/// every element with its timestamp in list state, whatever the window
/// function. On a firing: evict_before, the window function on what
/// remains, evict_after, and what remains then is written back.
template <class K, class T, class W, class Out>
class evicting_contents final : public window_contents<K, T, W, Out> {
public:
  /// `ev` and `fn` are cloned for each subtask.
  evicting_contents(std::shared_ptr<const evictor<T, W>> ev,
                    std::shared_ptr<const elements_function<K, T, W, Out>> fn)
    : evictor_prototype_(std::move(ev)), fn_prototype_(std::move(fn)) {}
  void open(const runtime_context& ctx) override {
    state_ = state::list_state<timestamped_value<T>, W>(
      ctx.keyed_backend(), state::list_state_descriptor<timestamped_value<T>>("window-contents"));
    evictor_ = evictor_prototype_->clone();
    fn_ = fn_prototype_->clone();
    fn_->open(ctx);
  }
  void close() override {
    if (fn_)
      fn_->close();
  }
  bool add(const W& w, const T& v, int64_t timestamp) override {
    state_.set_namespace(w);
    state_.add(timestamped_value<T>{v, timestamp});
    return true;
  }
  void clear(const W& w) override {
    state_.set_namespace(w);
    state_.clear();
  }
  void merge(const W& target, const std::vector<W>& sources) override {
    state_.set_namespace(target);
    state_.merge_namespaces(sources);
  }
  void emit(const W& w, const K& key, const window_context<W>& ctx, collector<Out>& out) override {
    state_.set_namespace(w);
    auto elements = state_.get();
    if (elements.empty())
      return;
    evictor_->evict_before(elements, ctx.window, ctx.current_watermark);
    std::vector<T> values;
    values.reserve(elements.size());
    for (const auto& e : elements)
      values.push_back(e.value);
    fn_->apply(key, ctx, values, out);
    evictor_->evict_after(elements, ctx.window, ctx.current_watermark);
    state_.update(std::move(elements)); // an empty list clears the window
  }
  std::unique_ptr<window_contents<K, T, W, Out>> clone() const override {
    return std::make_unique<evicting_contents>(evictor_prototype_, fn_prototype_);
  }

private:
  std::shared_ptr<const evictor<T, W>> evictor_prototype_;
  std::shared_ptr<const elements_function<K, T, W, Out>> fn_prototype_;
  std::unique_ptr<evictor<T, W>> evictor_;
  std::unique_ptr<elements_function<K, T, W, Out>> fn_;
  state::list_state<timestamped_value<T>, W> state_;
};

/// How a windowed stream is set up; shared by every subtask (each clones
/// the trigger and contents).
template <class K, class T, class W, class Out>
struct window_spec {
  std::shared_ptr<const window_assigner<W>> assigner;
  std::shared_ptr<const trigger<T, W>> trigger_prototype;
  std::shared_ptr<const window_contents<K, T, W, Out>> contents_prototype;
  int64_t allowed_lateness = 0;
  /// Receives elements that were dropped as late, if set.
  std::function<void(const T&, int64_t ts)> late_sink;
  /// The side output late elements go to ("" = none), with their timestamp.
  std::string late_tag;
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
    timers_.register_with(*this->backend_);
    heap_backend_ = dynamic_cast<state::heap_keyed_backend<K>*>(this->backend_.get());
    element_ = &ctx.element();
    time_ = ctx.time_service();
    event_time_ = spec_.assigner->is_event_time();
    merging_ = spec_.assigner->is_merging();
    assigner_needs_clock_ = spec_.assigner->needs_processing_time();
    trigger_ = spec_.trigger_prototype->clone();
    // The default trigger of event-time windows: its per-element work is
    // inlined here instead of called through the trigger interface.
    event_trigger_ = dynamic_cast<event_time_trigger<T, W>*>(trigger_.get());
    contents_ = spec_.contents_prototype->clone();
    if (!spec_.late_tag.empty())
      late_output_ = this->side_.find(output_tag<T>(spec_.late_tag));
    this->call_user([&] { contents_->open(kctx); });
    if (merging_) {
      merging_state_ = state::value_state<std::vector<std::pair<W, W>>>(
        *this->backend_,
        state::value_state_descriptor<std::vector<std::pair<W, W>>>("merging-window-set"));
      if (!trigger_->can_merge())
        throw std::invalid_argument("operator '" + this->name() +
                                    "': the trigger cannot merge, but the windows do (sessions)");
    }
    open_panes();
  }
  void close() override {
    if (contents_)
      contents_->close();
    heap_backend_ = nullptr;
    this->close_keyed_state();
  }

  void collect(T&& value) override {
    if (panes_ != nullptr) {
      add_to_panes(&value, &element_->timestamp, 1);
      return;
    }
    collect_one(std::move(value));
  }

  void collect_stamped(T* records, const int64_t* timestamps, size_t n,
                       element_context& element) override {
    if (panes_ == nullptr || n == 0) {
      keyed_operator<K, T, Out>::collect_stamped(records, timestamps, n, element);
      return;
    }
    add_to_panes(records, timestamps, n);
    element.timestamp = timestamps[n - 1];
  }

  /// Elements dropped because they came too late (Flink's
  /// numLateRecordsDropped).
  [[nodiscard]] uint64_t late_records_dropped() const noexcept { return late_dropped_; }

  /// Timers set (for tests and metrics).
  [[nodiscard]] const keyed_timers<K, W>& timers() const noexcept { return timers_; }
  /// Event-time timers set, those that panes imply among them.
  [[nodiscard]] size_t event_timer_count() const noexcept {
    return timers_.event_timers() + (panes_ != nullptr ? panes_->size() : 0);
  }
  /// Whether this subtask keeps its windows in panes (window_panes).
  [[nodiscard]] bool uses_panes() const noexcept { return panes_ != nullptr; }

private:
  /// The element path without panes.
  void collect_one(T&& value) {
    key_ = sel_(static_cast<const T&>(value));
    set_current_key();
    const auto ts = element_->timestamp;
    const int64_t now = assigner_needs_clock_ ? processing_now() : 0;
    // Most elements belong to one window or a few: assign into a buffer the
    // operator keeps (filling a fresh one per element costs more than the
    // rest of the assignment), and allocate only for more.
    std::vector<W> more_windows;
    const W* windows = assigned_;
    size_t n = this->call_user([&] {
      return spec_.assigner->assign_windows_to(ts, now, assigned_, inline_window_capacity);
    });
    if (n > inline_window_capacity) {
      more_windows = this->call_user([&] { return spec_.assigner->assign_windows(ts, now); });
      windows = more_windows.data();
      n = more_windows.size();
    }
    bool skipped = true;
    if (merging_)
      skipped = add_merging(value, ts, windows, n);
    else
      for (size_t i = 0; i < n; ++i) {
        const W& w = windows[i];
        if (is_window_late(w))
          continue;
        skipped = false;
        const bool fresh = this->call_user([&] { return contents_->add(w, value, ts); });
        window_ = w;
        // An accumulator that existed already means the window's cleanup
        // timer is set (it is set with the first element and goes only with
        // the contents), so neither the trigger nor this operator needs to
        // set it again.
        in_element_ = true;
        cleanup_timer_known_ = !fresh && !cleanup_tracking_lost_;
        auto r = event_trigger_ != nullptr
                   ? event_time_trigger<T, W>::on_element_at(
                       w, element_->watermark,
                       [this](int64_t t) { window_operator::register_event_time_timer(t); })
                   : this->call_user([&] { return trigger_->on_element(value, ts, w, *this); });
        if (is_fire(r))
          emit(w, w);
        if (is_purge(r))
          contents_->clear(w);
        if (!cleanup_timer_known_)
          register_cleanup_timer(w);
        in_element_ = false;
        cleanup_timer_known_ = false;
      }
    if (skipped && is_element_late(ts)) {
      ++late_dropped_;
      if (spec_.late_sink)
        this->call_user([&] { spec_.late_sink(value, ts); });
      if (late_output_ != nullptr)
        late_output_->collect(static_cast<const T&>(value));
    }
  }

  /// Switches to panes when the windows allow (see window_panes): tumbling
  /// event-time windows, the default trigger, no allowed lateness, incremental
  /// contents on the heap backend.
  void open_panes() {
    panes_ = nullptr;
    if constexpr (std::is_same_v<W, time_window>) {
      tumbling_ = dynamic_cast<const tumbling_event_time_windows*>(spec_.assigner.get());
      if (tumbling_ == nullptr || heap_backend_ == nullptr || event_trigger_ == nullptr ||
          merging_ || spec_.allowed_lateness != 0)
        return;
      panes_ = this->call_user([&] { return contents_->use_panes(*heap_backend_); });
      if (panes_ == nullptr)
        return;
      enter_key_ = [this](const K& k) {
        key_ = k;
        set_current_key();
      };
      timers_.set_implied_event_timers([this](const auto& visit) {
        panes_->for_each([&](const W& w, const K& k) { visit(w.max_timestamp(), k, w); });
      });
    }
  }

  /// Adds records[i] (timestamp timestamps[i]) to its window's pane; an
  /// element without a timestamp, or late, takes the path without panes
  /// (which fails it, or drops it as late).
  void add_to_panes(const T* records, const int64_t* timestamps, size_t n) {
    constexpr size_t block = 16;
    K keys[block];
    uint32_t hashes[block];
    W windows[block];
    const T* ready[block];
    size_t m = 0;
    auto flush = [&] {
      this->call_user([&] { panes_->add(keys, hashes, windows, ready, m); });
      m = 0;
    };
    for (size_t i = 0; i < n; ++i) {
      const int64_t ts = timestamps[i];
      bool fast = ts != INT64_MIN;
      if (fast) {
        if constexpr (std::is_same_v<W, time_window>) {
          // Event time mostly stays in the last element's window: skip the
          // division then.
          if (ts < recent_window_.start || ts >= recent_window_.end)
            recent_window_ = tumbling_->window_of(ts);
          windows[m] = recent_window_;
          fast = recent_window_.max_timestamp() > element_->watermark;
        }
      }
      if (!fast) {
        if (m > 0)
          flush();
        element_->timestamp = ts;
        collect_one(T(records[i]));
        continue;
      }
      keys[m] = sel_(records[i]);
      hashes[m] = heap_backend_->dense_hash(keys[m]);
      ready[m] = &records[i];
      if (++m == block)
        flush();
    }
    if (m > 0)
      flush();
  }

protected:
  void on_keyed_state_restored() override {
    if (time_ != nullptr)
      timers_.rearm_restored_processing([&](int64_t t) { time_->register_timer(t, this); });
    // A restore sets the timers panes imply as timers: take them back.
    if (panes_ != nullptr)
      panes_->for_each(
        [&](const W& w, const K& k) { timers_.remove_event(w.max_timestamp(), k, w); });
  }

  void on_watermark(int64_t wm) override {
    if (panes_ != nullptr) {
      const auto saved = element_->timestamp;
      this->call_user([&] { panes_->fire(wm, *element_, time_, *this->out_, enter_key_); });
      element_->timestamp = saved;
    }
    timers_.advance_watermark(wm, [&](const typename keyed_timers<K, W>::timer& t) {
      on_timer(t, true);
    });
  }

private:
  static constexpr size_t inline_window_capacity = 8;

  void set_current_key() {
    // The heap backend class is final: this call is direct and inlines.
    if (heap_backend_ != nullptr)
      heap_backend_->set_current_key(key_);
    else
      this->backend_->set_current_key(key_);
  }

  /// The element path of merging assigners (sessions); true when every
  /// window was late.
  bool add_merging(const T& value, int64_t ts, const W* windows, size_t n) {
    bool skipped = true;
    auto set = load_merging();
    for (size_t i = 0; i < n; ++i) {
      auto actual = set.add_window(
        windows[i], *spec_.assigner,
        [&](const W& result, const std::vector<W>& merged, const W& state_result,
            const std::vector<W>& merged_states) {
          window_ = result;
          trigger_->on_merge(result, *this);
          for (auto& m : merged) {
            window_ = m;
            trigger_->clear(m, *this);
            delete_cleanup_timer(m);
          }
          contents_->merge(state_result, merged_states);
        });
      if (is_window_late(actual)) {
        set.retire_window(actual);
        continue;
      }
      skipped = false;
      auto state_window = set.state_window(actual);
      if (!state_window)
        throw std::logic_error("window without a state window");
      this->call_user([&] { contents_->add(*state_window, value, ts); });
      window_ = actual;
      auto r = this->call_user([&] { return trigger_->on_element(value, ts, actual, *this); });
      if (is_fire(r))
        emit(*state_window, actual);
      if (is_purge(r))
        contents_->clear(*state_window);
      register_cleanup_timer(actual);
    }
    save_merging(set);
    return skipped;
  }

  void on_processing_time(int64_t now) override {
    timers_.advance_processing_time(now, [&](const typename keyed_timers<K, W>::timer& t) {
      on_timer(t, false);
    });
  }

  void on_timer(const typename keyed_timers<K, W>::timer& t, bool event_time) {
    key_ = t.key;
    set_current_key();
    window_ = t.ns;
    // The timer left the queue before it fired: deleting it (the trigger's
    // clear does, at cleanup) needs no lookup unless it was set again.
    firing_ = firing_timer{t.time, event_time, false};
    std::optional<merging_window_set<W>> set;
    W state_window = t.ns;
    if (merging_) {
      set = load_merging();
      auto sw = set->state_window(t.ns);
      if (!sw)
        return; // the window merged away or was cleaned up
      state_window = *sw;
    }
    auto r = this->call_user([&] {
      return event_time ? trigger_->on_event_time(t.time, t.ns, *this)
                        : trigger_->on_processing_time(t.time, t.ns, *this);
    });
    if (is_fire(r))
      emit(state_window, t.ns);
    if (is_purge(r))
      contents_->clear(state_window);
    if (event_time_ == event_time && t.time == cleanup_time(t.ns)) {
      if (!is_purge(r))
        contents_->clear(state_window);
      // The trigger deletes its timers here, the cleanup timer among them
      // when they coincide; that goes with the contents, so it does not
      // break what cleanup_timer_known_ relies on.
      clearing_window_ = true;
      this->call_user([&] { trigger_->clear(t.ns, *this); });
      clearing_window_ = false;
      if (set) {
        set->retire_window(t.ns);
        save_merging(*set);
      }
    }
    firing_.reset();
  }

  /// Whether timer (t, key_, window_) in the domain is the one firing and
  /// is not set again (so it is not in the queue); notes a new setting.
  bool is_unset_firing_timer(int64_t t, bool event_time) const {
    return firing_ && firing_->time == t && firing_->event_time == event_time &&
           !firing_->set_again;
  }
  void note_timer_set(int64_t t, bool event_time) {
    if (firing_ && firing_->time == t && firing_->event_time == event_time)
      firing_->set_again = true;
  }
  void note_timer_deleted(int64_t t, bool event_time) {
    if (firing_ && firing_->time == t && firing_->event_time == event_time)
      firing_->set_again = false;
  }

  /// Emits state window `state_window`'s contents for window `w`.
  void emit(const W& state_window, const W& w) {
    auto saved = element_->timestamp;
    element_->timestamp = w.max_timestamp();
    window_context<W> ctx{w, element_->watermark, time_};
    this->call_user([&] { contents_->emit(state_window, key_, ctx, *this->out_); });
    element_->timestamp = saved;
  }

  int64_t cleanup_time(const W& w) const {
    auto t = w.max_timestamp();
    if (!event_time_)
      return t;
    return t > INT64_MAX - spec_.allowed_lateness ? INT64_MAX : t + spec_.allowed_lateness;
  }
  bool is_window_late(const W& w) const {
    return event_time_ && cleanup_time(w) <= element_->watermark;
  }
  bool is_element_late(int64_t ts) const {
    return event_time_ && ts != INT64_MIN &&
           (ts > INT64_MAX - spec_.allowed_lateness ? INT64_MAX : ts + spec_.allowed_lateness) <=
             element_->watermark;
  }
  void register_cleanup_timer(const W& w) {
    auto t = cleanup_time(w);
    if (t == INT64_MAX)
      return; // global windows are never cleaned up
    if (event_time_)
      timers_.add_event(t, key_, w);
    else if (time_ != nullptr && timers_.add_processing(t, key_, w))
      time_->register_timer(t, this);
  }
  void delete_cleanup_timer(const W& w) {
    auto t = cleanup_time(w);
    if (t == INT64_MAX)
      return;
    if (event_time_)
      timers_.remove_event(t, key_, w);
    else
      timers_.remove_processing(t, key_, w);
  }
  /// Whether timer (t, current key, current window) in the given domain is
  /// the window's cleanup timer.
  bool is_cleanup_timer(int64_t t, bool event_time) const {
    return event_time == event_time_ && t == cleanup_time(window_) && t != INT64_MAX;
  }

  merging_window_set<W> load_merging() {
    std::map<W, W> m;
    if (merging_state_)
      if (auto v = merging_state_.value())
        for (auto& [a, b] : *v)
          m.emplace(a, b);
    return merging_window_set<W>(std::move(m));
  }
  void save_merging(const merging_window_set<W>& set) {
    if (!merging_state_)
      return;
    if (set.mapping().empty()) {
      merging_state_.clear();
      return;
    }
    merging_state_.update(
      std::vector<std::pair<W, W>>(set.mapping().begin(), set.mapping().end()));
  }

  int64_t processing_now() const { return time_ != nullptr ? time_->now_ms() : 0; }

  // trigger_context
  int64_t current_watermark() const override { return element_->watermark; }
  int64_t current_processing_time() const override { return processing_now(); }
  void register_event_time_timer(int64_t t) override {
    if (in_element_ && is_cleanup_timer(t, true)) {
      if (!cleanup_timer_known_)
        timers_.add_event(t, key_, window_);
      cleanup_timer_known_ = true;
      return;
    }
    note_timer_set(t, true);
    timers_.add_event(t, key_, window_);
  }
  void delete_event_time_timer(int64_t t) override {
    if (!clearing_window_ && is_cleanup_timer(t, true))
      lose_cleanup_tracking();
    if (is_unset_firing_timer(t, true))
      return;
    note_timer_deleted(t, true);
    timers_.remove_event(t, key_, window_);
  }
  void register_processing_time_timer(int64_t t) override {
    if (in_element_ && is_cleanup_timer(t, false)) {
      if (!cleanup_timer_known_ && time_ != nullptr && timers_.add_processing(t, key_, window_))
        time_->register_timer(t, this);
      cleanup_timer_known_ = time_ != nullptr;
      return;
    }
    if (time_ == nullptr)
      return;
    note_timer_set(t, false);
    if (timers_.add_processing(t, key_, window_))
      time_->register_timer(t, this);
  }
  void delete_processing_time_timer(int64_t t) override {
    if (!clearing_window_ && is_cleanup_timer(t, false))
      lose_cleanup_tracking();
    if (is_unset_firing_timer(t, false))
      return;
    note_timer_deleted(t, false);
    timers_.remove_processing(t, key_, window_);
  }
  void lose_cleanup_tracking() {
    cleanup_tracking_lost_ = true;
    cleanup_timer_known_ = false;
  }
  state::keyed_state_backend_base& state_backend() override { return *this->backend_; }
  const W& window() const override { return window_; }

  KeySel sel_;
  window_spec<K, T, W, Out> spec_;
  std::unique_ptr<trigger<T, W>> trigger_;
  /// trigger_, when it is the default event-time trigger.
  event_time_trigger<T, W>* event_trigger_ = nullptr;
  std::unique_ptr<window_contents<K, T, W, Out>> contents_;
  /// The windows of the element being added.
  W assigned_[inline_window_capacity];
  state::value_state<std::vector<std::pair<W, W>>> merging_state_;
  keyed_timers<K, W> timers_;
  state::heap_keyed_backend<K>* heap_backend_ = nullptr;
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  K key_{};
  W window_{};
  bool event_time_ = true;
  bool merging_ = false;
  bool assigner_needs_clock_ = true;
  /// An element is being added to window_ (outside merging).
  bool in_element_ = false;
  /// While an element is added: its window's cleanup timer is certainly set.
  bool cleanup_timer_known_ = false;
  /// A trigger deleted a cleanup timer while its window kept its contents,
  /// so "contents exist" no longer implies "cleanup timer set" for this
  /// operator: register it with every element from now on.
  bool cleanup_tracking_lost_ = false;
  /// The cleanup of a window is running (its trigger is clearing).
  bool clearing_window_ = false;
  /// The timer on_timer is firing (for key_ and window_), and whether it
  /// was set again since it left the queue.
  struct firing_timer {
    int64_t time;
    bool event_time;
    bool set_again;
  };
  std::optional<firing_timer> firing_;
  uint64_t late_dropped_ = 0;
  /// The late-data side output's collector (null: nobody reads it).
  collector<T>* late_output_ = nullptr;
  /// The contents' panes, when this subtask uses them (open_panes).
  window_panes<K, T, W, Out>* panes_ = nullptr;
  /// The assigner, when it is tumbling event-time windows.
  const tumbling_event_time_windows* tumbling_ = nullptr;
  /// The window of the last element added to panes (empty at first).
  W recent_window_{};
  /// Makes a key current for a process window function reading state.
  std::function<void(const K&)> enter_key_;
};

} // namespace sluice::runtime
