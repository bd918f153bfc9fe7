// A routing entry: one file per service owner in apid's routes directory
// (`<root>/run/keel/backends.d/<name>.json`), written by machined for itself, trustd and each
// backend it accepted, read by apid to route calls. Builds without protobuf so the reader
// can be fuzzed.
// Schema (unknown fields are refused):
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

namespace keel::contracts {

struct RouteEntry {
  std::string name;                  // [a-z0-9._-]{1,63}; the file's stem
  std::filesystem::path socket;      // absolute
  std::vector<std::string> services;  // full service names, at least one
  std::vector<uid_t> allowedUids;    // uids that may own the socket
  std::string rules;                 // "builtin" or the absolute path of a descriptor set
  std::string version;               // the backend's version, when its manifest gives one
  // Served inside apid itself (health, reflection): set by apid, never read or written.
  bool servedByApid = false;

  bool operator==(const RouteEntry&) const = default;
};

// Errors: INVALID_ARGUMENT naming the field.
Result<RouteEntry> parseRouteEntry(std::string_view text);
// The file's text; parseRouteEntry reads it back as `entry` (servedByApid aside).
std::string serializeRouteEntry(const RouteEntry& entry);

}  // namespace keel::contracts
