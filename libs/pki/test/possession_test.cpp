#include <catch2/catch_test_macros.hpp>

#include "keel/pki/pki.h"

#include "pki_test_util.h"

namespace keel::pki {
namespace {

using namespace testing;

Certificate nodeCertificate(const CertificateAuthority& ca, const CertificateRequest& csr, const Clock& clock) {
  IssuePolicy policy = clientPolicy();
  policy.extendedKeyUsages = {ExtendedKeyUsage::kServerAuth};
  return issue(ca, csr, policy, clock);
}

TEST_CASE("a proof of possession by the certificate's key verifies over the CSR it was made for") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  for (const auto type : {KeyType::kEcdsaP256, KeyType::kEd25519}) {
    const auto current = makeCsr("node", type);
    const auto cert = nodeCertificate(ca, current.csr, clock);
    const auto next = makeCsr("node");
    const auto proof = signPossession(current.key, next.csr);
    REQUIRE(proof.ok());
    CHECK(verifyPossession(cert, next.csr, *proof).isOk());
  }
}

TEST_CASE("a proof is refused for another CSR, another key, or altered bytes") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  const auto current = makeCsr("node");
  const auto cert = nodeCertificate(ca, current.csr, clock);
  const auto next = makeCsr("node");
  const auto other = makeCsr("node");
  const auto proof = signPossession(current.key, next.csr);
  REQUIRE(proof.ok());
  CHECK(verifyPossession(cert, other.csr, *proof).code() == StatusCode::kPermissionDenied);
  const auto byOtherKey = signPossession(other.key, next.csr);
  REQUIRE(byOtherKey.ok());
  CHECK(verifyPossession(cert, next.csr, *byOtherKey).code() == StatusCode::kPermissionDenied);
  std::string altered = *proof;
  altered[altered.size() / 2] = static_cast<char>(altered[altered.size() / 2] ^ 1);
  CHECK(verifyPossession(cert, next.csr, altered).code() == StatusCode::kPermissionDenied);
  CHECK(verifyPossession(cert, next.csr, "").code() == StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace keel::pki
