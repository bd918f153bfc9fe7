// Per-node metadata stamped into replies at the protobuf wire level, so a fan-out never
// deserializes a message body. Keel's replies follow one shape: a unary reply is
// `{ repeated Entry messages = 1; }` and every entry (and every streamed message) starts
// with `keel.common.v1.Metadata metadata = 1` = `{ node = 1; error = 2; code = 3; }`.
// Appending a `metadata` field to a serialized message merges into the one it has
// (protobuf's rule for a repeated occurrence of a singular message field).
#pragma once

#include <string>
#include <string_view>

#include "keel/common/status.h"

namespace keel::apid {

// A streamed message with metadata.node set to `node`.
std::string stampStreamMessage(std::string_view message, std::string_view node);

// A unary reply in which every entry of `messages` has metadata.node set to `node`.
// Other top-level fields are kept as they are. Errors: DATA_LOSS when `reply` is not
// valid protobuf wire format.
Result<std::string> stampUnaryReply(std::string_view reply, std::string_view node);

// The metadata that reports a node's failure, as a streamed message and as a unary reply
// with one entry.
std::string errorStreamMessage(std::string_view node, int code, std::string_view error);
std::string errorUnaryReply(std::string_view node, int code, std::string_view error);

}  // namespace keel::apid
