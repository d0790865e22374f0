#include "sluice/remote/internal/tls.hpp"

#include "sluice/remote/errors.hpp"

#include <boost/asio/ssl/context.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>

namespace sluice::remote::internal {

namespace net = boost::asio;

namespace {

/// OpenSSL's reason for the last failure (its error queue), else `ec`'s.
std::string openssl_reason(const boost::system::error_code& ec) {
  std::string why = ec ? ec.message() : std::string{};
  if (auto code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    why = buf;
  }
  ERR_clear_error();
  return why.empty() ? "not valid PEM" : why;
}

/// Fails when the file cannot be opened, so errors say "cannot read" rather
/// than OpenSSL's less direct "no such file" codes.
caf::error check_readable(const std::string& setting, const std::string& file) {
  if (file.empty())
    return make_error(remote_errc::invalid_configuration, setting + " is not set");
  std::ifstream in{file};
  if (!in)
    return make_error(remote_errc::invalid_configuration, setting + ": cannot read '" + file + "'");
  return {};
}

constexpr long tls12_or_newer =
    SSL_OP_NO_SSLv2 | SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION;

} // namespace

caf::expected<std::shared_ptr<net::ssl::context>>
make_tls_server_context(const tls_server_files& files) {
  if (auto err = check_readable(files.certificate_setting, files.certificate_file))
    return err;
  if (auto err = check_readable(files.private_key_setting, files.private_key_file))
    return err;
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(net::ssl::context::default_workarounds | tls12_or_newer, ec);
  if (!ec && SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
    return make_error(remote_errc::invalid_configuration, "cannot require TLS 1.2");
  ctx->use_certificate_chain_file(files.certificate_file, ec);
  if (ec)
    return make_error(remote_errc::invalid_configuration,
                      files.certificate_setting + ": '" + files.certificate_file +
                          "' holds no PEM certificate chain (" + openssl_reason(ec) + ")");
  ctx->use_private_key_file(files.private_key_file, net::ssl::context::pem, ec);
  if (ec) {
    // OpenSSL refuses a key that does not match the certificate loaded
    // first with X509_R_KEY_VALUES_MISMATCH (Asio has taken it from the
    // error queue into `ec`); anything else is not a key.
    bool mismatch = ec.category() == net::error::get_ssl_category() &&
                    ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
                      X509_R_KEY_VALUES_MISMATCH;
    auto why = openssl_reason(ec);
    if (mismatch)
      return make_error(remote_errc::invalid_configuration,
                        files.private_key_setting + ": the key in '" + files.private_key_file +
                          "' does not match the certificate of " + files.certificate_setting +
                          " (" + why + ")");
    return make_error(remote_errc::invalid_configuration,
                      files.private_key_setting + ": '" + files.private_key_file +
                        "' holds no PEM private key (" + why + ")");
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1)
    return make_error(remote_errc::invalid_configuration,
                      files.private_key_setting + ": the key in '" + files.private_key_file +
                          "' does not match the certificate of " + files.certificate_setting +
                          " (" + openssl_reason({}) + ")");
  return ctx;
}

caf::expected<std::shared_ptr<net::ssl::context>>
make_tls_client_context(const std::string& trust_file, const std::string& setting) {
  auto ctx = std::make_shared<net::ssl::context>(net::ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(net::ssl::context::default_workarounds | tls12_or_newer, ec);
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
    return make_error(remote_errc::invalid_configuration, "cannot require TLS 1.2");
  ctx->set_verify_mode(net::ssl::verify_peer, ec);
  if (trust_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec)
      return make_error(remote_errc::invalid_configuration,
                        "cannot load the system's trusted certificates: " + openssl_reason(ec));
    return ctx;
  }
  if (auto err = check_readable(setting, trust_file))
    return err;
  ctx->load_verify_file(trust_file, ec);
  if (ec)
    return make_error(remote_errc::invalid_configuration, setting + ": '" + trust_file +
                                                              "' holds no PEM certificate (" +
                                                              openssl_reason(ec) + ")");
  return ctx;
}

} // namespace sluice::remote::internal
