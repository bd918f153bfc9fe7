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
  // A public key from 'keelctl gen image-key': both configs accept upgrades signed by it.
  std::optional<std::filesystem::path> imageKey;
  bool force = false;
};

// Writes controlplane.json, worker.json and keelconfig (all 0600) into outputDir. The
// keelconfig's context is the cluster name, with the endpoint and its host as node, and
// an os:admin client certificate. Refuses to replace any of them unless force; checks
// all three before writing any.
Status genConfig(const GenConfigOptions& options, CommandEnv& env);

struct GenImageKeyOptions {
  std::filesystem::path outputDir = ".";
  bool force = false;
};

// Writes image-signing.key (ECDSA P-256, mode 0600) and image-signing.pub into
// outputDir: the pair that signs node images and that machine.upgrade.publicKey names.
Status genImageKey(const GenImageKeyOptions& options, CommandEnv& env);

struct SignImageOptions {
  std::filesystem::path image;
  std::filesystem::path key;                       // image-signing.key
  std::optional<std::filesystem::path> output;     // default: <image>.sig
  bool force = false;
};

// Writes the detached signature of an image file's manifest (DER ECDSA over its SHA-256,
// the bytes 'openssl dgst -sha256 -sign KEY' makes of the manifest) for 'keelctl upgrade'.
Status signImage(const SignImageOptions& options, CommandEnv& env);

// Lowercase hex of raw bytes.
std::string toHex(std::string_view bytes);

}  // namespace keel::keelctl
