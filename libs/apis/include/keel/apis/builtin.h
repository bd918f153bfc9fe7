// The node's built-in APIs, named once: the services Keel's own daemons serve (machined's
// machine API, trustd's certificate authority and apid's local issuer, apid's health and
// reflection), and the authorization rules of those that carry them in their .proto.
// libs/authz turns descriptors into rules and knows no API; this library is where the
// concrete ones meet it.
#pragma once

#include <string>
#include <vector>

#include "keel/authz/authz.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace keel::apis {

// Full names ("keel.machine.v1.MachineService").
extern const char* const kMachineService;
extern const char* const kSecurityService;
extern const char* const kLocalIssuerService;
extern const char* const kHealthService;
extern const char* const kReflectionService;

// Every service name above: no backend or extension may claim one of them.
const std::vector<std::string>& builtinServiceNames();

// The services whose methods carry `allowed_roles` rules (machine and security APIs),
// from the linked generated code.
std::vector<const google::protobuf::ServiceDescriptor*> builtinServiceDescriptors();

// Rules of every method of builtinServiceDescriptors(). Crashes at first use if a rule
// names an unknown role (a build defect, caught by the tests).
const authz::RuleTable& builtinRules();

}  // namespace keel::apis
