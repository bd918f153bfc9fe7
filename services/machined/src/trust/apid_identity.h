// What machined hands apid and trustd about certificates. machined mints nothing: trustd
// (on a control plane) issues apid's certificates, and apid asks for them itself. machined
// writes the OS CA bundle apid accepts clients from, tells apid where to get its
// certificates (the local trustd, or a control plane's join listener with the join
// token), and writes trustd's settings (the CA key, tokens, lifetimes) from the machine
// config. Everything machined knows about certificates is in this file.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/common/status.h"
#include "keel/config/machine_config.h"
#include "keel/contracts/apid_config.h"
#include "keel/contracts/trustd_config.h"

namespace keel::machined {

// File names inside apid's state directory.
inline constexpr const char* kApidCaFile = "ca.crt";
inline constexpr const char* kApidServerKeyFile = "server.key";
inline constexpr const char* kApidServerCertFile = "server.crt";
inline constexpr const char* kApidImpersonatorKeyFile = "impersonator.key";
inline constexpr const char* kApidImpersonatorCertFile = "impersonator.crt";

// cfg.hostname when set, else gethostname(). Errors: INTERNAL when gethostname fails.
Result<std::string> nodeHostname(const config::MachineConfig& cfg);

struct ApidIdentityRequest {
  std::filesystem::path stateDir;  // apid's state directory; must exist
  std::string nodeAddress;         // an IP address or a DNS name
  std::string hostname;            // the node's host name (see nodeHostname)
  std::filesystem::path trustdSocket;
  int apiPort = 50000;             // this node's apid API port
  int joinPort = 50001;            // this node's join listener (control plane), or the control plane's (worker)
};

// Writes apid's accepted CA bundle (ca.crt: the issuing OS CA, then the others accepted;
// mode 0600) into req.stateDir and
// removes certificates and keys left from an earlier run, so that apid serves only with
// an identity it got for this configuration. Returns the files written.
// Errors: INVALID_ARGUMENT without an OS CA certificate; INTERNAL when a file cannot be written.
Result<std::vector<std::filesystem::path>> prepareApidState(const config::MachineConfig& cfg,
                                                            const ApidIdentityRequest& req);

// apid's identity in its config: its serving certificate and the CA bundle it accepts
// clients from; on a control plane its impersonator certificate, trustd as the source
// of both and the join listener; on a worker the control plane's join listener and the
// join token. The serving certificate names the node's address; a control plane's also
// its host name and 127.0.0.1 (its trustd verified them); both add cfg.certSans.
// Errors: INVALID_ARGUMENT when a worker's config names no usable control-plane endpoint.
Status apidIdentityConfig(const config::MachineConfig& cfg, const ApidIdentityRequest& req,
                          contracts::ApidConfig& apid);

// trustd's config beyond what every service gets: the OS CA (key included: the file is
// 0600 and trustd's), the accepted join tokens, this node's names, lifetimes, and the
// uids that may use trustd.sock. Control planes only.
Status trustdConfig(const config::MachineConfig& cfg, const ApidIdentityRequest& req,
                    const std::vector<uid_t>& allowedUids, contracts::TrustdConfig& trustd);

// Brings the join tokens and the OS CA of a service config machined wrote up to `cfg`, so a
// running node takes a new token set or a CA rotation step without a reboot: on a control
// plane trustd's accepted tokens and its CA (`serviceConfig` is trustd's config.json;
// trustd reads it when it starts), on a worker the token apid joins with (apid's
// config.json; read when apid starts). True when the file changed. Errors: INTERNAL when
// the file cannot be read or written.
Result<bool> rewriteServiceTrust(const config::MachineConfig& cfg, const std::filesystem::path& serviceConfig);

// Brings apid's accepted CA bundle (`stateDir`/ca.crt, which apid re-reads while it runs)
// up to `cfg`. The new file is written beside it, given to `owner` (when set) without
// following a symlink, and renamed into place, so apid never reads a half-written or
// foreign-owned bundle. True when the file changed. Errors: INTERNAL.
Result<bool> rewriteApidCaBundle(const config::MachineConfig& cfg, const std::filesystem::path& stateDir,
                                 std::optional<std::pair<uid_t, gid_t>> owner);

// The fingerprint of the CA in `ca` (the issuing one or an accepted one) that signed the
// certificate (leaf first) in `certFile`; empty when the file is missing or unreadable
// or none of them did.
std::string issuerFingerprint(const std::filesystem::path& certFile, const config::CaPem& ca);

}  // namespace keel::machined
