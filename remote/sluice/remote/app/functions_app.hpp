#pragma once

#include "sluice/remote/ingress/http_ingress.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/remote/remote_function_client.hpp"
#include "sluice/runtime/job.hpp"

#include <caf/expected.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

/// A stateful-functions application run from a module YAML alone (`sluice
/// functions run module.yaml`): remote functions from its endpoints, the
/// HTTP ingress, and its egresses, as one job on the local mini-cluster.
namespace sluice::remote::app {

/// How `sluice functions run` runs a module.
struct functions_app_options {
  /// The HTTP ingress port; unset = the module's `sluice.io/v1/http-ingress`
  /// port, else 8090. 0 picks a free port.
  std::optional<uint16_t> port;
  /// The ingress's bind address; unset = the module's, else 127.0.0.1.
  std::optional<std::string> bind_address;
  /// Flink-style settings (runtime::apply_settings: parallelism.default,
  /// state.backend.type, execution.checkpointing.*, restart-strategy.*, ...)
  /// over the application's defaults: parallelism 2, RocksDB state, a
  /// checkpoint every second into a new directory under /tmp (removed on
  /// stop). An interval of 0 turns checkpointing off (a failure then loses
  /// function state).
  std::map<std::string, std::string> settings;
};

/// A running application: owns the HTTP client of the remote functions, the
/// ingress, and the job. Stopping (or destroying) cancels the job, then
/// stops the ingress and the client. Not copyable; methods are called from
/// one thread.
class functions_app {
public:
  /// Starts `declarations` as a job. Fails (nothing left running) when the
  /// module declares no function, more than one HTTP ingress, or a
  /// component that cannot start (port in use, bad egress path...).
  [[nodiscard]] static caf::expected<std::unique_ptr<functions_app>>
  start(const module& declarations, functions_app_options options = {});

  ~functions_app();
  functions_app(const functions_app&) = delete;
  functions_app& operator=(const functions_app&) = delete;

  /// The port the HTTP ingress listens on.
  [[nodiscard]] uint16_t port() const;
  /// The job running the functions.
  [[nodiscard]] runtime::job_client& job() const { return *job_; }
  /// Warnings about the settings (unknown keys).
  [[nodiscard]] const std::vector<std::string>& warnings() const noexcept { return warnings_; }
  /// The checkpoint directory in use.
  [[nodiscard]] const std::string& checkpoint_dir() const noexcept { return checkpoint_dir_; }
  /// Cancels the job and stops the ingress and the client; removes the
  /// checkpoint directory if start() made it. Idempotent.
  void stop();

private:
  functions_app() = default;

  std::shared_ptr<remote_function_client> client_;
  std::shared_ptr<ingress::http_ingress> ingress_;
  std::shared_ptr<runtime::job_client> job_;
  std::vector<std::string> warnings_;
  std::string checkpoint_dir_;
  bool owns_checkpoint_dir_ = false; ///< made by start(): removed by stop()
  bool stopped_ = false;
};

} // namespace sluice::remote::app
