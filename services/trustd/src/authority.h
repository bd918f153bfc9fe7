// trustd's logic, free of gRPC: the OS CA's issuing decisions for joining nodes, this
// node's apid, and clients. Every refusal is an error value with a message that says
// what was expected; every issuance is logged (subject, SANs, serial, peer), never a key
// or a token.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "keel/authz/authz.h"
#include "keel/common/clock.h"
#include "keel/common/status.h"
#include "keel/pki/pki.h"

#include "revocations.h"
#include "trustd_config.h"

namespace keel::trustd {

struct NodeCertificate {
  std::string certificatePem;
  std::string caBundlePem;
};

struct ApidCertificates {
  std::string servingChainPem;  // leaf, then the signing CA
  std::string impersonatorPem;
  std::string caBundlePem;
};

struct ClientCertificate {
  std::string certificatePem;
  std::string caBundlePem;
  std::string serialHex;
  TimePoint notAfter;
};

// Who asks for a client certificate, as this node's apid vouched for it (keel-identity,
// keel-roles, keel-cert-validity).
struct ClientCaller {
  std::string identity;            // the certificate's CN; "<CN> via <apid>" when forwarded
  std::vector<std::string> roles;  // as apid read them from the certificate
  // The validity of the certificate the caller presented to this node's apid itself.
  // None when another node's apid forwarded the call: then nothing is issued.
  std::optional<authz::CertValidity> presented;
};

struct GeneratedClientConfig {
  std::string keelconfig;  // JSON; holds a private key: secret
  std::string serialHex;
  TimePoint notAfter;
};

// Limits how often one source (an address, or an IPv6 prefix) may try to join: `burst` attempts at once,
// refilled at `perMinute`. Bounded memory: the least recently seen addresses are
// forgotten first. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(int burst, int perMinute, const Clock& clock, size_t maxAddresses = 4096);
  // True when `address` may go ahead now (and takes one attempt from its allowance).
  bool allow(const std::string& address);

 private:
  struct Bucket {
    double tokens;
    TimePoint last;
  };
  const double burst_;
  const double perSecond_;
  const Clock& clock_;
  const size_t maxAddresses_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

// What to revoke: a certificate this CA issued (PEM), or a serial. Exactly one.
struct RevokeRequest {
  std::string certificatePem;
  std::string serial;
};

class Authority {
 public:
  // Errors: INVALID_ARGUMENT when the CA does not load or a configured extra SAN is not
  // an IP network or a DNS name.
  static Result<std::unique_ptr<Authority>> create(const TrustdConfig& config, const Clock& clock);

  // A joining node's serving certificate. `peer` is the caller's address as apid saw it
  // ("ipv4:10.0.0.5:41234", "ipv6:[::1]:5000" or a bare address). Errors:
  // UNAUTHENTICATED (token), RESOURCE_EXHAUSTED (rate), INVALID_ARGUMENT (CSR, SANs).
  Result<NodeCertificate> signNodeCertificate(const std::string& csrPem, const std::string& token,
                                              const std::string& peer);

  // A joined node's next serving certificate, on the strength of its current one instead
  // of a join token: `currentPem` (the leaf first) must chain to an OS CA trustd accepts, be a
  // node certificate (serverAuth, neither clientAuth nor a CA, no O=) valid now; `proof` a
  // signature by its key over the CSR (pki::signPossession); the CSR's CN and SANs exactly
  // the current certificate's. Issued for the node lifetime; the join rate limit applies.
  // Errors: RESOURCE_EXHAUSTED (rate), UNAUTHENTICATED (certificate, proof),
  // INVALID_ARGUMENT (CSR, names).
  Result<NodeCertificate> renewNodeCertificate(const std::string& csrPem, const std::string& currentPem,
                                               std::string_view proof, const std::string& peer);

  // This node's apid: a serving certificate for this node's names, and its
  // os:impersonator client certificate.
  Result<ApidCertificates> issueApidCertificates(const std::string& servingCsrPem,
                                                 const std::string& impersonatorCsrPem);

  // A new key and client certificate with exactly `roles` (os:admin, os:operator,
  // os:reader; at least one), as a keelconfig. `ttl` zero takes the default. Errors:
  // PERMISSION_DENIED when `requestedBy` did not present its own certificate to this
  // node's apid (a call forwarded by another node's apid); INVALID_ARGUMENT (roles, TTL).
  Result<GeneratedClientConfig> generateClientConfig(const std::vector<std::string>& roles,
                                                     std::chrono::seconds ttl, const std::string& identity,
                                                     const ClientCaller& requestedBy);

  // A new certificate for the CSR's key with the caller's identity as CN and the client
  // roles among its roles. Its lifetime is the presented certificate's, less the notBefore
  // skew trustd adds (so a renewal's notAfter - notBefore never exceeds the presented
  // one's), capped by the cluster's maximum; a nonzero `ttl` may only shorten it. Errors:
  // PERMISSION_DENIED (forwarded call, no client role), INVALID_ARGUMENT (a longer `ttl`,
  // the CSR), FAILED_PRECONDITION (a presented lifetime no longer than the skew).
  Result<ClientCertificate> renewClientCertificate(const std::string& csrPem, const ClientCaller& caller,
                                                   std::chrono::seconds ttl);

  // Puts a certificate on the revocation list. By certificate: it must be one this CA
  // signed, not the CA, and not yet expired; its serial, CN and notAfter are listed. By
  // serial: it is listed until the longest lifetime this CA issues has passed from now.
  // Errors: INVALID_ARGUMENT (neither or both, a bad serial or PEM, another CA's
  // certificate, a CA), FAILED_PRECONDITION (already expired), RESOURCE_EXHAUSTED.
  Result<Revocations::Added> revoke(const RevokeRequest& request, const std::string& requestedBy);
  Revocations& revocations() { return *revocations_; }

 private:
  Authority(const TrustdConfig& config, pki::CertificateAuthority ca, std::vector<pki::Certificate> accepted,
            std::unique_ptr<Revocations> revocations, const Clock& clock);
  // The longest lifetime of any certificate this CA issues (node, apid, client).
  std::chrono::seconds longestLifetime() const;
  Result<std::chrono::seconds> clientTtl(std::chrono::seconds requested) const;
  Result<std::chrono::seconds> renewalTtl(const authz::CertValidity& presented,
                                          std::chrono::seconds requested) const;
  Result<std::string> admitJoinSource(const std::string& peer, std::string_view what);
  Result<pki::Certificate> currentNodeCertificate(const std::string& pem) const;
  Status requireOwnCertificate(const ClientCaller& caller, std::string_view what) const;
  Result<pki::Certificate> issueClient(const pki::CertificateRequest& csr,
                                       const std::vector<std::string>& roles, std::chrono::seconds ttl);

  TrustdConfig config_;
  pki::CertificateAuthority ca_;
  std::vector<pki::Certificate> acceptedCas_;  // ca_ first, then the others of caBundlePem
  const Clock& clock_;
  RateLimiter joinLimiter_;
  std::unique_ptr<Revocations> revocations_;
};

// Constant-time comparison of `token` with each accepted token (no early exit on the
// first differing byte). Exposed for its test.
bool tokenAccepted(const std::string& token, const std::vector<std::string>& accepted);


}  // namespace keel::trustd
