#pragma once

#include <cstdint>
#include <string>

/// Queryable state: what a request for the keyed state of one key answers,
/// from the operator that holds it up to the job client.
namespace sluice::runtime {

/// How a queryable-state request ended.
enum class state_query_status : int32_t {
  ok,                  ///< body: {"key": ..., "states": {...}}
  not_owner,           ///< this subtask does not own the key's group (internal)
  unknown_uid,         ///< body: the job's operator uids, comma-separated
  no_keyed_state,      ///< the operator is not on a keyed stream
  key_type_unreadable, ///< the key type cannot be read from a URL
  bad_key,             ///< body: the key type's name
  not_running,         ///< the job (or the subtask) is not running
  timeout,             ///< no answer in time
  failed,              ///< body: what went wrong (e.g. a RocksDB error)
};

/// The answer to a queryable-state request.
struct state_query_result {
  state_query_status status = state_query_status::failed;
  /// JSON when ok; otherwise the detail the status describes.
  std::string body;
};

} // namespace sluice::runtime
