#include <algorithm>

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

TEST_CASE("generated keys of both types round-trip through PKCS#8 PEM", "[pki][key]") {
  const KeyType type = GENERATE(KeyType::kEcdsaP256, KeyType::kEd25519);
  CAPTURE(keyTypeName(type));
  auto key = PrivateKey::generate(type);
  REQUIRE(key.ok());
  CHECK(key->type() == type);
  const std::string pem = key->toPem();
  CHECK(pem.find("-----BEGIN PRIVATE KEY-----") == 0);

  auto back = PrivateKey::fromPem(pem);
  REQUIRE(back.ok());
  CHECK(back->type() == type);
  CHECK(back->publicKeyFingerprint() == key->publicKeyFingerprint());
  CHECK(back->publicKeyPem() == key->publicKeyPem());
  CHECK(key->publicKeyPem().find("-----BEGIN PUBLIC KEY-----") == 0);
}

TEST_CASE("public key fingerprint is 64 lower-case hex digits and differs between keys", "[pki][key]") {
  auto a = PrivateKey::generate(KeyType::kEcdsaP256);
  auto b = PrivateKey::generate(KeyType::kEcdsaP256);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const std::string fp = a->publicKeyFingerprint();
  CHECK(fp.size() == 64);
  CHECK(fp.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(fp != b->publicKeyFingerprint());
}

TEST_CASE("reads a P-256 key in the traditional EC PRIVATE KEY form", "[pki][key]") {
  auto key = PrivateKey::fromPem(kTraditionalEcKeyPem);
  INFO(key.status().toString());
  REQUIRE(key.ok());
  CHECK(key->type() == KeyType::kEcdsaP256);
  // Written back as PKCS#8, and the same key.
  auto again = PrivateKey::fromPem(key->toPem());
  REQUIRE(again.ok());
  CHECK(again->publicKeyFingerprint() == key->publicKeyFingerprint());
}

TEST_CASE("rejects an RSA private key, naming what it got", "[pki][key]") {
  auto key = PrivateKey::fromPem(kRsaKeyPem);
  REQUIRE_FALSE(key.ok());
  CHECK(key.status().code() == StatusCode::kInvalidArgument);
  CHECK(contains(key.status(), "expected ecdsa-p256 or ed25519"));
  CHECK(contains(key.status(), "rsaEncryption"));
}

TEST_CASE("rejects an EC key on a curve other than P-256", "[pki][key]") {
  auto key = PrivateKey::fromPem(kP384KeyPem);
  REQUIRE_FALSE(key.ok());
  CHECK(contains(key.status(), "expected P-256"));
  CHECK(contains(key.status(), "secp384r1"));
}

TEST_CASE("rejects an encrypted private key instead of asking for a password", "[pki][key]") {
  auto key = PrivateKey::fromPem(kEncryptedKeyPem);
  REQUIRE_FALSE(key.ok());
  CHECK(contains(key.status(), "ENCRYPTED PRIVATE KEY"));
}

TEST_CASE("rejects garbage, empty, truncated and doubled private key PEM", "[pki][key]") {
  auto good = PrivateKey::generate(KeyType::kEd25519);
  REQUIRE(good.ok());
  const std::string pem = good->toPem();

  CHECK_FALSE(PrivateKey::fromPem("").ok());
  CHECK_FALSE(PrivateKey::fromPem("not a key at all").ok());
  CHECK_FALSE(PrivateKey::fromPem(pem.substr(0, pem.size() / 2)).ok());
  CHECK_FALSE(PrivateKey::fromPem("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n").ok());
  // Valid base64, but the DER inside is cut short.
  auto der = pemToDer(pem);
  der.resize(der.size() - 5);
  CHECK_FALSE(PrivateKey::fromPem(derToPem("PRIVATE KEY", der)).ok());

  auto two = PrivateKey::fromPem(pem + pem);
  REQUIRE_FALSE(two.ok());
  CHECK(contains(two.status(), "found 2"));
}

TEST_CASE("rejects an EC key whose stored public key belongs to another key", "[pki][key]") {
  auto other = PrivateKey::generate(KeyType::kEcdsaP256);
  REQUIRE(other.ok());
  // Both encodings end with the 65-byte uncompressed P-256 point.
  constexpr size_t kPointSize = 65;
  auto der = pemToDer(kTraditionalEcKeyPem);
  const auto otherPoint = pemToDer(other->publicKeyPem());
  std::copy(otherPoint.end() - kPointSize, otherPoint.end(), der.end() - kPointSize);
  auto key = PrivateKey::fromPem(derToPem("EC PRIVATE KEY", der));
  REQUIRE_FALSE(key.ok());
  CHECK(key.status().code() == StatusCode::kInvalidArgument);
}

// PKCS#8 keys are decoded by their algorithm's own decoder: each kind of damage still
// refuses the key.
TEST_CASE("rejects a PKCS#8 key whose public half, length or inner structure is wrong", "[pki][key]") {
  auto mine = PrivateKey::generate(KeyType::kEcdsaP256);
  auto other = PrivateKey::generate(KeyType::kEcdsaP256);
  REQUIRE(mine.ok());
  REQUIRE(other.ok());
  constexpr size_t kPointSize = 65;
  auto der = pemToDer(mine->toPem());
  const auto otherPoint = pemToDer(other->publicKeyPem());
  std::copy(otherPoint.end() - kPointSize, otherPoint.end(), der.end() - kPointSize);
  auto swapped = PrivateKey::fromPem(derToPem("PRIVATE KEY", der));
  REQUIRE_FALSE(swapped.ok());
  CHECK(swapped.status().code() == StatusCode::kInvalidArgument);

  // Ed25519 (RFC 8410): SEQUENCE { 0, { 1.3.101.112 }, OCTET STRING { OCTET STRING key } }.
  const auto ed25519 = [](size_t keyBytes) {
    std::vector<uint8_t> out = {0x30, static_cast<uint8_t>(14 + keyBytes), 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                0x03, 0x2b, 0x65, 0x70, 0x04, static_cast<uint8_t>(2 + keyBytes), 0x04,
                                static_cast<uint8_t>(keyBytes)};
    out.resize(out.size() + keyBytes, 0x42);
    return derToPem("PRIVATE KEY", out);
  };
  CHECK(PrivateKey::fromPem(ed25519(32)).ok());
  CHECK_FALSE(PrivateKey::fromPem(ed25519(31)).ok());
  CHECK_FALSE(PrivateKey::fromPem(ed25519(33)).ok());

  // The EC algorithm with an inner structure that is not an ECPrivateKey.
  auto inner = pemToDer(mine->toPem());
  const std::vector<uint8_t> ecPrivateKeyStart = {0x30, 0x6b, 0x02, 0x01, 0x01, 0x04, 0x20};
  const auto at = std::search(inner.begin(), inner.end(), ecPrivateKeyStart.begin(), ecPrivateKeyStart.end());
  REQUIRE(at != inner.end());
  at[5] = 0x03;  // the private key a BIT STRING, not an OCTET STRING
  CHECK_FALSE(PrivateKey::fromPem(derToPem("PRIVATE KEY", inner)).ok());
}

TEST_CASE("rejects a certificate PEM passed as a private key", "[pki][key]") {
  ManualClock clock(kStart);
  const auto ca = makeCa(clock);
  auto key = PrivateKey::fromPem(ca.certificate.toPem());
  REQUIRE_FALSE(key.ok());
  CHECK(contains(key.status(), "found 'CERTIFICATE'"));
}

TEST_CASE("key type names parse back and unknown names are refused", "[pki][key]") {
  for (const KeyType type : {KeyType::kEcdsaP256, KeyType::kEd25519}) {
    auto parsed = parseKeyType(keyTypeName(type));
    REQUIRE(parsed.ok());
    CHECK(*parsed == type);
  }
  CHECK(keyTypeName(KeyType::kEcdsaP256) == "ecdsa-p256");
  CHECK(keyTypeName(KeyType::kEd25519) == "ed25519");
  auto bad = parseKeyType("rsa-2048");
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.status(), "'rsa-2048'"));
}

TEST_CASE("a digest signed with a P-256 key verifies with its public key and no other", "[pki][key]") {
  auto owner = PrivateKey::generate(KeyType::kEcdsaP256);
  auto other = PrivateKey::generate(KeyType::kEcdsaP256);
  REQUIRE(owner.ok());
  REQUIRE(other.ok());
  const std::string digest(32, '\x5a');
  auto signature = signDigest(*owner, digest);
  REQUIRE(signature.ok());
  CHECK(checkDigestSigningKey(owner->publicKeyPem()).isOk());
  CHECK(verifyDigestSignature(owner->publicKeyPem(), digest, *signature).isOk());

  std::string otherDigest = digest;
  otherDigest[31] = 'x';
  CHECK(verifyDigestSignature(owner->publicKeyPem(), otherDigest, *signature).code() == StatusCode::kPermissionDenied);
  CHECK(verifyDigestSignature(other->publicKeyPem(), digest, *signature).code() == StatusCode::kPermissionDenied);
  std::string flipped = *signature;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 1);
  CHECK(verifyDigestSignature(owner->publicKeyPem(), digest, flipped).code() == StatusCode::kPermissionDenied);
  CHECK(verifyDigestSignature(owner->publicKeyPem(), digest, "").code() == StatusCode::kPermissionDenied);
}

TEST_CASE("only a P-256 public key is a digest signing key", "[pki][key]") {
  auto ed = PrivateKey::generate(KeyType::kEd25519);
  auto p256 = PrivateKey::generate(KeyType::kEcdsaP256);
  REQUIRE(ed.ok());
  REQUIRE(p256.ok());
  CHECK(contains(checkDigestSigningKey(ed->publicKeyPem()), "must be ECDSA P-256, found ed25519"));
  CHECK(contains(checkDigestSigningKey(p256->toPem()), "expected a PUBLIC KEY PEM block, found 'PRIVATE KEY'"));
  CHECK(checkDigestSigningKey("").code() == StatusCode::kInvalidArgument);
  CHECK(signDigest(*ed, std::string(32, 'a')).status().code() == StatusCode::kInvalidArgument);
  CHECK(signDigest(*p256, "short").status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace keel::pki
