#include <array>

#include "keel/pki/pki.h"

#include <openssl/x509v3.h>

#include "internal.h"

namespace keel::pki {
namespace {

using namespace internal;

constexpr std::array<std::string_view, 1> kCertificateNames = {"CERTIFICATE"};

}  // namespace

std::string DistinguishedName::toString() const {
  std::string out;
  auto append = [&out](std::string_view label, const std::string& value) {
    if (!out.empty()) out += ", ";
    out += label;
    out += '=';
    out += value;
  };
  if (!commonName.empty()) append("CN", commonName);
  for (const auto& org : organizations) append("O", org);
  return out;
}

std::string_view extendedKeyUsageName(ExtendedKeyUsage usage) {
  switch (usage) {
    case ExtendedKeyUsage::kServerAuth: return "serverAuth";
    case ExtendedKeyUsage::kClientAuth: return "clientAuth";
  }
  return "unknown";
}

Result<Certificate> Certificate::fromPem(std::string_view pem) {
  ErrorQueueGuard guard;
  KEEL_ASSIGN_OR_RETURN(auto block, readSinglePemBlock(pem, kCertificateNames, "certificate"));
  return fromDer(block.der);
}

Result<std::vector<Certificate>> Certificate::bundleFromPem(std::string_view pem) {
  ErrorQueueGuard guard;
  KEEL_ASSIGN_OR_RETURN(auto blocks, readPemBlocks(pem, "certificate bundle"));
  if (blocks.empty()) return invalidArgument("expected at least one CERTIFICATE PEM block, found none");
  std::vector<Certificate> out;
  out.reserve(blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& block = blocks[i];
    const std::string where = "block " + std::to_string(i + 1) + " of the bundle";
    // A key or CSR inside a trust bundle is a mistake worth stopping at, not skipping.
    if (block.name != kCertificateNames[0]) {
      return invalidArgument(where + ": expected a CERTIFICATE PEM block, found '" + block.name + "'");
    }
    if (!block.headers.empty()) return invalidArgument(where + ": expected no PEM headers, found some");
    auto cert = fromDer(block.der);
    if (!cert.ok()) return cert.status().withContext(where);
    out.push_back(std::move(cert).value());
  }
  return out;
}

Result<Certificate> Certificate::fromDer(std::span<const uint8_t> der) {
  ErrorQueueGuard guard;
  if (der.size() > kMaxPemSize)
    return invalidArgument("expected a certificate of sane size, got " + std::to_string(der.size()) +
                           " bytes");
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr) return cryptoError(StatusCode::kInvalidArgument, "malformed certificate DER");
  if (p != der.data() + der.size()) {
    return invalidArgument("expected certificate DER to end after the certificate, found " +
                           std::to_string(der.data() + der.size() - p) + " trailing bytes");
  }
  // Checked once here so the accessors below can promise a value.
  if (!fromAsn1Time(X509_get0_notBefore(cert.get())).ok() ||
      !fromAsn1Time(X509_get0_notAfter(cert.get())).ok()) {
    return invalidArgument("malformed certificate: validity times do not parse");
  }
  return Certificate(std::shared_ptr<x509_st>(cert.release(), X509_free));
}

std::string Certificate::toPem() const {
  ErrorQueueGuard guard;
  auto bio = newMemoryBio();
  KEEL_RELEASE_ASSERT(PEM_write_bio_X509(bio.get(), cert_.get()) == 1, "cannot encode a parsed certificate");
  return bioContents(bio.get());
}

std::vector<uint8_t> Certificate::toDer() const {
  ErrorQueueGuard guard;
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert_.get(), &der);
  KEEL_RELEASE_ASSERT(len > 0, "cannot encode a parsed certificate");
  OpensslBytes owner(der);
  return std::vector<uint8_t>(der, der + len);
}

DistinguishedName Certificate::subject() const {
  ErrorQueueGuard guard;
  return readName(X509_get_subject_name(cert_.get()));
}

DistinguishedName Certificate::issuer() const {
  ErrorQueueGuard guard;
  return readName(X509_get_issuer_name(cert_.get()));
}

SubjectAltNames Certificate::subjectAltNames() const {
  ErrorQueueGuard guard;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert_.get(), NID_subject_alt_name, nullptr, nullptr)));
  return readSubjectAltNames(names.get());
}

std::vector<ExtendedKeyUsage> Certificate::extendedKeyUsages() const {
  ErrorQueueGuard guard;
  ExtKeyUsagePtr eku(
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert_.get(), NID_ext_key_usage, nullptr, nullptr)));
  std::vector<ExtendedKeyUsage> out;
  if (eku == nullptr) return out;
  const auto count = sk_ASN1_OBJECT_num(eku.get());
  for (decltype(sk_ASN1_OBJECT_num(eku.get())) i = 0; i < count; ++i) {
    const int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i));
    if (nid == NID_server_auth) out.push_back(ExtendedKeyUsage::kServerAuth);
    if (nid == NID_client_auth) out.push_back(ExtendedKeyUsage::kClientAuth);
  }
  return out;
}

uint32_t Certificate::keyUsage() const {
  ErrorQueueGuard guard;
  BitStringPtr bits(
      static_cast<ASN1_BIT_STRING*>(X509_get_ext_d2i(cert_.get(), NID_key_usage, nullptr, nullptr)));
  if (bits == nullptr) return kKeyUsageNone;
  // Bit numbers from RFC 5280, section 4.2.1.3.
  uint32_t out = kKeyUsageNone;
  if (ASN1_BIT_STRING_get_bit(bits.get(), 0)) out |= kDigitalSignature;
  if (ASN1_BIT_STRING_get_bit(bits.get(), 2)) out |= kKeyEncipherment;
  if (ASN1_BIT_STRING_get_bit(bits.get(), 5)) out |= kKeyCertSign;
  if (ASN1_BIT_STRING_get_bit(bits.get(), 6)) out |= kCrlSign;
  return out;
}

bool Certificate::isCa() const {
  ErrorQueueGuard guard;
  BasicConstraintsPtr bc(static_cast<BASIC_CONSTRAINTS*>(
      X509_get_ext_d2i(cert_.get(), NID_basic_constraints, nullptr, nullptr)));
  return bc != nullptr && bc->ca != 0;
}

TimePoint Certificate::notBefore() const {
  ErrorQueueGuard guard;
  return fromAsn1Time(X509_get0_notBefore(cert_.get())).value();  // checked in fromDer
}

TimePoint Certificate::notAfter() const {
  ErrorQueueGuard guard;
  return fromAsn1Time(X509_get0_notAfter(cert_.get())).value();  // checked in fromDer
}

std::string Certificate::serialHex() const {
  ErrorQueueGuard guard;
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert_.get()), nullptr));
  if (bn == nullptr) return {};
  // Whole bytes, big-endian, as `openssl x509 -serial` shows them (in lower case).
  std::vector<uint8_t> bytes(static_cast<size_t>(BN_num_bytes(bn.get())));
  BN_bn2bin(bn.get(), bytes.data());
  if (bytes.empty()) return "00";
  return (BN_is_negative(bn.get()) ? "-" : "") + toHex(bytes);
}

std::string Certificate::fingerprintSha256() const {
  const auto der = toDer();
  return sha256Hex(der);
}

bool Certificate::isSignedBy(const Certificate& issuer) const {
  ErrorQueueGuard guard;
  if (X509_check_issued(issuer.cert_.get(), cert_.get()) != X509_V_OK) return false;
  PkeyPtr key(X509_get_pubkey(issuer.cert_.get()));
  return key != nullptr && X509_verify(cert_.get(), key.get()) == 1;
}

Result<KeyType> Certificate::publicKeyType() const {
  ErrorQueueGuard guard;
  PkeyPtr key(X509_get_pubkey(cert_.get()));
  if (key == nullptr)
    return cryptoError(StatusCode::kInvalidArgument, "certificate public key does not decode");
  return keyTypeOf(key.get());
}

bool Certificate::matchesKey(const PrivateKey& key) const {
  ErrorQueueGuard guard;
  return X509_check_private_key(cert_.get(), key.raw()) == 1;
}

}  // namespace keel::pki
