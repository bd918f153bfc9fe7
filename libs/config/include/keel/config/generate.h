// Derives what a cluster needs from its secrets bundle: the control-plane and worker
// machine configs, and client configs whose certificates carry chosen roles.
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/client_config.h"
#include "keel/config/endpoint.h"
#include "keel/config/machine_config.h"
#include "keel/config/secrets.h"

namespace keel::config {

// The roles apid knows (docs/architecture.md, "Trust, step by step").
inline constexpr std::array<std::string_view, 4> kKnownRoles = {"os:admin", "os:operator", "os:reader",
                                                               "os:impersonator"};
inline constexpr std::chrono::seconds kDefaultClientCertTtl = std::chrono::hours(24 * 365);

// Checks every role is known and drops duplicates, keeping the order. Errors:
// INVALID_ARGUMENT naming the unknown role and the known ones, or for an empty list.
Result<std::vector<std::string>> validateRoles(const std::vector<std::string>& roles);

// The backend every generated config runs (machine.backends).
inline constexpr std::string_view kDefaultBackend = "timed";

struct MachineConfigOptions {
  std::string clusterName;
  Endpoint endpoint;                  // the control plane's API endpoint
  std::vector<std::string> certSans;  // extra SANs for control-plane apids
};

struct MachineConfigs {
  MachineConfig controlPlane;
  MachineConfig worker;
};

// Both machine configs for a cluster. The endpoint's host is added to the control
// plane's certSANs so apid's serving certificate matches what clients dial. Both run
// kDefaultBackend.
Result<MachineConfigs> generateMachineConfigs(const SecretsBundle& secrets, const MachineConfigOptions& options);

struct ClientCertOptions {
  std::string commonName = "admin";
  std::vector<std::string> roles = {"os:admin"};
  std::chrono::seconds ttl = kDefaultClientCertTtl;
};

// A context (no endpoints or nodes yet) with a new ECDSA P-256 key and a client
// certificate issued by the OS CA: O= exactly the roles, clientAuth only, valid from
// clock.now() for options.ttl. Errors: INVALID_ARGUMENT for unknown roles, an absurd TTL,
// or a certificate that would outlive the OS CA.
Result<ClientContext> generateClientContext(const SecretsBundle& secrets, const ClientCertOptions& options,
                                            const Clock& clock);

}  // namespace keel::config
