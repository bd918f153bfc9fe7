// One backend manifest (`backendsDir/*.json`), parsed and checked field by field. Kept
// apart from the routing table so it builds without protobuf (and can be fuzzed).
// Schema:
//   {"name": "machined", "socket": "/run/keel/machined.sock",
//    "services": ["keel.machine.v1.MachineService"], "allowedUids": [0],
//    "rules": "builtin" | "/abs/path/descriptor-set.pb", "version": "0.1.0"}
// ("version" is optional.)
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/status.h"

namespace keel::apid {

struct BackendManifest {
  std::string name;
  std::filesystem::path socket;
  std::vector<std::string> services;
  std::vector<uid_t> allowedUids;  // uids that may own the socket
  std::string rules;               // "builtin" or an absolute path
  std::string version;             // the backend's version, when its manifest gives one
  // Served inside apid itself (health, reflection): set by apid, never read from a file.
  bool servedByApid = false;
};

// Errors: INVALID_ARGUMENT naming the field.
Result<BackendManifest> parseBackendManifest(std::string_view text);

}  // namespace keel::apid
