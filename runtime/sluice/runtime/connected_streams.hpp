#pragma once

#include "sluice/runtime/data_stream.hpp"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

/// Two-input processing: connect two streams (of possibly different types)
/// and handle each side with its own method: co-map, co-flat-map,
/// co-process, keyed or not, and the broadcast-state pattern.
///
/// A two-input operator reads a union of both inputs, each record wrapped in
/// a two_input<A, B> by a small adapter chained to its producer, so records
/// of both sides travel (and are partitioned) exactly as they would into a
/// one-input operator; event time is the minimum over both inputs.
namespace sluice::runtime {

/// A record of a two-input operator: index 0 from the first input, 1 from
/// the second (A and B may be the same type).
template <class A, class B>
using two_input = std::variant<A, B>;

// ---- user function interfaces ---------------------------------------------

/// What every two-input function declares: its input and output types.
template <class A, class B, class R>
class two_input_function : public rich_function {
public:
  using first_type = A;
  using second_type = B;
  using output_type = R;
};

/// Maps each side to a common type (Flink's CoMapFunction).
template <class A, class B, class R>
class co_map_function : public two_input_function<A, B, R> {
public:
  virtual R map1(const A& value) = 0;
  virtual R map2(const B& value) = 0;
};

/// Zero or more records per input record, per side (CoFlatMapFunction).
template <class A, class B, class R>
class co_flat_map_function : public two_input_function<A, B, R> {
public:
  virtual void flat_map1(const A& value, collector<R>& out) = 0;
  virtual void flat_map2(const B& value, collector<R>& out) = 0;
};

/// Low-level two-input processing on non-keyed streams (CoProcessFunction).
template <class A, class B, class R>
class co_process_function : public two_input_function<A, B, R> {
public:
  virtual void process_element1(const A& value, process_context& ctx, collector<R>& out) = 0;
  virtual void process_element2(const B& value, process_context& ctx, collector<R>& out) = 0;
};

/// Two-input processing on connected keyed streams, with keyed state and
/// timers (KeyedCoProcessFunction). Both inputs are keyed by the same key
/// type; state and timers belong to the key of the record (or timer).
template <class K, class A, class B, class R>
class keyed_co_process_function : public two_input_function<A, B, R> {
public:
  using key_type = K;
  using context = typename keyed_process_function<K, two_input<A, B>, R>::context;
  virtual void process_element1(const A& value, context& ctx, collector<R>& out) = 0;
  virtual void process_element2(const B& value, context& ctx, collector<R>& out) = 0;
  virtual void on_timer(int64_t /*timestamp*/, context& /*ctx*/, collector<R>& /*out*/) {}
};

// ---- broadcast state --------------------------------------------------------

/// The broadcast states of one operator instance, declared by the
/// descriptors the stream was broadcast with.
class broadcast_state_store {
public:
  explicit broadcast_state_store(std::shared_ptr<const std::vector<std::string>> declared = {})
    : declared_(std::move(declared)) {}

  template <class UK, class UV>
  state::broadcast_state<UK, UV>& get(const state::map_state_descriptor<UK, UV>& d) {
    if (declared_ && std::find(declared_->begin(), declared_->end(), d.name) == declared_->end())
      throw state::state_error("broadcast state '" + d.name +
                               "' was not declared when the stream was broadcast");
    return store_.broadcast_state<UK, UV>(d.name);
  }
  /// Every state (for snapshots).
  [[nodiscard]] state::operator_state_store& store() noexcept { return store_; }

private:
  std::shared_ptr<const std::vector<std::string>> declared_;
  state::operator_state_store store_;
};

/// Processes a non-keyed stream connected with a broadcast stream
/// (BroadcastProcessFunction): the broadcast side may change the broadcast
/// state, the other side only reads it.
template <class In, class B, class R>
class broadcast_process_function : public two_input_function<In, B, R> {
public:
  /// What the non-broadcast side sees: broadcast state read-only.
  class read_only_context : public process_context {
  public:
    read_only_context(const runtime_context* rc, side_outputs* side, broadcast_state_store* bs)
      : process_context(rc, side), bs_(bs) {}
    template <class UK, class UV>
    const state::broadcast_state<UK, UV>&
    get_broadcast_state(const state::map_state_descriptor<UK, UV>& d) const {
      return bs_->get(d);
    }

  protected:
    broadcast_state_store* bs_;
  };
  /// What the broadcast side sees: broadcast state read-write.
  class context : public read_only_context {
  public:
    using read_only_context::read_only_context;
    template <class UK, class UV>
    state::broadcast_state<UK, UV>& get_broadcast_state(const state::map_state_descriptor<UK, UV>& d) {
      return this->bs_->get(d);
    }
  };

  virtual void process_element(const In& value, read_only_context& ctx, collector<R>& out) = 0;
  virtual void process_broadcast_element(const B& value, context& ctx, collector<R>& out) = 0;
};

/// Processes a keyed stream connected with a broadcast stream
/// (KeyedBroadcastProcessFunction): keyed state and timers on the keyed
/// side; on the broadcast side, read-write broadcast state and a way to
/// visit the keyed state of every key.
template <class K, class In, class B, class R>
class keyed_broadcast_process_function : public two_input_function<In, B, R> {
public:
  using key_type = K;
  using keyed_context = typename keyed_process_function<K, two_input<In, B>, R>::context;

  /// The keyed side (and timers): key, timers, timestamps, side outputs and
  /// read-only broadcast state.
  class read_only_context {
  public:
    read_only_context(keyed_context& kc, broadcast_state_store& bs) : kc_(kc), bs_(bs) {}
    [[nodiscard]] std::optional<int64_t> timestamp() const { return kc_.timestamp(); }
    [[nodiscard]] const K& current_key() const { return kc_.current_key(); }
    runtime::timer_service& timer_service() { return kc_.timer_service(); }
    [[nodiscard]] int64_t current_watermark() const { return kc_.timer_service().current_watermark(); }
    /// In on_timer: which clock fired.
    [[nodiscard]] runtime::time_domain time_domain() const { return kc_.time_domain(); }
    template <class T>
    void output(const output_tag<T>& tag, T value) {
      kc_.output(tag, std::move(value));
    }
    template <class UK, class UV>
    const state::broadcast_state<UK, UV>&
    get_broadcast_state(const state::map_state_descriptor<UK, UV>& d) const {
      return bs_.get(d);
    }

  private:
    keyed_context& kc_;
    broadcast_state_store& bs_;
  };

  /// The broadcast side: read-write broadcast state; keyed state of all keys
  /// through apply_to_keyed_state.
  class context {
  public:
    context(keyed_context& kc, broadcast_state_store& bs, const runtime_context& rc)
      : kc_(kc), bs_(bs), rc_(rc) {}
    [[nodiscard]] std::optional<int64_t> timestamp() const { return kc_.timestamp(); }
    [[nodiscard]] int64_t current_watermark() const { return kc_.timer_service().current_watermark(); }
    template <class T>
    void output(const output_tag<T>& tag, T value) {
      kc_.output(tag, std::move(value));
    }
    template <class UK, class UV>
    state::broadcast_state<UK, UV>& get_broadcast_state(const state::map_state_descriptor<UK, UV>& d) {
      return bs_.get(d);
    }
    /// Calls fn(key, state) for every key of this subtask that holds state
    /// `d` (Flink's applyToKeyedState); `state` is the handle for that key.
    template <class D, class F>
    void apply_to_keyed_state(const D& d, F&& fn) {
      auto& backend = dynamic_cast<state::keyed_state_backend<K>&>(rc_.keyed_backend());
      auto handle = make_handle(d);
      uint32_t index = 0;
      const auto& metas = backend.states();
      while (index < metas.size() && metas[index].name != d.name)
        ++index;
      // No key is current on the broadcast side, so none is restored after;
      // the next keyed record sets its own.
      for (const auto& key : backend.keys(index)) {
        backend.set_current_key(key);
        fn(key, handle);
      }
    }

  private:
    template <class T>
    auto make_handle(const state::value_state_descriptor<T>& d) { return rc_.get_state(d); }
    template <class T>
    auto make_handle(const state::list_state_descriptor<T>& d) { return rc_.get_list_state(d); }
    template <class UK, class UV>
    auto make_handle(const state::map_state_descriptor<UK, UV>& d) { return rc_.get_map_state(d); }
    template <class T>
    auto make_handle(const state::reducing_state_descriptor<T>& d) {
      return rc_.get_reducing_state(d);
    }
    template <class I, class Acc, class O>
    auto make_handle(const state::aggregating_state_descriptor<I, Acc, O>& d) {
      return rc_.get_aggregating_state(d);
    }

    keyed_context& kc_;
    broadcast_state_store& bs_;
    const runtime_context& rc_;
  };

  virtual void process_element(const In& value, read_only_context& ctx, collector<R>& out) = 0;
  virtual void process_broadcast_element(const B& value, context& ctx, collector<R>& out) = 0;
  virtual void on_timer(int64_t /*timestamp*/, read_only_context& /*ctx*/, collector<R>& /*out*/) {}
};

namespace internal {

/// Reaches the inputs of a stream to build multi-input operators.
struct stream_access {
  template <class T>
  static const std::vector<input_ref>& inputs(const data_stream<T>& s) {
    return s.inputs_;
  }
  template <class T>
  static const std::shared_ptr<environment_state>& env(const data_stream<T>& s) {
    return s.env_;
  }
  template <class T>
  static data_stream<T> make(std::shared_ptr<environment_state> env, std::vector<input_ref> in) {
    return data_stream<T>(std::move(env), std::move(in));
  }
  template <class R, class T>
  static data_stream<R>
  add_operator(const data_stream<T>& s, const std::string& name,
               std::function<std::unique_ptr<stream_operator>(const std::string&)> make) {
    return s.template add_operator<R>(name, std::move(make));
  }
};

/// Wraps a record as side I of a two_input.
template <size_t I, class V>
struct wrap_input {
  template <class X>
  V operator()(X&& x) const {
    return V(std::in_place_index<I>, std::forward<X>(x));
  }
};

/// Routes side I of `s` into a two-input operator of record type V: one
/// adapter node per input of `s`, chained to its producer, and an exchange
/// of V with the strategy the program chose for `s`. `keyed` builds the
/// exchange for hash partitioning (null: not allowed).
template <size_t I, class V, class X>
std::vector<input_ref>
route_side(const data_stream<X>& s,
           const std::function<std::shared_ptr<const exchange_factory>()>& keyed) {
  const auto& env = stream_access::env(s);
  std::vector<input_ref> out;
  for (const auto& in : stream_access::inputs(s)) {
    std::shared_ptr<const exchange_factory> exchange;
    if (in.strategy == ship_strategy::hash) {
      if (!keyed)
        throw std::invalid_argument("connect: a keyed input needs the other input keyed too "
                                    "(keyed_stream::connect(keyed_stream), or key_by on the "
                                    "connected streams), or a broadcast stream");
      exchange = keyed();
    } else if (in.strategy == ship_strategy::custom) {
      throw std::invalid_argument(
        "connect: partition_custom before connect is not supported; partition the connected "
        "result instead");
    } else {
      exchange = std::make_shared<typed_exchange<V>>(in.strategy);
    }
    auto& up = env->graph.nodes[in.node];
    stream_node node;
    node.name = I == 0 ? "Input 1" : "Input 2";
    node.make_operator = [](const std::string& n) {
      return std::make_unique<map_operator<X, V, wrap_input<I, V>>>(n, wrap_input<I, V>{});
    };
    node.parallelism_of = in.node;
    node.timestamped = up.timestamped;
    node.slot_sharing_group = up.slot_sharing_group;
    add_typed_node_helpers<V>(node);
    auto id = env->graph.add_node(std::move(node)).id;
    env->graph.add_edge(in.node, id, ship_strategy::forward, false,
                        std::make_shared<typed_exchange<X>>(ship_strategy::forward));
    out.push_back({id, in.strategy, in.strategy_explicit, std::move(exchange)});
  }
  return out;
}

/// The union of both sides, as records of two_input<A, B>.
template <class A, class B>
data_stream<two_input<A, B>>
join_sides(const data_stream<A>& a, const data_stream<B>& b,
           const std::function<std::shared_ptr<const exchange_factory>()>& keyed_a = {},
           const std::function<std::shared_ptr<const exchange_factory>()>& keyed_b = {}) {
  using V = two_input<A, B>;
  auto ins = route_side<0, V>(a, keyed_a);
  auto more = route_side<1, V>(b, keyed_b);
  ins.insert(ins.end(), more.begin(), more.end());
  return stream_access::make<V>(stream_access::env(a), std::move(ins));
}

/// The key of either side of a two_input.
template <class K, class A, class B, class SA, class SB>
struct either_key {
  SA a;
  SB b;
  K operator()(const two_input<A, B>& v) const {
    return v.index() == 0 ? K(a(std::get<0>(v))) : K(b(std::get<1>(v)));
  }
};

/// The key of side I only (records of the other side never reach it).
template <size_t I, class K, class V, class S>
struct side_key {
  S sel;
  K operator()(const V& v) const { return sel(std::get<I>(v)); }
};

/// Calls a user function class's open/close around the adapter's.
template <class Fn>
class forwarding_rich : public rich_function {
public:
  explicit forwarding_rich(Fn fn) : fn_(std::move(fn)) {}
  void open(const runtime_context& ctx) override { open_if_rich(fn_, ctx); }
  void close() override { close_if_rich(fn_); }

protected:
  Fn fn_;
};

/// co-map as a flat map over two_input.
template <class Fn, class V, class R>
struct co_map_adapter : forwarding_rich<Fn> {
  using forwarding_rich<Fn>::forwarding_rich;
  void operator()(V&& v, collector<R>& out) {
    if (v.index() == 0)
      out.collect(this->fn_.map1(std::get<0>(v)));
    else
      out.collect(this->fn_.map2(std::get<1>(v)));
  }
};

template <class Fn, class V, class R>
struct co_flat_map_adapter : forwarding_rich<Fn> {
  using forwarding_rich<Fn>::forwarding_rich;
  void operator()(V&& v, collector<R>& out) {
    if (v.index() == 0)
      this->fn_.flat_map1(std::get<0>(v), out);
    else
      this->fn_.flat_map2(std::get<1>(v), out);
  }
};

/// Keyed co-map / co-flat-map: the same, with the keyed context ignored.
template <class Inner>
struct ignoring_context : Inner {
  using Inner::Inner;
  template <class V, class Ctx, class Out>
  void operator()(V&& v, Ctx&, Out& out) {
    Inner::operator()(std::move(v), out);
  }
};

template <class Fn, class V, class R>
struct co_process_adapter : forwarding_rich<Fn> {
  using forwarding_rich<Fn>::forwarding_rich;
  void operator()(V&& v, process_context& ctx, collector<R>& out) {
    if (v.index() == 0)
      this->fn_.process_element1(std::get<0>(v), ctx, out);
    else
      this->fn_.process_element2(std::get<1>(v), ctx, out);
  }
};

/// Runs a keyed_co_process_function as a keyed_process_function.
template <class Fn>
class keyed_co_process_adapter final
  : public keyed_process_function<typename Fn::key_type,
                                  two_input<typename Fn::first_type, typename Fn::second_type>,
                                  typename Fn::output_type> {
public:
  using base = keyed_process_function<typename Fn::key_type,
                                      two_input<typename Fn::first_type, typename Fn::second_type>,
                                      typename Fn::output_type>;
  using typename base::context;
  using R = typename Fn::output_type;

  explicit keyed_co_process_adapter(Fn fn) : fn_(std::move(fn)) {}
  void open(const runtime_context& ctx) override { fn_.open(ctx); }
  void close() override { fn_.close(); }
  void process_element(const typename base::input_type& v, context& ctx,
                       collector<R>& out) override {
    if (v.index() == 0)
      fn_.process_element1(std::get<0>(v), ctx, out);
    else
      fn_.process_element2(std::get<1>(v), ctx, out);
  }
  void on_timer(int64_t t, context& ctx, collector<R>& out) override { fn_.on_timer(t, ctx, out); }

private:
  Fn fn_;
};

/// Runs a broadcast_process_function over two_input records.
template <class Fn>
class broadcast_adapter : public forwarding_rich<Fn> {
public:
  using V = two_input<typename Fn::first_type, typename Fn::second_type>;
  using R = typename Fn::output_type;
  broadcast_adapter(Fn fn, std::shared_ptr<const std::vector<std::string>> declared)
    : forwarding_rich<Fn>(std::move(fn)), store_(std::move(declared)) {}
  void operator()(V&& v, process_context& pc, collector<R>& out) {
    // process_context has no public way to reach its parts again: rebuild
    // the richer contexts from what the operator handed in.
    if (v.index() == 0) {
      typename Fn::read_only_context ctx(&pc.runtime(), pc.side(), &store_);
      this->fn_.process_element(std::get<0>(v), ctx, out);
    } else {
      typename Fn::context ctx(&pc.runtime(), pc.side(), &store_);
      this->fn_.process_broadcast_element(std::get<1>(v), ctx, out);
    }
  }

private:
  broadcast_state_store store_;
};

/// Runs a keyed_broadcast_process_function as a keyed_process_function;
/// broadcast records carry no key (keyed_process_function_operator asks
/// is_keyless and skips the key for them).
template <class Fn>
class keyed_broadcast_adapter final
  : public keyed_process_function<typename Fn::key_type,
                                  two_input<typename Fn::first_type, typename Fn::second_type>,
                                  typename Fn::output_type> {
public:
  using base = keyed_process_function<typename Fn::key_type,
                                      two_input<typename Fn::first_type, typename Fn::second_type>,
                                      typename Fn::output_type>;
  using typename base::context;
  using R = typename Fn::output_type;

  keyed_broadcast_adapter(Fn fn, std::shared_ptr<const std::vector<std::string>> declared)
    : fn_(std::move(fn)), store_(std::move(declared)) {}
  void open(const runtime_context& ctx) override {
    rc_ = ctx;
    fn_.open(ctx);
  }
  void close() override { fn_.close(); }
  static bool is_keyless(const typename base::input_type& v) { return v.index() == 1; }
  void process_element(const typename base::input_type& v, context& ctx,
                       collector<R>& out) override {
    if (v.index() == 0) {
      typename Fn::read_only_context rc(ctx, store_);
      fn_.process_element(std::get<0>(v), rc, out);
    } else {
      typename Fn::context bc(ctx, store_, rc_);
      fn_.process_broadcast_element(std::get<1>(v), bc, out);
    }
  }
  void on_timer(int64_t t, context& ctx, collector<R>& out) override {
    typename Fn::read_only_context rc(ctx, store_);
    fn_.on_timer(t, rc, out);
  }

private:
  Fn fn_;
  broadcast_state_store store_;
  runtime_context rc_;
};

template <class F1, class F2, class A, class B, class R>
struct lambda_co_map {
  F1 f1;
  F2 f2;
  R map1(const A& a) { return f1(a); }
  R map2(const B& b) { return f2(b); }
};

template <class F1, class F2, class A, class B, class R>
struct lambda_co_flat_map {
  F1 f1;
  F2 f2;
  void flat_map1(const A& a, collector<R>& out) { f1(a, out); }
  void flat_map2(const B& b, collector<R>& out) { f2(b, out); }
};

} // namespace internal

// ---- connected streams --------------------------------------------------------

template <class K, class A, class B, class SA, class SB>
class keyed_connected_streams;

/// Two streams connected for a two-input operator (Flink's
/// ConnectedStreams). Records of both inputs arrive interleaved in no
/// guaranteed order between the inputs.
template <class A, class B>
class connected_streams {
public:
  using value_type = two_input<A, B>;

  connected_streams(data_stream<A> first, data_stream<B> second)
    : first_(std::move(first)), second_(std::move(second)) {}

  const data_stream<A>& first_input() const { return first_; }
  const data_stream<B>& second_input() const { return second_; }

  /// Co-map with a co_map_function<A, B, R> class.
  template <class Fn, std::enable_if_t<std::is_base_of_v<co_map_function<typename Fn::first_type,
                                                                         typename Fn::second_type,
                                                                         typename Fn::output_type>,
                                                         Fn>,
                                       int> = 0>
  data_stream<typename Fn::output_type> map(Fn fn) const {
    using R = typename Fn::output_type;
    check_types<Fn>();
    return joined().template flat_map<R>(internal::co_map_adapter<Fn, value_type, R>(std::move(fn)))
      .name("Co-Map");
  }
  /// Co-map with one function per side: f1(const A&) -> R, f2(const B&) -> R.
  template <class F1, class F2>
  auto map(F1 f1, F2 f2) const {
    using R = std::decay_t<std::invoke_result_t<F1&, const A&>>;
    static_assert(std::is_same_v<R, std::decay_t<std::invoke_result_t<F2&, const B&>>>,
                  "both sides of a co-map must return the same type");
    using L = internal::lambda_co_map<F1, F2, A, B, R>;
    return joined()
      .template flat_map<R>(internal::co_map_adapter<L, value_type, R>(L{std::move(f1), std::move(f2)}))
      .name("Co-Map");
  }
  /// Co-flat-map with a co_flat_map_function<A, B, R> class.
  template <class Fn, std::enable_if_t<
                        std::is_base_of_v<co_flat_map_function<typename Fn::first_type,
                                                               typename Fn::second_type,
                                                               typename Fn::output_type>,
                                          Fn>,
                        int> = 0>
  data_stream<typename Fn::output_type> flat_map(Fn fn) const {
    using R = typename Fn::output_type;
    check_types<Fn>();
    return joined()
      .template flat_map<R>(internal::co_flat_map_adapter<Fn, value_type, R>(std::move(fn)))
      .name("Co-Flat Map");
  }
  /// Co-flat-map with one function per side: f1(const A&, collector<R>&).
  template <class R, class F1, class F2>
  data_stream<R> flat_map(F1 f1, F2 f2) const {
    using L = internal::lambda_co_flat_map<F1, F2, A, B, R>;
    return joined()
      .template flat_map<R>(
        internal::co_flat_map_adapter<L, value_type, R>(L{std::move(f1), std::move(f2)}))
      .name("Co-Flat Map");
  }
  /// Low-level processing with a co_process_function<A, B, R>.
  template <class Fn>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    using R = typename Fn::output_type;
    static_assert(std::is_base_of_v<co_process_function<A, B, R>, Fn>,
                  "process on connected streams takes a co_process_function<A, B, R>");
    return joined()
      .template process<R>(internal::co_process_adapter<Fn, value_type, R>(std::move(fn)))
      .name("Co-Process");
  }

  /// Keys both inputs (by key selectors returning the same key type):
  /// records of both sides with equal keys meet in the same subtask.
  template <class SA, class SB>
  auto key_by(SA sa, SB sb) const;

private:
  template <class Fn>
  static void check_types() {
    static_assert(std::is_same_v<typename Fn::first_type, A> &&
                    std::is_same_v<typename Fn::second_type, B>,
                  "the function's input types are not the connected streams' types");
  }
  data_stream<value_type> joined() const { return internal::join_sides(first_, second_); }

  data_stream<A> first_;
  data_stream<B> second_;
};

/// Two keyed streams connected: two-input operators with keyed state and
/// timers (keyed co-map, co-flat-map and keyed_co_process_function).
template <class K, class A, class B, class SA, class SB>
class keyed_connected_streams {
public:
  using value_type = two_input<A, B>;
  using key_selector = internal::either_key<K, A, B, SA, SB>;

  keyed_connected_streams(data_stream<A> first, SA sa, data_stream<B> second, SB sb)
    : first_(std::move(first)), second_(std::move(second)), sel_{std::move(sa), std::move(sb)} {}

  /// Keyed co-map: keyed state (ctx.get_state in open) is the record's key's.
  template <class Fn>
  data_stream<typename Fn::output_type> map(Fn fn) const {
    using R = typename Fn::output_type;
    using Ad = internal::ignoring_context<internal::co_map_adapter<Fn, value_type, R>>;
    return keyed<R, Ad>("Co-Map", Ad(std::move(fn)));
  }
  template <class F1, class F2>
  auto map(F1 f1, F2 f2) const {
    using R = std::decay_t<std::invoke_result_t<F1&, const A&>>;
    using L = internal::lambda_co_map<F1, F2, A, B, R>;
    using Ad = internal::ignoring_context<internal::co_map_adapter<L, value_type, R>>;
    return keyed<R, Ad>("Co-Map", Ad(L{std::move(f1), std::move(f2)}));
  }
  template <class Fn>
  data_stream<typename Fn::output_type> flat_map(Fn fn) const {
    using R = typename Fn::output_type;
    using Ad = internal::ignoring_context<internal::co_flat_map_adapter<Fn, value_type, R>>;
    return keyed<R, Ad>("Co-Flat Map", Ad(std::move(fn)));
  }
  template <class R, class F1, class F2>
  data_stream<R> flat_map(F1 f1, F2 f2) const {
    using L = internal::lambda_co_flat_map<F1, F2, A, B, R>;
    using Ad = internal::ignoring_context<internal::co_flat_map_adapter<L, value_type, R>>;
    return keyed<R, Ad>("Co-Flat Map", Ad(L{std::move(f1), std::move(f2)}));
  }
  /// Keyed two-input processing with timers: a keyed_co_process_function.
  template <class Fn>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    using R = typename Fn::output_type;
    static_assert(std::is_base_of_v<keyed_co_process_function<K, A, B, R>, Fn>,
                  "process on keyed connected streams takes a keyed_co_process_function<K, A, B, R>");
    using Ad = internal::keyed_co_process_adapter<Fn>;
    auto sel = sel_;
    Ad ad(std::move(fn));
    return internal::stream_access::add_operator<R>(
      joined(), "KeyedCo-Process", [sel, ad](const std::string& n) {
        return std::make_unique<keyed_process_function_operator<K, value_type, R, key_selector, Ad>>(
          n, sel, ad);
      });
  }

private:
  template <class R, class Ad>
  data_stream<R> keyed(const std::string& name, Ad ad) const {
    auto sel = sel_;
    return internal::stream_access::add_operator<R>(
      joined(), name, [sel, ad](const std::string& n) {
        return std::make_unique<keyed_process_operator<K, value_type, R, key_selector, Ad>>(n, sel,
                                                                                            ad);
      });
  }
  data_stream<value_type> joined() const {
    auto sa = sel_.a;
    auto sb = sel_.b;
    return internal::join_sides(
      first_, second_,
      [sa] {
        using S = internal::side_key<0, K, value_type, SA>;
        return std::make_shared<typed_exchange<value_type, K, S>>(ship_strategy::hash, S{sa});
      },
      [sb] {
        using S = internal::side_key<1, K, value_type, SB>;
        return std::make_shared<typed_exchange<value_type, K, S>>(ship_strategy::hash, S{sb});
      });
  }

  data_stream<A> first_;
  data_stream<B> second_;
  key_selector sel_;
};

template <class A, class B>
template <class SA, class SB>
auto connected_streams<A, B>::key_by(SA sa, SB sb) const {
  using K = std::decay_t<std::invoke_result_t<SA&, const A&>>;
  static_assert(std::is_same_v<K, std::decay_t<std::invoke_result_t<SB&, const B&>>>,
                "both key selectors must return the same key type");
  return keyed_connected_streams<K, A, B, SA, SB>(first_.key_by(sa), sa, second_.key_by(sb), sb);
}

/// A stream broadcast to every subtask of the operator it is connected to,
/// with the broadcast states (map states) that operator keeps.
template <class B>
class broadcast_stream {
public:
  broadcast_stream(data_stream<B> input, std::vector<std::string> states)
    : input_(input.broadcast()),
      states_(std::make_shared<const std::vector<std::string>>(std::move(states))) {}
  const data_stream<B>& stream() const { return input_; }
  const std::shared_ptr<const std::vector<std::string>>& states() const { return states_; }

private:
  data_stream<B> input_;
  std::shared_ptr<const std::vector<std::string>> states_;
};

/// A non-keyed stream connected with a broadcast stream.
template <class A, class B>
class broadcast_connected_stream {
public:
  using value_type = two_input<A, B>;
  broadcast_connected_stream(data_stream<A> first, broadcast_stream<B> second)
    : first_(std::move(first)), second_(std::move(second)) {}

  /// Processes with a broadcast_process_function<A, B, R>.
  template <class Fn>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    using R = typename Fn::output_type;
    static_assert(std::is_base_of_v<broadcast_process_function<A, B, R>, Fn>,
                  "takes a broadcast_process_function<In, B, R>");
    return internal::join_sides(first_, second_.stream())
      .template process<R>(internal::broadcast_adapter<Fn>(std::move(fn), second_.states()))
      .name("Co-Process-Broadcast");
  }

private:
  data_stream<A> first_;
  broadcast_stream<B> second_;
};

/// A keyed stream connected with a broadcast stream.
template <class K, class A, class SA, class B>
class keyed_broadcast_connected_stream {
public:
  using value_type = two_input<A, B>;
  keyed_broadcast_connected_stream(keyed_stream<K, A, SA> first, broadcast_stream<B> second)
    : first_(std::move(first)), second_(std::move(second)) {}

  /// Processes with a keyed_broadcast_process_function<K, A, B, R>.
  template <class Fn>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    using R = typename Fn::output_type;
    static_assert(std::is_base_of_v<keyed_broadcast_process_function<K, A, B, R>, Fn>,
                  "takes a keyed_broadcast_process_function<K, In, B, R>");
    using Ad = internal::keyed_broadcast_adapter<Fn>;
    using S0 = internal::side_key<0, K, value_type, SA>;
    auto sa = first_.key();
    auto joined = internal::join_sides(
      static_cast<const data_stream<A>&>(first_), second_.stream(),
      [sa] { return std::make_shared<typed_exchange<value_type, K, S0>>(ship_strategy::hash, S0{sa}); });
    Ad ad(std::move(fn), second_.states());
    return internal::stream_access::add_operator<R>(
      joined, "Co-Process-Broadcast-Keyed", [sa, ad](const std::string& n) {
        return std::make_unique<keyed_process_function_operator<K, value_type, R, S0, Ad>>(
          n, S0{sa}, ad);
      });
  }

private:
  keyed_stream<K, A, SA> first_;
  broadcast_stream<B> second_;
};

// ---- the entry points on data_stream / keyed_stream ---------------------------

template <class T>
template <class B>
connected_streams<T, B> data_stream<T>::connect(const data_stream<B>& other) const {
  return connected_streams<T, B>(*this, other);
}

template <class T>
template <class B>
broadcast_connected_stream<T, B> data_stream<T>::connect(const broadcast_stream<B>& other) const {
  return broadcast_connected_stream<T, B>(*this, other);
}

template <class T>
template <class UK, class UV, class... More>
broadcast_stream<T> data_stream<T>::broadcast(const state::map_state_descriptor<UK, UV>& d,
                                              const More&... more) const {
  std::vector<std::string> names{d.name, more.name...};
  return broadcast_stream<T>(*this, std::move(names));
}

template <class K, class T, class KeySel>
template <class B, class SB>
auto keyed_stream<K, T, KeySel>::connect(const keyed_stream<K, B, SB>& other) const {
  return keyed_connected_streams<K, T, B, KeySel, SB>(*this, key_, other, other.key());
}

template <class K, class T, class KeySel>
template <class B>
auto keyed_stream<K, T, KeySel>::connect(const broadcast_stream<B>& other) const {
  return keyed_broadcast_connected_stream<K, T, KeySel, B>(*this, other);
}

} // namespace sluice::runtime
