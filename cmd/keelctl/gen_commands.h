// `keelctl gen …`: offline generation of a cluster's secrets bundle and of the machine
// and client configs derived from it.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "command_env.h"
#include "keel/common/status.h"

namespace keel::keelctl {

inline constexpr std::string_view kMissingSecretsHint = "create one with 'keelctl gen secrets -o <file>'";

struct GenSecretsOptions {
  std::filesystem::path output = "secrets.json";
  bool force = false;
};

// Writes a new secrets bundle (mode 0600); refuses an existing file unless force.
Status genSecrets(const GenSecretsOptions& options, CommandEnv& env);

struct GenConfigOptions {
  std::string clusterName;
  std::string endpoint;
  std::optional<std::filesystem::path> withSecrets;  // otherwise new secrets, not saved
  std::filesystem::path outputDir = ".";
  std::string crtTtl = "8760h";
  std::vector<std::string> additionalSans;
  // JSON merge patches (RFC 7396) applied to both machine configs, then to one of them.
  std::vector<std::filesystem::path> configPatches;
  std::vector<std::filesystem::path> configPatchesControlPlane;
  std::vector<std::filesystem::path> configPatchesWorker;
  bool force = false;
};

// Writes controlplane.json, worker.json and keelconfig (all 0600) into outputDir. The
// keelconfig's context is the cluster name, with the endpoint and its host as node, and
// an os:admin client certificate. Refuses to replace any of them unless force; checks
// all three before writing any.
Status genConfig(const GenConfigOptions& options, CommandEnv& env);

}  // namespace keel::keelctl
