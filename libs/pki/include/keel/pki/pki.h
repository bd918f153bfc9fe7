// The PKI library: keys, certificates, CSRs, issuing under an explicit policy and
// verifying chains. Written against the API subset OpenSSL 3 and BoringSSL share, so
// the same sources build against either (the daemons link OpenSSL 3, since Debian's
// gRPC does). Every parser of untrusted input returns an error on bad input.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/common/clock.h"
#include "keel/common/status.h"

// Forward declarations shared by OpenSSL and BoringSSL, to keep their headers out of ours.
struct evp_pkey_st;
struct x509_st;
struct X509_req_st;

namespace keel::pki {

enum class KeyType { kEcdsaP256, kEd25519 };

// "ecdsa-p256" / "ed25519".
std::string_view keyTypeName(KeyType type);
Result<KeyType> parseKeyType(std::string_view name);

// A private key (and its public half). Copies share the underlying key, which is
// immutable, so a PrivateKey may be used from several threads.
class PrivateKey {
 public:
  static Result<PrivateKey> generate(KeyType type);
  // PKCS#8 or traditional PEM ("PRIVATE KEY", "EC PRIVATE KEY"); only P-256 and Ed25519.
  static Result<PrivateKey> fromPem(std::string_view pem);

  KeyType type() const { return type_; }
  // Unencrypted PKCS#8 PEM. Secret: never log it.
  std::string toPem() const;
  // SubjectPublicKeyInfo PEM ("PUBLIC KEY").
  std::string publicKeyPem() const;
  // Lower-case hex SHA-256 of the SubjectPublicKeyInfo DER.
  std::string publicKeyFingerprint() const;

  evp_pkey_st* raw() const { return key_.get(); }

 private:
  PrivateKey(std::shared_ptr<evp_pkey_st> key, KeyType type) : key_(std::move(key)), type_(type) {}
  std::shared_ptr<evp_pkey_st> key_;
  KeyType type_;
};

// Subject or issuer. Only the attributes Keel uses; others are ignored when reading.
struct DistinguishedName {
  std::string commonName;
  std::vector<std::string> organizations;  // every O= entry, in order

  // "CN=foo, O=os:admin, O=os:reader" (only the present attributes).
  std::string toString() const;
  bool operator==(const DistinguishedName&) const = default;
};

struct SubjectAltNames {
  std::vector<std::string> dnsNames;
  std::vector<std::string> ipAddresses;  // canonical text form ("10.0.0.1", "::1")

  bool empty() const { return dnsNames.empty() && ipAddresses.empty(); }
  bool operator==(const SubjectAltNames&) const = default;
};

enum class ExtendedKeyUsage { kServerAuth, kClientAuth };
std::string_view extendedKeyUsageName(ExtendedKeyUsage usage);  // "serverAuth" / "clientAuth"

// Key usage bits, combinable with |.
enum KeyUsage : uint32_t {
  kKeyUsageNone = 0,
  kDigitalSignature = 1u << 0,
  kKeyEncipherment = 1u << 1,
  kKeyCertSign = 1u << 2,
  kCrlSign = 1u << 3,
};

struct CertificateAuthority;
struct CaOptions;
struct IssuePolicy;
class CertificateRequest;

// An X.509 certificate. Immutable; copies share the parsed certificate.
class Certificate {
 public:
  // Exactly one "CERTIFICATE" block; anything else is an error.
  static Result<Certificate> fromPem(std::string_view pem);
  // Every "CERTIFICATE" block of a bundle, in order; at least one. Text between blocks
  // is skipped; a block of another type (a key, a CSR) is an error.
  static Result<std::vector<Certificate>> bundleFromPem(std::string_view pem);
  static Result<Certificate> fromDer(std::span<const uint8_t> der);

  std::string toPem() const;
  std::vector<uint8_t> toDer() const;

  DistinguishedName subject() const;
  DistinguishedName issuer() const;
  SubjectAltNames subjectAltNames() const;
  std::vector<ExtendedKeyUsage> extendedKeyUsages() const;
  uint32_t keyUsage() const;  // KeyUsage bits; kKeyUsageNone when the extension is absent
  bool isCa() const;          // basicConstraints CA:TRUE
  // Times after 2262 (the end of TimePoint's range), such as RFC 5280's 99991231235959Z
  // "no expiry", read as TimePoint::max().
  TimePoint notBefore() const;
  TimePoint notAfter() const;
  std::string serialHex() const;         // lower-case hex, no separators
  std::string fingerprintSha256() const;  // lower-case hex SHA-256 of the DER
  // True when `issuer` names this certificate's issuer and its key made the signature
  // (nothing else: no validity period, no chain).
  bool isSignedBy(const Certificate& issuer) const;
  Result<KeyType> publicKeyType() const;
  // True when `key` is the private half of this certificate's public key.
  bool matchesKey(const PrivateKey& key) const;

  x509_st* raw() const { return cert_.get(); }

 private:
  // The issuing functions keep the certificate they just signed instead of parsing its
  // encoding again.
  friend Result<Certificate> issueCertificate(const CertificateAuthority& ca, const CertificateRequest& csr,
                                              const IssuePolicy& policy, const Clock& clock);
  friend Result<CertificateAuthority> createSelfSignedCa(const CaOptions& options, const Clock& clock);
  explicit Certificate(std::shared_ptr<x509_st> cert) : cert_(std::move(cert)) {}
  std::shared_ptr<x509_st> cert_;
};

struct CsrOptions {
  DistinguishedName subject;
  SubjectAltNames subjectAltNames;
};

// A PKCS#10 certificate signing request.
class CertificateRequest {
 public:
  // Builds and signs a CSR with `key`. Fails on an empty CN or a malformed IP SAN.
  static Result<CertificateRequest> create(const PrivateKey& key, const CsrOptions& options);
  // Parses exactly one "CERTIFICATE REQUEST" block. Does not check the signature.
  static Result<CertificateRequest> fromPem(std::string_view pem);

  std::string toPem() const;
  DistinguishedName subject() const;
  SubjectAltNames subjectAltNames() const;
  // OK when the CSR is signed by the key it carries.
  Status verifySignature() const;

  X509_req_st* raw() const { return req_.get(); }

 private:
  explicit CertificateRequest(std::shared_ptr<X509_req_st> req) : req_(std::move(req)) {}
  std::shared_ptr<X509_req_st> req_;
};

// A CA: its certificate and private key.
struct CertificateAuthority {
  Certificate certificate;
  PrivateKey key;

  // Loads a CA, checking the key matches the certificate and the certificate is a CA.
  static Result<CertificateAuthority> fromPem(std::string_view certPem, std::string_view keyPem);
};

struct CaOptions {
  DistinguishedName subject;
  KeyType keyType = KeyType::kEcdsaP256;
  std::chrono::seconds validity = std::chrono::hours(24 * 365 * 10);
};

// Validity longer than this is refused everywhere (it is absurd for this system).
inline constexpr std::chrono::seconds kMaxValidity = std::chrono::hours(24 * 365 * 100);

// A new self-signed CA (keyCertSign|crlSign|digitalSignature, CA:TRUE, pathlen 0),
// valid from clock.now() for options.validity.
Result<CertificateAuthority> createSelfSignedCa(const CaOptions& options, const Clock& clock);

// Signatures over a whole document by a CA's own key, checked with the CA's certificate
// (trustd's revocation list): ECDSA P-256 with SHA-256 (DER), or Ed25519.
Result<std::string> signDocument(const PrivateKey& key, std::string_view document);
// Errors: PERMISSION_DENIED when `signature` is not `signer`'s over `document`.
Status verifyDocumentSignature(const Certificate& signer, std::string_view document, std::string_view signature);

// What a CA puts into a certificate it issues. The CSR only proposes; the policy decides.
struct IssuePolicy {
  std::vector<ExtendedKeyUsage> extendedKeyUsages;
  uint32_t keyUsage = kDigitalSignature;

  enum class Organizations {
    kStrip,  // issue with no O= at all
    kCopy,   // copy the CSR's O= entries (only for trusted offline callers)
    kSet,    // use `organizations` below, ignoring the CSR's
  };
  Organizations organizationPolicy = Organizations::kStrip;
  std::vector<std::string> organizations;

  // SANs: a requested SAN that is not allowed makes issuing fail (never silently dropped).
  bool allowAnySubjectAltName = false;
  SubjectAltNames allowedSubjectAltNames;
  // Server certificates. A TLS client that finds no SAN matches the CN as a host name, so
  // a CN is a name too. When set, the CSR must request at least one SAN and its CN must be
  // one of them (DNS case-insensitively, IP by value): the certificate then names exactly
  // the SANs checked above.
  bool commonNameMustBeSubjectAltName = false;

  std::chrono::seconds ttl = std::chrono::hours(24);
  // notBefore = now - notBeforeSkew, to tolerate small clock differences between nodes.
  std::chrono::seconds notBeforeSkew = std::chrono::seconds(0);
};

// Issues a certificate for the CSR's public key: verifies the CSR's signature, applies
// the policy, and signs with the CA. The CN comes from the CSR and must not be empty.
// Errors: INVALID_ARGUMENT (bad CSR, SAN not allowed, CN not a SAN under a server policy,
// absurd TTL).
Result<Certificate> issueCertificate(const CertificateAuthority& ca, const CertificateRequest& csr,
                                     const IssuePolicy& policy, const Clock& clock);

struct VerifyOptions {
  // When set, the leaf must carry this extended key usage.
  std::optional<ExtendedKeyUsage> requiredUsage;
  // Untrusted intermediates that may complete the chain.
  std::vector<Certificate> intermediates;
};

// Verifies `leaf` chains to one of `acceptedCas` at clock.now(). The error says why, e.g.
// "certificate signed by unknown authority: issuer 'CN=etcd, O=etcd', accepted:
//  'O=keel-os' (sha256 ab12cd34…)", "certificate expired at 2026-01-01T00:00:00Z
//  (now 2026-02-01T00:00:00Z)", "certificate lacks extended key usage clientAuth".
// Every accepted CA must be a CA certificate; each is a trust anchor even when it is not
// self-signed. Errors: UNAUTHENTICATED for every verification failure.
Status verifyCertificate(const Certificate& leaf, const std::vector<Certificate>& acceptedCas,
                         const VerifyOptions& options, const Clock& clock);

// Detached signatures over a SHA-256 digest, as node images are signed: ECDSA P-256,
// DER-encoded, the same bytes `openssl dgst -sha256 -sign KEY FILE` writes for FILE.
// `sha256` is the 32-byte digest itself. Errors: INVALID_ARGUMENT for a key that is not
// P-256 or a digest that is not 32 bytes.
Result<std::string> signDigest(const PrivateKey& key, std::string_view sha256);

// Checks that `publicKeyPem` is one SubjectPublicKeyInfo PEM block ("PUBLIC KEY") of a
// P-256 key. Errors: INVALID_ARGUMENT saying what it is instead.
Status checkDigestSigningKey(std::string_view publicKeyPem);

// Verifies a signature made by signDigest. Errors: INVALID_ARGUMENT for a bad key or
// digest; PERMISSION_DENIED when the signature does not verify with the key.
Status verifyDigestSignature(std::string_view publicKeyPem, std::string_view sha256, std::string_view signature);

// Proof of possession for a renewal: a signature by `key` (the key of the certificate
// being renewed) over a fixed context and `csr`'s DER, so a new key can be certified on
// the strength of the old one. Errors: INTERNAL when signing fails.
Result<std::string> signPossession(const PrivateKey& key, const CertificateRequest& csr);

// Checks a proof made by signPossession with the public key of `current`. It says nothing
// about `current` itself (verifyCertificate does). Errors: PERMISSION_DENIED when the proof
// does not verify; INVALID_ARGUMENT when the certificate's key does not decode.
Status verifyPossession(const Certificate& current, const CertificateRequest& csr, std::string_view proof);

}  // namespace keel::pki
