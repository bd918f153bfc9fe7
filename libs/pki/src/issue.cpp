#include <algorithm>
#include <array>
#include <cctype>

#include <openssl/rand.h>

#include "keel/pki/pki.h"

#include "internal.h"

namespace keel::pki {
namespace {

using namespace internal;

// RFC 5280 allows up to 20 octets; 16 random bytes make collisions and guessing moot.
constexpr size_t kSerialBytes = 16;
constexpr int kX509Version3 = 2;

IntegerPtr randomSerial() {
  std::array<uint8_t, kSerialBytes> bytes{};
  KEEL_RELEASE_ASSERT(RAND_bytes(bytes.data(), bytes.size()) == 1, "RAND_bytes failed");
  BignumPtr bn(BN_bin2bn(bytes.data(), bytes.size(), nullptr));
  KEEL_RELEASE_ASSERT(bn != nullptr, "out of memory");
  if (BN_is_zero(bn.get()))
    KEEL_RELEASE_ASSERT(BN_set_word(bn.get(), 1) == 1, "BN_set_word failed");  // must be positive
  IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  KEEL_RELEASE_ASSERT(serial != nullptr, "out of memory");
  return serial;
}

Result<X509Ptr> newCertificate(X509_NAME* subject, X509_NAME* issuer, EVP_PKEY* publicKey,
                               TimePoint notBefore, TimePoint notAfter) {
  X509Ptr cert(X509_new());
  KEEL_RELEASE_ASSERT(cert != nullptr, "out of memory");
  const auto serial = randomSerial();
  KEEL_ASSIGN_OR_RETURN(const auto from, toAsn1Time(notBefore));
  KEEL_ASSIGN_OR_RETURN(const auto until, toAsn1Time(notAfter));
  if (X509_set_version(cert.get(), kX509Version3) != 1 ||
      X509_set_serialNumber(cert.get(), serial.get()) != 1 ||
      X509_set_subject_name(cert.get(), subject) != 1 || X509_set_issuer_name(cert.get(), issuer) != 1 ||
      X509_set1_notBefore(cert.get(), from.get()) != 1 || X509_set1_notAfter(cert.get(), until.get()) != 1 ||
      X509_set_pubkey(cert.get(), publicKey) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot fill in the certificate");
  }
  return cert;
}

Status addExtension(X509* cert, int nid, void* value, bool critical) {
  if (X509_add1_ext_i2d(cert, nid, value, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1) {
    return cryptoError(StatusCode::kInternal,
                       std::string("cannot add the ") + OBJ_nid2sn(nid) + " extension");
  }
  return Status::ok();
}

// RFC 5280 section 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. Computed by
// hand because the libraries document X509_pubkey_digest differently.
Result<OctetStringPtr> keyIdentifier(X509* cert) {
  const unsigned char* keyBits = nullptr;
  int keyLen = 0;
  if (X509_PUBKEY_get0_param(nullptr, &keyBits, &keyLen, nullptr, X509_get_X509_PUBKEY(cert)) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot read the public key bits");
  }
  std::array<uint8_t, EVP_MAX_MD_SIZE> md{};
  unsigned int mdLen = 0;
  if (EVP_Digest(keyBits, static_cast<size_t>(keyLen), md.data(), &mdLen, EVP_sha1(), nullptr) != 1) {
    return cryptoError(StatusCode::kInternal, "cannot hash the public key");
  }
  OctetStringPtr id(ASN1_OCTET_STRING_new());
  KEEL_RELEASE_ASSERT(
      id != nullptr && ASN1_OCTET_STRING_set(id.get(), md.data(), static_cast<int>(mdLen)) == 1,
      "out of memory");
  return id;
}

// subjectKeyIdentifier of `cert` and authorityKeyIdentifier pointing at `issuer` (the
// certificate itself when self-signed), so verifiers pick the right CA among namesakes.
Status addKeyIdentifiers(X509* cert, X509* issuer) {
  KEEL_ASSIGN_OR_RETURN(auto ski, keyIdentifier(cert));
  KEEL_RETURN_IF_ERROR(addExtension(cert, NID_subject_key_identifier, ski.get(), false));
  OctetStringPtr issuerId;
  if (issuer == nullptr) {
    issuerId.reset(ASN1_OCTET_STRING_dup(ski.get()));
  } else {
    issuerId.reset(static_cast<ASN1_OCTET_STRING*>(
        X509_get_ext_d2i(issuer, NID_subject_key_identifier, nullptr, nullptr)));
    if (issuerId == nullptr) {
      ERR_clear_error();
      KEEL_ASSIGN_OR_RETURN(issuerId, keyIdentifier(issuer));
    }
  }
  KEEL_RELEASE_ASSERT(issuerId != nullptr, "out of memory");
  AuthorityKeyIdPtr aki(AUTHORITY_KEYID_new());
  KEEL_RELEASE_ASSERT(aki != nullptr, "out of memory");
  aki->keyid = issuerId.release();
  return addExtension(cert, NID_authority_key_identifier, aki.get(), false);
}

Status addBasicConstraints(X509* cert, bool ca) {
  BasicConstraintsPtr bc(BASIC_CONSTRAINTS_new());
  KEEL_RELEASE_ASSERT(bc != nullptr, "out of memory");
  // DER (X.690 11.1) encodes TRUE as 0xFF only. OpenSSL writes the int's low byte, so
  // 1 would come out as 0x01, which strict parsers (Go's crypto/x509, Python's
  // cryptography) refuse. FALSE is basicConstraints' DEFAULT and is left out entirely.
  bc->ca = ca ? 0xFF : 0;
  if (ca) {
    // pathlen 0: a Keel CA signs leaves only, never another CA.
    bc->pathlen = ASN1_INTEGER_new();
    KEEL_RELEASE_ASSERT(bc->pathlen != nullptr && ASN1_INTEGER_set(bc->pathlen, 0) == 1, "out of memory");
  }
  return addExtension(cert, NID_basic_constraints, bc.get(), true);
}

Status addKeyUsage(X509* cert, uint32_t usage) {
  if (usage == kKeyUsageNone) return Status::ok();
  BitStringPtr bits(ASN1_BIT_STRING_new());
  KEEL_RELEASE_ASSERT(bits != nullptr, "out of memory");
  // Bit numbers from RFC 5280, section 4.2.1.3.
  const std::array<std::pair<uint32_t, int>, 4> kBits = {{
      {kDigitalSignature, 0},
      {kKeyEncipherment, 2},
      {kKeyCertSign, 5},
      {kCrlSign, 6},
  }};
  for (const auto& [flag, bit] : kBits) {
    if ((usage & flag) != 0)
      KEEL_RELEASE_ASSERT(ASN1_BIT_STRING_set_bit(bits.get(), bit, 1) == 1, "out of memory");
  }
  return addExtension(cert, NID_key_usage, bits.get(), true);
}

Status addExtendedKeyUsage(X509* cert, const std::vector<ExtendedKeyUsage>& usages) {
  if (usages.empty()) return Status::ok();
  ExtKeyUsagePtr eku(sk_ASN1_OBJECT_new_null());
  KEEL_RELEASE_ASSERT(eku != nullptr, "out of memory");
  std::vector<ExtendedKeyUsage> seen;
  for (const auto usage : usages) {
    if (std::find(seen.begin(), seen.end(), usage) != seen.end()) continue;
    seen.push_back(usage);
    ASN1_OBJECT* oid =
        OBJ_nid2obj(usage == ExtendedKeyUsage::kServerAuth ? NID_server_auth : NID_client_auth);
    KEEL_RELEASE_ASSERT(oid != nullptr && sk_ASN1_OBJECT_push(eku.get(), oid) != 0, "out of memory");
  }
  return addExtension(cert, NID_ext_key_usage, eku.get(), false);
}

// The key to put into a certificate. OpenSSL 3.0 puts a provider key (every key it
// decodes, such as a CSR's) into a certificate by encoding it with its provider encoders
// and decoding the result again, which costs several signatures; a legacy EC key it
// encodes directly. BoringSSL has no provider keys.
PkeyPtr keyToEncode(EVP_PKEY* key) {
#ifndef OPENSSL_IS_BORINGSSL
  if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    EC_KEY* ec = EVP_PKEY_get1_EC_KEY(key);
    PkeyPtr legacy(ec != nullptr ? EVP_PKEY_new() : nullptr);
    if (legacy != nullptr && EVP_PKEY_assign_EC_KEY(legacy.get(), ec) == 1) return legacy;
    EC_KEY_free(ec);
#pragma GCC diagnostic pop
    ERR_clear_error();
  }
#endif
  KEEL_RELEASE_ASSERT(EVP_PKEY_up_ref(key) == 1, "EVP_PKEY_up_ref failed");
  return PkeyPtr(key);
}

Status signCertificate(X509* cert, const PrivateKey& signer) {
  if (X509_sign(cert, signer.raw(), signingDigest(signer.type())) <= 0) {
    return cryptoError(StatusCode::kInternal, "cannot sign the certificate");
  }
  return Status::ok();
}

std::string listOrNone(const std::vector<std::string>& items) {
  if (items.empty()) return "none";
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

std::string lowerAscii(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Every requested SAN must be allowed; the error names the first one that is not.
Status checkSubjectAltNames(const SubjectAltNames& requested, const IssuePolicy& policy) {
  if (policy.allowAnySubjectAltName) return Status::ok();
  const auto& allowed = policy.allowedSubjectAltNames;
  auto allowedText = [&] {
    return "(allowed DNS: " + listOrNone(allowed.dnsNames) +
           "; allowed IP: " + listOrNone(allowed.ipAddresses) + ")";
  };
  for (const auto& dns : requested.dnsNames) {
    // DNS names compare case-insensitively (RFC 4343).
    const bool ok = std::any_of(allowed.dnsNames.begin(), allowed.dnsNames.end(),
                                [&](const std::string& a) { return lowerAscii(a) == lowerAscii(dns); });
    if (!ok) return invalidArgument("the issuing policy does not allow SAN DNS:" + dns + " " + allowedText());
  }
  for (const auto& ip : requested.ipAddresses) {
    const auto bytes = parseIpAddress(ip);
    const bool ok =
        std::any_of(allowed.ipAddresses.begin(), allowed.ipAddresses.end(), [&](const std::string& a) {
          const auto allowedBytes = parseIpAddress(a);
          return allowedBytes.ok() && bytes.ok() && *allowedBytes == *bytes;
        });
    if (!ok) return invalidArgument("the issuing policy does not allow SAN IP:" + ip + " " + allowedText());
  }
  return Status::ok();
}

bool sameName(const std::string& commonName, const SubjectAltNames& sans) {
  const auto lowered = lowerAscii(commonName);
  if (std::any_of(sans.dnsNames.begin(), sans.dnsNames.end(),
                  [&](const std::string& dns) { return lowerAscii(dns) == lowered; })) {
    return true;
  }
  const auto bytes = parseIpAddress(commonName);
  if (!bytes.ok()) return false;
  return std::any_of(sans.ipAddresses.begin(), sans.ipAddresses.end(), [&](const std::string& ip) {
    const auto ipBytes = parseIpAddress(ip);
    return ipBytes.ok() && *ipBytes == *bytes;
  });
}

// Under a server policy every name in the certificate is a SAN that passed the allow-list:
// the CN, which TLS clients also match, must repeat one of them.
Status checkServerNames(const DistinguishedName& subject, const SubjectAltNames& sans, const IssuePolicy& policy) {
  if (!policy.commonNameMustBeSubjectAltName) return Status::ok();
  if (sans.empty()) {
    return invalidArgument("expected a server CSR to request at least one SAN (its CN '" + subject.commonName +
                           "' is not enough: clients would match it as a host name), found none");
  }
  if (!sameName(subject.commonName, sans)) {
    return invalidArgument("expected the CSR's CN to be one of its SANs (DNS: " + listOrNone(sans.dnsNames) +
                           "; IP: " + listOrNone(sans.ipAddresses) + "), found CN '" + subject.commonName +
                           "'");
  }
  return Status::ok();
}

Status checkPolicy(const IssuePolicy& policy) {
  KEEL_RETURN_IF_ERROR(checkValidity(policy.ttl, "a certificate TTL"));
  if (policy.notBeforeSkew < std::chrono::seconds::zero() ||
      policy.notBeforeSkew > kMaxValidity - policy.ttl) {
    return invalidArgument("expected a notBefore skew between 0 s and " +
                           std::to_string((kMaxValidity - policy.ttl).count()) + " s, got " +
                           std::to_string(policy.notBeforeSkew.count()) + " s");
  }
  constexpr uint32_t kLeafUsages = kDigitalSignature | kKeyEncipherment;
  if ((policy.keyUsage & ~kLeafUsages) != 0) {
    // Issued certificates are leaves (CA:FALSE); keyCertSign on one contradicts that.
    return invalidArgument(
        "expected leaf key usages (digitalSignature, keyEncipherment) in the issuing policy, got "
        "bits 0x" +
        toHex(std::array<uint8_t, 1>{static_cast<uint8_t>(policy.keyUsage)}));
  }
  return Status::ok();
}

}  // namespace

Result<CertificateAuthority> CertificateAuthority::fromPem(std::string_view certPem,
                                                           std::string_view keyPem) {
  auto cert = Certificate::fromPem(certPem);
  if (!cert.ok()) return cert.status().withContext("CA certificate");
  auto key = PrivateKey::fromPem(keyPem);
  if (!key.ok()) return key.status().withContext("CA key");
  if (!cert->isCa()) {
    return invalidArgument("expected a CA certificate (basicConstraints CA:TRUE), got '" +
                           cert->subject().toString() + "' which is not a CA");
  }
  const uint32_t usage = cert->keyUsage();
  if (usage != kKeyUsageNone && (usage & kKeyCertSign) == 0) {
    return invalidArgument("expected the CA certificate '" + cert->subject().toString() +
                           "' to allow keyCertSign, but its key usage does not");
  }
  if (!cert->matchesKey(*key)) {
    return invalidArgument("expected the CA key to match the CA certificate '" + cert->subject().toString() +
                           "', got a key with public key sha256 " + key->publicKeyFingerprint());
  }
  return CertificateAuthority{std::move(cert).value(), std::move(key).value()};
}

Result<CertificateAuthority> createSelfSignedCa(const CaOptions& options, const Clock& clock) {
  ErrorQueueGuard guard;
  KEEL_RETURN_IF_ERROR(checkValidity(options.validity, "a CA validity"));
  if (options.subject.commonName.empty() && options.subject.organizations.empty()) {
    return invalidArgument("expected a CA subject with a CN or an O, got an empty subject");
  }
  KEEL_ASSIGN_OR_RETURN(auto name, buildName(options.subject));
  KEEL_ASSIGN_OR_RETURN(auto key, PrivateKey::generate(options.keyType));
  const TimePoint now = clock.now();
  KEEL_ASSIGN_OR_RETURN(auto cert,
                        newCertificate(name.get(), name.get(), key.raw(), now, now + options.validity));
  KEEL_RETURN_IF_ERROR(addBasicConstraints(cert.get(), true));
  KEEL_RETURN_IF_ERROR(addKeyUsage(cert.get(), kKeyCertSign | kCrlSign | kDigitalSignature));
  KEEL_RETURN_IF_ERROR(addKeyIdentifiers(cert.get(), nullptr));
  KEEL_RETURN_IF_ERROR(signCertificate(cert.get(), key));
  return CertificateAuthority{Certificate(std::shared_ptr<x509_st>(cert.release(), X509_free)), std::move(key)};
}

Result<Certificate> issueCertificate(const CertificateAuthority& ca, const CertificateRequest& csr,
                                     const IssuePolicy& policy, const Clock& clock) {
  ErrorQueueGuard guard;
  KEEL_RETURN_IF_ERROR(checkPolicy(policy));
  KEEL_RETURN_IF_ERROR(csr.verifySignature());
  PkeyPtr publicKey(X509_REQ_get_pubkey(csr.raw()));
  if (publicKey == nullptr)
    return cryptoError(StatusCode::kInvalidArgument, "CSR public key does not decode");
  {
    auto type = keyTypeOf(publicKey.get());
    if (!type.ok()) return type.status().withContext("CSR key");
  }

  auto requestedName = readNameForIssuing(X509_REQ_get_subject_name(csr.raw()));
  if (!requestedName.ok()) return requestedName.status().withContext("CSR subject");
  KEEL_ASSIGN_OR_RETURN(auto requestedSanExt, requestedSubjectAltNames(csr.raw()));
  auto requestedSans = readSubjectAltNamesForIssuing(requestedSanExt.get());
  if (!requestedSans.ok()) return requestedSans.status().withContext("CSR subjectAltName");
  KEEL_RETURN_IF_ERROR(checkSubjectAltNames(*requestedSans, policy));
  KEEL_RETURN_IF_ERROR(checkServerNames(*requestedName, *requestedSans, policy));

  DistinguishedName subject;
  subject.commonName = requestedName->commonName;
  switch (policy.organizationPolicy) {
    case IssuePolicy::Organizations::kStrip: break;
    case IssuePolicy::Organizations::kCopy: subject.organizations = requestedName->organizations; break;
    case IssuePolicy::Organizations::kSet: subject.organizations = policy.organizations; break;
  }
  auto subjectName = buildName(subject);
  if (!subjectName.ok()) return subjectName.status().withContext("issued subject");

  const TimePoint now = clock.now();
  KEEL_ASSIGN_OR_RETURN(auto cert,
                        newCertificate(subjectName->get(), X509_get_subject_name(ca.certificate.raw()),
                                       keyToEncode(publicKey.get()).get(), now - policy.notBeforeSkew,
                                       now + policy.ttl));
  KEEL_RETURN_IF_ERROR(addBasicConstraints(cert.get(), false));
  KEEL_RETURN_IF_ERROR(addKeyUsage(cert.get(), policy.keyUsage));
  KEEL_RETURN_IF_ERROR(addExtendedKeyUsage(cert.get(), policy.extendedKeyUsages));
  if (!requestedSans->empty()) {
    KEEL_ASSIGN_OR_RETURN(auto sans, buildSubjectAltNames(*requestedSans));
    KEEL_RETURN_IF_ERROR(addExtension(cert.get(), NID_subject_alt_name, sans.get(), false));
  }
  KEEL_RETURN_IF_ERROR(addKeyIdentifiers(cert.get(), ca.certificate.raw()));
  KEEL_RETURN_IF_ERROR(signCertificate(cert.get(), ca.key));
  return Certificate(std::shared_ptr<x509_st>(cert.release(), X509_free));
}

}  // namespace keel::pki
