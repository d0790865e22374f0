#pragma once

#include "sluice/runtime/exchange.hpp"
#include "sluice/runtime/file_sink.hpp"
#include "sluice/runtime/job.hpp"
#include "sluice/runtime/operators.hpp"
#include "sluice/runtime/process_function.hpp"
#include "sluice/runtime/side_output.hpp"
#include "sluice/runtime/window/window_operator.hpp"
#include "sluice/runtime/sink.hpp"
#include "sluice/runtime/source.hpp"
#include "sluice/runtime/stream_graph.hpp"

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <vector>

/// The DataStream API: typed handles on the logical graph.
namespace sluice::runtime {

/// Shared by an environment and every stream built from it.
struct environment_state {
  configuration config;
  stream_graph graph;
  std::shared_ptr<job_executor> executor;
};

template <class T>
class data_stream;
template <class K, class T, class KeySel = std::function<K(const T&)>>
class keyed_stream;
template <class K, class T, class KeySel, class W>
class windowed_stream;
template <class T, class W>
class all_windowed_stream;
template <class A, class B>
class connected_streams;
template <class K, class A, class B, class SA, class SB>
class keyed_connected_streams;
template <class B>
class broadcast_stream;
template <class A, class B>
class broadcast_connected_stream;
template <class K, class A, class SA, class B>
class keyed_broadcast_connected_stream;
template <class A, class B, bool Join>
class two_stream_window_builder;
template <class K, class A, class SA, class B, class SB>
class interval_join_builder;
namespace internal {
struct stream_access;
}

namespace internal {

template <class T>
void add_typed_node_helpers(stream_node& node) {
  if constexpr (!std::is_void_v<T>) {
    node.make_fanout = [](std::vector<any_collector*> targets) -> std::unique_ptr<any_collector> {
      std::vector<collector<T>*> typed;
      for (auto* t : targets)
        typed.push_back(dynamic_cast<collector<T>*>(t));
      return std::make_unique<fanout_collector<T>>(std::move(typed));
    };
    node.make_discard = []() -> std::unique_ptr<any_collector> {
      return std::make_unique<discarding_collector<T>>();
    };
  }
}

/// One input of an operator about to be created: the upstream node and
/// how records travel from it.
struct input_ref {
  int32_t node = -1;
  ship_strategy strategy = ship_strategy::forward;
  bool strategy_explicit = false;
  std::shared_ptr<const exchange_factory> exchange;
};

template <class F, class Arg>
using map_result_t = std::decay_t<std::invoke_result_t<F&, Arg>>;

/// Deduces T from a source_function<T> / sink_function<T> subclass.
template <class T>
T source_record_of(const source_function<T>*);
template <class T>
T sink_record_of(const sink_function<T>*);

} // namespace internal

/// The result of a sink: only its settings can be changed.
template <>
class data_stream<void> {
public:
  data_stream(std::shared_ptr<environment_state> env, int32_t node)
    : env_(std::move(env)), node_(node) {}
  data_stream& name(std::string n) {
    env_->graph.nodes[node_].name = std::move(n);
    return *this;
  }
  data_stream& uid(std::string u) {
    env_->graph.nodes[node_].uid = std::move(u);
    return *this;
  }
  data_stream& set_parallelism(int32_t p) {
    if (p < 1)
      throw std::invalid_argument("parallelism must be at least 1, got " + std::to_string(p));
    env_->graph.nodes[node_].parallelism = p;
    return *this;
  }
  data_stream& disable_chaining() {
    env_->graph.nodes[node_].chaining_disabled = true;
    return *this;
  }
  data_stream& start_new_chain() {
    env_->graph.nodes[node_].start_new_chain = true;
    return *this;
  }
  data_stream& slot_sharing_group(std::string group) {
    env_->graph.nodes[node_].slot_sharing_group = std::move(group);
    return *this;
  }
  int32_t node_id() const { return node_; }

private:
  std::shared_ptr<environment_state> env_;
  int32_t node_;
};

/// A stream of records of type T: the result of a source or an operator,
/// or a union of several such.
template <class T>
class data_stream {
public:
  using value_type = T;

  data_stream(std::shared_ptr<environment_state> env, int32_t node)
    : env_(std::move(env)) {
    inputs_.push_back({node, ship_strategy::forward, false,
                       std::make_shared<typed_exchange<T>>(ship_strategy::forward)});
  }

  // ---- transformations -------------------------------------------------

  /// One record out per record in: f(T) -> R.
  template <class F>
  auto map(F f) const -> data_stream<internal::map_result_t<F, T&&>> {
    using R = internal::map_result_t<F, T&&>;
    return add_operator<R>("Map", [f](const std::string& op_name) {
      return std::make_unique<map_operator<T, R, F>>(op_name, f);
    });
  }

  /// Zero or more records out per record in: f(T, collector<R>&).
  template <class R, class F>
  data_stream<R> flat_map(F f) const {
    return add_operator<R>("Flat Map", [f](const std::string& op_name) {
      return std::make_unique<flat_map_operator<T, R, F>>(op_name, f);
    });
  }

  /// Keeps the records for which f(const T&) is true.
  template <class F>
  data_stream<T> filter(F f) const {
    return add_operator<T>("Filter", [f](const std::string& op_name) {
      return std::make_unique<filter_operator<T, F>>(op_name, f);
    });
  }

  /// Low-level processing with a process_function<T, R> class.
  template <class Fn, std::enable_if_t<internal::is_process_function<Fn>::value, int> = 0>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    static_assert(std::is_same_v<typename Fn::input_type, T>,
                  "the function's input type is not the stream's");
    using R = typename Fn::output_type;
    return process<R>(internal::process_function_call<Fn>(std::move(fn)));
  }
  /// Low-level processing: f(T, process_context&, collector<R>&).
  template <class R, class F>
  data_stream<R> process(F f) const {
    return add_operator<R>("Process", [f](const std::string& op_name) {
      return std::make_unique<process_operator<T, R, F>>(op_name, f);
    });
  }

  /// Gives records event timestamps and generates watermarks from them
  /// (Flink's assignTimestampsAndWatermarks). Periodic generators emit every
  /// configuration::auto_watermark_interval.
  data_stream<T> assign_timestamps_and_watermarks(watermark_strategy<T> strategy) const {
    auto interval = env_->config.auto_watermark_interval;
    auto out = add_operator<T>("Timestamps/Watermarks", [strategy, interval](const std::string& n) {
      return std::make_unique<timestamps_and_watermarks_operator<T>>(n, strategy, interval);
    });
    env_->graph.nodes[static_cast<size_t>(out.node_id())].timestamped = true;
    return out;
  }

  /// Partitions by key: records with equal keys go to the same subtask
  /// (by key group, as Flink assigns them).
  template <class KeySel>
  auto key_by(KeySel sel) const
    -> keyed_stream<std::decay_t<std::invoke_result_t<KeySel&, const T&>>, T, KeySel>;

  /// Windows over the whole stream (Flink's windowAll): one window operator
  /// at parallelism 1 sees every record; see all_windowed_stream.
  template <class A>
  auto window_all(A assigner) const;

  /// Connects this stream with `other` for a two-input operator (co-map,
  /// co-flat-map, co-process); see connected_streams.hpp.
  template <class B>
  connected_streams<T, B> connect(const data_stream<B>& other) const;
  /// Connects this stream with a broadcast stream (the broadcast-state
  /// pattern, non-keyed side).
  template <class B>
  broadcast_connected_stream<T, B> connect(const broadcast_stream<B>& other) const;
  /// Broadcasts this stream to every subtask of the operator it is connected
  /// to, which keeps the given broadcast (map) states.
  template <class UK, class UV, class... More>
  broadcast_stream<T> broadcast(const state::map_state_descriptor<UK, UV>& d,
                                const More&... more) const;

  /// Window join with `other`: .where(key).equal_to(key).window(assigner)
  /// .apply(f(a, b) -> R) for every pair of a key's window (joins.hpp).
  template <class B>
  two_stream_window_builder<T, B, true> join(const data_stream<B>& other) const;
  /// Co-group with `other`: as join, but apply gets both sides' records of a
  /// key's window at once.
  template <class B>
  two_stream_window_builder<T, B, false> co_group(const data_stream<B>& other) const;

  /// Merges this stream with others of the same type.
  template <class... Others>
  data_stream<T> union_with(const Others&... others) const {
    data_stream<T> out = *this;
    (out.inputs_.insert(out.inputs_.end(), others.inputs_.begin(), others.inputs_.end()), ...);
    return out;
  }

  /// Closes a loop: sends this stream's records back into the operator that
  /// produced `head` (an earlier operator with input type T), partitioned as
  /// this stream is (e.g. after key_by). A job with a loop does not end by
  /// itself; it runs until cancelled (as a stateful-functions job does).
  template <class U>
  void feed_back_into(const data_stream<U>& head) const {
    auto target = head.own_node_id();
    for (const auto& in : inputs_) {
      if (in.node <= target)
        throw std::invalid_argument("feed_back_into: the loop must go back to an earlier operator");
      auto strategy = in.strategy_explicit ? in.strategy : ship_strategy::forward;
      auto exchange = in.exchange ? in.exchange : std::make_shared<typed_exchange<T>>(strategy);
      env_->graph.add_edge(in.node, target, strategy, in.strategy_explicit, exchange, {},
                           typeid(void), true);
    }
  }

  /// The records this operator emitted to side output `tag` (at the
  /// operator's parallelism, chained to it).
  template <class U>
  data_stream<U> get_side_output(const output_tag<U>& tag) const {
    auto producer = own_node_id();
    auto& g = env_->graph;
    auto known = g.nodes[producer].side_output_nodes.find(tag.id());
    if (known != g.nodes[producer].side_output_nodes.end()) {
      for (const auto& e : g.edges)
        if (e.source == producer && e.side_tag == tag.id() &&
            e.side_type != std::type_index(typeid(U)))
          throw std::invalid_argument("side output '" + tag.id() +
                                      "' is already read with another type");
      return data_stream<U>(env_, known->second);
    }
    stream_node node;
    node.name = "Side Output(" + tag.id() + ")";
    node.make_operator = [](const std::string& n) {
      return std::make_unique<identity_operator<U>>(n);
    };
    node.parallelism_of = producer;
    node.timestamped = g.nodes[producer].timestamped;
    node.slot_sharing_group = g.nodes[producer].slot_sharing_group;
    internal::add_typed_node_helpers<U>(node);
    auto id = g.add_node(std::move(node)).id;
    g.add_edge(producer, id, ship_strategy::forward, false,
               std::make_shared<typed_exchange<U>>(ship_strategy::forward), tag.id(),
               std::type_index(typeid(U)));
    g.nodes[producer].side_output_nodes[tag.id()] = id;
    return data_stream<U>(env_, id);
  }

  // ---- partitioning ------------------------------------------------------

  data_stream<T> forward() const { return partitioned(ship_strategy::forward); }
  data_stream<T> rebalance() const { return partitioned(ship_strategy::rebalance); }
  data_stream<T> rescale() const { return partitioned(ship_strategy::rescale); }
  data_stream<T> shuffle() const { return partitioned(ship_strategy::shuffle); }
  data_stream<T> broadcast() const { return partitioned(ship_strategy::broadcast); }
  data_stream<T> global() const { return partitioned(ship_strategy::global); }

  /// partitioner(key, num_partitions) -> partition in [0, num_partitions).
  template <class Partitioner, class KeySel>
  data_stream<T> partition_custom(Partitioner partitioner, KeySel key) const {
    using K = std::decay_t<std::invoke_result_t<KeySel&, const T&>>;
    return with_exchange(ship_strategy::custom,
                         std::make_shared<typed_exchange<T, K, KeySel, Partitioner>>(
                           ship_strategy::custom, key, partitioner));
  }

  // ---- sinks -----------------------------------------------------------

  /// Prints every record to stdout, "N> " prefixed at parallelism > 1.
  data_stream<void> print() const {
    return add_sink(print_sink<T>{}, "Print to Std. Out");
  }
  /// Prints every record to stderr.
  data_stream<void> print_to_err() const {
    return add_sink(print_sink<T>{true}, "Print to Std. Err");
  }
  /// Writes records as lines (a directory of files 1..p at parallelism > 1).
  data_stream<void> write_as_text(const std::string& path) const {
    return add_sink(text_file_sink<T>{path}, "TextFile");
  }
  /// Writes records as lines into part files of a directory, exactly once
  /// with checkpointing (file_sink, Flink's FileSink in row format).
  data_stream<void> sink_to_files(file_sink_options options) const {
    return add_sink(file_sink<T>{std::move(options)}, "FileSink");
  }
  /// Gathers every record for inspection after (or during) the run.
  std::shared_ptr<collected<T>> collect() const {
    auto target = std::make_shared<collected<T>>();
    add_sink(collect_sink<T>{target}, "Collect");
    return target;
  }
  /// Drops every record (benchmarks).
  data_stream<void> discard() const { return add_sink(discarding_sink<T>{}, "Discard"); }
  /// A user sink (a sink_function<T> subclass, copied to each subtask).
  template <class S>
  data_stream<void> add_sink(S sink, std::string name = "Unnamed") const {
    static_assert(std::is_base_of_v<sink_function<T>, S>, "a sink must derive from sink_function<T>");
    auto node = add_node<void>(name, node_kind::sink, [sink](const std::string& op_name) {
      return std::make_unique<sink_operator<T, S>>(op_name, sink);
    });
    return node;
  }

  // ---- operator settings (return the same stream) ----------------------

  data_stream& name(std::string n) {
    own_node().name = std::move(n);
    return *this;
  }
  data_stream& uid(std::string u) {
    own_node().uid = std::move(u);
    return *this;
  }
  data_stream& set_parallelism(int32_t p) {
    if (p < 1)
      throw std::invalid_argument("parallelism must be at least 1, got " + std::to_string(p));
    auto& n = own_node();
    if (n.non_parallel && p != 1)
      throw std::invalid_argument("'" + n.name +
                                  "' cannot run in parallel; its parallelism must be 1");
    n.parallelism = p;
    return *this;
  }
  data_stream& set_max_parallelism(int32_t p) {
    if (p < 1 || p > state::upper_bound_max_parallelism)
      throw std::invalid_argument("max parallelism must be in [1, 32768], got " +
                                  std::to_string(p));
    own_node().max_parallelism = p;
    return *this;
  }
  data_stream& disable_chaining() {
    own_node().chaining_disabled = true;
    return *this;
  }
  data_stream& start_new_chain() {
    own_node().start_new_chain = true;
    return *this;
  }
  data_stream& slot_sharing_group(std::string group) {
    own_node().slot_sharing_group = std::move(group);
    return *this;
  }
  /// The graph node of this stream (not for unions).
  int32_t node_id() const { return own_node_id(); }

protected:
  template <class U>
  friend class data_stream;
  template <class K, class U, class S>
  friend class keyed_stream;
  friend struct internal::stream_access;

  data_stream(std::shared_ptr<environment_state> env, std::vector<internal::input_ref> inputs)
    : env_(std::move(env)), inputs_(std::move(inputs)) {}

  int32_t own_node_id() const {
    if (inputs_.size() != 1)
      throw std::logic_error("a union of streams is not an operator; set this on its inputs");
    return inputs_[0].node;
  }
  stream_node& own_node() const { return env_->graph.nodes[own_node_id()]; }

  data_stream<T> partitioned(ship_strategy s) const {
    return with_exchange(s, std::make_shared<typed_exchange<T>>(s));
  }

  data_stream<T> with_exchange(ship_strategy s,
                               std::shared_ptr<const exchange_factory> exchange) const {
    auto inputs = inputs_;
    for (auto& in : inputs) {
      in.strategy = s;
      in.strategy_explicit = true;
      in.exchange = exchange;
    }
    return data_stream<T>(env_, std::move(inputs));
  }

  /// Adds a node consuming this stream and returns its output stream.
  template <class R>
  data_stream<R> add_node(const std::string& name, node_kind kind,
                          std::function<std::unique_ptr<stream_operator>(const std::string&)> make) const {
    stream_node node;
    node.kind = kind;
    node.name = name;
    node.make_operator = std::move(make);
    for (const auto& in : inputs_)
      node.timestamped = node.timestamped || env_->graph.nodes[in.node].timestamped;
    internal::add_typed_node_helpers<R>(node);
    auto id = env_->graph.add_node(std::move(node)).id;
    for (const auto& in : inputs_)
      env_->graph.add_edge(in.node, id, in.strategy, in.strategy_explicit, in.exchange);
    return data_stream<R>(env_, id);
  }

  template <class R>
  data_stream<R> add_operator(const std::string& name,
                              std::function<std::unique_ptr<stream_operator>(const std::string&)> make) const {
    return add_node<R>(name, node_kind::operator_node, std::move(make));
  }

  std::shared_ptr<environment_state> env_;
  std::vector<internal::input_ref> inputs_;
};

/// A stream partitioned by key K: per-key aggregations and keyed
/// processing. Every operator created from it receives records hashed by
/// key group. The key selector's own type is kept so the per-record key
/// computation inlines; convert to keyed_stream<K, T> (a std::function
/// selector) to name the type.
template <class K, class T, class KeySel>
class keyed_stream : public data_stream<T> {
public:
  using key_type = K;
  using key_selector = KeySel;

  keyed_stream(const data_stream<T>& input, KeySel sel)
    : data_stream<T>(input.with_exchange(
        ship_strategy::hash,
        std::make_shared<typed_exchange<T, K, KeySel>>(ship_strategy::hash, sel))),
      key_(sel) {}

  /// Rolling reduce: f(const T& acc, T value) -> T; emits every update.
  template <class F>
  data_stream<T> reduce(F f) const {
    auto fold = [f](T& acc, T&& v) mutable { acc = f(static_cast<const T&>(acc), std::move(v)); };
    return keyed_fold("Keyed Reduce", fold);
  }
  /// Rolling sum of the field `proj` (a member pointer or a function
  /// returning a reference into the record); the rest of the record is the
  /// key's first record.
  template <class Proj>
  data_stream<T> sum(Proj proj) const {
    return keyed_fold("Keyed Aggregation", [proj](T& acc, T&& v) {
      std::invoke(proj, acc) += std::invoke(proj, v);
    });
  }
  /// Rolling minimum of a field (only the field changes, as in Flink).
  template <class Proj>
  data_stream<T> min(Proj proj) const {
    return keyed_fold("Keyed Aggregation", [proj](T& acc, T&& v) {
      if (std::invoke(proj, v) < std::invoke(proj, acc))
        std::invoke(proj, acc) = std::invoke(proj, v);
    });
  }
  /// Rolling maximum of a field (only the field changes, as in Flink).
  template <class Proj>
  data_stream<T> max(Proj proj) const {
    return keyed_fold("Keyed Aggregation", [proj](T& acc, T&& v) {
      if (std::invoke(proj, acc) < std::invoke(proj, v))
        std::invoke(proj, acc) = std::invoke(proj, v);
    });
  }
  /// The whole record with the smallest field so far (the first on ties).
  template <class Proj>
  data_stream<T> min_by(Proj proj) const {
    return keyed_fold("Keyed Aggregation", [proj](T& acc, T&& v) {
      if (std::invoke(proj, v) < std::invoke(proj, acc))
        acc = std::move(v);
    });
  }
  /// The whole record with the largest field so far (the first on ties).
  template <class Proj>
  data_stream<T> max_by(Proj proj) const {
    return keyed_fold("Keyed Aggregation", [proj](T& acc, T&& v) {
      if (std::invoke(proj, acc) < std::invoke(proj, v))
        acc = std::move(v);
    });
  }
  /// Keyed processing with state and timers: `fn` derives from
  /// keyed_process_function<K, T, R>; each subtask runs its own copy.
  template <class Fn,
            std::enable_if_t<internal::is_keyed_process_function<Fn>::value, int> = 0>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    static_assert(std::is_same_v<typename Fn::key_type, K>, "the function's key type is not the stream's");
    static_assert(std::is_same_v<typename Fn::input_type, T>, "the function's input type is not the stream's");
    using R = typename Fn::output_type;
    auto key = key_;
    return this->template add_operator<R>("KeyedProcess", [key, fn](const std::string& op_name) {
      return std::make_unique<keyed_process_function_operator<K, T, R, key_selector, Fn>>(op_name,
                                                                                       key, fn);
    });
  }
  /// Keyed processing: f(T, keyed_process_context<K>&, collector<R>&).
  template <class R, class F>
  data_stream<R> process(F f) const {
    auto key = key_;
    return this->template add_operator<R>("KeyedProcess", [key, f](const std::string& op_name) {
      return std::make_unique<keyed_process_operator<K, T, R, key_selector, F>>(op_name, key, f);
    });
  }
  const key_selector& key() const { return key_; }

  /// Connects with another stream keyed by the same key type: a two-input
  /// operator with keyed state and timers (keyed_connected_streams).
  template <class B, class SB>
  auto connect(const keyed_stream<K, B, SB>& other) const;
  /// Connects with a broadcast stream (the broadcast-state pattern).
  template <class B>
  auto connect(const broadcast_stream<B>& other) const;
  using data_stream<T>::connect;
  /// Interval join with another keyed stream: .between(lower, upper)
  /// .process(...) (joins.hpp).
  template <class B, class SB>
  interval_join_builder<K, T, KeySel, B, SB> interval_join(const keyed_stream<K, B, SB>& other) const;

  /// Groups each key's records into windows of `assigner` (tumbling,
  /// sliding, session or global windows).
  template <class A>
  auto window(A assigner) const {
    using W = typename decltype(assigner.assign_windows(0, 0))::value_type;
    return windowed_stream<K, T, KeySel, W>(*this, std::make_shared<A>(std::move(assigner)));
  }

private:
  template <class Fold>
  data_stream<T> keyed_fold(const std::string& name, Fold fold) const {
    auto key = key_;
    return this->template add_operator<T>(name, [key, fold](const std::string& op_name) {
      return std::make_unique<keyed_fold_operator<K, T, key_selector, Fold>>(op_name, key, fold);
    });
  }

  key_selector key_;

  template <class K2, class T2, class KS2, class W2>
  friend class windowed_stream;
  template <class R>
  data_stream<R> add_keyed_operator(const std::string& name,
                                    std::function<std::unique_ptr<stream_operator>(const std::string&)> make) const {
    return this->template add_operator<R>(name, std::move(make));
  }
};

template <class T>
template <class KeySel>
auto data_stream<T>::key_by(KeySel sel) const
  -> keyed_stream<std::decay_t<std::invoke_result_t<KeySel&, const T&>>, T, KeySel> {
  using K = std::decay_t<std::invoke_result_t<KeySel&, const T&>>;
  return keyed_stream<K, T, KeySel>(*this, sel);
}

/// A keyed stream cut into windows: choose a trigger, an evictor and
/// lateness, then a window function (reduce, aggregate, process, or reduce
/// or aggregate followed by process).
///
/// Without an evictor, reduce and aggregate fold each element into one
/// accumulator per window as it arrives. With one, as in Flink, the window
/// keeps every element (with its timestamp) whatever the function, and a
/// firing runs evict_before, the function over what remains (a reduce or
/// aggregate is applied to those elements then), evict_after, and keeps
/// what remains after that.
template <class K, class T, class KeySel, class W>
class windowed_stream {
public:
  windowed_stream(keyed_stream<K, T, KeySel> input, std::shared_ptr<const window_assigner<W>> a)
    : input_(std::move(input)), assigner_(std::move(a)) {
    if (assigner_->is_event_time())
      trigger_ = std::make_shared<event_time_trigger<T, W>>();
    else if constexpr (std::is_same_v<W, global_window>)
      trigger_ = std::make_shared<never_trigger<T, W>>();
    else
      trigger_ = std::make_shared<processing_time_trigger<T, W>>();
  }

  /// Replaces the assigner's default trigger.
  windowed_stream& trigger(std::shared_ptr<const runtime::trigger<T, W>> t) {
    if (!t)
      throw std::invalid_argument("window trigger must not be null");
    trigger_ = std::move(t);
    return *this;
  }
  /// Removes elements from a window when it fires (count_evictor,
  /// time_evictor, delta_evictor or a user evictor); each subtask clones it.
  windowed_stream& evictor(std::shared_ptr<const runtime::evictor<T, W>> e) {
    if (!e)
      throw std::invalid_argument("window evictor must not be null");
    evictor_ = std::move(e);
    return *this;
  }
  /// Keeps windows this long after the watermark passed their end; late
  /// records within it re-fire the window.
  windowed_stream& allowed_lateness(std::chrono::milliseconds lateness) {
    if (lateness.count() < 0)
      throw std::invalid_argument("allowed lateness must not be negative, got " +
                                  std::to_string(lateness.count()) + " ms");
    lateness_ = lateness.count();
    return *this;
  }
  /// Calls `sink(record, timestamp)` for each record dropped as late.
  windowed_stream& on_late_data(std::function<void(const T&, int64_t)> sink) {
    late_ = std::move(sink);
    return *this;
  }
  /// Sends records dropped as late to side output `tag` (Flink's
  /// sideOutputLateData); read it with get_side_output(tag) on the result.
  windowed_stream& side_output_late_data(const output_tag<T>& tag) {
    late_tag_ = tag.id();
    return *this;
  }

  /// Reduce: f(const T&, const T&) -> T.
  template <class F>
  data_stream<T> reduce(F f) const {
    return build<T>("Reduce", folding<T>(reduce_ops<T, F>{std::move(f)}, nullptr));
  }
  /// Reduce, then `fn` (a process_window_function<K, T, Out, W>) on the
  /// reduced value with the window's metadata.
  template <class F, class Fn>
  data_stream<typename Fn::output_type> reduce(F f, Fn fn) const {
    using Out = typename Fn::output_type;
    return build<Out>("Reduce, Process",
                      folding<Out>(reduce_ops<T, F>{std::move(f)}, factory<T, Out>(std::move(fn))));
  }
  /// Sum of a field, the rest of the record from the window's first record.
  template <class Proj>
  data_stream<T> sum(Proj proj) const {
    return reduce([proj](const T& a, const T& b) {
      T r = a;
      std::invoke(proj, r) += std::invoke(proj, b);
      return r;
    });
  }
  /// Aggregation with an aggregate_function<T, Acc, R>.
  template <class Acc, class R>
  data_stream<R> aggregate(std::shared_ptr<const state::aggregate_function<T, Acc, R>> agg) const {
    if (!agg)
      throw std::invalid_argument("window aggregate function must not be null");
    return build<R>("Aggregate", folding<R>(aggregate_ops<T, Acc, R>{std::move(agg)}, nullptr));
  }
  /// Aggregation, then `fn` (a process_window_function<K, R, Out, W>) on the
  /// result with the window's metadata.
  template <class Acc, class R, class Fn>
  data_stream<typename Fn::output_type>
  aggregate(std::shared_ptr<const state::aggregate_function<T, Acc, R>> agg, Fn fn) const {
    using Out = typename Fn::output_type;
    if (!agg)
      throw std::invalid_argument("window aggregate function must not be null");
    return build<Out>("Aggregate, Process",
                      folding<Out>(aggregate_ops<T, Acc, R>{std::move(agg)},
                                   factory<R, Out>(std::move(fn))));
  }
  /// Full-window processing: `fn` (a process_window_function<K, T, Out, W>)
  /// gets every element of the window.
  template <class Fn>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    using Out = typename Fn::output_type;
    auto elements =
      std::make_shared<process_elements<K, T, W, Out>>(factory<T, Out>(std::move(fn)));
    std::shared_ptr<const window_contents<K, T, W, Out>> contents;
    if (evictor_)
      contents = std::make_shared<evicting_contents<K, T, W, Out>>(evictor_, std::move(elements));
    else
      contents = std::make_shared<list_contents<K, T, W, Out>>(std::move(elements));
    return build<Out>("Process", std::move(contents));
  }

private:
  template <class T2, class W2>
  friend class all_windowed_stream;

  /// A function over a window's result of type In, copied for each subtask.
  template <class In, class Out, class Fn>
  static internal::process_factory<K, In, Out, W> factory(Fn fn) {
    static_assert(std::is_base_of_v<process_window_function<K, In, Out, W>, Fn>,
                  "the window function must derive from process_window_function<K, In, Out, W> "
                  "with the stream's key and window types and In the window's result type");
    return [fn]() -> std::unique_ptr<process_window_function<K, In, Out, W>> {
      return std::make_unique<Fn>(fn);
    };
  }

  /// Contents for a reduce or aggregate: incremental, or all elements with
  /// an evictor.
  template <class Out, class Ops>
  std::shared_ptr<const window_contents<K, T, W, Out>>
  folding(Ops ops, internal::process_factory<K, std::decay_t<typename Ops::result_type>, Out, W>
                     process) const {
    if (evictor_)
      return std::make_shared<evicting_contents<K, T, W, Out>>(
        evictor_, std::make_shared<fold_elements<K, T, W, Out, Ops>>(std::move(ops),
                                                                     std::move(process)));
    return std::make_shared<incremental_contents<K, T, W, Out, Ops>>(std::move(ops),
                                                                     std::move(process));
  }

  template <class Out>
  data_stream<Out> build(const std::string& function,
                         std::shared_ptr<const window_contents<K, T, W, Out>> contents) const {
    window_spec<K, T, W, Out> spec;
    spec.assigner = assigner_;
    spec.trigger_prototype = trigger_;
    spec.contents_prototype = std::move(contents);
    spec.allowed_lateness = lateness_;
    spec.late_sink = late_;
    spec.late_tag = late_tag_;
    auto key = input_.key();
    std::string name = std::string(all_ ? "AllWindow(" : "Window(") + function + ")";
    auto out = input_.template add_keyed_operator<Out>(name, [key, spec](const std::string& n) {
      return std::make_unique<window_operator<K, T, W, Out, KeySel>>(n, key, spec);
    });
    if (all_) {
      // One subtask sees the whole stream, as Flink's windowAll: a larger
      // parallelism is refused by set_parallelism and by the job graph.
      auto& node = input_.env_->graph.nodes[static_cast<size_t>(out.node_id())];
      node.non_parallel = true;
      node.parallelism = 1;
    }
    return out;
  }

  keyed_stream<K, T, KeySel> input_;
  std::shared_ptr<const window_assigner<W>> assigner_;
  std::shared_ptr<const runtime::trigger<T, W>> trigger_;
  std::shared_ptr<const runtime::evictor<T, W>> evictor_;
  int64_t lateness_ = 0;
  std::function<void(const T&, int64_t)> late_;
  std::string late_tag_;
  /// Built by window_all: the operator runs at parallelism 1.
  bool all_ = false;
};

namespace internal {
/// The key of window_all: every record has the same one (Flink's
/// NullByteKeySelector).
template <class T>
struct null_key_selector {
  uint8_t operator()(const T&) const noexcept { return 0; }
};
} // namespace internal

/// A whole (non-keyed) stream cut into windows (Flink's AllWindowedStream),
/// made by data_stream::window_all. It is a windowed stream keyed by one
/// constant key (an uint8_t 0) whose window operator runs at parallelism 1;
/// it offers the same settings and functions, with
/// process_all_window_function (no key) for full-window processing.
template <class T, class W>
class all_windowed_stream {
public:
  /// The constant key every record has.
  using key_type = uint8_t;

  all_windowed_stream(const data_stream<T>& input, std::shared_ptr<const window_assigner<W>> a)
    : inner_(input.key_by(internal::null_key_selector<T>{}), std::move(a)) {
    inner_.all_ = true;
  }

  /// Replaces the assigner's default trigger.
  all_windowed_stream& trigger(std::shared_ptr<const runtime::trigger<T, W>> t) {
    inner_.trigger(std::move(t));
    return *this;
  }
  /// Removes elements from a window when it fires.
  all_windowed_stream& evictor(std::shared_ptr<const runtime::evictor<T, W>> e) {
    inner_.evictor(std::move(e));
    return *this;
  }
  /// Keeps windows this long after the watermark passed their end.
  all_windowed_stream& allowed_lateness(std::chrono::milliseconds lateness) {
    inner_.allowed_lateness(lateness);
    return *this;
  }
  /// Calls `sink(record, timestamp)` for each record dropped as late.
  all_windowed_stream& on_late_data(std::function<void(const T&, int64_t)> sink) {
    inner_.on_late_data(std::move(sink));
    return *this;
  }
  /// Sends records dropped as late to side output `tag`.
  all_windowed_stream& side_output_late_data(const output_tag<T>& tag) {
    inner_.side_output_late_data(tag);
    return *this;
  }

  /// Reduce: f(const T&, const T&) -> T.
  template <class F>
  data_stream<T> reduce(F f) const {
    return inner_.reduce(std::move(f));
  }
  /// Reduce, then `fn` (a process_all_window_function<T, Out, W>) on the
  /// reduced value.
  template <class F, class Fn>
  data_stream<typename Fn::output_type> reduce(F f, Fn fn) const {
    return inner_.reduce(std::move(f), adapt<T>(std::move(fn)));
  }
  /// Sum of a field, the rest of the record from the window's first record.
  template <class Proj>
  data_stream<T> sum(Proj proj) const {
    return inner_.sum(std::move(proj));
  }
  /// Aggregation with an aggregate_function<T, Acc, R>.
  template <class Acc, class R>
  data_stream<R> aggregate(std::shared_ptr<const state::aggregate_function<T, Acc, R>> agg) const {
    return inner_.aggregate(std::move(agg));
  }
  /// Aggregation, then `fn` (a process_all_window_function<R, Out, W>).
  template <class Acc, class R, class Fn>
  data_stream<typename Fn::output_type>
  aggregate(std::shared_ptr<const state::aggregate_function<T, Acc, R>> agg, Fn fn) const {
    return inner_.aggregate(std::move(agg), adapt<R>(std::move(fn)));
  }
  /// Full-window processing: `fn` (a process_all_window_function<T, Out, W>)
  /// gets every element of the window.
  template <class Fn>
  data_stream<typename Fn::output_type> process(Fn fn) const {
    return inner_.process(adapt<T>(std::move(fn)));
  }

private:
  template <class In, class Fn>
  static internal::all_window_adapter<key_type, Fn> adapt(Fn fn) {
    static_assert(std::is_base_of_v<process_all_window_function<In, typename Fn::output_type, W>,
                                    Fn>,
                  "the window function must derive from process_all_window_function<In, Out, W> "
                  "with the stream's window type and In the window's result type");
    return internal::all_window_adapter<key_type, Fn>(std::move(fn));
  }

  windowed_stream<key_type, T, internal::null_key_selector<T>, W> inner_;
};

template <class T>
template <class A>
auto data_stream<T>::window_all(A assigner) const {
  using W = typename decltype(assigner.assign_windows(0, 0))::value_type;
  return all_windowed_stream<T, W>(*this, std::make_shared<A>(std::move(assigner)));
}

} // namespace sluice::runtime

// Two-input operators complete this header (they need data_stream whole).
#include "sluice/runtime/connected_streams.hpp"
#include "sluice/runtime/joins.hpp"
