// keel_init's checks before it trusts a root (packaging/image/init/root_trust.h): a slot's
// manifest is read only once its signature verifies with the machine config's key.
#include "root_trust.h"

#include <string>

#include <catch2/catch_test_macros.hpp>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "keel/pki/pki.h"

namespace {

using keel::init::factoryRoot;
using keel::init::imageSigningKey;
using keel::init::trustSlotManifest;

const std::string kRootHash(64, 'a');

std::string manifest(const std::string& algorithm = "sha256", uint64_t rootSize = 8192,
                     const std::string& initramfsSha = std::string(64, '3')) {
  const nlohmann::json m = {
      {"build_id", "test"},
      {"format", 1},
      {"parts",
       {{{"name", "kernel"}, {"offset", 0}, {"sha256", std::string(64, '1')}, {"size", 10}},
        {{"name", "initramfs"}, {"offset", 10}, {"sha256", initramfsSha}, {"size", 20}},
        {{"name", "root"}, {"offset", 30}, {"sha256", std::string(64, '2')}, {"size", rootSize}}}},
      {"verity",
       {{"data_block_size", 4096},
        {"hash_algorithm", algorithm},
        {"hash_block_size", 4096},
        {"root_hash", kRootHash},
        {"salt", "00ff"}}},
      {"version", "0.1.0"}};
  return m.dump(2);
}

std::string sign(const keel::pki::PrivateKey& key, const std::string& bytes) {
  unsigned char digest[32];
  unsigned len = 0;
  REQUIRE(EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) == 1);
  auto signature = keel::pki::signDigest(key, std::string(reinterpret_cast<char*>(digest), len));
  REQUIRE(signature.ok());
  return *signature;
}

keel::init::SigningKey keyOf(const keel::pki::PrivateKey& key) {
  std::string error;
  auto parsed = keel::init::SigningKey::fromPem(key.publicKeyPem(), error);
  INFO(error);
  REQUIRE(parsed);
  return *parsed;
}

keel::pki::PrivateKey newKey(keel::pki::KeyType type = keel::pki::KeyType::kEcdsaP256) {
  auto key = keel::pki::PrivateKey::generate(type);
  REQUIRE(key.ok());
  return *key;
}

TEST_CASE("a slot manifest signed with the config's key gives its verity parameters", "[root_trust]") {
  const auto key = newKey();
  const std::string m = manifest();
  const auto trusted = trustSlotManifest(m, sign(key, m), keyOf(key));
  INFO(trusted.error);
  REQUIRE(trusted.params);
  CHECK(trusted.params->dataBytes == 8192);
  CHECK(trusted.params->dataBlockSize == 4096);
  CHECK(trusted.params->hashBlockSize == 4096);
  CHECK(trusted.params->hashStartBlock == 0);
  CHECK(trusted.params->algorithm == "sha256");
  CHECK(trusted.params->rootHash == kRootHash);
  CHECK(trusted.params->salt == "00ff");
  // The kernel and initramfs the slot boots with, as the signed manifest names them.
  CHECK(trusted.kernel.size == 10);
  CHECK(trusted.kernel.sha256 == std::string(64, '1'));
  CHECK(trusted.initramfs.size == 20);
  CHECK(trusted.initramfs.sha256 == std::string(64, '3'));
}

TEST_CASE("a signed slot manifest without a usable initramfs digest is refused", "[root_trust]") {
  const auto key = newKey();
  for (const auto& sha : {std::string(), std::string(63, '3'), std::string(64, 'G')}) {
    const std::string m = manifest("sha256", 8192, sha);
    const auto trusted = trustSlotManifest(m, sign(key, m), keyOf(key));
    CHECK_FALSE(trusted.params);
    CHECK(trusted.error == "its manifest names no kernel or no initramfs with a size and a SHA-256");
  }
}

TEST_CASE("a slot manifest changed after it was signed is refused for its signature", "[root_trust]") {
  const auto key = newKey();
  const std::string m = manifest();
  std::string changed = m;
  changed.replace(changed.find(kRootHash), 64, std::string(64, 'b'));
  const auto trusted = trustSlotManifest(changed, sign(key, m), keyOf(key));
  CHECK_FALSE(trusted.params);
  CHECK(trusted.error ==
        "its manifest's signature does not verify with the machine config's image signing key");
}

TEST_CASE("a slot manifest signed by another key, or not at all, is refused", "[root_trust]") {
  const auto key = newKey();
  const std::string m = manifest();
  CHECK_FALSE(trustSlotManifest(m, sign(newKey(), m), keyOf(key)).params);
  CHECK_FALSE(trustSlotManifest(m, "", keyOf(key)).params);
  CHECK_FALSE(trustSlotManifest(m, std::string(72, '\x30'), keyOf(key)).params);
}

TEST_CASE("a signing key that is not an ECDSA P-256 public key is refused, saying why", "[root_trust]") {
  std::string error;
  CHECK_FALSE(keel::init::SigningKey::fromPem(newKey(keel::pki::KeyType::kEd25519).publicKeyPem(), error));
  CHECK(error == "machine.upgrade.publicKey is not an ECDSA P-256 key");
  const std::string p384 =
      "-----BEGIN PUBLIC KEY-----\n"
      "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEDF6yCZS1Cr8GSc4CyTptj0M31l4hqLFW\n"
      "VnAFcUT2YzLD7P4IR3TZ6Zm0YEaRaeVdYUxr7bIcQjD3rlKme4R3l5ARemVSU01U\n"
      "WYvdPzfmsZUV3ituhaBQypKmh5TJLYh0\n"
      "-----END PUBLIC KEY-----\n";
  CHECK_FALSE(keel::init::SigningKey::fromPem(p384, error));
  CHECK(error == "machine.upgrade.publicKey is not an ECDSA P-256 key");
  CHECK_FALSE(keel::init::SigningKey::fromPem("not a key", error));
  CHECK(error == "machine.upgrade.publicKey is not a PEM public key");
}

TEST_CASE("a signed manifest with another hash algorithm or a partial block is refused", "[root_trust]") {
  const auto key = newKey();
  for (const auto& m : {manifest("sha1"), manifest("sha256", 8193), manifest("sha256", 0)}) {
    const auto trusted = trustSlotManifest(m, sign(key, m), keyOf(key));
    CHECK_FALSE(trusted.params);
    CHECK(trusted.error.rfind("its manifest: ", 0) == 0);
  }
}

TEST_CASE("the image signing key is read from a config padded with zero bytes", "[root_trust]") {
  const auto key = newKey();
  const nlohmann::json config = {{"machine", {{"upgrade", {{"publicKey", key.publicKeyPem()}}}}}};
  std::string disk = config.dump();
  disk.resize(8192, '\0');
  std::string error;
  const auto found = imageSigningKey(disk, error);
  INFO(error);
  REQUIRE(found);
  CHECK(*found == key.publicKeyPem());
  CHECK_FALSE(imageSigningKey(R"({"machine": {}})", error));
  CHECK(error == "the machine config has no machine.upgrade.publicKey");
  CHECK_FALSE(imageSigningKey("{", error));
}

TEST_CASE("the factory root's tree starts after the root on the root disk", "[root_trust]") {
  const std::string json =
      R"({"root_size": 12288, "verity": {"data_block_size": 4096, "hash_algorithm": "sha256",
    "hash_block_size": 4096, "root_hash": ")" +
      kRootHash + R"(", "salt": "ab"}})";
  const auto trusted = factoryRoot(json);
  INFO(trusted.error);
  REQUIRE(trusted.params);
  CHECK(trusted.params->dataBytes == 12288);
  CHECK(trusted.params->hashStartBlock == 3);
  CHECK_FALSE(factoryRoot(R"({"verity": {}})").params);
}

}  // namespace
