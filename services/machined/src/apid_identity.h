// apid's TLS identity, minted by machined at node start until a CA daemon issues it:
// the OS CA apid trusts, and on a control plane a serving certificate and an
// os:impersonator client certificate signed with the OS CA key from the machine config.
// Everything machined knows about apid's certificates is in this file.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/machine_config.h"

namespace keel::machined {

// File names inside apid's state directory.
inline constexpr const char* kApidCaFile = "ca.crt";
inline constexpr const char* kApidServerKeyFile = "server.key";
inline constexpr const char* kApidServerCertFile = "server.crt";
inline constexpr const char* kApidImpersonatorKeyFile = "impersonator.key";
inline constexpr const char* kApidImpersonatorCertFile = "impersonator.crt";

// The role apid's forwarding certificate carries (see DESIGN.md, "Trust").
inline constexpr const char* kImpersonatorRole = "os:impersonator";

// Lifetime of the certificates minted here. There is no renewal yet: keys and
// certificates are minted afresh at every node start, and renewal at half-life comes
// with the CA daemon, which replaces this code.
inline constexpr std::chrono::hours kApidCertificateLifetime{24 * 365};

struct ApidIdentityRequest {
  std::filesystem::path stateDir;  // apid's state directory; must exist
  std::string nodeAddress;         // an IP address or a DNS name; the serving cert's CN
  std::string hostname;            // the node's host name (see nodeHostname)
};

// What provisionApidIdentity wrote: paths under ApidIdentityRequest::stateDir.
struct ApidIdentityFiles {
  std::filesystem::path ca;
  // Empty on a worker (no OS CA key): apid has no serving identity yet.
  std::filesystem::path serverKey;
  std::filesystem::path serverCert;
  std::filesystem::path impersonatorKey;
  std::filesystem::path impersonatorCert;

  bool hasServingIdentity() const { return !serverCert.empty(); }
  // Every file written, for handing them to apid's account.
  std::vector<std::filesystem::path> all() const;
};

// cfg.hostname when set, else gethostname(). Errors: INTERNAL when gethostname fails.
Result<std::string> nodeHostname(const config::MachineConfig& cfg);

// Writes apid's identity into req.stateDir, each file atomically with mode 0600 and
// replacing what was there:
//   ca.crt                    always: cfg.ca.crt, the CAs apid accepts clients from
//   server.key/.crt           control plane: P-256, serverAuth, CN = node address, SANs =
//                             node address, hostname, 127.0.0.1, every cfg.certSans entry
//   impersonator.key/.crt     control plane: P-256, clientAuth, O=os:impersonator,
//                             CN = apid@<node address>
// A worker (cfg.ca.key empty) gets only ca.crt, with a warning in the log; keys and
// certificates left from a run as a control plane are removed, so that apid refuses to
// start instead of serving with an identity the machine config no longer grants. Errors: INVALID_ARGUMENT for
// an empty node address or an unusable CA; INTERNAL/PERMISSION_DENIED when a file cannot be written.
Result<ApidIdentityFiles> provisionApidIdentity(const config::MachineConfig& cfg,
                                                const ApidIdentityRequest& req, const Clock& clock);

// The fields of apid's config.json that point at its identity:
//   "tls": {"key", "cert", "ca"}   (key and cert are where apid will look even on a worker)
//   "impersonator": {"key", "cert"} (control plane only)
nlohmann::json apidIdentityConfig(const std::filesystem::path& stateDir, const ApidIdentityFiles& files);

}  // namespace keel::machined
