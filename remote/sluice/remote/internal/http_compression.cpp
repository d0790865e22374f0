#include "sluice/remote/internal/http_compression.hpp"

#include "sluice/remote/errors.hpp"

#include <zlib.h>

#include <cctype>

namespace sluice::remote::internal {

namespace {

caf::expected<std::string> inflate_with(int window_bits, std::string_view body, uint64_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, window_bits) != Z_OK)
    return make_error(remote_errc::malformed_response, "cannot initialise zlib");
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  int rc = Z_OK;
  char chunk[16384];
  while (rc != Z_STREAM_END) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk);
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return make_error(remote_errc::malformed_response, "the compressed reply is corrupt");
    }
    out.append(chunk, sizeof(chunk) - zs.avail_out);
    if (out.size() > limit) {
      inflateEnd(&zs);
      return make_error(remote_errc::malformed_response, "the decompressed reply is larger than " +
                                                             std::to_string(limit) + " bytes");
    }
    if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      return make_error(remote_errc::malformed_response, "the compressed reply is truncated");
    }
  }
  inflateEnd(&zs);
  return out;
}

} // namespace

caf::expected<std::string> decompress(std::string_view encoding, std::string_view body,
                                      uint64_t limit) {
  std::string enc;
  for (char c : encoding)
    if (c != ' ' && c != '\t')
      enc.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (enc == "gzip" || enc == "x-gzip")
    return inflate_with(16 + MAX_WBITS, body, limit);
  if (enc == "deflate") {
    // "deflate" means zlib-wrapped, but some servers send raw deflate.
    auto zlib = inflate_with(MAX_WBITS, body, limit);
    if (zlib)
      return zlib;
    return inflate_with(-MAX_WBITS, body, limit);
  }
  return make_error(remote_errc::malformed_response,
                    "the reply has an unsupported Content-Encoding '" + std::string{encoding} +
                        "'");
}

} // namespace sluice::remote::internal
