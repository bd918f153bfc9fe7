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

// The raw keyIdentifier bytes of an extension that holds one, or "" when absent.
std::string keyIdentifier(X509* cert, int nid) {
  if (nid == NID_subject_key_identifier) {
    auto* id = static_cast<ASN1_OCTET_STRING*>(X509_get_ext_d2i(cert, nid, nullptr, nullptr));
    if (id == nullptr) return {};
    std::string out(reinterpret_cast<const char*>(ASN1_STRING_get0_data(id)), ASN1_STRING_length(id));
    ASN1_OCTET_STRING_free(id);
    return out;
  }
  auto* aki = static_cast<AUTHORITY_KEYID*>(X509_get_ext_d2i(cert, nid, nullptr, nullptr));
  if (aki == nullptr) return {};
  std::string out;
  if (aki->keyid != nullptr) {
    out.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(aki->keyid)),
               ASN1_STRING_length(aki->keyid));
  }
  AUTHORITY_KEYID_free(aki);
  return out;
}

bool isCritical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  return index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

TEST_CASE("issues a leaf with CA:FALSE, the policy's usages and key identifiers linking it to the CA",
          "[pki][issue]") {
  const KeyType caType = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  const KeyType leafType = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(caType), keyTypeName(leafType));
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, caType);
  const auto [key, csr] = makeCsr("node-1", leafType);
  IssuePolicy policy = clientPolicy();
  policy.extendedKeyUsages = {ExtendedKeyUsage::kServerAuth, ExtendedKeyUsage::kClientAuth};
  policy.keyUsage = kDigitalSignature | kKeyEncipherment;
  policy.ttl = std::chrono::hours(12);

  const Certificate cert = issue(ca, csr, policy, clock);
  CHECK_FALSE(cert.isCa());
  CHECK(cert.keyUsage() == (kDigitalSignature | kKeyEncipherment));
  CHECK(cert.extendedKeyUsages() ==
        std::vector<ExtendedKeyUsage>{ExtendedKeyUsage::kServerAuth, ExtendedKeyUsage::kClientAuth});
  CHECK(cert.subject() == DistinguishedName{"node-1", {}});
  CHECK(cert.issuer() == ca.certificate.subject());
  CHECK(cert.notBefore() == kStart);
  CHECK(cert.notAfter() == kStart + std::chrono::hours(12));
  CHECK(cert.matchesKey(key));
  CHECK_FALSE(cert.matchesKey(ca.key));
  REQUIRE(cert.publicKeyType().ok());
  CHECK(*cert.publicKeyType() == leafType);

  X509* x = cert.raw();
  CHECK(isCritical(x, NID_basic_constraints));
  CHECK(isCritical(x, NID_key_usage));
  const std::string ski = keyIdentifier(x, NID_subject_key_identifier);
  CHECK_FALSE(ski.empty());
  CHECK(keyIdentifier(x, NID_authority_key_identifier) ==
        keyIdentifier(ca.certificate.raw(), NID_subject_key_identifier));
  CHECK(ski != keyIdentifier(ca.certificate.raw(), NID_subject_key_identifier));

  CHECK(verifyCertificate(cert, {ca.certificate}, {}, clock).isOk());
}

TEST_CASE("every issued certificate gets a fresh random positive serial", "[pki][issue]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  const auto a = issue(ca, csr, clientPolicy(), clock);
  const auto b = issue(ca, csr, clientPolicy(), clock);
  CHECK(a.serialHex() != b.serialHex());
  for (const auto& serial : {a.serialHex(), b.serialHex()}) {
    CHECK(serial.size() <= 32);  // at most 128 bits
    CHECK(serial.front() != '-');
    CHECK(serial.find_first_not_of('0') != std::string::npos);
  }
}

TEST_CASE("strips O= from a CSR under the strip policy", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr(CsrOptions{{"alice", {"os:admin", "os:reader"}}, {}});
  IssuePolicy policy = clientPolicy();
  policy.organizationPolicy = IssuePolicy::Organizations::kStrip;
  policy.organizations = {"ignored"};
  const auto cert = issue(ca, csr, policy, clock);
  CHECK(cert.subject() == DistinguishedName{"alice", {}});
}

TEST_CASE("copies the CSR's O= entries in order under the copy policy", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr(CsrOptions{{"alice", {"os:admin", "os:reader"}}, {}});
  IssuePolicy policy = clientPolicy();
  policy.organizationPolicy = IssuePolicy::Organizations::kCopy;
  const auto cert = issue(ca, csr, policy, clock);
  CHECK(cert.subject() == DistinguishedName{"alice", {"os:admin", "os:reader"}});
}

TEST_CASE("sets O= from the policy and ignores the CSR's under the set policy", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr(CsrOptions{{"alice", {"os:admin"}}, {}});
  IssuePolicy policy = clientPolicy();
  policy.organizationPolicy = IssuePolicy::Organizations::kSet;
  policy.organizations = {"os:reader"};
  CHECK(issue(ca, csr, policy, clock).subject() == DistinguishedName{"alice", {"os:reader"}});
  policy.organizations = {};
  CHECK(issue(ca, csr, policy, clock).subject() == DistinguishedName{"alice", {}});
  policy.organizations = {""};
  CHECK_FALSE(issueCertificate(ca, csr, policy, clock).ok());
}

TEST_CASE("refuses a SAN the policy does not allow", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  IssuePolicy policy = clientPolicy();
  policy.allowedSubjectAltNames = {{"node-1.keel"}, {"10.0.0.1"}};

  SECTION("a DNS name outside the allow-list") {
    const auto [key, csr] = makeCsr(CsrOptions{{"node-1", {}}, {{"node-1.keel", "evil.example"}, {}}});
    auto cert = issueCertificate(ca, csr, policy, clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK(contains(cert.status(), "does not allow SAN DNS:evil.example"));
    CHECK(contains(cert.status(), "allowed DNS: node-1.keel"));
  }
  SECTION("an IP address outside the allow-list") {
    const auto [key, csr] = makeCsr(CsrOptions{{"node-1", {}}, {{}, {"10.0.0.1", "10.0.0.2"}}});
    auto cert = issueCertificate(ca, csr, policy, clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(contains(cert.status(), "does not allow SAN IP:10.0.0.2"));
  }
  SECTION("any SAN when the allow-list is empty") {
    policy.allowedSubjectAltNames = {};
    const auto [key, csr] = makeCsr(CsrOptions{{"node-1", {}}, {{"node-1.keel"}, {}}});
    auto cert = issueCertificate(ca, csr, policy, clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(contains(cert.status(), "allowed DNS: none; allowed IP: none"));
  }
}

TEST_CASE(
    "issues requested SANs that the allow-list contains, matching DNS case-insensitively and IPs by value",
    "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  IssuePolicy policy = clientPolicy();
  policy.allowedSubjectAltNames = {{"Node-1.Keel", "other.keel"}, {"2001:db8::1", "10.0.0.1"}};
  const auto [key, csr] = makeCsr(CsrOptions{{"node-1", {}}, {{"node-1.keel"}, {"2001:db8:0::1"}}});
  const auto cert = issue(ca, csr, policy, clock);
  // Only what was requested: the policy allows more than it adds.
  CHECK(cert.subjectAltNames() == SubjectAltNames{{"node-1.keel"}, {"2001:db8::1"}});
}

TEST_CASE("a server policy refuses a CSR without a SAN and one whose CN is not among its SANs",
          "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  IssuePolicy policy = clientPolicy();
  policy.extendedKeyUsages = {ExtendedKeyUsage::kServerAuth};
  policy.commonNameMustBeSubjectAltName = true;
  policy.allowedSubjectAltNames = {{"node-1.keel"}, {"10.0.0.1", "2001:db8::1"}};

  SECTION("a CN and no SAN: clients would take the CN as the host name") {
    const auto [key, csr] = makeCsr("cp.example.com");
    auto cert = issueCertificate(ca, csr, policy, clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK(contains(cert.status(), "at least one SAN"));
    CHECK(contains(cert.status(), "cp.example.com"));
  }
  SECTION("allowed SANs, but a CN naming something else") {
    const auto [key, csr] = makeCsr(CsrOptions{{"cp.example.com", {}}, {{"node-1.keel"}, {"10.0.0.1"}}});
    auto cert = issueCertificate(ca, csr, policy, clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK(contains(cert.status(), "found CN 'cp.example.com'"));
    CHECK(contains(cert.status(), "DNS: node-1.keel; IP: 10.0.0.1"));
  }
  SECTION("a CN that is an allowed name but not requested as a SAN") {
    const auto [key, csr] = makeCsr(CsrOptions{{"node-1.keel", {}}, {{}, {"10.0.0.1"}}});
    CHECK_FALSE(issueCertificate(ca, csr, policy, clock).ok());
  }
  SECTION("the CN repeats a DNS SAN, in another case") {
    const auto [key, csr] = makeCsr(CsrOptions{{"Node-1.Keel", {}}, {{"node-1.keel"}, {"10.0.0.1"}}});
    const auto cert = issue(ca, csr, policy, clock);
    CHECK(cert.subject().commonName == "Node-1.Keel");
    CHECK(cert.subjectAltNames() == SubjectAltNames{{"node-1.keel"}, {"10.0.0.1"}});
  }
  SECTION("the CN repeats an IP SAN, written differently") {
    const auto [key, csr] = makeCsr(CsrOptions{{"2001:db8:0::1", {}}, {{}, {"2001:db8::1"}}});
    const auto cert = issue(ca, csr, policy, clock);
    CHECK(cert.subjectAltNames() == SubjectAltNames{{}, {"2001:db8::1"}});
  }
  SECTION("without the server rule a CN alone is still issued (client certificates)") {
    policy.commonNameMustBeSubjectAltName = false;
    const auto [key, csr] = makeCsr("admin");
    CHECK(issueCertificate(ca, csr, policy, clock).ok());
  }
}

TEST_CASE("copies every requested DNS and IP SAN when the policy allows any", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  IssuePolicy policy = clientPolicy();
  policy.allowAnySubjectAltName = true;
  const SubjectAltNames sans{{"a.keel", "b.keel"}, {"10.0.0.1", "::1"}};
  const auto [key, csr] = makeCsr(CsrOptions{{"node-1", {}}, sans});
  CHECK(issue(ca, csr, policy, clock).subjectAltNames() == sans);
  const auto [key2, noSans] = makeCsr("node-2");
  CHECK(issue(ca, noSans, policy, clock).subjectAltNames().empty());
}

TEST_CASE("refuses a CSR that requests a SAN type Keel does not issue, even when any SAN is allowed",
          "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto csr = CertificateRequest::fromPem(kUriSanCsrPem);
  REQUIRE(csr.ok());
  REQUIRE(csr->verifySignature().isOk());
  IssuePolicy policy = clientPolicy();
  policy.allowAnySubjectAltName = true;
  auto cert = issueCertificate(ca, *csr, policy, clock);
  REQUIRE_FALSE(cert.ok());
  CHECK(contains(cert.status(), "expected only DNS and IP SANs"));
}

TEST_CASE("refuses to issue for a CSR whose signature does not match its key", "[pki][issue]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1", KeyType::kEd25519);
  const auto tampered = replaceBytes(pemToDer(csr.toPem()), "node-1", "admin1");
  auto parsed = CertificateRequest::fromPem(derToPem("CERTIFICATE REQUEST", tampered));
  REQUIRE(parsed.ok());
  auto cert = issueCertificate(ca, *parsed, clientPolicy(), clock);
  REQUIRE_FALSE(cert.ok());
  CHECK(cert.status().code() == StatusCode::kInvalidArgument);
  CHECK(contains(cert.status(), "signature does not verify"));
}

TEST_CASE("refuses to issue for a CSR with an RSA key", "[pki][issue]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto csr = CertificateRequest::fromPem(kRsaCsrPem);
  REQUIRE(csr.ok());
  CHECK(csr->verifySignature().isOk());  // well-formed, just not a key type Keel issues for
  auto cert = issueCertificate(ca, *csr, clientPolicy(), clock);
  REQUIRE_FALSE(cert.ok());
  CHECK(contains(cert.status(),
                 "CSR key: unsupported key type: expected ecdsa-p256 or ed25519, got rsaEncryption"));
}

TEST_CASE("refuses a CSR with two CNs", "[pki][issue]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto csr = CertificateRequest::fromPem(kTwoCnCsrPem);
  REQUIRE(csr.ok());
  auto cert = issueCertificate(ca, *csr, clientPolicy(), clock);
  REQUIRE_FALSE(cert.ok());
  CHECK(contains(cert.status(), "expected exactly one CN in the subject, found 2"));
}

TEST_CASE("refuses an absurd TTL or notBefore skew", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  for (const auto ttl :
       {std::chrono::seconds(0), std::chrono::seconds(-1), kMaxValidity + std::chrono::seconds(1)}) {
    CAPTURE(ttl.count());
    IssuePolicy policy = clientPolicy();
    policy.ttl = ttl;
    auto cert = issueCertificate(ca, csr, policy, clock);
    REQUIRE_FALSE(cert.ok());
    CHECK(cert.status().code() == StatusCode::kInvalidArgument);
    CHECK(contains(cert.status(), "got " + std::to_string(ttl.count()) + " s"));
  }
  IssuePolicy policy = clientPolicy();
  policy.notBeforeSkew = std::chrono::seconds(-5);
  CHECK_FALSE(issueCertificate(ca, csr, policy, clock).ok());
  policy.notBeforeSkew = kMaxValidity;
  CHECK_FALSE(issueCertificate(ca, csr, policy, clock).ok());
}

TEST_CASE("moves notBefore back by the policy's skew", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  IssuePolicy policy = clientPolicy();
  policy.notBeforeSkew = std::chrono::minutes(5);
  const auto cert = issue(ca, csr, policy, clock);
  CHECK(cert.notBefore() == kStart - std::chrono::minutes(5));
  CHECK(cert.notAfter() == kStart + policy.ttl);
}

TEST_CASE("refuses CA key usages in a policy for leaf certificates", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  IssuePolicy policy = clientPolicy();
  policy.keyUsage = kDigitalSignature | kKeyCertSign;
  auto cert = issueCertificate(ca, csr, policy, clock);
  REQUIRE_FALSE(cert.ok());
  CHECK(contains(cert.status(), "expected leaf key usages"));
}

TEST_CASE("omits key usage and EKU extensions when the policy sets none", "[pki][issue][policy]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  IssuePolicy policy;
  policy.keyUsage = kKeyUsageNone;
  const auto cert = issue(ca, csr, policy, clock);
  CHECK(cert.keyUsage() == kKeyUsageNone);
  CHECK(cert.extendedKeyUsages().empty());
  CHECK(X509_get_ext_by_NID(cert.raw(), NID_key_usage, -1) < 0);
  CHECK(X509_get_ext_by_NID(cert.raw(), NID_ext_key_usage, -1) < 0);
}

TEST_CASE("issued certificate PEM parses back to the same certificate", "[pki][issue]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, KeyType::kEd25519);
  const auto [key, csr] = makeCsr("node-1");
  const auto cert = issue(ca, csr, clientPolicy(), clock);
  auto back = Certificate::fromPem(cert.toPem());
  REQUIRE(back.ok());
  CHECK(back->toDer() == cert.toDer());
}

}  // namespace
}  // namespace keel::pki
