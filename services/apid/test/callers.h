// Who calls and who serves, for apid's unit tests: a client as its certificate would make
// it, and a backend manifest like the built-in ones a node declares.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "admission.h"
#include "keel/contracts/route_entry.h"

namespace keel::apid::testing {

inline PeerIdentity client(std::string cn, std::vector<std::string> roles, bool clientAuth = true) {
  PeerIdentity id;
  id.commonName = std::move(cn);
  id.roles = std::move(roles);
  id.clientAuth = clientAuth;
  return id;
}

// A backend served as root whose rules are the built-in tables.
inline contracts::RouteEntry builtinManifest(std::string name, std::string service) {
  contracts::RouteEntry m;
  m.name = std::move(name);
  m.socket = "/run/keel/" + m.name + ".sock";
  m.services = {std::move(service)};
  m.allowedUids = {0};
  m.rules = "builtin";
  return m;
}

}  // namespace keel::apid::testing
