// Backend daemons that ship a manifest (`<backends-dir>/<name>.json`): reading the manifest
// and checking its fields (backend_resources.h checks what it points to). Manifests are
// installed files, not trusted input: each check names the file and the field. Builds
// without protobuf, so that the parser can be fuzzed.
//
// Schema (unknown keys are refused):
//   {"name": "timed", "version": "0.1.0", "binary": "timed", "args": [],
//    "socket": "timed.sock", "services": ["keel.time.v1.TimeService"],
//    "descriptorSet": "timed.pb", "allowedPeerUids": [], "sandbox": "timed.policy",
//    "nodeTypes": ["controlplane", "worker"]}
#pragma once

#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "keel/common/status.h"
#include "keel/config/machine_config.h"

namespace keel::machined {

// Largest manifest read.
inline constexpr size_t kMaxBackendManifestBytes = 64 * 1024;

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

// Reads a whole regular file of at most `max` bytes. `what` names it in errors: NOT_FOUND
// for a missing file, FAILED_PRECONDITION for one that cannot be read, is not a regular
// file or is too large.
Result<std::string> readBackendFile(const std::filesystem::path& path, size_t max, std::string_view what);

}  // namespace keel::machined
