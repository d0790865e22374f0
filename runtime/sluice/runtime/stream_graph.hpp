#pragma once

#include "sluice/runtime/exchange.hpp"
#include "sluice/runtime/operators.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <typeindex>
#include <memory>
#include <string>
#include <vector>

/// The logical graph a program builds: one node per operator, one edge per
/// connection, before chaining.
namespace sluice::runtime {

enum class node_kind { source, operator_node, sink };

/// One connection between two operators.
struct stream_edge {
  int32_t source = -1;
  int32_t target = -1;
  ship_strategy strategy = ship_strategy::forward;
  /// False when the program did not ask for a strategy: forward then becomes
  /// rebalance if the parallelism changes (as in Flink).
  bool strategy_explicit = false;
  std::shared_ptr<const exchange_factory> exchange;
  /// Set on the edge that carries side output `side_tag` (records of
  /// `side_type`) of the source node instead of its main output.
  std::string side_tag;
  std::type_index side_type{typeid(void)};
  /// A feedback edge closes a loop: it runs back to an earlier operator.
  /// Its channels do not end the target's input, hold no event time back,
  /// and take part in checkpoints as channel state (see docs/architecture.md).
  bool feedback = false;
};

/// One operator of the program with its settings.
struct stream_node {
  int32_t id = -1;
  node_kind kind = node_kind::operator_node;
  std::string name;
  std::string uid;
  std::string slot_sharing_group = "default";
  /// -1: the environment's default parallelism.
  int32_t parallelism = -1;
  /// -1: derived from the parallelism (or the environment's setting).
  int32_t max_parallelism = -1;
  /// Sources that cannot run in parallel (from_elements, sockets).
  bool non_parallel = false;
  bool chaining_disabled = false;
  bool start_new_chain = false;
  /// Its records carry event timestamps (it assigns them, or an input's
  /// records carry them): exchanges after it ship the timestamps.
  bool timestamped = false;
  /// >= 0: this node's parallelism is that (earlier) node's, resolved
  /// (side outputs and input adapters that must chain to their producer).
  int32_t parallelism_of = -1;
  /// Nodes reading this node's side outputs, by tag id.
  std::map<std::string, int32_t> side_output_nodes;
  /// Creates this operator's instance for one subtask, named as the node is
  /// named when the job starts (so name() applies to errors too).
  std::function<std::unique_ptr<stream_operator>(const std::string& name)> make_operator;
  /// Wraps several collectors of this node's output type into one.
  std::function<std::unique_ptr<any_collector>(std::vector<any_collector*>)> make_fanout;
  /// A collector of this node's output type that drops records.
  std::function<std::unique_ptr<any_collector>()> make_discard;
};

/// The uid that matches an operator's state on restore: the one the program
/// set, or one derived from the operator's position in the graph (stable
/// while the program's structure does not change).
inline std::string operator_uid(const stream_node& n) {
  return n.uid.empty() ? "auto-" + std::to_string(n.id) : n.uid;
}

/// The whole logical graph; nodes are numbered in creation order, which is
/// a topological order (a stream exists before anything consumes it).
struct stream_graph {
  std::vector<stream_node> nodes;
  std::vector<stream_edge> edges;

  /// Connects `source` to `target`; a non-empty `side_tag` makes it carry
  /// that side output of `source` (records of `side_type`).
  void add_edge(int32_t source, int32_t target, ship_strategy strategy, bool strategy_explicit,
                std::shared_ptr<const exchange_factory> exchange, std::string side_tag = {},
                std::type_index side_type = typeid(void), bool feedback = false) {
    stream_edge e;
    e.feedback = feedback;
    e.source = source;
    e.target = target;
    e.strategy = strategy;
    e.strategy_explicit = strategy_explicit;
    e.exchange = std::move(exchange);
    e.side_tag = std::move(side_tag);
    e.side_type = side_type;
    edges.push_back(std::move(e));
  }

  stream_node& add_node(stream_node n) {
    n.id = static_cast<int32_t>(nodes.size());
    nodes.push_back(std::move(n));
    return nodes.back();
  }
};

} // namespace sluice::runtime
