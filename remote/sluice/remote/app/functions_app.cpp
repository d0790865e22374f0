#include "sluice/remote/app/functions_app.hpp"

#include "sluice/remote/errors.hpp"
#include "sluice/remote/ingress/functions_job.hpp"
#include "sluice/remote/kafka/kafka_egress.hpp"
#include "sluice/remote/kafka/kafka_ingress.hpp"
#include "sluice/remote/remote_function.hpp"
#include "sluice/runtime/environment.hpp"
#include "sluice/runtime/settings.hpp"
#include "sluice/sluice.hpp"

#include <cstdlib>
#include <filesystem>
#include <exception>

namespace sluice::remote::app {

namespace {

caf::error app_error(std::string what) {
  return make_error(remote_errc::invalid_configuration, std::move(what));
}

} // namespace

caf::expected<std::unique_ptr<functions_app>>
functions_app::start(const module& declarations, functions_app_options options) {
  if (declarations.endpoints.empty())
    return app_error("the module declares no function endpoint "
                     "(kind: io.statefun.endpoints.v2/http)");
  if (declarations.http_ingresses.size() > 1)
    return app_error("the module declares " + std::to_string(declarations.http_ingresses.size()) +
                     " HTTP ingresses; one is supported");
  std::unique_ptr<functions_app> app(new functions_app());

  app->client_ = std::make_shared<remote_function_client>();
  auto registry = std::make_shared<functions::function_registry>();
  if (auto err = bind_endpoints(*registry, declarations, app->client_))
    return err;

  runtime::configuration cfg;
  cfg.parallelism = 2;
  cfg.state.backend = state::backend_kind::rocksdb;
  cfg.checkpoints.interval = std::chrono::seconds(1);
  try {
    app->warnings_ = runtime::apply_settings(cfg, options.settings);
  } catch (const std::invalid_argument& e) {
    return app_error(e.what());
  }
  app->checkpoint_dir_ = cfg.checkpoints.directory;
  if (cfg.checkpoints.enabled() && app->checkpoint_dir_.empty()) {
    char tmpl[] = "/tmp/sluice-functions-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr)
      return app_error("cannot create a checkpoint directory under /tmp");
    app->checkpoint_dir_ = tmpl;
    app->owns_checkpoint_dir_ = true;
  }
  cfg.checkpoints.directory = app->checkpoint_dir_;

  ingress::http_ingress_config ingress_cfg;
  if (!declarations.http_ingresses.empty())
    ingress_cfg = ingress::config_from(declarations.http_ingresses.front());
  else
    ingress_cfg.port = 8090;
  if (options.port)
    ingress_cfg.port = *options.port;
  if (options.bind_address)
    ingress_cfg.bind_address = *options.bind_address;
  auto started = ingress::http_ingress::start(ingress_cfg);
  if (!started)
    return std::move(started.error());
  app->ingress_ = std::move(*started);

  try {
    runtime::stream_environment env(cfg);
    // Kafka ingresses join the HTTP ingress in front of the dispatcher.
    std::optional<runtime::data_stream<functions::envelope>> more;
    if (!declarations.kafka_ingresses.empty()) {
      auto kafka_in = kafka::add_kafka_ingresses(env, declarations);
      if (!kafka_in)
        return std::move(kafka_in.error());
      more = std::move(*kafka_in);
    }
    auto egress = ingress::run_http_functions(env, *app->ingress_, registry, declarations, {}, more);
    if (!egress)
      return std::move(egress.error());
    if (auto err = kafka::add_kafka_egresses(*egress, declarations))
      return err;
    app->job_ = env.execute_async("functions");
  } catch (const std::exception& e) {
    return app_error(std::string("cannot start the functions job: ") + e.what());
  }
  return app;
}

functions_app::~functions_app() { stop(); }

uint16_t functions_app::port() const { return ingress_->port(); }

void functions_app::stop() {
  if (stopped_)
    return;
  stopped_ = true;
  if (job_) {
    job_->cancel();
    job_->wait();
  }
  if (ingress_)
    ingress_->stop();
  if (client_)
    client_->shutdown();
  if (owns_checkpoint_dir_) {
    std::error_code ignored;
    std::filesystem::remove_all(checkpoint_dir_, ignored);
  }
}

} // namespace sluice::remote::app
