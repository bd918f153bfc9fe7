#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "keel/pki/pki.h"

#include "pki_test_util.h"

namespace keel::pki {
namespace {

using namespace testing;

bool contains(const Status& status, std::string_view text) {
  return status.message().find(text) != std::string::npos;
}

TEST_CASE("self-signed CA carries CA:TRUE, CA key usages and the requested subject", "[pki][ca]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  ManualClock clock(kStart);
  CaOptions options;
  options.subject = {"keel-os", {"keel", "os"}};
  options.keyType = type;
  options.validity = std::chrono::hours(24 * 365);
  auto ca = createSelfSignedCa(options, clock);
  INFO(ca.status().toString());
  REQUIRE(ca.ok());

  const Certificate& cert = ca->certificate;
  CHECK(cert.isCa());
  CHECK(cert.keyUsage() == (kKeyCertSign | kCrlSign | kDigitalSignature));
  CHECK(cert.extendedKeyUsages().empty());
  CHECK(cert.subject() == options.subject);
  CHECK(cert.issuer() == options.subject);
  CHECK(cert.notBefore() == kStart);
  CHECK(cert.notAfter() == kStart + options.validity);
  REQUIRE(cert.publicKeyType().ok());
  CHECK(*cert.publicKeyType() == type);
  CHECK(ca->key.type() == type);
  CHECK(cert.matchesKey(ca->key));
  auto other = PrivateKey::generate(type);
  REQUIRE(other.ok());
  CHECK_FALSE(cert.matchesKey(*other));

  const std::string fp = cert.fingerprintSha256();
  CHECK(fp.size() == 64);
  CHECK(fp.find_first_not_of("0123456789abcdef") == std::string::npos);
  const std::string serial = cert.serialHex();
  CHECK_FALSE(serial.empty());
  CHECK(serial.size() <= 32);
  CHECK(serial.find_first_not_of("0123456789abcdef") == std::string::npos);

  // The CA verifies as its own trust anchor.
  CHECK(verifyCertificate(cert, {cert}, {}, clock).isOk());
}

TEST_CASE("CA basicConstraints is critical with pathlen 0", "[pki][ca]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  X509* x = ca.certificate.raw();
  const int index = X509_get_ext_by_NID(x, NID_basic_constraints, -1);
  REQUIRE(index >= 0);
  CHECK(X509_EXTENSION_get_critical(X509_get_ext(x, index)) == 1);
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x, NID_basic_constraints, nullptr, nullptr));
  REQUIRE(bc != nullptr);
  CHECK(bc->ca != 0);
  REQUIRE(bc->pathlen != nullptr);
  CHECK(ASN1_INTEGER_get(bc->pathlen) == 0);
  BASIC_CONSTRAINTS_free(bc);
}

TEST_CASE("rejects a CA validity that is zero, negative or longer than kMaxValidity", "[pki][ca]") {
  ManualClock clock(kStart);
  CaOptions options;
  options.subject.commonName = "keel-os";
  for (const auto validity :
       {std::chrono::seconds(0), std::chrono::seconds(-60), kMaxValidity + std::chrono::seconds(1)}) {
    CAPTURE(validity.count());
    options.validity = validity;
    auto ca = createSelfSignedCa(options, clock);
    REQUIRE_FALSE(ca.ok());
    CHECK(ca.status().code() == StatusCode::kInvalidArgument);
    CHECK(contains(ca.status(), "got " + std::to_string(validity.count()) + " s"));
  }
  options.validity = kMaxValidity;  // the bound itself is fine
  CHECK(createSelfSignedCa(options, clock).ok());
}

TEST_CASE("rejects a CA with an empty subject or an over-long CN", "[pki][ca]") {
  ManualClock clock(kStart);
  CaOptions options;
  CHECK_FALSE(createSelfSignedCa(options, clock).ok());
  options.subject.commonName = std::string(65, 'a');
  CHECK_FALSE(createSelfSignedCa(options, clock).ok());
  options.subject = {"", {"keel-os"}};  // O alone names a CA well enough
  CHECK(createSelfSignedCa(options, clock).ok());
}

TEST_CASE("certificate round-trips through PEM and DER unchanged", "[pki][certificate]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, KeyType::kEd25519);
  auto fromPem = Certificate::fromPem(ca.certificate.toPem());
  REQUIRE(fromPem.ok());
  CHECK(fromPem->toDer() == ca.certificate.toDer());
  auto fromDer = Certificate::fromDer(ca.certificate.toDer());
  REQUIRE(fromDer.ok());
  CHECK(fromDer->fingerprintSha256() == ca.certificate.fingerprintSha256());
  CHECK(fromDer->serialHex() == ca.certificate.serialHex());
}

TEST_CASE("bundle parsing returns every certificate in order", "[pki][certificate]") {
  ManualClock clock(kStart);
  const auto a = makeCa(clock, KeyType::kEcdsaP256, "ca-a");
  const auto b = makeCa(clock, KeyType::kEd25519, "ca-b");
  // Comments between blocks are common in bundles and are skipped.
  auto bundle =
      Certificate::bundleFromPem("# first\n" + a.certificate.toPem() + "# second\n" + b.certificate.toPem());
  INFO(bundle.status().toString());
  REQUIRE(bundle.ok());
  REQUIRE(bundle->size() == 2);
  CHECK((*bundle)[0].subject().commonName == "ca-a");
  CHECK((*bundle)[1].subject().commonName == "ca-b");
}

TEST_CASE("single-certificate parsing rejects a PEM with two certificates", "[pki][certificate]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto cert = Certificate::fromPem(ca.certificate.toPem() + ca.certificate.toPem());
  REQUIRE_FALSE(cert.ok());
  CHECK(contains(cert.status(), "expected exactly one CERTIFICATE PEM block, found 2"));
}

TEST_CASE("rejects garbage, empty and truncated certificate PEM and DER", "[pki][certificate]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const std::string pem = ca.certificate.toPem();
  const auto der = ca.certificate.toDer();

  CHECK_FALSE(Certificate::fromPem("").ok());
  CHECK_FALSE(Certificate::fromPem("garbage").ok());
  CHECK_FALSE(Certificate::fromPem(pem.substr(0, pem.size() - 30)).ok());  // no END line
  CHECK_FALSE(Certificate::fromPem("-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n").ok());
  CHECK_FALSE(Certificate::bundleFromPem("").ok());
  CHECK_FALSE(Certificate::bundleFromPem("no blocks here\n").ok());

  CHECK_FALSE(Certificate::fromDer({}).ok());
  CHECK_FALSE(Certificate::fromDer(std::span<const uint8_t>(der.data(), der.size() - 1)).ok());
  CHECK_FALSE(Certificate::fromDer(std::span<const uint8_t>(der.data(), der.size() / 2)).ok());
  auto truncated = der;
  truncated.resize(der.size() - 10);
  CHECK_FALSE(Certificate::fromPem(derToPem("CERTIFICATE", truncated)).ok());

  auto trailing = der;
  trailing.push_back(0);
  auto withTrailing = Certificate::fromDer(trailing);
  REQUIRE_FALSE(withTrailing.ok());
  CHECK(contains(withTrailing.status(), "1 trailing bytes"));
}

TEST_CASE("bundle parsing refuses a private key mixed into the bundle", "[pki][certificate]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto bundle = Certificate::bundleFromPem(ca.certificate.toPem() + ca.key.toPem());
  REQUIRE_FALSE(bundle.ok());
  CHECK(contains(bundle.status(), "block 2 of the bundle"));
  CHECK(contains(bundle.status(), "found 'PRIVATE KEY'"));
}

TEST_CASE("loads a CA from matching certificate and key PEM", "[pki][ca]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, KeyType::kEd25519);
  auto loaded = CertificateAuthority::fromPem(ca.certificate.toPem(), ca.key.toPem());
  INFO(loaded.status().toString());
  REQUIRE(loaded.ok());
  CHECK(loaded->certificate.fingerprintSha256() == ca.certificate.fingerprintSha256());
  CHECK(loaded->key.publicKeyFingerprint() == ca.key.publicKeyFingerprint());
}

TEST_CASE("refuses a CA whose key does not match its certificate", "[pki][ca]") {
  ManualClock clock(kStart);
  const auto a = makeCa(clock, KeyType::kEcdsaP256, "ca-a");
  const auto b = makeCa(clock, KeyType::kEcdsaP256, "ca-b");
  auto loaded = CertificateAuthority::fromPem(a.certificate.toPem(), b.key.toPem());
  REQUIRE_FALSE(loaded.ok());
  CHECK(contains(loaded.status(), "expected the CA key to match the CA certificate 'CN=ca-a, O=keel'"));
}

TEST_CASE("refuses a leaf certificate as a CA", "[pki][ca]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  const auto leaf = issue(ca, csr, clientPolicy(), clock);
  auto loaded = CertificateAuthority::fromPem(leaf.toPem(), key.toPem());
  REQUIRE_FALSE(loaded.ok());
  CHECK(contains(loaded.status(), "expected a CA certificate (basicConstraints CA:TRUE)"));
  CHECK(contains(CertificateAuthority::fromPem("junk", key.toPem()).status(), "CA certificate"));
  CHECK(contains(CertificateAuthority::fromPem(ca.certificate.toPem(), "junk").status(), "CA key"));
}

TEST_CASE("distinguished name text lists CN first, then every O in order", "[pki][certificate]") {
  CHECK(DistinguishedName{"foo", {"os:admin", "os:reader"}}.toString() == "CN=foo, O=os:admin, O=os:reader");
  CHECK(DistinguishedName{"", {"keel-os"}}.toString() == "O=keel-os");
  CHECK(DistinguishedName{"foo", {}}.toString() == "CN=foo");
  CHECK(extendedKeyUsageName(ExtendedKeyUsage::kServerAuth) == "serverAuth");
  CHECK(extendedKeyUsageName(ExtendedKeyUsage::kClientAuth) == "clientAuth");
}

TEST_CASE("CSR carries CN, every O and DNS and IP SANs, and verifies", "[pki][csr]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  CsrOptions options;
  options.subject = {"node-1", {"os:admin", "os:reader"}};
  options.subjectAltNames = {{"node-1.keel", "node-1"}, {"10.0.0.1", "2001:db8::1"}};
  auto [key, csr] = makeCsr(options, type);
  CHECK(csr.verifySignature().isOk());

  auto parsed = CertificateRequest::fromPem(csr.toPem());
  REQUIRE(parsed.ok());
  CHECK(parsed->subject() == options.subject);
  CHECK(parsed->subjectAltNames() == options.subjectAltNames);
  CHECK(parsed->verifySignature().isOk());
}

TEST_CASE("CSR IP SANs read back in canonical text form", "[pki][csr]") {
  CsrOptions options;
  options.subject.commonName = "node-1";
  options.subjectAltNames.ipAddresses = {"2001:0db8:0:0:0:0:0:0001", "::ffff:10.0.0.1"};
  auto [key, csr] = makeCsr(options);
  CHECK(csr.subjectAltNames().ipAddresses == std::vector<std::string>{"2001:db8::1", "::ffff:10.0.0.1"});
}

TEST_CASE("CSR creation refuses an empty CN, a malformed IP SAN and a malformed DNS SAN", "[pki][csr]") {
  auto key = PrivateKey::generate(KeyType::kEcdsaP256);
  REQUIRE(key.ok());
  CsrOptions options;
  auto noCn = CertificateRequest::create(*key, options);
  REQUIRE_FALSE(noCn.ok());
  CHECK(contains(noCn.status(), "CN"));

  options.subject.commonName = "node-1";
  options.subjectAltNames.ipAddresses = {"10.0.0.256"};
  auto badIp = CertificateRequest::create(*key, options);
  REQUIRE_FALSE(badIp.ok());
  CHECK(contains(badIp.status(), "got '10.0.0.256'"));

  options.subjectAltNames = {{"has space.keel"}, {}};
  CHECK_FALSE(CertificateRequest::create(*key, options).ok());
  options.subjectAltNames = {{""}, {}};
  CHECK_FALSE(CertificateRequest::create(*key, options).ok());
  options.subjectAltNames = {};
  options.subject.organizations = {""};
  CHECK_FALSE(CertificateRequest::create(*key, options).ok());
}

TEST_CASE("rejects a CSR whose signature does not match its key", "[pki][csr]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  auto [key, csr] = makeCsr("node-1", type);
  // Same structure, different signed content: the request now claims node-2.
  const auto tampered = replaceBytes(pemToDer(csr.toPem()), "node-1", "node-2");
  auto parsed = CertificateRequest::fromPem(derToPem("CERTIFICATE REQUEST", tampered));
  REQUIRE(parsed.ok());
  CHECK(parsed->subject().commonName == "node-2");
  const Status status = parsed->verifySignature();
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK(contains(status, "signature does not verify"));
}

TEST_CASE("rejects garbage, truncated and mislabelled CSR PEM", "[pki][csr]") {
  auto [key, csr] = makeCsr("node-1");
  const std::string pem = csr.toPem();
  CHECK_FALSE(CertificateRequest::fromPem("").ok());
  CHECK_FALSE(CertificateRequest::fromPem("garbage").ok());
  CHECK_FALSE(CertificateRequest::fromPem(pem + pem).ok());
  auto der = pemToDer(pem);
  der.resize(der.size() - 3);
  CHECK_FALSE(CertificateRequest::fromPem(derToPem("CERTIFICATE REQUEST", der)).ok());
  auto mislabelled = CertificateRequest::fromPem(key.toPem());
  REQUIRE_FALSE(mislabelled.ok());
  CHECK(contains(mislabelled.status(), "expected a CERTIFICATE REQUEST PEM block, found 'PRIVATE KEY'"));
}

}  // namespace
}  // namespace keel::pki
