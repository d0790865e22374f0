#include "sluice/runtime/job_graph.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>

namespace sluice::runtime {

const char* to_string(ship_strategy s) noexcept {
  switch (s) {
    case ship_strategy::forward:
      return "FORWARD";
    case ship_strategy::rebalance:
      return "REBALANCE";
    case ship_strategy::rescale:
      return "RESCALE";
    case ship_strategy::shuffle:
      return "SHUFFLE";
    case ship_strategy::broadcast:
      return "BROADCAST";
    case ship_strategy::global:
      return "GLOBAL";
    case ship_strategy::hash:
      return "HASH";
    case ship_strategy::custom:
      return "CUSTOM";
  }
  return "UNKNOWN";
}

namespace {

uint64_t fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex_id_of(const std::string& key) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx",
                static_cast<unsigned long long>(fnv1a(key, 14695981039346656037ull)),
                static_cast<unsigned long long>(fnv1a(key, 1469598103934665603ull)));
  return buf;
}

} // namespace

job_graph::job_graph(std::string name, std::shared_ptr<const stream_graph> graph,
                     int32_t default_parallelism, int32_t default_max_parallelism)
  : name_(std::move(name)), graph_(std::move(graph)) {
  const auto& nodes = graph_->nodes;
  const auto& edges = graph_->edges;
  auto n = nodes.size();
  in_edges_of_node_.resize(n);
  out_edges_of_node_.resize(n);
  for (size_t e = 0; e < edges.size(); ++e) {
    in_edges_of_node_[edges[e].target].push_back(static_cast<int32_t>(e));
    out_edges_of_node_[edges[e].source].push_back(static_cast<int32_t>(e));
  }
  if (default_parallelism < 1)
    throw invalid_program("default parallelism must be at least 1, got " +
                          std::to_string(default_parallelism));
  parallelism_.resize(n);
  std::map<std::string, int> uids;
  for (const auto& node : nodes) {
    int32_t p = node.parallelism > 0 ? node.parallelism : default_parallelism;
    if (node.parallelism_of >= 0)
      p = parallelism_[node.parallelism_of];
    if (node.non_parallel) {
      if (node.parallelism > 1)
        throw invalid_program("'" + node.name + "' is not a parallel source; its parallelism must be 1");
      p = 1;
    }
    parallelism_[node.id] = p;
    for (auto e : in_edges_of_node_[node.id])
      if ((edges[e].source >= node.id) != edges[e].feedback)
        throw invalid_program("'" + node.name + "' has an input from a later operator that is "
                              "not a feedback edge (or a feedback edge from an earlier one)");
    if (node.kind != node_kind::source && in_edges_of_node_[node.id].empty())
      throw invalid_program("operator '" + node.name + "' has no input");
    if (!node.uid.empty() && uids[node.uid]++ > 0)
      throw invalid_program("uid '" + node.uid + "' is used by more than one operator");
  }
  strategy_.resize(edges.size());
  for (size_t e = 0; e < edges.size(); ++e) {
    const auto& edge = edges[e];
    auto s = edge.strategy;
    bool same = parallelism_[edge.source] == parallelism_[edge.target];
    if (s == ship_strategy::forward && !same) {
      if (edge.strategy_explicit)
        throw invalid_program("forward partitioning does not allow a change of parallelism: '" +
                              nodes[edge.source].name + "' (" +
                              std::to_string(parallelism_[edge.source]) + ") -> '" +
                              nodes[edge.target].name + "' (" +
                              std::to_string(parallelism_[edge.target]) +
                              "); use rebalance() or rescale()");
      s = ship_strategy::rebalance;
    }
    strategy_[e] = s;
  }

  // Chain: a node joins its upstream's vertex when it has exactly one input,
  // that input is forward between equal parallelism in the same slot sharing
  // group, and neither side asked to break the chain.
  vertex_of_node_.assign(n, -1);
  for (const auto& node : nodes) {
    const auto& ins = in_edges_of_node_[node.id];
    bool chained = false;
    if (ins.size() == 1) {
      const auto& edge = edges[ins[0]];
      const auto& up = nodes[edge.source];
      chained = strategy_[ins[0]] == ship_strategy::forward && !node.chaining_disabled &&
                !node.start_new_chain && !up.chaining_disabled &&
                up.slot_sharing_group == node.slot_sharing_group &&
                parallelism_[up.id] == parallelism_[node.id];
    }
    if (chained) {
      auto v = vertex_of_node_[edges[ins[0]].source];
      vertex_of_node_[node.id] = v;
      vertices_[v].nodes.push_back(node.id);
    } else {
      job_vertex v;
      v.id = static_cast<int32_t>(vertices_.size());
      v.nodes.push_back(node.id);
      v.parallelism = parallelism_[node.id];
      v.slot_sharing_group = node.slot_sharing_group;
      v.in_edges = ins;
      v.is_source = node.kind == node_kind::source;
      vertex_of_node_[node.id] = v.id;
      vertices_.push_back(std::move(v));
    }
  }
  for (auto& v : vertices_) {
    std::string key;
    v.max_parallelism = -1;
    for (auto id : v.nodes) {
      const auto& node = nodes[id];
      std::string shown = node.name;
      if (node.kind == node_kind::source)
        shown = "Source: " + shown;
      else if (node.kind == node_kind::sink)
        shown = "Sink: " + shown;
      v.name += (v.name.empty() ? "" : " -> ") + shown;
      key += (node.uid.empty() ? node.name + "#" + std::to_string(id) : "uid:" + node.uid) + "|";
      if (node.max_parallelism > 0)
        v.max_parallelism = std::max(v.max_parallelism, node.max_parallelism);
      for (auto e : out_edges_of_node_[id])
        if (vertex_of_node_[edges[e].target] != v.id || edges[e].feedback)
          v.out_edges.push_back(e);
    }
    if (v.max_parallelism < 0)
      v.max_parallelism = default_max_parallelism > 0 ? default_max_parallelism
                                                      : state::default_max_parallelism(v.parallelism);
    if (v.max_parallelism < v.parallelism)
      throw invalid_program("max parallelism " + std::to_string(v.max_parallelism) + " of '" +
                            v.name + "' is lower than its parallelism " +
                            std::to_string(v.parallelism));
    if (v.max_parallelism > state::upper_bound_max_parallelism)
      throw invalid_program("max parallelism of '" + v.name + "' exceeds 32768");
    v.hex_id = hex_id_of(key);
  }
}

std::vector<int32_t> job_graph::connected_subtasks(int32_t edge, int32_t index) const {
  const auto& e = graph_->edges[edge];
  int32_t pu = parallelism_[e.source];
  int32_t pd = parallelism_[e.target];
  std::vector<int32_t> out;
  if (!is_pointwise(strategy_[edge])) {
    out.resize(pd);
    for (int32_t j = 0; j < pd; ++j)
      out[j] = j;
  } else if (pu == pd) {
    out.push_back(index);
  } else if (pu < pd) {
    // Each upstream subtask feeds a contiguous range of downstream subtasks.
    int64_t from = static_cast<int64_t>(index) * pd / pu;
    int64_t to = static_cast<int64_t>(index + 1) * pd / pu;
    for (auto j = from; j < to; ++j)
      out.push_back(static_cast<int32_t>(j));
  } else {
    // Each downstream subtask reads a contiguous range of upstream subtasks.
    out.push_back(static_cast<int32_t>(static_cast<int64_t>(index) * pd / pu));
  }
  return out;
}

std::vector<channel_endpoint> job_graph::input_channels(int32_t vertex, int32_t index) const {
  std::vector<channel_endpoint> out;
  const auto& v = vertices_[vertex];
  for (size_t k = 0; k < v.in_edges.size(); ++k) {
    auto e = v.in_edges[k];
    const auto& edge = graph_->edges[e];
    auto uv = vertex_of_node_[edge.source];
    const auto& up = vertices_[uv];
    auto out_id = static_cast<uint32_t>(
      std::find(up.out_edges.begin(), up.out_edges.end(), e) - up.out_edges.begin());
    for (int32_t i = 0; i < up.parallelism; ++i) {
      auto targets = connected_subtasks(e, i);
      auto it = std::find(targets.begin(), targets.end(), index);
      if (it == targets.end())
        continue;
      out.push_back({static_cast<int32_t>(k), uv, i, out_id,
                     static_cast<uint32_t>(it - targets.begin()), edge.feedback});
    }
  }
  return out;
}

int32_t job_graph::required_slots() const {
  std::map<std::string, int32_t> per_group;
  for (const auto& v : vertices_)
    per_group[v.slot_sharing_group] = std::max(per_group[v.slot_sharing_group], v.parallelism);
  int32_t total = 0;
  for (const auto& [group, p] : per_group)
    total += p;
  return total;
}

chain_instance job_graph::instantiate(int32_t vertex, int32_t index, output_gate& gate,
                                      const exchange_params& params,
                                      element_context* element) const {
  const auto& v = vertices_[vertex];
  const auto& nodes = graph_->nodes;
  const auto& edges = graph_->edges;
  chain_instance chain;
  std::map<int32_t, stream_operator*> op_of;
  for (auto id : v.nodes) {
    chain.operators.push_back(nodes[id].make_operator(nodes[id].name));
    op_of[id] = chain.operators.back().get();
  }
  std::map<int32_t, network_output_base*> output_of_edge;
  for (size_t k = 0; k < v.out_edges.size(); ++k) {
    auto e = v.out_edges[k];
    const auto& edge = edges[e];
    const auto& down = vertices_[vertex_of_node_[edge.target]];
    auto channels = static_cast<uint32_t>(connected_subtasks(e, index).size());
    chain.outputs.push_back(edge.exchange->make_output(
      gate, static_cast<uint32_t>(k), channels, index, down.parallelism, down.max_parallelism,
      params, nodes[edge.source].name));
    chain.outputs.back()->set_element_context(element, nodes[edge.source].timestamped);
    output_of_edge[e] = chain.outputs.back().get();
  }
  for (auto id : v.nodes) {
    std::vector<any_collector*> targets;
    auto* op = op_of[id];
    for (auto e : out_edges_of_node_[id]) {
      auto t = edges[e].target;
      // A feedback edge always crosses subtasks, even back into its own
      // chain: it is partitioned, and checkpoints must see it.
      auto* target = vertex_of_node_[t] == vertex && !edges[e].feedback
                       ? op_of[t]->input()
                       : output_of_edge[e]->collector_ptr();
      if (edges[e].side_tag.empty())
        targets.push_back(target);
      else
        op->set_side_output(edges[e].side_tag, edges[e].side_type, target);
    }
    if (nodes[id].kind == node_kind::sink)
      continue;
    if (targets.empty()) {
      chain.glue.push_back(nodes[id].make_discard());
      op->set_output(chain.glue.back().get());
    } else if (targets.size() == 1) {
      op->set_output(targets[0]);
    } else {
      chain.glue.push_back(nodes[id].make_fanout(std::move(targets)));
      op->set_output(chain.glue.back().get());
    }
  }
  if (v.is_source)
    chain.source = dynamic_cast<source_operator_base*>(chain.operators.front().get());
  auto* head_input = chain.operators.front()->input();
  for (auto e : v.in_edges) {
    chain.feeders.push_back(edges[e].exchange->make_feeder(head_input));
    chain.feeders.back()->set_element_context(element);
  }
  return chain;
}

std::string job_graph::plan_json(const std::string& job_id) const {
  using nlohmann::json;
  json nodes_json = json::array();
  for (const auto& v : vertices_) {
    json inputs = json::array();
    for (size_t k = 0; k < v.in_edges.size(); ++k) {
      auto e = v.in_edges[k];
      inputs.push_back({{"num", k},
                        {"id", vertices_[vertex_of_node_[graph_->edges[e].source]].hex_id},
                        {"ship_strategy", to_string(strategy_[e])},
                        {"exchange", "pipelined_bounded"}});
    }
    json chain = json::array();
    for (auto id : v.nodes) {
      const auto& node = graph_->nodes[id];
      chain.push_back({{"name", node.name}, {"uid", node.uid}});
    }
    json node = {{"id", v.hex_id},
                 {"parallelism", v.parallelism},
                 {"maxParallelism", v.max_parallelism},
                 {"operator", ""},
                 {"operator_strategy", ""},
                 {"description", v.name},
                 {"slotSharingGroup", v.slot_sharing_group},
                 {"chain", chain},
                 {"optimizer_properties", json::object()}};
    if (!inputs.empty())
      node["inputs"] = inputs;
    nodes_json.push_back(std::move(node));
  }
  json plan = {{"jid", job_id}, {"name", name_}, {"type", "STREAMING"}, {"nodes", nodes_json}};
  return plan.dump();
}

} // namespace sluice::runtime
