#include "keel/config/generate.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "keel/pki/pki.h"

namespace keel::config {
namespace {

// The bundle's CA of `kind` as a machine config holds it, with the CAs accepted besides.
CaPem caPem(const SecretsBundle& secrets, CaKind kind, bool withKey) {
  const auto& ca = secretsCa(secrets, kind);
  CaPem out{.crt = ca.certificate.toPem(), .key = withKey ? ca.key.toPem() : std::string(), .accepted = {}};
  if (auto it = secrets.acceptedCas.find(kind); it != secrets.acceptedCas.end()) out.accepted = it->second;
  return out;
}

// Client certificates may be checked by nodes whose clocks run a little behind the
// machine that minted them; a certificate "not yet valid" there would be refused.
constexpr std::chrono::seconds kClientNotBeforeSkew = std::chrono::minutes(5);

}  // namespace

Result<std::vector<std::string>> validateRoles(const std::vector<std::string>& roles) {
  if (roles.empty()) {
    return invalidArgument(fmt::format("expected at least one role (one of {}), found none", fmt::join(kKnownRoles, ", ")));
  }
  std::vector<std::string> out;
  for (const auto& role : roles) {
    if (std::find(kKnownRoles.begin(), kKnownRoles.end(), role) == kKnownRoles.end()) {
      return invalidArgument(
          fmt::format("unknown role '{}': expected one of {}", role, fmt::join(kKnownRoles, ", ")));
    }
    if (std::find(out.begin(), out.end(), role) == out.end()) out.push_back(role);
  }
  return out;
}

Result<MachineConfigs> generateMachineConfigs(const SecretsBundle& secrets, const MachineConfigOptions& options) {
  KEEL_RETURN_IF_ERROR(validateClusterName(options.clusterName));
  std::vector<std::string> sans = {options.endpoint.host};
  for (const auto& san : options.certSans) {
    if (!isIpAddress(san) && !isValidHostName(san)) {
      return invalidArgument(fmt::format("invalid certificate SAN '{}': expected an IP address or a DNS name", san));
    }
    if (std::find(sans.begin(), sans.end(), san) == sans.end()) sans.push_back(san);
  }

  MachineConfig cp;
  cp.type = MachineType::kControlPlane;
  cp.token = secrets.joinToken;
  cp.ca = caPem(secrets, CaKind::kOs, true);
  cp.certSans = std::move(sans);
  cp.clusterName = options.clusterName;
  cp.clusterId = secrets.clusterId;
  cp.clusterSecret = secrets.clusterSecret;
  cp.controlPlaneEndpoint = options.endpoint.url();
  cp.bootstrapToken = secrets.bootstrapToken;
  cp.secretboxKey = secrets.secretboxKey;
  cp.kubernetesCa = caPem(secrets, CaKind::kKubernetes, true);
  cp.etcdCa = caPem(secrets, CaKind::kEtcd, true);
  cp.aggregatorCa = caPem(secrets, CaKind::kAggregator, true);
  cp.serviceAccountKey = secrets.serviceAccountKey.toPem();

  // A worker joins with the token and trusts the CAs it talks to; it can mint nothing.
  MachineConfig worker;
  worker.type = MachineType::kWorker;
  worker.token = secrets.joinToken;
  worker.ca = caPem(secrets, CaKind::kOs, false);
  worker.clusterName = options.clusterName;
  worker.clusterId = secrets.clusterId;
  worker.controlPlaneEndpoint = options.endpoint.url();
  worker.kubernetesCa = caPem(secrets, CaKind::kKubernetes, false);

  // timed is the reference backend: every node runs it unless a config patch says otherwise.
  cp.backends = {std::string(kDefaultBackend)};
  worker.backends = {std::string(kDefaultBackend)};

  if (auto s = validateMachineConfig(cp); !s.isOk()) return s.withContext("generated control-plane config");
  if (auto s = validateMachineConfig(worker); !s.isOk()) return s.withContext("generated worker config");
  return MachineConfigs{.controlPlane = std::move(cp), .worker = std::move(worker)};
}

Result<ClientContext> generateClientContext(const SecretsBundle& secrets, const ClientCertOptions& options,
                                            const Clock& clock) {
  KEEL_ASSIGN_OR_RETURN(auto roles, validateRoles(options.roles));
  if (options.ttl <= std::chrono::seconds(0) || options.ttl > pki::kMaxValidity) {
    return invalidArgument(fmt::format("invalid certificate TTL: expected between 1s and {}h, found {}s",
                                       std::chrono::duration_cast<std::chrono::hours>(pki::kMaxValidity).count(),
                                       options.ttl.count()));
  }
  const TimePoint notAfter = clock.now() + options.ttl;
  const TimePoint caNotAfter = secrets.osCa.certificate.notAfter();
  if (notAfter > caNotAfter) {
    return invalidArgument(fmt::format("certificate TTL too long: it would expire at {}, after the OS CA it chains "
                                       "to (expires {})",
                                       formatTime(notAfter), formatTime(caNotAfter)));
  }
  KEEL_ASSIGN_OR_RETURN(auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  KEEL_ASSIGN_OR_RETURN(auto csr, pki::CertificateRequest::create(
                                      key, {.subject = {.commonName = options.commonName, .organizations = {}},
                                            .subjectAltNames = {}}));
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
  policy.keyUsage = pki::kDigitalSignature;
  policy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
  policy.organizations = roles;
  policy.allowAnySubjectAltName = false;
  policy.ttl = options.ttl;
  policy.notBeforeSkew = kClientNotBeforeSkew;
  KEEL_ASSIGN_OR_RETURN(auto crt, pki::issueCertificate(secrets.osCa, csr, policy, clock));
  return ClientContext{
      .endpoints = {},
      .nodes = {},
      .ca = caBundlePem(caPem(secrets, CaKind::kOs, false)),
      .crt = crt.toPem(),
      .key = key.toPem(),
  };
}

}  // namespace keel::config
