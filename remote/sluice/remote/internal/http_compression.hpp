#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::remote::internal {

/// Inflates an HTTP body sent with `Content-Encoding: gzip` or `deflate`
/// (zlib or raw). Fails on another encoding, corrupt data, or a result
/// larger than `limit` bytes.
[[nodiscard]] caf::expected<std::string> decompress(std::string_view encoding,
                                                    std::string_view body, uint64_t limit);

} // namespace sluice::remote::internal
