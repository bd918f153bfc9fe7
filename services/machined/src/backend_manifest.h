// Backend daemons that ship a manifest (`<backends-dir>/<name>.json`): reading and checking
// the manifest, then everything it points to (binary, descriptor set with the methods'
// rules, seccomp profile), before machined runs the backend and apid routes to it.
// Manifests are installed files, not trusted input: each check names the file and the field.
//
// Schema (unknown keys are refused):
//   {"name": "timed", "version": "0.1.0", "binary": "timed", "args": [],
//    "socket": "timed.sock", "services": ["keel.time.v1.TimeService"],
//    "descriptorSet": "timed.pb", "allowedPeerUids": [], "sandbox": "timed.policy",
//    "nodeTypes": ["controlplane", "worker"]}
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "keel/common/status.h"
#include "keel/config/machine_config.h"
#include "keel/sandbox/policy.h"

namespace keel::machined {

// Largest files read for a backend: a manifest, a descriptor set, a seccomp profile.
inline constexpr size_t kMaxBackendManifestBytes = 64 * 1024;
inline constexpr size_t kMaxDescriptorSetBytes = 8 * 1024 * 1024;
inline constexpr size_t kMaxSeccompProfileBytes = 32 * 1024;

// A manifest whose fields are valid; paths are resolved (absolute, lexically normal) but
// not yet opened.
struct BackendManifest {
  std::string name;
  std::string version;
  std::filesystem::path binary;         // in --libexec for a plain name, else as given
  std::vector<std::string> args;        // after `--config <file>`
  std::string socket;                   // a file name in machined's socket directory
  std::vector<std::string> services;    // fully-qualified gRPC service names
  std::filesystem::path descriptorSet;  // relative names are taken from the manifest's directory
  std::vector<uid_t> allowedPeerUids;   // besides apid's
  std::filesystem::path sandbox;        // seccomp profile, relative like descriptorSet
  std::set<config::MachineType> nodeTypes;
};

// Parses manifest `text`, read from `file`, whose base name must be `expectedName`.
// `libexecDir` resolves a plain binary name. Pure: touches no file. Errors:
// INVALID_ARGUMENT "<file>: <field>: <what was expected, what was found>".
Result<BackendManifest> parseBackendManifest(std::string_view text, const std::filesystem::path& file,
                                             std::string_view expectedName,
                                             const std::filesystem::path& libexecDir);

// Reads and parses `<dir>/<name>.json` (at most kMaxBackendManifestBytes). NOT_FOUND when
// there is no such file.
Result<BackendManifest> readBackendManifest(const std::filesystem::path& dir, const std::string& name,
                                            const std::filesystem::path& libexecDir);

// True when the backend is meant to run on a node of `type`.
bool runsOn(const BackendManifest& manifest, config::MachineType type);

// The calls machined's child setup makes between loading a service's filter and exec'ing
// it (the death signal, and the spawner's check that machined is still the parent), added
// to every backend profile. Nothing else is added: execve must be in the profile itself.
inline constexpr std::string_view kChildSetupRules =
    "# Added by machined for its child setup after the filter is loaded:\n"
    "prctl: arg0 == 1  # PR_SET_PDEATHSIG\n"
    "getppid\n";

// What a manifest points to, checked: the binary is an executable regular file, every
// listed service is in the descriptor set and every method of it has a non-empty
// allowed_roles rule, and the profile parses and allows execve (machined loads it before
// exec'ing the binary).
struct BackendResources {
  // The profile as read, then kChildSetupRules: the spawner parses this text on its side.
  std::string profileText;
  sandbox::Policy policy;                                 // profileText, parsed
  std::map<std::string, std::vector<std::string>> rules;  // "/pkg.Service/Method" -> roles
};

// Errors name the file at fault: NOT_FOUND or FAILED_PRECONDITION for a file that cannot
// be read or run, INVALID_ARGUMENT for bad content ("method /x.v1.S/M has no
// keel.common.v1.allowed_roles rule").
Result<BackendResources> loadBackendResources(const BackendManifest& manifest);

// The gRPC services and socket file names taken so far on this node: the built-in ones to
// begin with, then those of each backend accepted. Not thread-safe.
class BackendClaims {
 public:
  // `extensions`: names of the node's extensions, whose sockets are <name>.sock.
  explicit BackendClaims(const std::vector<std::string>& extensions = {});

  // ALREADY_EXISTS naming a service or the socket of `manifest` and who holds it.
  Status check(const BackendManifest& manifest) const;
  // Takes the services and the socket of `manifest` (after check()).
  void add(const BackendManifest& manifest);

  // The gRPC services machined, trustd and apid serve themselves.
  static const std::vector<std::string>& builtinServices();

 private:
  std::map<std::string, std::string> services_;  // service -> holder
  std::map<std::string, std::string> sockets_;   // socket file name -> holder
};

}  // namespace keel::machined
