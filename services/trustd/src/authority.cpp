#include "authority.h"

#include <algorithm>
#include <array>
#include <cstring>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "keel/authz/authz.h"
#include "keel/pki/serial.h"
#include "keel/config/client_config.h"
#include "keel/transport/peer_address.h"
#include "keel/config/duration.h"

namespace keel::trustd {

namespace {

// Nodes' clocks differ a little; a certificate must already be valid on the others.
constexpr auto kNotBeforeSkew = std::chrono::minutes(5);

struct IpBytes {
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  size_t size() const { return family == AF_INET ? 4 : 16; }
};

std::optional<IpBytes> parseIp(const std::string& text) {
  IpBytes ip;
  if (inet_pton(AF_INET, text.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (inet_pton(AF_INET6, text.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
    return ip;
  }
  return std::nullopt;
}

// An IP network "a.b.c.d/n" or "x::/n" (a bare address is a /32 or /128).
struct Network {
  IpBytes base;
  int prefix = 0;
  bool contains(const IpBytes& ip) const {
    if (ip.family != base.family) return false;
    for (int bit = 0; bit < prefix; ++bit) {
      const uint8_t mask = static_cast<uint8_t>(0x80u >> (bit % 8));
      if ((ip.bytes[bit / 8] & mask) != (base.bytes[bit / 8] & mask)) return false;
    }
    return true;
  }
};

std::optional<Network> parseNetwork(const std::string& text) {
  const auto slash = text.find('/');
  auto ip = parseIp(text.substr(0, slash));
  if (!ip) return std::nullopt;
  Network n{*ip, static_cast<int>(ip->size() * 8)};
  if (slash == std::string::npos) return n;
  const std::string bits = text.substr(slash + 1);
  if (bits.empty() || bits.size() > 3 ||
      !std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  n.prefix = std::stoi(bits);
  if (n.prefix > static_cast<int>(ip->size() * 8)) return std::nullopt;
  return n;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string joined(const std::vector<std::string>& items) {
  return items.empty() ? std::string("none") : fmt::format("{}", fmt::join(items, ", "));
}

Result<pki::CertificateRequest> parseCsr(const std::string& pem) {
  if (pem.empty()) return invalidArgument("expected a CSR (PEM \"CERTIFICATE REQUEST\"), found an empty one");
  // Its signature is checked where it is issued (pki::issueCertificate), once.
  auto csr = pki::CertificateRequest::fromPem(pem);
  if (!csr.ok()) return csr.status().withContext("CSR");
  return csr;
}

void addUnique(std::vector<std::string>& list, const std::string& item) {
  if (!item.empty() && std::find(list.begin(), list.end(), item) == list.end()) list.push_back(item);
}

}  // namespace

bool tokenAccepted(const std::string& token, const std::vector<std::string>& accepted) {
  // Every accepted token is compared, in full, whatever the earlier ones gave.
  int match = 0;
  for (const auto& a : accepted) {
    if (a.empty() || a.size() != token.size()) continue;
    match |= CRYPTO_memcmp(a.data(), token.data(), a.size()) == 0 ? 1 : 0;
  }
  return match != 0;
}

RateLimiter::RateLimiter(int burst, int perMinute, const Clock& clock, size_t maxAddresses)
    : burst_(burst), perSecond_(perMinute / 60.0), clock_(clock), maxAddresses_(maxAddresses) {}

bool RateLimiter::allow(const std::string& address) {
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.now();
  auto it = buckets_.find(address);
  if (it == buckets_.end()) {
    if (buckets_.size() >= maxAddresses_) {
      auto oldest = std::min_element(buckets_.begin(), buckets_.end(), [](const auto& a, const auto& b) {
        return a.second.last < b.second.last;
      });
      buckets_.erase(oldest);
    }
    it = buckets_.emplace(address, Bucket{burst_, now}).first;
  }
  auto& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.last).count();
  if (elapsed > 0) b.tokens = std::min(burst_, b.tokens + elapsed * perSecond_);
  b.last = now;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

Authority::Authority(const TrustdConfig& config, pki::CertificateAuthority ca, std::vector<pki::Certificate> accepted,
                     std::unique_ptr<Revocations> revocations, const Clock& clock)
    : config_(config),
      ca_(std::move(ca)),
      acceptedCas_(std::move(accepted)),
      clock_(clock),
      joinLimiter_(config.joinBurst, config.joinRatePerMinute, clock),
      revocations_(std::move(revocations)) {}

Result<std::unique_ptr<Authority>> Authority::create(const TrustdConfig& config, const Clock& clock) {
  auto ca = pki::CertificateAuthority::fromPem(config.caCertPem, config.caKeyPem);
  if (!ca.ok()) return ca.status().withContext("trustd's OS CA");
  for (const auto& extra : config.joinExtraSans) {
    if (extra.find('/') != std::string::npos || parseIp(extra)) {
      if (!parseNetwork(extra))
        return invalidArgument("join.extraSans: '" + extra + "' is not an IP network");
    } else if (extra.empty() || extra.find_first_of(" *,") != std::string::npos) {
      return invalidArgument("join.extraSans: expected an IP network or an exact DNS name, found '" + extra +
                             "'");
    }
  }
  // The issuing CA and, while a rotation runs, the others whose certificates still count.
  auto bundle = pki::Certificate::bundleFromPem(config.caBundlePem);
  if (!bundle.ok()) return bundle.status().withContext("trustd's OS CA bundle");
  std::vector<pki::Certificate> accepted = {ca->certificate};
  for (const auto& cert : *bundle) {
    if (!cert.isCa()) return invalidArgument("trustd's OS CA bundle holds a certificate that is not a CA");
    if (cert.fingerprintSha256() != ca->certificate.fingerprintSha256()) accepted.push_back(cert);
  }
  KEEL_ASSIGN_OR_RETURN(auto revocations, Revocations::open(config.revocationFile, ca->key, clock));
  return std::unique_ptr<Authority>(
      new Authority(config, std::move(ca).value(), std::move(accepted), std::move(revocations), clock));
}

Result<std::string> Authority::admitJoinSource(const std::string& peer, std::string_view what) {
  KEEL_ASSIGN_OR_RETURN(const std::string source, transport::peerAddress(peer));
  // An IPv6 caller is limited by its prefix: a /64 holds 2^64 fresh addresses.
  const std::string block = transport::addressBlock(source, config_.joinIpv6PrefixBits);
  if (!joinLimiter_.allow(block)) {
    spdlog::warn("trustd: refused a {} from {}: too many attempts", what, block);
    return Status(StatusCode::kResourceExhausted,
                  fmt::format("too many join and renewal attempts from {}; at most {} a minute", block,
                              config_.joinRatePerMinute));
  }
  return source;
}

Result<NodeCertificate> Authority::signNodeCertificate(const std::string& csrPem, const std::string& token,
                                                       const std::string& peer) {
  KEEL_ASSIGN_OR_RETURN(const std::string source, admitJoinSource(peer, "join"));
  if (!tokenAccepted(token, config_.joinTokens)) {
    spdlog::warn("trustd: refused a join from {}: the join token is not accepted", source);
    return unauthenticated(
        "the join token is not accepted by this cluster (expected machine.token of a worker config "
        "made from this cluster's secrets)");
  }
  auto csr = parseCsr(csrPem);
  if (!csr.ok()) {
    spdlog::warn("trustd: refused a join from {}: {}", source, csr.status().message());
    return csr.status();
  }
  // A node certificate carries no roles. The policy below strips O= anyway; a CSR that
  // asks for one is refused outright, since no Keel node ever sends one.
  if (const auto orgs = csr->subject().organizations; !orgs.empty()) {
    spdlog::warn("trustd: refused a join from {}: the CSR asks for O={}", source, joined(orgs));
    return invalidArgument("a node certificate carries no roles, but the CSR asks for O=" + joined(orgs));
  }
  const auto requested = csr->subjectAltNames();
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kServerAuth};
  policy.keyUsage = pki::kDigitalSignature;
  policy.organizationPolicy = pki::IssuePolicy::Organizations::kStrip;
  policy.commonNameMustBeSubjectAltName = true;
  policy.ttl = config_.nodeCertTtl;
  policy.notBeforeSkew = kNotBeforeSkew;
  // Allowed: the source address, and whatever of the request the config's extra SANs cover.
  policy.allowedSubjectAltNames.ipAddresses.push_back(source);
  for (const auto& ip : requested.ipAddresses) {
    const auto parsed = parseIp(ip);
    for (const auto& extra : config_.joinExtraSans) {
      const auto net = parseNetwork(extra);
      if (parsed && net && net->contains(*parsed)) addUnique(policy.allowedSubjectAltNames.ipAddresses, ip);
    }
  }
  for (const auto& dns : requested.dnsNames) {
    for (const auto& extra : config_.joinExtraSans) {
      if (lower(extra) == lower(dns)) addUnique(policy.allowedSubjectAltNames.dnsNames, dns);
    }
  }
  auto cert = pki::issueCertificate(ca_, *csr, policy, clock_);
  if (!cert.ok()) {
    spdlog::warn("trustd: refused a join from {}: {}", source, cert.status().message());
    return Status(cert.status().code(), cert.status().message() +
                                            " (a joining node may name its source address " + source +
                                            "; trustd's join.extraSans allows more)");
  }
  const auto sans = cert->subjectAltNames();
  spdlog::info("trustd: issued a node certificate: subject '{}', SANs DNS [{}] IP [{}], serial {}, peer {}",
               cert->subject().toString(), joined(sans.dnsNames), joined(sans.ipAddresses), cert->serialHex(),
               source);
  return NodeCertificate{cert->toPem(), config_.caBundlePem};
}

Result<pki::Certificate> Authority::currentNodeCertificate(const std::string& pem) const {
  if (pem.empty()) return unauthenticated("expected the node's current certificate (PEM), found none");
  auto chain = pki::Certificate::bundleFromPem(pem);
  if (!chain.ok()) return unauthenticated("the current certificate: " + chain.status().message());
  const pki::Certificate& leaf = chain->front();
  const pki::VerifyOptions options{.requiredUsage = pki::ExtendedKeyUsage::kServerAuth, .intermediates = {}};
  KEEL_RETURN_IF_ERROR(pki::verifyCertificate(leaf, acceptedCas_, options, clock_));
  if (revocations_->isRevoked(leaf.serialHex())) {
    return unauthenticated(fmt::format("certificate '{}' (serial {}) is revoked: it renews nothing",
                                       leaf.subject().toString(), leaf.serialHex()));
  }
  const auto usages = leaf.extendedKeyUsages();
  const bool client = std::find(usages.begin(), usages.end(), pki::ExtendedKeyUsage::kClientAuth) != usages.end();
  const auto orgs = leaf.subject().organizations;
  if (client || leaf.isCa() || !orgs.empty()) {
    const std::string found = client ? "clientAuth" : leaf.isCa() ? "CA:TRUE" : "O=" + joined(orgs);
    return unauthenticated(fmt::format(
        "expected a node's serving certificate (serverAuth only, no roles, not a CA), found '{}' (serial {}) with "
        "{}: a client certificate never renews as a node's",
        leaf.subject().toString(), leaf.serialHex(), found));
  }
  return leaf;
}

namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// A renewal names exactly what the join verified: the same CN and the same SANs.
Status checkSameNames(const pki::CertificateRequest& csr, const pki::Certificate& current) {
  const auto want = current.subjectAltNames();
  const auto got = csr.subjectAltNames();
  const bool same = csr.subject().commonName == current.subject().commonName &&
                    sorted(want.ipAddresses) == sorted(got.ipAddresses) &&
                    sorted(want.dnsNames) == sorted(got.dnsNames);
  if (same) return Status::ok();
  return invalidArgument(fmt::format(
      "a renewal names exactly what the current certificate names: expected CN '{}', IP [{}], DNS [{}], found CN "
      "'{}', IP [{}], DNS [{}]; other names need a new join with the join token",
      current.subject().commonName, joined(want.ipAddresses), joined(want.dnsNames), csr.subject().commonName,
      joined(got.ipAddresses), joined(got.dnsNames)));
}

}  // namespace

Result<NodeCertificate> Authority::renewNodeCertificate(const std::string& csrPem, const std::string& currentPem,
                                                        std::string_view proof, const std::string& peer) {
  KEEL_ASSIGN_OR_RETURN(const std::string source, admitJoinSource(peer, "renewal"));
  const auto refuse = [&](const Status& why) {
    spdlog::warn("trustd: refused a node renewal from {}: {}", source, why.message());
    return why;
  };
  auto current = currentNodeCertificate(currentPem);
  if (!current.ok()) return refuse(current.status());
  auto csr = parseCsr(csrPem);
  if (!csr.ok()) return refuse(csr.status());
  if (const Status st = pki::verifyPossession(*current, *csr, proof); !st.isOk()) {
    return refuse(unauthenticated(st.message()));
  }
  if (const Status st = checkSameNames(*csr, *current); !st.isOk()) return refuse(st);
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kServerAuth};
  policy.keyUsage = pki::kDigitalSignature;
  policy.organizationPolicy = pki::IssuePolicy::Organizations::kStrip;
  policy.commonNameMustBeSubjectAltName = true;
  policy.allowedSubjectAltNames = current->subjectAltNames();
  policy.ttl = config_.nodeCertTtl;
  policy.notBeforeSkew = kNotBeforeSkew;
  auto cert = pki::issueCertificate(ca_, *csr, policy, clock_);
  if (!cert.ok()) return refuse(cert.status());
  spdlog::info("trustd: renewed a node certificate: subject '{}', serial {} replaces {}, valid until {}, peer {}",
               cert->subject().toString(), cert->serialHex(), current->serialHex(), formatTime(cert->notAfter()),
               source);
  return NodeCertificate{cert->toPem(), config_.caBundlePem};
}

Result<ApidCertificates> Authority::issueApidCertificates(const std::string& servingCsrPem,
                                                          const std::string& impersonatorCsrPem) {
  auto serving = parseCsr(servingCsrPem);
  if (!serving.ok()) return serving.status().withContext("serving");
  auto impersonator = parseCsr(impersonatorCsrPem);
  if (!impersonator.ok()) return impersonator.status().withContext("impersonator");

  pki::IssuePolicy servingPolicy;
  servingPolicy.extendedKeyUsages = {pki::ExtendedKeyUsage::kServerAuth};
  servingPolicy.keyUsage = pki::kDigitalSignature;
  servingPolicy.organizationPolicy = pki::IssuePolicy::Organizations::kStrip;
  servingPolicy.commonNameMustBeSubjectAltName = true;
  servingPolicy.ttl = config_.nodeCertTtl;
  servingPolicy.notBeforeSkew = kNotBeforeSkew;
  std::vector<std::string> names = {config_.nodeAddress, config_.hostname, "127.0.0.1"};
  names.insert(names.end(), config_.certSans.begin(), config_.certSans.end());
  for (const auto& n : names) {
    if (n.empty()) continue;
    addUnique(parseIp(n) ? servingPolicy.allowedSubjectAltNames.ipAddresses
                         : servingPolicy.allowedSubjectAltNames.dnsNames,
              n);
  }
  auto servingCert = pki::issueCertificate(ca_, *serving, servingPolicy, clock_);
  if (!servingCert.ok()) return servingCert.status().withContext("apid's serving certificate");

  if (impersonator->subject().commonName != "apid@" + config_.nodeAddress) {
    return invalidArgument("impersonator CSR: expected CN 'apid@" + config_.nodeAddress + "', found '" +
                           impersonator->subject().commonName + "'");
  }
  pki::IssuePolicy impersonatorPolicy;
  impersonatorPolicy.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
  impersonatorPolicy.keyUsage = pki::kDigitalSignature;
  impersonatorPolicy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
  impersonatorPolicy.organizations = {std::string(authz::kRoleImpersonator)};
  impersonatorPolicy.ttl = config_.nodeCertTtl;
  impersonatorPolicy.notBeforeSkew = kNotBeforeSkew;
  auto impersonatorCert = pki::issueCertificate(ca_, *impersonator, impersonatorPolicy, clock_);
  if (!impersonatorCert.ok()) return impersonatorCert.status().withContext("apid's impersonator certificate");

  spdlog::info(
      "trustd: issued apid's certificates: serving serial {}, impersonator serial {}, valid until {}",
      servingCert->serialHex(), impersonatorCert->serialHex(), formatTime(servingCert->notAfter()));
  return ApidCertificates{servingCert->toPem() + ca_.certificate.toPem(), impersonatorCert->toPem(),
                          config_.caBundlePem};
}

Result<std::chrono::seconds> Authority::clientTtl(std::chrono::seconds requested) const {
  if (requested.count() < 0)
    return invalidArgument("expected a positive TTL, found " + std::to_string(requested.count()) + " s");
  if (requested.count() == 0) return config_.clientCertDefaultTtl;
  if (requested > config_.clientCertMaxTtl) {
    return invalidArgument(
        fmt::format("a TTL of {} s is longer than this cluster allows ({} s, trustd's client.maxTtlSeconds)",
                    requested.count(), config_.clientCertMaxTtl.count()));
  }
  return requested;
}

Result<std::chrono::seconds> Authority::renewalTtl(const authz::CertValidity& presented,
                                                   std::chrono::seconds requested) const {
  using std::chrono::seconds;
  // trustd backdates notBefore by the skew: the TTL a certificate was issued for is its
  // span less the skew, and a renewal issued for that TTL spans exactly as long.
  const auto span = std::chrono::duration_cast<seconds>(presented.notAfter - presented.notBefore);
  const seconds issuedFor = span - std::chrono::duration_cast<seconds>(kNotBeforeSkew);
  if (issuedFor <= seconds::zero()) {
    return failedPrecondition(
        fmt::format("expected a presented certificate valid for longer than trustd's notBefore skew of {} s, "
                    "found one valid for {} s: a renewal would outlive it; ask an admin for a new config",
                    std::chrono::duration_cast<seconds>(kNotBeforeSkew).count(), span.count()));
  }
  if (requested.count() < 0)
    return invalidArgument("expected a positive TTL, found " + std::to_string(requested.count()) + " s");
  if (requested > issuedFor) {
    return invalidArgument(fmt::format(
        "a renewal never outlives the certificate it replaces: expected a TTL of at most {} s ({}), the "
        "lifetime the presented certificate was issued with, found {} s ({}); leave the TTL out to keep it",
        issuedFor.count(), config::formatDuration(issuedFor), requested.count(),
        config::formatDuration(requested)));
  }
  if (requested.count() > 0) return clientTtl(requested);
  return std::min(issuedFor, config_.clientCertMaxTtl);
}

Status Authority::requireOwnCertificate(const ClientCaller& caller, std::string_view what) const {
  if (caller.presented) return Status::ok();
  spdlog::warn("trustd: refused {} to '{}': the call did not come from a certificate presented to this apid",
               what, caller.identity);
  return permissionDenied(fmt::format(
      "{} is issued only to a caller that presented its own certificate to this control plane's apid: "
      "expected that certificate's validity from it (keel-cert-validity), found none on the call from '{}', "
      "as on every call another node's apid forwarded (os:impersonator grants nothing lasting); ask {}'s "
      "apid directly (keelctl -e {}, with no -n naming another node)",
      what, caller.identity, config_.nodeAddress, config_.nodeAddress));
}

Result<pki::Certificate> Authority::issueClient(const pki::CertificateRequest& csr,
                                                const std::vector<std::string>& roles,
                                                std::chrono::seconds ttl) {
  pki::IssuePolicy policy;
  policy.extendedKeyUsages = {pki::ExtendedKeyUsage::kClientAuth};
  policy.keyUsage = pki::kDigitalSignature;
  policy.organizationPolicy = pki::IssuePolicy::Organizations::kSet;
  policy.organizations = roles;
  policy.ttl = ttl;
  policy.notBeforeSkew = kNotBeforeSkew;
  return pki::issueCertificate(ca_, csr, policy, clock_);
}

namespace {

// Roles a client certificate may carry: never os:impersonator, which lets its holder
// claim any role for the calls it forwards.
Status checkClientRoles(const std::vector<std::string>& roles) {
  if (roles.empty())
    return invalidArgument("expected at least one role (os:admin, os:operator, os:reader), found none");
  for (const auto& r : roles) {
    if (r != authz::kRoleAdmin && r != authz::kRoleOperator && r != authz::kRoleReader) {
      return invalidArgument("expected roles among os:admin, os:operator, os:reader, found '" + r + "'");
    }
  }
  return Status::ok();
}

}  // namespace

Result<GeneratedClientConfig> Authority::generateClientConfig(const std::vector<std::string>& requestedRoles,
                                                              std::chrono::seconds requestedTtl,
                                                              const std::string& identity,
                                                              const ClientCaller& requestedBy) {
  KEEL_RETURN_IF_ERROR(requireOwnCertificate(requestedBy, "a client configuration"));
  KEEL_RETURN_IF_ERROR(checkClientRoles(requestedRoles));
  std::vector<std::string> roles;
  for (const auto& r : requestedRoles) addUnique(roles, r);
  KEEL_ASSIGN_OR_RETURN(const auto ttl, clientTtl(requestedTtl));
  const std::string cn = identity.empty() ? roles.front().substr(3) : identity;  // "os:reader" -> "reader"
  KEEL_ASSIGN_OR_RETURN(auto key, pki::PrivateKey::generate(pki::KeyType::kEcdsaP256));
  pki::CsrOptions options;
  options.subject.commonName = cn;
  auto csr = pki::CertificateRequest::create(key, options);
  if (!csr.ok()) return csr.status().withContext("identity");
  KEEL_ASSIGN_OR_RETURN(auto cert, issueClient(*csr, roles, ttl));

  config::ClientContext ctx;
  ctx.endpoints = {config_.apiEndpoint};
  ctx.nodes = {config_.nodeAddress};
  ctx.ca = config_.caBundlePem;
  ctx.crt = cert.toPem();
  ctx.key = key.toPem();
  config::ClientConfig out;
  out.context = config_.clusterName;
  out.contexts[config_.clusterName] = std::move(ctx);
  spdlog::info(
      "trustd: issued a client configuration: subject '{}', serial {}, valid until {}, requested by '{}'",
      cert.subject().toString(), cert.serialHex(), formatTime(cert.notAfter()), requestedBy.identity);
  return GeneratedClientConfig{config::serializeClientConfig(out), cert.serialHex(), cert.notAfter()};
}

Result<ClientCertificate> Authority::renewClientCertificate(const std::string& csrPem,
                                                            const ClientCaller& caller,
                                                            std::chrono::seconds requestedTtl) {
  const std::string& identity = caller.identity;
  if (identity.empty()) return unauthenticated("the call carries no client identity to renew");
  KEEL_RETURN_IF_ERROR(requireOwnCertificate(caller, "a renewed client certificate"));
  std::vector<std::string> roles;
  for (const auto& r : caller.roles) {
    if (r == authz::kRoleAdmin || r == authz::kRoleOperator || r == authz::kRoleReader) addUnique(roles, r);
  }
  if (roles.empty()) {
    return Status(StatusCode::kPermissionDenied,
                  "only client certificates with os:admin, os:operator or os:reader can be renewed");
  }
  KEEL_ASSIGN_OR_RETURN(const auto ttl, renewalTtl(*caller.presented, requestedTtl));
  KEEL_ASSIGN_OR_RETURN(const auto csr, parseCsr(csrPem));
  // The CSR proposes a key only: identity and roles come from the certificate the caller
  // authenticated with.
  if (csr.subject().commonName != identity) {
    return invalidArgument("expected the CSR's CN to be the caller's identity '" + identity + "', found '" +
                           csr.subject().commonName + "'");
  }
  if (!csr.subjectAltNames().empty()) return invalidArgument("expected a client CSR without SANs");
  KEEL_ASSIGN_OR_RETURN(const auto issued, issueClient(csr, roles, ttl));
  spdlog::info("trustd: renewed a client certificate: subject '{}', serial {}, for {}, valid until {}",
               issued.subject().toString(), issued.serialHex(), config::formatDuration(ttl),
               formatTime(issued.notAfter()));
  return ClientCertificate{issued.toPem(), config_.caBundlePem, issued.serialHex(), issued.notAfter()};
}

std::chrono::seconds Authority::longestLifetime() const {
  // notBefore lies kNotBeforeSkew before the issue time; notAfter is what counts here.
  return std::max(config_.nodeCertTtl, config_.clientCertMaxTtl);
}

Result<Revocations::Added> Authority::revoke(const RevokeRequest& request, const std::string& requestedBy) {
  if (request.certificatePem.empty() == request.serial.empty()) {
    return invalidArgument("expected exactly one of a certificate (PEM) and a serial to revoke");
  }
  RevokedEntry entry;
  entry.revokedAt = clock_.now();
  entry.revokedBy = requestedBy;
  if (!request.serial.empty()) {
    KEEL_ASSIGN_OR_RETURN(entry.serial, pki::normalizeSerial(request.serial));
    entry.notAfter = clock_.now() + longestLifetime();
  } else {
    auto cert = pki::Certificate::fromPem(request.certificatePem);
    if (!cert.ok()) return invalidArgument("the certificate to revoke: " + cert.status().message());
    if (cert->isCa()) {
      return invalidArgument("a CA is not revoked but replaced: rotate it (keelctl rotate-ca)");
    }
    // Any check the verification makes but expiry: an expired certificate needs no entry.
    if (cert->notAfter() < clock_.now()) {
      return failedPrecondition(fmt::format("the certificate expired at {}: no apid accepts it any more",
                                            formatTime(cert->notAfter())));
    }
    const auto issued = pki::verifyCertificate(*cert, acceptedCas_, {}, clock_);
    if (!issued.isOk()) {
      return invalidArgument("the certificate was not issued by this cluster's OS CA: " + issued.message());
    }
    entry.serial = cert->serialHex();
    entry.notAfter = cert->notAfter();
    entry.identity = cert->subject().commonName;
  }
  KEEL_ASSIGN_OR_RETURN(auto added, revocations_->add(entry));
  if (added.already) {
    spdlog::info("trustd: serial {} was already revoked (asked again by '{}')", added.entry.serial, requestedBy);
  } else {
    spdlog::warn("trustd: revoked serial {} ('{}'), listed until {}, by '{}'; the list is now at sequence {}",
                 added.entry.serial, added.entry.identity, formatTime(added.entry.notAfter), requestedBy,
                 added.sequence);
  }
  return added;
}

}  // namespace keel::trustd
