#pragma once

#include "sluice/runtime/operators.hpp"
#include "sluice/runtime/time/timer_service.hpp"
#include "sluice/runtime/time/watermarks.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

/// Event time in operators: the timestamp/watermark assigner, keyed timers,
/// and keyed process functions (Flink's KeyedProcessFunction).
namespace sluice::runtime {

/// Timers per (key, namespace) in two time domains: one per distinct
/// (time, key, namespace), fired in time order (timers of equal time in the
/// order they were set), deletable. Owned by one keyed operator subtask and
/// used from its thread only.
///
/// Layout: per domain, an ordered map from time to a bucket of that time's
/// timers, in insertion order, with a small hash index over (key,
/// namespace). Operators set many timers of few distinct times (a window's
/// end, for every key), so the bucket of the last time used answers most
/// calls without a map lookup, and setting a timer that exists costs one
/// hash probe.
template <class K, class N = state::void_namespace>
class keyed_timers {
public:
  /// One timer: fires at `time` for `key` in namespace `ns`.
  struct timer {
    int64_t time;
    K key;
    N ns;
  };

  /// The names the queues register under with a keyed state backend (one
  /// backend per operator subtask, so the names need no operator prefix).
  static constexpr const char* event_queue_name = "_timer_state/event";
  static constexpr const char* processing_queue_name = "_timer_state/processing";

  keyed_timers() = default;
  // The queues cache pointers into their own maps; the snapshot views
  // point at this object.
  keyed_timers(const keyed_timers&) = delete;
  keyed_timers& operator=(const keyed_timers&) = delete;

  /// Registers both queues with `backend` (event_queue_name,
  /// processing_queue_name), so its snapshot() carries every timer in the
  /// key group of the timer's key and its restore() gives them back here.
  /// Call before restore(); this object must outlive the backend's use.
  void register_with(state::keyed_state_backend<K>& backend) {
    backend.register_timer_queue(event_queue_name, event_view_);
    backend.register_timer_queue(processing_queue_name, processing_view_);
  }

  /// Calls fn(domain, time, key, ns) for every timer set: per domain in
  /// time order, same-time timers in the order they were set.
  template <class F>
  void for_each_timer(F&& fn) const {
    event_.for_each([&](int64_t t, const K& k, const N& ns) {
      fn(time_domain::event_time, t, k, ns);
    });
    processing_.for_each([&](int64_t t, const K& k, const N& ns) {
      fn(time_domain::processing_time, t, k, ns);
    });
  }

  /// Sets a timer restored from a snapshot (nothing if it is set already).
  /// Restored processing-time timers wait for rearm_restored_processing.
  void add_restored(time_domain d, int64_t t, const K& k, const N& ns) {
    if (d == time_domain::event_time) {
      event_.add(t, k, ns);
    } else {
      processing_.add(t, k, ns);
      rearm_pending_ = true;
    }
  }

  /// Whether processing-time timers were restored and not re-armed yet.
  [[nodiscard]] bool rearm_pending() const noexcept { return rearm_pending_; }

  /// After a restore: calls arm(t) once for every distinct time of a
  /// processing-time timer, so the owner registers each with its subtask's
  /// processing_time_service (as add_processing asks for new times).
  /// Nothing when no processing-time timer was restored since the last call.
  template <class F>
  void rearm_restored_processing(F&& arm) {
    if (!rearm_pending_)
      return;
    rearm_pending_ = false;
    processing_.for_each_time(arm);
  }

  /// Sets an event-time timer (nothing if it is set already).
  void add_event(int64_t t, const K& k, const N& ns) { event_.add(t, k, ns); }
  /// Deletes an event-time timer (nothing if it is not set).
  void remove_event(int64_t t, const K& k, const N& ns) { event_.remove(t, k, ns); }
  /// Sets a processing-time timer; true when it is the only one at `t`, so
  /// the caller must arm its clock for `t` (a timer joining others of the
  /// same time fires with them).
  bool add_processing(int64_t t, const K& k, const N& ns) {
    return processing_.add(t, k, ns) == add_result::new_time;
  }
  /// Deletes a processing-time timer (nothing if it is not set).
  void remove_processing(int64_t t, const K& k, const N& ns) { processing_.remove(t, k, ns); }

  /// Fires, in time order, every event-time timer at or before `wm`. A timer
  /// is deleted before it fires; `fire` may set and delete timers, and those
  /// it sets at or before `wm` fire in this call too.
  template <class F>
  void advance_watermark(int64_t wm, F&& fire) {
    event_.advance(wm, fire);
  }
  /// Fires, in time order, every processing-time timer at or before `now`.
  template <class F>
  void advance_processing_time(int64_t now, F&& fire) {
    processing_.advance(now, fire);
  }
  /// Calls visit(time, key, ns) for each of the owner's implied timers.
  using implied_timers =
    std::function<void(const std::function<void(int64_t, const K&, const N&)>& visit)>;
  /// Event-time timers the owner keeps implicitly instead of in this queue
  /// (a window operator's panes imply one per window and key): snapshots
  /// carry them as if they were set here. A restore sets them here; the
  /// owner takes back those it implies.
  void set_implied_event_timers(implied_timers fn) { implied_ = std::move(fn); }

  /// Event-time timers set (without implied ones).
  [[nodiscard]] size_t event_timers() const noexcept { return event_.size(); }
  /// Processing-time timers set.
  [[nodiscard]] size_t processing_timers() const noexcept { return processing_.size(); }

private:
  enum class add_result { existed, added, new_time };

  template <class T, class = void>
  struct has_key_hash : std::false_type {};
  template <class T>
  struct has_key_hash<T, std::void_t<decltype(state::key_hash<T>{}(std::declval<const T&>()))>>
    : std::true_type {};

  /// The timers of one time domain.
  class queue {
  public:
    queue() = default;
    queue(const queue&) = delete;
    queue& operator=(const queue&) = delete;

    [[nodiscard]] size_t size() const noexcept { return size_; }

    /// Calls fn(time, key, ns) for every live timer, in firing order.
    template <class F>
    void for_each(F&& fn) const {
      for (const auto& [t, b] : buckets_)
        for (size_t i = b.next; i < b.entries.size(); ++i)
          if (b.entries[i].live)
            fn(t, b.entries[i].key, b.entries[i].ns);
    }
    /// Calls fn(time) for every time with a live timer, in order.
    template <class F>
    void for_each_time(F& fn) const {
      for (const auto& [t, b] : buckets_)
        if (b.live > 0)
          fn(t);
    }

    add_result add(int64_t t, const K& k, const N& ns) {
      bool new_time = false;
      bucket& b = bucket_at(t, &new_time);
      const uint32_t h = hash_of(k);
      if (!new_time && find(b, k, ns, h) != npos)
        return add_result::existed;
      if ((b.indexed + 1) * 2 > b.index.size() || b.entries.size() >= 2 * b.live + 16)
        rebuild(b, b.live + 1);
      b.entries.push_back(entry{k, ns, h, true});
      index_insert(b, b.entries.size() - 1);
      ++b.indexed;
      ++b.live;
      ++size_;
      return new_time ? add_result::new_time : add_result::added;
    }

    void remove(int64_t t, const K& k, const N& ns) {
      auto* b = existing_bucket_at(t);
      if (b == nullptr)
        return;
      auto pos = find(*b, k, ns, hash_of(k));
      if (pos == npos)
        return;
      kill(*b, pos);
      if (b->live == 0)
        erase_bucket(t);
    }

    template <class F>
    void advance(int64_t until, F& fire) {
      // The map is re-read after every timer: `fire` may add a bucket
      // before this one, or delete this one.
      while (!buckets_.empty()) {
        auto it = buckets_.begin();
        if (it->first > until)
          return;
        bucket& b = it->second;
        // Deleting a timer of this time during the firing finds it here.
        cached_time_ = it->first;
        cached_ = &b;
        while (b.next < b.entries.size() && !b.entries[b.next].live)
          ++b.next;
        if (b.next == b.entries.size()) {
          last_fired_size_ = b.entries.size();
          erase_bucket(it->first);
          continue;
        }
        const size_t pos = b.next++;
        kill(b, pos);
        auto& e = b.entries[pos];
        // The entry is dead: its key and namespace may move out.
        timer fired{it->first, std::move(e.key), std::move(e.ns)};
        fire(static_cast<const timer&>(fired));
      }
    }

  private:
    static constexpr size_t npos = static_cast<size_t>(-1);

    struct entry {
      K key;
      N ns;
      uint32_t hash;
      bool live;
    };
    /// The timers of one time, in insertion order. Entries before `next`
    /// are dead (fired or deleted); deleted ones after it stay until the
    /// bucket is rebuilt. `index` holds position + 1 of `indexed` entries
    /// (0: empty slot), open addressing with linear probing, at most half
    /// full; entries that died since the last rebuild stay in it and are
    /// skipped by lookups.
    struct bucket {
      std::vector<entry> entries;
      std::vector<uint32_t> index;
      size_t next = 0;
      size_t live = 0;
      size_t indexed = 0;
    };

    static uint32_t hash_of(const K& k) {
      // The key's stable hash where it has one (every key of a keyed
      // stream does), else std::hash; spread by a multiplication, as the
      // index uses the low bits.
      uint64_t x;
      if constexpr (has_key_hash<K>::value)
        x = static_cast<uint32_t>(state::key_hash<K>{}(k));
      else
        x = std::hash<K>{}(k);
      x ^= x >> 32;
      return static_cast<uint32_t>((x * 0x9e3779b97f4a7c15ull) >> 32);
    }

    bucket& bucket_at(int64_t t, bool* created) {
      if (cached_ != nullptr && cached_time_ == t)
        return *cached_;
      auto it = buckets_.lower_bound(t);
      if (it == buckets_.end() || it->first != t) {
        it = buckets_.emplace_hint(it, t, bucket{});
        *created = true;
        // Times usually get as many timers as the last one that fired
        // (a window end for every key): size for that up front.
        if (last_fired_size_ > 0)
          rebuild(it->second, last_fired_size_);
      }
      cached_time_ = t;
      cached_ = &it->second;
      return it->second;
    }

    bucket* existing_bucket_at(int64_t t) {
      if (cached_ != nullptr && cached_time_ == t)
        return cached_;
      auto it = buckets_.find(t);
      if (it == buckets_.end())
        return nullptr;
      cached_time_ = t;
      cached_ = &it->second;
      return &it->second;
    }

    void erase_bucket(int64_t t) {
      if (cached_ != nullptr && cached_time_ == t)
        cached_ = nullptr;
      buckets_.erase(t);
    }

    static size_t find(const bucket& b, const K& k, const N& ns, uint32_t h) {
      if (b.live == 0)
        return npos;
      const size_t mask = b.index.size() - 1;
      for (size_t i = h & mask; b.index[i] != 0; i = (i + 1) & mask) {
        const auto pos = static_cast<size_t>(b.index[i] - 1);
        const auto& e = b.entries[pos];
        if (e.hash == h && e.live && e.key == k && e.ns == ns)
          return pos;
      }
      return npos;
    }

    static void index_insert(bucket& b, size_t pos) {
      const size_t mask = b.index.size() - 1;
      size_t i = b.entries[pos].hash & mask;
      while (b.index[i] != 0)
        i = (i + 1) & mask;
      b.index[i] = static_cast<uint32_t>(pos + 1);
    }

    /// Marks entry `pos` dead (its index slot stays until the next rebuild).
    void kill(bucket& b, size_t pos) {
      b.entries[pos].live = false;
      --b.live;
      --size_;
    }

    /// Drops dead entries (every entry before `next` is dead, so `next`
    /// becomes 0) and indexes the rest in an index sized for `live`.
    static void rebuild(bucket& b, size_t live) {
      b.entries.reserve(live);
      if (b.live != b.entries.size()) {
        b.entries.erase(std::remove_if(b.entries.begin(), b.entries.end(),
                                       [](const entry& e) { return !e.live; }),
                        b.entries.end());
        b.next = 0;
      }
      size_t cap = 8;
      while (cap < 2 * live)
        cap *= 2;
      b.index.assign(cap, 0);
      for (size_t pos = 0; pos < b.entries.size(); ++pos)
        index_insert(b, pos);
      b.indexed = b.entries.size();
    }

    std::map<int64_t, bucket> buckets_;
    /// The bucket the last call used (nullptr when unknown).
    bucket* cached_ = nullptr;
    int64_t cached_time_ = 0;
    size_t size_ = 0;
    /// Entries of the last bucket that fired out.
    size_t last_fired_size_ = 0;
  };

  /// One queue as the keyed state backend snapshots and restores it.
  class snapshot_view final : public state::keyed_timer_queue<K> {
  public:
    snapshot_view(keyed_timers& owner, time_domain d) : owner_(owner), domain_(d) {}
    std::string timer_namespace_type() const override {
      return state::internal::serial_type_name<N>();
    }
    void for_each_snapshot_timer(
      const std::function<void(int64_t, const K&, std::string_view)>& fn) override {
      if constexpr (state::is_serializable_v<N>) {
        std::string ns;
        auto& q = domain_ == time_domain::event_time ? owner_.event_ : owner_.processing_;
        auto visit = [&](int64_t t, const K& k, const N& n) {
          ns.clear();
          state::serialize_into(ns, n);
          fn(t, k, ns);
        };
        q.for_each(visit);
        if (domain_ == time_domain::event_time && owner_.implied_)
          owner_.implied_(visit);
      } else {
        (void)fn;
        throw state::state_error("timers cannot be snapshotted: their namespace has no serializer");
      }
    }
    void restore_timer(int64_t time, const K& key, std::string_view ns) override {
      if constexpr (state::is_serializable_v<N>) {
        owner_.add_restored(domain_, time, key, state::deserialize<N>(ns));
      } else {
        (void)time, (void)key, (void)ns;
        throw state::state_error("timers cannot be restored: their namespace has no serializer");
      }
    }

  private:
    keyed_timers& owner_;
    time_domain domain_;
  };

  queue event_;
  queue processing_;
  snapshot_view event_view_{*this, time_domain::event_time};
  snapshot_view processing_view_{*this, time_domain::processing_time};
  implied_timers implied_;
  bool rearm_pending_ = false;
};

/// A keyed process function: per-record logic with keyed state and timers.
/// Derive, override process_element (and on_timer), and pass an instance to
/// keyed_stream::process; each subtask gets its own copy.
template <class K, class In, class Out>
class keyed_process_function : public rich_function {
public:
  using key_type = K;
  using input_type = In;
  using output_type = Out;

  /// What a call knows: the record's timestamp, the key, timers.
  class context {
  public:
    virtual ~context() = default;
    /// The record's (or firing timer's) timestamp; nothing for records
    /// without one.
    [[nodiscard]] virtual std::optional<int64_t> timestamp() const = 0;
    [[nodiscard]] virtual const K& current_key() const = 0;
    virtual runtime::timer_service& timer_service() = 0;
    /// In on_timer: which clock fired.
    [[nodiscard]] virtual runtime::time_domain time_domain() const = 0;
    /// Emits `value` to side output `tag` (with the current timestamp).
    template <class T>
    void output(const output_tag<T>& tag, T value) {
      side().emit(tag, std::move(value));
    }

  protected:
    virtual side_outputs& side() = 0;
  };

  virtual void process_element(const In& value, context& ctx, collector<Out>& out) = 0;
  virtual void on_timer(int64_t /*timestamp*/, context& /*ctx*/, collector<Out>& /*out*/) {}

  /// Work for one key that comes back from elsewhere (an async call's
  /// result): runs with that key current, as a timer of the key fires.
  using keyed_action = std::function<void(context&, collector<Out>&)>;
  /// Where a function posts keyed actions, from any thread (thread-safe).
  /// Each runs later on the subtask's thread, between records; actions
  /// posted after the subtask ended are dropped without running.
  class keyed_mailbox {
  public:
    virtual ~keyed_mailbox() = default;
    virtual void post(K key, keyed_action action) = 0;
  };
  /// From open() on, when a subtask runs the function: its keyed mailbox
  /// (null otherwise). Callbacks may keep the shared_ptr.
  [[nodiscard]] const std::shared_ptr<keyed_mailbox>& keyed_actions() const noexcept {
    return mailbox_;
  }
  /// Set by the operator that runs the function, before open().
  void set_keyed_mailbox(std::shared_ptr<keyed_mailbox> m) noexcept { mailbox_ = std::move(m); }

private:
  std::shared_ptr<keyed_mailbox> mailbox_;
};

namespace internal {
/// A function whose records may carry no key (the broadcast side of a keyed
/// broadcast operator) says so with a static is_keyless(const In&).
template <class F, class In, class = void>
struct has_keyless : std::false_type {};
template <class F, class In>
struct has_keyless<F, In, std::void_t<decltype(F::is_keyless(std::declval<const In&>()))>>
  : std::true_type {};

template <class F, class = void>
struct is_keyed_process_function : std::false_type {};
template <class F>
struct is_keyed_process_function<
  F, std::enable_if_t<std::is_base_of_v<
       keyed_process_function<typename F::key_type, typename F::input_type,
                              typename F::output_type>,
       F>>> : std::true_type {};
} // namespace internal

/// Runs a keyed_process_function: sets the key, keeps its timers, fires
/// them on watermarks and on processing time.
template <class K, class In, class Out, class KeySel, class Fn>
class keyed_process_function_operator final
  : public keyed_operator<K, In, Out>,
    private keyed_process_function<K, In, Out>::context,
    private timer_service,
    private processing_time_callback {
public:
  keyed_process_function_operator(std::string name, KeySel sel, Fn fn)
    : keyed_operator<K, In, Out>(std::move(name)), sel_(std::move(sel)), fn_(std::move(fn)) {}

  void open(const runtime_context& ctx) override {
    const auto& kctx = this->open_keyed_state(ctx);
    timers_.register_with(*this->backend_);
    element_ = &ctx.element();
    time_ = ctx.time_service();
    if constexpr (std::is_base_of_v<keyed_process_function<K, In, Out>, Fn>) {
      if (ctx.mailbox())
        fn_.set_keyed_mailbox(std::make_shared<mailbox>(ctx.mailbox(), this));
    }
    this->call_user([&] { fn_.open(kctx); });
  }
  void close() override {
    fn_.close();
    this->close_keyed_state();
  }
  void collect(In&& value) override {
    domain_ = runtime::time_domain::event_time;
    if constexpr (internal::has_keyless<Fn, In>::value) {
      if (Fn::is_keyless(value)) {
        this->call_user([&] { fn_.process_element(value, *this, *this->out_); });
        return;
      }
    }
    key_ = sel_(static_cast<const In&>(value));
    this->backend_->set_current_key(key_);
    this->call_user([&] { fn_.process_element(value, *this, *this->out_); });
  }

  /// Timers registered (for tests and metrics).
  [[nodiscard]] const keyed_timers<K>& timers() const noexcept { return timers_; }

protected:
  void on_keyed_state_restored() override {
    if (time_ != nullptr)
      timers_.rearm_restored_processing([&](int64_t t) { time_->register_timer(t, this); });
  }

  void on_watermark(int64_t wm) override {
    timers_.advance_watermark(wm, [&](const typename keyed_timers<K>::timer& t) {
      fire(t, runtime::time_domain::event_time, t.time);
    });
  }

private:
  void on_processing_time(int64_t now) override {
    timers_.advance_processing_time(now, [&](const typename keyed_timers<K>::timer& t) {
      fire(t, runtime::time_domain::processing_time, INT64_MIN);
    });
  }

  using keyed_action = typename keyed_process_function<K, In, Out>::keyed_action;

  /// Posts keyed actions through the subtask's mailbox. Only `exec_` is
  /// touched off the subtask's thread; `op_` is used when an action runs,
  /// and actions run only while the subtask (and so this operator) does.
  class mailbox final : public keyed_process_function<K, In, Out>::keyed_mailbox {
  public:
    mailbox(std::shared_ptr<mailbox_executor> exec, keyed_process_function_operator* op)
      : exec_(std::move(exec)), op_(op) {}
    void post(K key, keyed_action action) override {
      exec_->execute([op = op_, key = std::move(key), action = std::move(action)] {
        op->run_keyed(key, action);
      });
    }

  private:
    std::shared_ptr<mailbox_executor> exec_;
    keyed_process_function_operator* op_;
  };

  void run_keyed(const K& key, const keyed_action& action) {
    key_ = key;
    this->backend_->set_current_key(key_);
    domain_ = runtime::time_domain::processing_time;
    auto saved = element_->timestamp;
    element_->timestamp = INT64_MIN;
    this->call_user([&] { action(*this, *this->out_); });
    element_->timestamp = saved;
  }

  void fire(const typename keyed_timers<K>::timer& t, runtime::time_domain d, int64_t out_ts) {
    key_ = t.key;
    this->backend_->set_current_key(key_);
    domain_ = d;
    auto saved = element_->timestamp;
    element_->timestamp = out_ts;
    this->call_user([&] { fn_.on_timer(t.time, *this, *this->out_); });
    element_->timestamp = saved;
  }

  // context
  std::optional<int64_t> timestamp() const override {
    if (element_->timestamp == INT64_MIN)
      return std::nullopt;
    return element_->timestamp;
  }
  const K& current_key() const override { return key_; }
  runtime::timer_service& timer_service() override { return *this; }
  runtime::time_domain time_domain() const override { return domain_; }
  side_outputs& side() override { return this->side_; }

  // timer_service
  int64_t current_processing_time() const override {
    return time_ != nullptr ? time_->now_ms() : 0;
  }
  int64_t current_watermark() const override { return element_->watermark; }
  void register_event_time_timer(int64_t t) override { timers_.add_event(t, key_, {}); }
  void delete_event_time_timer(int64_t t) override { timers_.remove_event(t, key_, {}); }
  void register_processing_time_timer(int64_t t) override {
    if (time_ == nullptr)
      throw std::logic_error("processing-time timers need a running subtask");
    if (timers_.add_processing(t, key_, {}))
      time_->register_timer(t, this);
  }
  void delete_processing_time_timer(int64_t t) override { timers_.remove_processing(t, key_, {}); }

  KeySel sel_;
  Fn fn_;
  K key_{};
  runtime::time_domain domain_ = runtime::time_domain::event_time;
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  keyed_timers<K> timers_;
};

/// Assigns timestamps and generates watermarks (Flink's
/// assignTimestampsAndWatermarks): watermarks from upstream are dropped,
/// except the final maximum one.
template <class T>
class timestamps_and_watermarks_operator final : public one_input_operator<T, T>,
                                                 private watermark_output,
                                                 private processing_time_callback {
public:
  timestamps_and_watermarks_operator(std::string name, watermark_strategy<T> strategy,
                                     std::chrono::milliseconds interval)
    : one_input_operator<T, T>(std::move(name)), strategy_(std::move(strategy)),
      interval_(interval.count()) {}

  void open(const runtime_context& ctx) override {
    element_ = &ctx.element();
    time_ = ctx.time_service();
    auto* time = time_;
    generator_ = this->call_user([&] {
      return strategy_.create_generator([time] {
        if (time != nullptr)
          return time->now_ms();
        using namespace std::chrono;
        return static_cast<int64_t>(
          duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
      });
    });
    if (time_ != nullptr && interval_ > 0)
      time_->register_timer(time_->now_ms() + interval_, this);
  }

  void collect(T&& value) override {
    auto previous = element_->timestamp;
    auto ts = this->call_user(
      [&] { return strategy_.assign_timestamp(static_cast<const T&>(value), previous); });
    element_->timestamp = ts;
    // As in Flink, the record goes out before any watermark its event
    // produces: hold such a watermark until the record is forwarded.
    deferring_ = true;
    this->call_user([&] { generator_->on_event(value, ts, *this); });
    deferring_ = false;
    this->out_->collect(std::move(value));
    element_->timestamp = previous;
    if (deferred_ > current_)
      emit_watermark(deferred_);
  }

  /// A block at a time: the records go on as stamped blocks, each cut
  /// after a record whose event produced a watermark (the record first, as
  /// one by one).
  void collect_batch(T* records, size_t n) override {
    const int64_t previous = element_->timestamp;
    stamp_block(records, nullptr, previous, n);
    element_->timestamp = previous;
  }
  void collect_stamped(T* records, const int64_t* timestamps, size_t n,
                       element_context& element) override {
    stamp_block(records, timestamps, 0, n);
    if (n > 0)
      element.timestamp = timestamps[n - 1];
  }

  void process_watermark(int64_t wm) override {
    if (wm == max_watermark && current_ != max_watermark)
      emit_watermark(max_watermark);
  }
  void process_idleness(bool) override {} // this operator decides idleness itself

private:
  /// Stamps records[0, n) (each record's previous timestamp is
  /// previous[i], or `same` without `previous`) and forwards them.
  void stamp_block(T* records, const int64_t* previous, int64_t same, size_t n) {
    constexpr size_t block = 64;
    int64_t stamps[block];
    if (!generator_->emits_on_event()) {
      // Events never emit: stamp whole blocks, and give the generator each
      // block at once.
      for (size_t first = 0; first < n; first += block) {
        const size_t m = std::min(block, n - first);
        this->call_user([&] {
          strategy_.assign_timestamps(records + first,
                                      previous != nullptr ? previous + first : nullptr, same,
                                      stamps, m);
          // Held like an event's watermark, should the generator emit after all.
          deferring_ = true;
          generator_->on_events(records + first, stamps, m, *this);
          deferring_ = false;
        });
        this->out_->collect_stamped(records + first, stamps, m, *element_);
        if (deferred_ > current_)
          emit_watermark(deferred_);
      }
      return;
    }
    size_t i = 0;
    while (i < n) {
      // Stamp up to a block, stopping after a record whose event produced
      // a watermark; then forward the stamped records and that watermark.
      const size_t first = i;
      const size_t last = std::min(n, first + block);
      this->call_user([&] {
        while (i < last) {
          const T& value = records[i];
          const int64_t ts =
            strategy_.assign_timestamp(value, previous != nullptr ? previous[i] : same);
          stamps[i - first] = ts;
          deferring_ = true;
          generator_->on_event(value, ts, *this);
          deferring_ = false;
          ++i;
          if (deferred_ > current_)
            break;
        }
      });
      this->out_->collect_stamped(records + first, stamps, i - first, *element_);
      if (deferred_ > current_)
        emit_watermark(deferred_);
    }
  }

  // watermark_output
  void emit_watermark(int64_t wm) override {
    if (deferring_) {
      deferred_ = std::max(deferred_, wm);
      return;
    }
    if (wm <= current_)
      return;
    current_ = wm;
    if (idle_) {
      idle_ = false;
      this->out_->process_idleness(false);
    }
    this->out_->process_watermark(wm);
  }
  void mark_idle() override {
    if (!idle_) {
      idle_ = true;
      this->out_->process_idleness(true);
    }
  }
  void mark_active() override {
    if (idle_) {
      idle_ = false;
      this->out_->process_idleness(false);
    }
  }

  void on_processing_time(int64_t now) override {
    this->call_user([&] { generator_->on_periodic_emit(*this); });
    if (current_ != max_watermark)
      time_->register_timer(now + interval_, this);
  }

  watermark_strategy<T> strategy_;
  int64_t interval_;
  std::unique_ptr<watermark_generator<T>> generator_;
  element_context* element_ = nullptr;
  processing_time_service* time_ = nullptr;
  int64_t current_ = min_watermark;
  int64_t deferred_ = min_watermark;
  bool deferring_ = false;
  bool idle_ = false;
};

} // namespace sluice::runtime
