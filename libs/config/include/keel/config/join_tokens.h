// Join tokens over a cluster's life: the set a control plane accepts, the token a worker
// presents, how that set changes (accept a new token, move workers to it, drop the old
// one), and the fingerprint by which a token is named where the token itself must not
// appear (replies, messages, logs).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"
#include "keel/config/machine_config.h"

namespace keel::config {

// OK for a well-formed token ([a-z0-9]{6}.[a-z0-9]{16}); else INVALID_ARGUMENT naming
// `field` and never the token.
Status checkJoinToken(std::string_view field, std::string_view token);

// The first 12 hex digits of the token's SHA-256: enough to tell tokens apart, nothing
// to guess one from.
std::string tokenFingerprint(std::string_view token);

// What a control plane's trustd accepts: machine.token, then machine.trustd.acceptedTokens,
// without repeats.
std::vector<std::string> acceptedJoinTokens(const MachineConfig& config);

// One change of a node's join tokens; empty fields change nothing. Tokens are secrets.
struct JoinTokenChange {
  std::string accept;   // control planes: accept this token too
  std::string drop;     // control planes: stop accepting this one (after `accept`)
  std::string present;  // workers: join with this one (machine.token)
};

// `config` with `change` made. Accepting a token already accepted and dropping one not
// accepted change nothing, so a rotation can be run again after a failure. A control
// plane keeps machine.token accepted: dropping it moves the first other accepted token
// there. Errors: INVALID_ARGUMENT (a malformed token, named by field, never echoed),
// FAILED_PRECONDITION (a change for the other node type; dropping the last accepted token).
Result<MachineConfig> changeJoinTokens(const MachineConfig& config, const JoinTokenChange& change);

}  // namespace keel::config
