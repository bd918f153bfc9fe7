// `keelctl config …`: inspect and edit the client config (contexts, endpoints, nodes),
// merge another one in, and mint a new one offline from the secrets bundle.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "command_env.h"
#include "keel/common/status.h"

namespace keel::keelctl {

// Lists the contexts as a table, marking the current one.
Status configContexts(CommandEnv& env);
// Makes NAME the current context.
Status configUseContext(const std::string& name, CommandEnv& env);
// Replaces the endpoints (at least one) of the current context.
Status configEndpoint(const std::vector<std::string>& endpoints, CommandEnv& env);
// Replaces the default target nodes of the current context (none clears them).
Status configNode(const std::vector<std::string>& nodes, CommandEnv& env);
// Merges the contexts of `file` into the client config (created if missing), renaming
// clashing names to name-1, name-2, … and reporting each rename.
Status configMerge(const std::filesystem::path& file, CommandEnv& env);
// The current context's nodes and its endpoints' hosts, one per line (shell completion).
Status configNodeNames(CommandEnv& env);
// Shows the current context: endpoints, nodes, roles, certificate subject, expiry
// (EXPIRED when past) and the CA's SHA-256 fingerprint.
Status configInfo(CommandEnv& env);

struct ConfigNewOptions {
  std::filesystem::path output;
  std::vector<std::string> roles;
  std::string crtTtl = "24h";
  std::filesystem::path from;        // secrets bundle
  std::string contextName = "keel";
  std::string identity = "offline-client";  // the certificate's CN, shown in audit logs
  std::vector<std::string> endpoints;
  std::vector<std::string> nodes;
  bool force = false;
};

// Writes a new client config with one context whose certificate holds exactly the
// given roles, issued by the OS CA of the bundle.
Status configNew(const ConfigNewOptions& options, CommandEnv& env);

}  // namespace keel::keelctl
