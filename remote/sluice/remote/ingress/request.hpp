#pragma once

#include "sluice/functions/address.hpp"
#include "sluice/functions/typed_value.hpp"

#include <string>
#include <string_view>
#include <variant>
#include <vector>

/// The HTTP-independent part of the HTTP ingress: what a request means
/// (which address, which value, whether it waits for a reply) and how a
/// reply value becomes a response.
namespace sluice::remote::ingress {

/// A message an ingress request delivers.
struct ingress_request {
  functions::address target;
  functions::typed_value value;
  /// `?reply=true`: the request waits for the first message a function
  /// sends to its caller address.
  bool wants_reply = false;
};

/// Why a request is refused: the HTTP status and a sentence for the body.
struct ingress_rejection {
  unsigned status = 400;
  std::string message;
};

/// Reads `POST|PUT /functions/<namespace>/<type>/<id>[?reply=true]`. The
/// path is percent-decoded; the id is the rest of the path and may contain
/// '/'. The body becomes the value by its Content-Type:
/// - `text/plain` (charset utf-8 or us-ascii, or none): an
///   `io.statefun.types/string` holding the text;
/// - `application/vnd.<typename>`: the body bytes unchanged, typed
///   `<typename>` (the StateFun playground's convention);
/// - none: typed `default_value_type` (a string value as for text/plain,
///   else the bytes unchanged).
/// Anything else is refused: 404 (not under /functions/), 405 (method),
/// 400 (malformed path, empty namespace/type/id, bad query), 415 (content
/// type).
[[nodiscard]] std::variant<ingress_request, ingress_rejection>
parse_ingress_request(std::string_view method, std::string_view target,
                      std::string_view content_type, std::string body,
                      std::string_view default_value_type);

/// A response body and its Content-Type.
struct encoded_reply {
  std::string content_type;
  std::string body;
};

/// The response to a reply value: an `io.statefun.types/string` as its
/// text (`text/plain; charset=utf-8`), anything else as its bytes with
/// `application/vnd.<typename>` (the request convention, reversed).
[[nodiscard]] encoded_reply encode_reply(const functions::typed_value& value);

} // namespace sluice::remote::ingress
