#include "sluice/remote/ingress/functions_job.hpp"

#include "sluice/remote/ingress/replies.hpp"

namespace sluice::remote::ingress {

runtime::data_stream<functions::envelope> add_http_ingress(runtime::stream_environment& env,
                                                           const http_ingress& ingress) {
  auto stream = env.add_source(http_ingress_source(ingress.journal(),
                                                   ingress.config().source_poll_interval),
                               "HTTP Ingress " + ingress.config().id);
  stream.set_parallelism(1).uid("http-ingress:" + ingress.config().id);
  return stream;
}

void add_reply_sink(const runtime::data_stream<functions::envelope>& egress,
                    const http_ingress& ingress, const functions::egress_id& dead_letter_egress) {
  auto id = reply_egress();
  egress
      .filter([id, dead_letter_egress](const functions::envelope& e) {
        return e.egress == id || e.egress == dead_letter_egress;
      })
      .name("To HTTP Replies")
      .add_sink(reply_sink(ingress.replies(), dead_letter_egress), "HTTP Replies");
}

void add_file_egress(const runtime::data_stream<functions::envelope>& egress,
                     const functions::egress_id& id, functions::file_egress_options options) {
  egress.filter([id](const functions::envelope& e) { return e.egress == id; })
      .name("To " + id.to_string())
      .add_sink(functions::file_egress_sink(std::move(options)), "File Egress " + id.to_string())
      .set_parallelism(1)
      .uid("file-egress:" + id.to_string());
}

void add_module_egresses(const runtime::data_stream<functions::envelope>& egress,
                         const module& declarations,
                         const functions::egress_id& dead_letter_egress) {
  for (auto& f : declarations.file_egresses) {
    auto format = f.line_format == file_egress_spec::format::json
                      ? functions::egress_line_format::json
                      : functions::egress_line_format::raw;
    add_file_egress(egress, functions::egress_id{f.id.ns, f.id.name}, {f.path, format});
  }
  if (declarations.dead_letters)
    add_file_egress(egress, dead_letter_egress,
                    {declarations.dead_letters->path, functions::egress_line_format::dead_letter});
}

caf::expected<runtime::data_stream<functions::envelope>>
run_http_functions(runtime::stream_environment& env, const http_ingress& ingress,
                   std::shared_ptr<functions::function_registry> registry,
                   const module& declarations, functions::dispatcher_options options,
                   const std::optional<runtime::data_stream<functions::envelope>>& more_ingress) {
  if (auto err = bind_reply_function(*registry))
    return err;
  auto dead_letters = options.dead_letter_egress;
  auto in = add_http_ingress(env, ingress);
  if (more_ingress)
    in = in.union_with(*more_ingress);
  auto egress = functions::run_functions(in, std::move(registry), std::move(options));
  add_reply_sink(egress, ingress, dead_letters);
  add_module_egresses(egress, declarations, dead_letters);
  return egress;
}

} // namespace sluice::remote::ingress
