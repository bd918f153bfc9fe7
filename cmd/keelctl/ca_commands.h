// keelctl's commands served by a control plane's certificate authority (trustd), reached
// through apid like the machine commands: a new client config with chosen roles, the
// renewal of the current context's client certificate before it expires, and the
// revocation list.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "keel/common/status.h"
#include "keel/config/client_config.h"

#include "machine_commands.h"

namespace keel::keelctl {

struct ConfigGenerateOptions {
  std::filesystem::path output;
  std::vector<std::string> roles;
  std::chrono::seconds ttl{0};  // 0: the cluster's default
  std::string identity;
  bool force = false;
};

// Asks trustd (admin only) for a client config with exactly `roles` and writes it (0600).
Status cmdConfigGenerate(MachineCommandEnv& env, const ConfigGenerateOptions& options);

// Renews the client certificate of `config`'s current context with a new key, keeping
// its identity and roles, and writes the config back to `path`.
Status cmdConfigRenew(MachineCommandEnv& env, const std::filesystem::path& path, config::ClientConfig config,
                      std::chrono::seconds ttl);

struct RevokeOptions {
  std::filesystem::path certFile;  // a PEM certificate; or
  std::string serial;              // its serial in hex
  std::string ownSerial;           // the current context's certificate: refused unless `self`
  bool self = false;
};

// Puts a certificate on the cluster's revocation list (admin only).
Status cmdConfigRevoke(MachineCommandEnv& env, const RevokeOptions& options);
// Lists the revoked certificates: serial, identity, when, by whom, until when.
Status cmdConfigRevoked(MachineCommandEnv& env);

}  // namespace keel::keelctl
