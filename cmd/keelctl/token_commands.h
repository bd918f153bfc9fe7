// keelctl rotate-token: the cluster's join tokens as a set, through the machine API of
// the nodes keelctl names (UpdateJoinTokens): accept a new token on every control plane,
// move every worker's machine.token to it, and later drop the old one.
#pragma once

#include <string>

#include "keel/common/status.h"

#include "node_calls.h"

namespace keel::keelctl {

struct RotateTokenArgs {
  std::string drop;    // empty: add a new token; else the token to stop accepting (secret), "-": stdin
  bool force = false;  // drop it even while a worker's config still presents it
};

// Runs on the target's nodes (the context's, or -n): every one must answer. Errors:
// FAILED_PRECONDITION when no control plane is among them, when dropping the last accepted
// token, or (without --force) one a worker still presents; INVALID_ARGUMENT for a
// malformed token. Tokens appear only as the new token printed once, and by fingerprint.
Status cmdRotateToken(MachineCommandEnv& env, const RotateTokenArgs& args);

}  // namespace keel::keelctl
