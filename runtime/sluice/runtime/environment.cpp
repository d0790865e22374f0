#include "sluice/runtime/environment.hpp"

#include <stdexcept>
#include <thread>

namespace sluice::runtime {

stream_environment::stream_environment(configuration config)
  : env_(std::make_shared<environment_state>()) {
  env_->config = std::move(config);
}

stream_environment& stream_environment::set_parallelism(int32_t p) {
  if (p < 1)
    throw std::invalid_argument("parallelism must be at least 1, got " + std::to_string(p));
  env_->config.parallelism = p;
  return *this;
}

int32_t stream_environment::parallelism() const {
  if (env_->config.parallelism > 0)
    return env_->config.parallelism;
  auto cores = static_cast<int32_t>(std::thread::hardware_concurrency());
  return cores > 0 ? cores : 1;
}

stream_environment& stream_environment::set_max_parallelism(int32_t p) {
  if (p < 1 || p > state::upper_bound_max_parallelism)
    throw std::invalid_argument("max parallelism must be in [1, 32768], got " + std::to_string(p));
  env_->config.max_parallelism = p;
  return *this;
}

stream_environment& stream_environment::set_buffer_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() < 0)
    throw std::invalid_argument("buffer timeout must not be negative");
  env_->config.buffer_timeout = timeout;
  return *this;
}

data_stream<std::string> stream_environment::read_text_file(const std::string& path) {
  return add_source_node<std::string>(text_file_source{path}, "Read Text File: " + path, false);
}

data_stream<std::string> stream_environment::socket_text_stream(
  const std::string& host, uint16_t port, char delimiter,
  std::chrono::milliseconds connect_timeout) {
  return add_source_node<std::string>(socket_text_source{host, port, delimiter, connect_timeout},
                                      "Socket Stream", true);
}

std::shared_ptr<const job_graph> stream_environment::job(const std::string& name) const {
  auto graph = std::make_shared<const stream_graph>(env_->graph);
  return std::make_shared<const job_graph>(name, graph, parallelism(),
                                           env_->config.max_parallelism);
}

std::string stream_environment::explain(const std::string& name) const {
  return job(name)->plan_json();
}

job_result stream_environment::execute(const std::string& name) {
  return execute_async(name)->wait();
}

std::shared_ptr<job_client> stream_environment::execute_async(const std::string& name) {
  auto graph = job(name);
  if (env_->graph.nodes.empty())
    throw invalid_program("no operators defined: add a source and a sink before execute()");
  if (!env_->executor)
    env_->executor = make_default_executor();
  return env_->executor->submit(graph, env_->config);
}

} // namespace sluice::runtime
