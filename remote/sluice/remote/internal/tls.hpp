#pragma once

#include <caf/expected.hpp>

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
} // namespace boost::asio::ssl

namespace sluice::remote::internal {

/// Where a TLS server finds its certificate chain and private key (PEM
/// files), and the setting names that errors quote.
struct tls_server_files {
  std::string certificate_file;
  std::string private_key_file;
  /// The settings the files came from, e.g. "security.ssl.rest.cert-file".
  std::string certificate_setting = "certificate file";
  std::string private_key_setting = "private key file";
};

/// A server context (TLS 1.2 or newer) with the certificate chain and key
/// loaded. Fails with `invalid_configuration` naming the setting when a file
/// cannot be read or parsed, or the key does not match the certificate.
/// The context is shared read-only by every connection of one server.
[[nodiscard]] caf::expected<std::shared_ptr<boost::asio::ssl::context>>
make_tls_server_context(const tls_server_files& files);

/// A client context (TLS 1.2 or newer) that verifies the server's chain
/// against the PEM certificates in `trust_file`, or the system's store when
/// it is empty. `setting` names the trust file in errors.
[[nodiscard]] caf::expected<std::shared_ptr<boost::asio::ssl::context>>
make_tls_client_context(const std::string& trust_file, const std::string& setting);

} // namespace sluice::remote::internal
