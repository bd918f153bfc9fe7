// Apart from daemon.cpp, so that a daemon that only checks its peers does not link the
// whole daemon skeleton and gRPC's reflection library with it.
#include <algorithm>
#include <string>

#include "keel/backend/daemon.h"

namespace keel::backend {

Status checkPeerUid(uid_t uid, pid_t pid, const std::vector<uid_t>& allowed, std::string_view daemon) {
  if (std::find(allowed.begin(), allowed.end(), uid) != allowed.end()) return Status::ok();
  return permissionDenied("uid " + std::to_string(uid) + " (pid " + std::to_string(pid) + ") is not on " +
                          std::string(daemon) + "'s allow-list");
}

}  // namespace keel::backend
