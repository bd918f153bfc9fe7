// A backend daemon's config file, written by machined into the daemon's state directory
// (mode 0600) and named by `--config` or $KEEL_SERVICE_CONFIG: who the daemon is, where
// it serves, and which peers may connect. Read strictly: a field nobody reads is refused
// by name.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/common/status.h"

namespace keel::backend {

struct BackendConfig {
  std::string name;                 // the manifest's name ("timed")
  std::string version;              // the manifest's version; may be empty
  std::filesystem::path socket;     // the Unix socket to serve
  std::filesystem::path stateDir;   // the daemon's own state directory
  std::string nodeAddress;          // this node's address
  std::filesystem::path machinedSocket;  // machined's API, for a daemon machined lets call it
  // Peers (SO_PEERCRED uids) that may connect: apid's first, then the manifest's
  // allowedPeerUids. Never empty.
  std::vector<uid_t> allowedPeerUids;
  // The daemon's own settings (`settings` object; empty object when absent).
  nlohmann::json settings = nlohmann::json::object();
};

// Errors: INVALID_ARGUMENT naming the field.
Result<BackendConfig> parseBackendConfig(std::string_view text);
// Errors: as config::readPrivateFile (missing, readable by others, too large), else as
// parseBackendConfig with the path.
Result<BackendConfig> readBackendConfigFile(const std::filesystem::path& path);

}  // namespace keel::backend
