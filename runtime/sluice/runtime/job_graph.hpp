#pragma once

#include "sluice/runtime/exchange.hpp"
#include "sluice/runtime/source.hpp"
#include "sluice/runtime/stream_graph.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

/// The job graph: operators chained into vertices (tasks), and the plan of
/// channels between their parallel subtasks.
namespace sluice::runtime {

/// One task: a chain of operators that runs in one subtask actor per
/// parallel instance.
struct job_vertex {
  int32_t id = -1;
  /// 32 hex digits, stable for the same program (Flink's vertex id shape).
  std::string hex_id;
  /// "Source: numbers -> Map -> Filter", as Flink names chains.
  std::string name;
  /// Node ids in the chain, in topological order; nodes[0] is the head.
  std::vector<int32_t> nodes;
  int32_t parallelism = 1;
  int32_t max_parallelism = 128;
  std::string slot_sharing_group;
  /// Indices into stream_graph::edges entering the head, in input order.
  std::vector<int32_t> in_edges;
  /// Indices into stream_graph::edges leaving the chain; the position is the
  /// output id of the edge's network output.
  std::vector<int32_t> out_edges;
  bool is_source = false;
};

/// One input channel of a subtask: which upstream subtask feeds it, through
/// which output and channel index of that upstream subtask.
struct channel_endpoint {
  int32_t in_edge = 0;          // index into job_vertex::in_edges
  int32_t upstream_vertex = 0;
  int32_t upstream_subtask = 0;
  uint32_t upstream_output = 0; // index into the upstream's out_edges
  uint32_t upstream_channel = 0;
  bool feedback = false;        // on a feedback edge (closes a loop)
};

/// The operators of one subtask, wired and ready to open.
struct chain_instance {
  std::vector<std::unique_ptr<stream_operator>> operators; // topological order
  source_operator_base* source = nullptr;
  std::vector<std::unique_ptr<any_collector>> glue;        // fan-outs, discards
  std::vector<std::unique_ptr<network_output_base>> outputs; // by output id
  std::vector<std::unique_ptr<input_feeder>> feeders;      // by in_edge index
};

/// Error in how the program was put together (e.g. forward between
/// operators of different parallelism); thrown when building the job graph.
class invalid_program : public std::invalid_argument {
public:
  using std::invalid_argument::invalid_argument;
};

class job_graph {
public:
  /// Chains `graph`, resolving unset parallelism to `default_parallelism`
  /// and unset max parallelism to `default_max_parallelism` (-1: Flink's
  /// formula). Throws invalid_program on an inconsistent program.
  job_graph(std::string name, std::shared_ptr<const stream_graph> graph,
            int32_t default_parallelism, int32_t default_max_parallelism);

  const std::string& name() const noexcept { return name_; }
  const std::vector<job_vertex>& vertices() const noexcept { return vertices_; }
  const stream_graph& graph() const noexcept { return *graph_; }
  int32_t vertex_of_node(int32_t node) const { return vertex_of_node_[node]; }
  /// Resolved parallelism of a node.
  int32_t parallelism_of(int32_t node) const { return parallelism_[node]; }
  /// Resolved ship strategy of a stream edge.
  ship_strategy strategy_of(int32_t edge) const { return strategy_[edge]; }

  /// Downstream subtasks that upstream subtask `index` sends to over `edge`.
  std::vector<int32_t> connected_subtasks(int32_t edge, int32_t index) const;
  /// Input channels of subtask `index` of `vertex`, in channel order.
  std::vector<channel_endpoint> input_channels(int32_t vertex, int32_t index) const;
  /// Slots needed: sum over slot sharing groups of the group's highest
  /// parallelism.
  int32_t required_slots() const;

  /// Builds and wires the operators of one subtask.
  /// `element` is the subtask's record context: outputs copy timestamps
  /// from it (on edges whose records carry them) and feeders publish them.
  chain_instance instantiate(int32_t vertex, int32_t index, output_gate& gate,
                             const exchange_params& params,
                             element_context* element = nullptr) const;

  /// The plan as JSON, shaped like the "plan" of Flink's /jobs/:jobid.
  std::string plan_json(const std::string& job_id = "") const;

private:
  std::string name_;
  std::shared_ptr<const stream_graph> graph_;
  std::vector<job_vertex> vertices_;
  std::vector<int32_t> vertex_of_node_;
  std::vector<int32_t> parallelism_;
  std::vector<ship_strategy> strategy_;
  std::vector<std::vector<int32_t>> in_edges_of_node_;
  std::vector<std::vector<int32_t>> out_edges_of_node_;
};

} // namespace sluice::runtime
