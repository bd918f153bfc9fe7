#include "src/slot_writer.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include "keel/testing/testing.h"

namespace {

using keel::machined::SlotWriter;
using keel::testing::readFile;
using keel::testing::TempDir;
using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

// A P-256 signing key as an image's owner holds it, and what the machine config names.
struct SigningKey {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ~SigningKey() { EVP_PKEY_free(key); }

  std::string publicPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
  }

  std::string sign(const std::string& digest) const {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
    REQUIRE(EVP_PKEY_sign_init(ctx) == 1);
    REQUIRE(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) == 1);
    size_t len = 0;
    const auto* d = reinterpret_cast<const unsigned char*>(digest.data());
    REQUIRE(EVP_PKEY_sign(ctx, nullptr, &len, d, digest.size()) == 1);
    std::string sig(len, '\0');
    REQUIRE(EVP_PKEY_sign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, d, digest.size()) == 1);
    sig.resize(len);
    EVP_PKEY_CTX_free(ctx);
    return sig;
  }
};

std::string sha256(const std::string& data) {
  unsigned char out[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hex(const std::string& raw) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : raw) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

const std::string kImage(100000, 'x');

TEST_CASE("a signed image goes to the inactive slot and the next boot tries it once") {
  TempDir dir;
  SigningKey owner;
  const std::string digest = sha256(kImage);
  auto writer = SlotWriter::begin(dir.path(), "a", hex(digest), owner.sign(digest), owner.publicPem(), kImage.size());
  REQUIRE(writer.ok());
  for (size_t off = 0; off < kImage.size(); off += 4096) REQUIRE(writer->write(std::string_view(kImage).substr(off, 4096)).isOk());
  const auto slot = writer->finish();
  REQUIRE(slot.ok());
  CHECK(*slot == "b");
  CHECK(readFile(dir / "slot-b.squashfs") == kImage);
  CHECK(readFile(dir / "pointer") == "boot=b\nfallback=a\ntries=1\n");
  CHECK_FALSE(fs::exists(dir / "slot-b.squashfs.partial"));
}

TEST_CASE("an image signed by another key is refused before anything is written") {
  TempDir dir;
  SigningKey owner, stranger;
  const std::string digest = sha256(kImage);
  auto writer = SlotWriter::begin(dir.path(), "factory", hex(digest), stranger.sign(digest), owner.publicPem(),
                                  kImage.size());
  REQUIRE_FALSE(writer.ok());
  CHECK(writer.status().code() == keel::StatusCode::kPermissionDenied);
  CHECK_THAT(writer.status().message(), ContainsSubstring("does not verify"));
  auto unsigned_ = SlotWriter::begin(dir.path(), "factory", hex(digest), "", owner.publicPem(), kImage.size());
  CHECK(unsigned_.status().code() == keel::StatusCode::kPermissionDenied);
  CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("bytes that do not hash to the signed digest leave the slots and the pointer alone") {
  TempDir dir;
  SigningKey owner;
  keel::testing::writeFile(dir / "pointer", "boot=a\nfallback=factory\ntries=confirmed\n");
  const std::string digest = sha256(kImage);
  auto writer = SlotWriter::begin(dir.path(), "a", hex(digest), owner.sign(digest), owner.publicPem(), kImage.size());
  REQUIRE(writer.ok());
  std::string tampered = kImage;
  tampered[500] = 'y';
  REQUIRE(writer->write(tampered).isOk());
  const auto slot = writer->finish();
  REQUIRE_FALSE(slot.ok());
  CHECK_THAT(slot.status().message(), ContainsSubstring("do not hash to the signed SHA-256"));
  CHECK(readFile(dir / "pointer") == "boot=a\nfallback=factory\ntries=confirmed\n");
  CHECK_FALSE(fs::exists(dir / "slot-b.squashfs"));
}

TEST_CASE("an image longer or shorter than announced is refused") {
  TempDir dir;
  SigningKey owner;
  const std::string digest = sha256(kImage);
  {
    auto writer = SlotWriter::begin(dir.path(), "b", hex(digest), owner.sign(digest), owner.publicPem(), kImage.size());
    REQUIRE(writer.ok());
    REQUIRE(writer->write(kImage).isOk());
    CHECK(writer->write("z").code() == keel::StatusCode::kOutOfRange);
  }
  {
    auto writer = SlotWriter::begin(dir.path(), "b", hex(digest), owner.sign(digest), owner.publicPem(), kImage.size());
    REQUIRE(writer.ok());
    REQUIRE(writer->write(std::string_view(kImage).substr(0, 10)).isOk());
    CHECK_THAT(writer->finish().status().message(), ContainsSubstring("ended after 10 of"));
  }
  // An upgrade that did not finish leaves no partial file behind.
  CHECK_FALSE(fs::exists(dir / "slot-a.squashfs.partial"));
}

TEST_CASE("malformed hashes and keys are refused by name") {
  TempDir dir;
  SigningKey owner;
  CHECK_THAT(SlotWriter::begin(dir.path(), "a", "ABC", "", owner.publicPem(), 1).status().message(),
             ContainsSubstring("64 lowercase hex digits"));
  const std::string digest = sha256(kImage);
  CHECK_THAT(SlotWriter::begin(dir.path(), "a", hex(digest), owner.sign(digest), "not a key", 1).status().message(),
             ContainsSubstring("expected exactly one PUBLIC KEY PEM block"));
  CHECK(keel::machined::inactiveSlot("factory") == "a");
  CHECK(keel::machined::inactiveSlot("a") == "b");
  CHECK(keel::machined::inactiveSlot("b") == "a");
}

}  // namespace

TEST_CASE("the boot pointer reads back as written; none is nullopt and a damaged one is DATA_LOSS") {
  TempDir dir;
  auto none = keel::machined::readBootPointer(dir.path());
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  REQUIRE(keel::machined::writeBootPointer(dir.path(), "b", "factory", 1).isOk());
  auto p = keel::machined::readBootPointer(dir.path());
  REQUIRE(p.ok());
  REQUIRE(p->has_value());
  CHECK((*p)->boot == "b");
  CHECK((*p)->fallback == "factory");
  CHECK((*p)->tries == 1);
  REQUIRE(keel::machined::writeBootPointer(dir.path(), "factory", "b", -1).isOk());
  p = keel::machined::readBootPointer(dir.path());
  REQUIRE(p.ok());
  CHECK((*p)->tries == -1);
  keel::testing::writeFile(dir / "pointer", "boot=c\nfallback=factory\ntries=1\n");
  CHECK(keel::machined::readBootPointer(dir.path()).status().code() == keel::StatusCode::kDataLoss);
  keel::testing::writeFile(dir / "pointer", "boot=a\nfallback=factory\ntries=lots\n");
  CHECK(keel::machined::readBootPointer(dir.path()).status().code() == keel::StatusCode::kDataLoss);
}

TEST_CASE("rollback returns to the fallback slot as kept; upgrades wait while a slot is on trial") {
  TempDir dir;
  using keel::machined::checkUpgradeAllowed;
  using keel::machined::rollBack;
  // Never upgraded: upgrades may start, and there is nothing to roll back to.
  CHECK(checkUpgradeAllowed(dir.path(), "factory").isOk());
  CHECK_THAT(rollBack(dir.path(), "factory").status().message(), ContainsSubstring("nothing to roll back to"));
  // Slot a booted on trial: no upgrade until it is kept.
  keel::testing::writeFile(dir / "slot-a.squashfs", "root");
  REQUIRE(keel::machined::writeBootPointer(dir.path(), "a", "factory", 0).isOk());
  CHECK(checkUpgradeAllowed(dir.path(), "a").code() == keel::StatusCode::kFailedPrecondition);
  REQUIRE(keel::machined::writeBootPointer(dir.path(), "a", "factory", -1).isOk());
  CHECK(checkUpgradeAllowed(dir.path(), "a").isOk());
  // Rollback: factory next, as kept, with a to return to; a second one goes back to a.
  auto back = rollBack(dir.path(), "a");
  REQUIRE(back.ok());
  CHECK(*back == "factory");
  CHECK(readFile(dir / "pointer") == "boot=factory\nfallback=a\ntries=confirmed\n");
  auto again = rollBack(dir.path(), "factory");
  REQUIRE(again.ok());
  CHECK(*again == "a");
  // A next boot that already leaves the booted slot, and a slot that is gone, are refused.
  REQUIRE(keel::machined::writeBootPointer(dir.path(), "b", "a", 1).isOk());
  CHECK_THAT(rollBack(dir.path(), "a").status().message(), ContainsSubstring("already leaves slot a for slot b"));
  REQUIRE(keel::machined::writeBootPointer(dir.path(), "a", "b", -1).isOk());
  CHECK_THAT(rollBack(dir.path(), "a").status().message(), ContainsSubstring("slot b is no longer on the state disk"));
}
