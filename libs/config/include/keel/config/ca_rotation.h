// A cluster's CAs over time: each of the four kinds (the OS CA of the node API, the
// Kubernetes, etcd and aggregator CAs) is one issuing CA and the other CAs of its kind a
// node accepts while a rotation is under way. A rotation is four changes, each made on
// every node before the next: accept the new CA, issue with it (the old one stays
// accepted), re-issue what the old one signed, drop the old one. This header holds the
// change a node makes to its machine config for each; keelctl rotate-ca drives them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/config/machine_config.h"
#include "keel/pki/pki.h"

namespace keel::config {

enum class CaKind { kOs, kKubernetes, kEtcd, kAggregator };
inline constexpr CaKind kAllCaKinds[] = {CaKind::kOs, CaKind::kKubernetes, CaKind::kEtcd, CaKind::kAggregator};

// "os", "kubernetes", "etcd", "aggregator".
std::string_view caKindName(CaKind kind);
// Errors: INVALID_ARGUMENT naming the kinds there are.
Result<CaKind> parseCaKind(std::string_view name);
// Where the machine config holds it: "machine.ca", "cluster.ca", "cluster.etcd.ca",
// "cluster.aggregatorCA".
std::string_view caFieldPath(CaKind kind);

// The node's CA of `kind`; nullptr when its type holds none (etcd and aggregator on a worker).
const CaPem* caOf(const MachineConfig& config, CaKind kind);
CaPem* caOf(MachineConfig& config, CaKind kind);

// A node accepts at most this many CAs of one kind besides the issuing one.
inline constexpr size_t kMaxAcceptedCas = 4;

// The issuing CA first, then the accepted ones: the PEM bundle a TLS stack trusts.
std::string caBundlePem(const CaPem& ca);

// Lower-case hex SHA-256 of a CA certificate's DER: how a CA is named in requests and
// replies. Errors: INVALID_ARGUMENT when `pem` is not one certificate.
Result<std::string> caFingerprint(std::string_view pem);

// One step of a rotation on one node; empty fields change nothing.
struct CaChange {
  std::string accept;     // PEM: accept this CA too
  std::string issueCrt;   // PEM: issue with this CA from now on; it must be accepted already
  std::string issueKey;   // PEM: its key; control planes only, required there
  std::string drop;       // fingerprint (at least 12 hex digits of it): stop accepting this CA
};

// `config` with `change` made to its CA of `kind` (in the order accept, issue, drop).
// Accepting a CA already accepted, issuing with the issuing one and dropping one not
// accepted change nothing, so a step can be run again. The CA issuing until now stays
// accepted. A node that holds no CA of `kind` is returned unchanged. Errors:
// INVALID_ARGUMENT (a PEM that is not a CA certificate, a key that does not match,
// a malformed fingerprint, a CA key for a worker); FAILED_PRECONDITION (issuing with a
// CA not accepted yet, a control plane without the key, dropping the issuing CA,
// accepting more than kMaxAcceptedCas).
Result<MachineConfig> changeCertificateAuthorities(const MachineConfig& config, CaKind kind, const CaChange& change);

// A new CA to rotate `kind` to: the subject of the secrets bundle's CA of that kind with
// the creation time in its CN ("keel-os 20261207T101500Z"), so the old and new CA are told
// apart by name as well as by key. Valid from clock.now() for `validity`.
Result<pki::CertificateAuthority> generateRotationCa(CaKind kind, const Clock& clock,
                                                     std::chrono::seconds validity = std::chrono::hours(24 * 365 * 10));

}  // namespace keel::config
