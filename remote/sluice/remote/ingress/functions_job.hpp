#pragma once

#include "sluice/functions/application.hpp"
#include "sluice/functions/file_egress.hpp"
#include "sluice/remote/ingress/http_ingress.hpp"
#include "sluice/remote/ingress/ingress_source.hpp"
#include "sluice/remote/module.hpp"
#include "sluice/runtime/environment.hpp"

#include <caf/expected.hpp>

#include <memory>
#include <optional>

/// Wiring an HTTP ingress and file egresses into a functions job.
namespace sluice::remote::ingress {

/// Adds the source reading `ingress`'s journal to `env` (parallelism 1,
/// uid `http-ingress:<id>`): the ingress stream for functions::run_functions.
[[nodiscard]] runtime::data_stream<functions::envelope>
add_http_ingress(runtime::stream_environment& env, const http_ingress& ingress);

/// Adds the reply sink of `ingress` to the egress stream (records of
/// reply_egress() and `dead_letter_egress`; chained after the dispatcher,
/// at its parallelism).
void add_reply_sink(const runtime::data_stream<functions::envelope>& egress,
                    const http_ingress& ingress, const functions::egress_id& dead_letter_egress);

/// Adds a file egress sink (parallelism 1, uid `file-egress:<id>`) for the
/// records of egress `id`.
void add_file_egress(const runtime::data_stream<functions::envelope>& egress,
                     const functions::egress_id& id, functions::file_egress_options options);

/// Adds the sinks of a module's file egresses and dead-letter egress (the
/// records of `dead_letter_egress`, as dead-letter JSON lines).
void add_module_egresses(const runtime::data_stream<functions::envelope>& egress,
                         const module& declarations,
                         const functions::egress_id& dead_letter_egress);

/// A functions job behind `ingress`: binds the reply function in
/// `registry` (fails if `sluice/http-reply` is bound already), runs the
/// functions (functions::run_functions) on the ingress source, and adds the
/// reply sink and the sinks of `declarations`' file and dead-letter
/// egresses. `more_ingress` (e.g. Kafka ingresses) joins the HTTP ingress
/// in front of the dispatcher. The egress stream is returned for further
/// egresses (Kafka...).
[[nodiscard]] caf::expected<runtime::data_stream<functions::envelope>>
run_http_functions(runtime::stream_environment& env, const http_ingress& ingress,
                   std::shared_ptr<functions::function_registry> registry,
                   const module& declarations, functions::dispatcher_options options = {},
                   const std::optional<runtime::data_stream<functions::envelope>>& more_ingress =
                     std::nullopt);

} // namespace sluice::remote::ingress
