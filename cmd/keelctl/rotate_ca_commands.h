// keelctl rotate-ca: replaces one of the cluster's CAs (the OS CA of the node API by
// default; the Kubernetes, etcd or aggregator CA) on every node the target names, through
// the machine API (UpdateCertificateAuthorities), without a reboot and without a moment
// in which a node and its clients disagree on whom to trust:
//   1. accept: every node accepts the new CA besides the old one (the keelconfig's
//      context trusts both);
//   2. issue: every node issues with the new CA (control planes first, as the only ones
//      holding its key);
//   3. re-issue (OS CA): every apid holds serving and impersonator certificates of the new
//      CA, and the keelconfig's client certificate is renewed under it;
//   4. drop: no node accepts the old CA any more, nor does the keelconfig.
// The new CA and the step reached are kept in a state file (0600) beside the keelconfig,
// so an interrupted rotation resumes where it stopped when run again: every step is
// idempotent on every node.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "keel/common/status.h"

#include "command_env.h"
#include "machine_client.h"

namespace keel::keelctl {

struct RotateCaArgs {
  std::string kind = "os";
  bool status = false;             // show where each node stands; change nothing
  std::filesystem::path secrets;   // a secrets bundle to keep in step (optional)
  std::chrono::seconds wait{300};  // how long step 3 waits for every apid's new certificates
};

// The state file of a rotation of `kind` for the keelconfig at `keelconfig`.
std::filesystem::path rotationStatePath(const std::filesystem::path& keelconfig, std::string_view kind);

// Runs (or resumes, or with args.status reports) a rotation on the target's nodes. Each
// step needs every node: one that does not answer is named and the command stops before
// the step (run it again once the node is back: it resumes, and the node takes every step
// it missed). Errors: INVALID_ARGUMENT (an
// unknown kind, --root/--socket); FAILED_PRECONDITION (no control plane among the nodes,
// nodes that issue with different CAs when no rotation is under way, a node not caught
// up); DEADLINE_EXCEEDED when apids have not re-issued within args.wait.
Status cmdRotateCa(MachineTarget target, CommandEnv& env, OutputFormat format, const RotateCaArgs& args);

}  // namespace keel::keelctl
