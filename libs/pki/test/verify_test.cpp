#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include "keel/pki/pki.h"

#include "pki_test_util.h"

namespace keel::pki {
namespace {

using namespace testing;

bool contains(const Status& status, std::string_view text) {
  return status.message().find(text) != std::string::npos;
}

TEST_CASE("issued client certificate verifies against its CA and not against another CA", "[pki][verify]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, type, "keel-os");
  const auto other = makeCa(clock, type, "etcd");
  const auto [key, csr] = makeCsr("alice", type);
  const auto cert = issue(ca, csr, clientPolicy(), clock);

  VerifyOptions options;
  options.requiredUsage = ExtendedKeyUsage::kClientAuth;
  CHECK(verifyCertificate(cert, {ca.certificate}, options, clock).isOk());

  const Status status = verifyCertificate(cert, {other.certificate}, options, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kUnauthenticated);
  CHECK(contains(status, "certificate signed by unknown authority: issuer 'CN=keel-os, O=keel'"));
  CHECK(contains(status, "accepted: 'CN=etcd, O=keel' (sha256 " +
                             other.certificate.fingerprintSha256().substr(0, 8) + "…)"));
}

TEST_CASE("verifies when the issuing CA is one of several accepted CAs", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto a = makeCa(clock, KeyType::kEcdsaP256, "ca-a");
  const auto b = makeCa(clock, KeyType::kEd25519, "ca-b");
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(b, csr, clientPolicy(), clock);
  CHECK(verifyCertificate(cert, {a.certificate, b.certificate}, {}, clock).isOk());
  CHECK(verifyCertificate(cert, {a.certificate, b.certificate, b.certificate}, {}, clock).isOk());
}

TEST_CASE("a CA with the same name but a different key is not the issuer", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto real = makeCa(clock, KeyType::kEcdsaP256, "keel-os");
  const auto impostor = makeCa(clock, KeyType::kEcdsaP256, "keel-os");
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(real, csr, clientPolicy(), clock);
  const Status status = verifyCertificate(cert, {impostor.certificate}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kUnauthenticated);
  CHECK(contains(status, "a CA of that name is known, but its key did not sign this certificate"));
}

TEST_CASE("expired certificate fails with the expiry time in the message", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(ca, csr, clientPolicy(), clock);  // valid for 24 h

  clock.advance(std::chrono::hours(23));
  CHECK(verifyCertificate(cert, {ca.certificate}, {}, clock).isOk());
  clock.advance(std::chrono::hours(2));
  const Status status = verifyCertificate(cert, {ca.certificate}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kUnauthenticated);
  CHECK(contains(status, "certificate 'CN=alice' expired at " + formatTime(kStart + std::chrono::hours(24)) +
                             " (now " + formatTime(kStart + std::chrono::hours(25)) + ")"));
}

TEST_CASE("certificate that is not yet valid fails with its start time in the message", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("alice");
  clock.advance(std::chrono::hours(1));
  const auto cert = issue(ca, csr, clientPolicy(), clock);
  clock.set(kStart + std::chrono::minutes(30));
  const Status status = verifyCertificate(cert, {ca.certificate}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(contains(status, "certificate 'CN=alice' is not valid until " +
                             formatTime(kStart + std::chrono::hours(1)) + " (now " +
                             formatTime(kStart + std::chrono::minutes(30)) + ")"));
}

TEST_CASE("expired CA fails naming the CA and its expiry", "[pki][verify]") {
  ManualClock clock(kStart);
  CaOptions options;
  options.subject.commonName = "short-lived-ca";
  options.validity = std::chrono::hours(1);
  auto ca = createSelfSignedCa(options, clock);
  REQUIRE(ca.ok());
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(*ca, csr, clientPolicy(), clock);
  clock.advance(std::chrono::hours(2));
  const Status status = verifyCertificate(cert, {ca->certificate}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(contains(status,
                 "certificate 'CN=short-lived-ca' expired at " + formatTime(kStart + std::chrono::hours(1))));
}

TEST_CASE("verification reads the injected clock, not the wall clock", "[pki][verify]") {
  // Far in the future, beyond the UTCTime range, so GeneralizedTime is exercised too.
  const TimePoint future = std::chrono::sys_days{std::chrono::year{2091} / 5 / 6};
  ManualClock clock(future);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(ca, csr, clientPolicy(), clock);
  CHECK(cert.notBefore() == future);
  CHECK(verifyCertificate(cert, {ca.certificate}, {}, clock).isOk());
  SystemClock wall;
  const Status status = verifyCertificate(cert, {ca.certificate}, {}, wall);
  REQUIRE_FALSE(status.isOk());
  CHECK(contains(status, "not valid until 2091-05-06T00:00:00Z"));
}

TEST_CASE("requires the requested extended key usage", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("alice");
  VerifyOptions server;
  server.requiredUsage = ExtendedKeyUsage::kServerAuth;
  VerifyOptions client;
  client.requiredUsage = ExtendedKeyUsage::kClientAuth;

  SECTION("a client certificate is no server certificate") {
    const auto cert = issue(ca, csr, clientPolicy(), clock);
    const Status status = verifyCertificate(cert, {ca.certificate}, server, clock);
    REQUIRE_FALSE(status.isOk());
    CHECK(status.code() == StatusCode::kUnauthenticated);
    CHECK(contains(status, "certificate 'CN=alice' lacks extended key usage serverAuth: it has clientAuth"));
  }
  SECTION("a certificate without EKUs satisfies neither") {
    IssuePolicy policy = clientPolicy();
    policy.extendedKeyUsages = {};
    const auto cert = issue(ca, csr, policy, clock);
    CHECK(verifyCertificate(cert, {ca.certificate}, {}, clock).isOk());
    const Status status = verifyCertificate(cert, {ca.certificate}, client, clock);
    REQUIRE_FALSE(status.isOk());
    CHECK(contains(status, "lacks extended key usage clientAuth: it has none"));
  }
  SECTION("a certificate with both satisfies either") {
    IssuePolicy policy = clientPolicy();
    policy.extendedKeyUsages = {ExtendedKeyUsage::kServerAuth, ExtendedKeyUsage::kClientAuth};
    const auto cert = issue(ca, csr, policy, clock);
    CHECK(verifyCertificate(cert, {ca.certificate}, server, clock).isOk());
    CHECK(verifyCertificate(cert, {ca.certificate}, client, clock).isOk());
  }
}

TEST_CASE("certificate issued by a non-CA fails because the issuer is not a CA", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [leafKey, leafCsr] = makeCsr("node-1");
  const auto leaf = issue(ca, leafCsr, clientPolicy(), clock);
  // Bypasses CertificateAuthority::fromPem, which would refuse this pair.
  const CertificateAuthority fake{leaf, leafKey};
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(fake, csr, clientPolicy(), clock);

  // Handing the real CA the whole chain does not help: the middle link is no CA.
  VerifyOptions withIntermediate;
  withIntermediate.intermediates = {leaf};
  const Status chained = verifyCertificate(cert, {ca.certificate}, withIntermediate, clock);
  INFO(chained.message());
  REQUIRE_FALSE(chained.isOk());
  CHECK(chained.code() == StatusCode::kUnauthenticated);
  CHECK(contains(chained, "issuer 'CN=node-1' is not a CA"));
}

TEST_CASE("refuses an accepted CA list that holds a leaf certificate", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("node-1");
  const auto leaf = issue(ca, csr, clientPolicy(), clock);
  // Otherwise the leaf would be trusted as itself.
  const Status status = verifyCertificate(leaf, {ca.certificate, leaf}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kUnauthenticated);
  CHECK(contains(status, "expected only CA certificates among the accepted CAs, got 'CN=node-1' (sha256 " +
                             leaf.fingerprintSha256().substr(0, 8) + "…) which is not a CA"));
}

TEST_CASE("certificate with a tampered signature fails with a bad signature", "[pki][verify]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, type);
  const auto [key, csr] = makeCsr("alice");
  auto der = issue(ca, csr, clientPolicy(), clock).toDer();
  der.back() ^= 0x01;  // last byte of the signature value
  auto tampered = Certificate::fromDer(der);
  REQUIRE(tampered.ok());
  const Status status = verifyCertificate(*tampered, {ca.certificate}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kUnauthenticated);
  CHECK(contains(status, "certificate 'CN=alice' has a bad signature"));
}

TEST_CASE("self-signed certificate that is not accepted fails as unknown authority", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto accepted = makeCa(clock, KeyType::kEcdsaP256, "keel-os");
  const auto stranger = makeCa(clock, KeyType::kEcdsaP256, "stranger");
  const Status status = verifyCertificate(stranger.certificate, {accepted.certificate}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(contains(status, "unknown authority: issuer 'CN=stranger, O=keel'"));
}

TEST_CASE("an untrusted intermediate does not make its chain trusted", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto accepted = makeCa(clock, KeyType::kEcdsaP256, "keel-os");
  const auto stranger = makeCa(clock, KeyType::kEcdsaP256, "stranger");
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(stranger, csr, clientPolicy(), clock);
  VerifyOptions options;
  options.intermediates = {stranger.certificate};
  const Status status = verifyCertificate(cert, {accepted.certificate}, options, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(contains(status, "unknown authority"));
  CHECK(contains(status, "accepted: 'CN=keel-os, O=keel'"));
}

TEST_CASE("no accepted CAs means no certificate verifies", "[pki][verify]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto [key, csr] = makeCsr("alice");
  const auto cert = issue(ca, csr, clientPolicy(), clock);
  const Status status = verifyCertificate(cert, {}, {}, clock);
  REQUIRE_FALSE(status.isOk());
  CHECK(status.code() == StatusCode::kUnauthenticated);
  CHECK(contains(status, "accepted: none"));
}

TEST_CASE("a document signed by a CA's key verifies with that CA only, and not once changed", "[pki][verify]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  ManualClock clock(kStart);
  const auto ca = makeCa(clock, type, "keel-os");
  const auto other = makeCa(clock, type, "keel-os");  // same name, another key
  const std::string document = "sequence 7: serial 0a1b";
  const auto signature = signDocument(ca.key, document);
  REQUIRE(signature.ok());

  CHECK(verifyDocumentSignature(ca.certificate, document, *signature).isOk());
  CHECK(verifyDocumentSignature(other.certificate, document, *signature).code() == StatusCode::kPermissionDenied);
  CHECK(verifyDocumentSignature(ca.certificate, document + "!", *signature).code() ==
        StatusCode::kPermissionDenied);
  std::string flipped = *signature;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x01);
  CHECK(verifyDocumentSignature(ca.certificate, document, flipped).code() == StatusCode::kPermissionDenied);
  CHECK(verifyDocumentSignature(ca.certificate, document, "").code() == StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace keel::pki
