#include "src/boot/slot_writer.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <map>

#include "keel/image/image_file.h"
#include "keel/testing/testing.h"

namespace {

using keel::Status;
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

// An image file of filler parts (libs/image), its manifest, and that manifest's digest.
struct TestImage {
  std::string manifest;
  std::string file;
  std::string digest;  // of the manifest, raw

  explicit TestImage(const std::string& version = "1.0.0", char rootByte = 'r') {
    const std::map<std::string, std::string> parts = {{"kernel", std::string(5000, 'k')},
                                                      {"initramfs", std::string(3000, 'i')},
                                                      {"root", std::string(3 * 4096, rootByte)},
                                                      {"verity", std::string(4096, 'v')}};
    keel::image::Manifest m;
    m.version = keel::image::parseVersion(version).value();
    m.buildId = "test";
    for (const auto name : keel::image::kPartNames) {
      const auto& bytes = parts.at(std::string(name));
      m.parts.push_back({.name = std::string(name), .size = bytes.size(), .sha256 = hex(sha256(bytes))});
    }
    keel::image::layOutParts(m.parts);
    m.verity.rootHash = std::string(64, 'a');
    manifest = keel::image::serializeManifest(m);
    file = keel::image::formatHeader(manifest.size()) + manifest;
    for (const auto name : keel::image::kPartNames) file += parts.at(std::string(name));
    digest = sha256(manifest);
  }
};

Status writeInPieces(SlotWriter& w, const std::string& bytes) {
  for (size_t off = 0; off < bytes.size(); off += 4096) {
    KEEL_RETURN_IF_ERROR(w.write(std::string_view(bytes).substr(off, 4096)));
  }
  return Status::ok();
}

// Installs `image`, signed by `owner`, on a machine booted from `booted`; the slot written.
std::string installSigned(const TempDir& dir, const std::string& booted, const SigningKey& owner,
                          const TestImage& image) {
  auto writer = SlotWriter::begin(dir.path(), booted, hex(image.digest), owner.sign(image.digest),
                                  owner.publicPem(), image.file.size(), nullptr);
  REQUIRE(writer.ok());
  REQUIRE(writeInPieces(**writer, image.file).isOk());
  const auto slot = (*writer)->finish();
  REQUIRE(slot.ok());
  return *slot;
}

TEST_CASE("a signed image goes to the inactive slot, every part with it, and the next boot tries it once") {
  TempDir dir;
  SigningKey owner;
  const TestImage image;
  CHECK(installSigned(dir, "a", owner, image) == "b");
  CHECK(readFile(dir / "slot-b.squashfs") == std::string(3 * 4096, 'r'));
  CHECK(readFile(dir / "slot-b.vmlinuz") == std::string(5000, 'k'));
  CHECK(readFile(dir / "slot-b.initrd") == std::string(3000, 'i'));
  CHECK(readFile(dir / "slot-b.verity") == std::string(4096, 'v'));
  CHECK(readFile(dir / "slot-b.manifest.json") == image.manifest);
  CHECK(readFile(dir / "pointer") == "boot=b\nfallback=a\ntries=1\n");
  CHECK_FALSE(fs::exists(dir / "slot-b.squashfs.partial"));
}

TEST_CASE("the partial files of an upgrade cut short are removed at the next start, and nothing else") {
  TempDir dir;
  SigningKey owner;
  const TestImage image;
  REQUIRE(installSigned(dir, "a", owner, image) == "b");
  // A second upgrade, into slot a, stops half-way, as a power cut leaves it: its partial
  // files stay (a destructor that would remove them never runs).
  keel::testing::writeFile(dir / "slot-a.squashfs.partial", std::string(4096, 'r'));
  keel::testing::writeFile(dir / "slot-a.manifest.json.partial", image.manifest);
  keel::testing::writeFile(dir / "notes.partial", "not an upgrade's");
  const auto removed = keel::machined::removeStalePartials(dir.path());
  REQUIRE(removed.ok());
  CHECK(*removed == 2);
  CHECK_FALSE(fs::exists(dir / "slot-a.squashfs.partial"));
  CHECK_FALSE(fs::exists(dir / "slot-a.manifest.json.partial"));
  CHECK(fs::exists(dir / "notes.partial"));
  // Slot b and the pointer are as the finished upgrade left them.
  CHECK(readFile(dir / "slot-b.manifest.json") == image.manifest);
  CHECK(readFile(dir / "pointer") == "boot=b\nfallback=a\ntries=1\n");
  CHECK(*keel::machined::removeStalePartials(dir.path()) == 0);
  CHECK(*keel::machined::removeStalePartials(dir / "missing") == 0);
}

TEST_CASE("an image signed by another key is refused before anything is written") {
  TempDir dir;
  SigningKey owner, stranger;
  const TestImage image;
  auto writer = SlotWriter::begin(dir.path(), "factory", hex(image.digest), stranger.sign(image.digest),
                                  owner.publicPem(), image.file.size(), nullptr);
  REQUIRE_FALSE(writer.ok());
  CHECK(writer.status().code() == keel::StatusCode::kPermissionDenied);
  CHECK_THAT(writer.status().message(), ContainsSubstring("does not verify"));
  auto unsigned_ = SlotWriter::begin(dir.path(), "factory", hex(image.digest), "", owner.publicPem(),
                                     image.file.size(), nullptr);
  CHECK(unsigned_.status().code() == keel::StatusCode::kPermissionDenied);
  CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("a manifest other than the signed one, or a changed part, leaves the slots and the pointer alone") {
  TempDir dir;
  SigningKey owner;
  keel::testing::writeFile(dir / "pointer", "boot=a\nfallback=factory\ntries=confirmed\n");
  const TestImage image;
  const TestImage other("2.0.0");
  SECTION("another manifest") {
    auto writer = SlotWriter::begin(dir.path(), "a", hex(image.digest), owner.sign(image.digest), owner.publicPem(),
                                    other.file.size(), nullptr);
    REQUIRE(writer.ok());
    CHECK_THAT(writeInPieces(**writer, other.file).message(), ContainsSubstring("is not the one signed"));
  }
  SECTION("a changed part") {
    std::string tampered = image.file;
    tampered[tampered.size() - 4096 - 1] ^= 1;
    auto writer = SlotWriter::begin(dir.path(), "a", hex(image.digest), owner.sign(image.digest), owner.publicPem(),
                                    tampered.size(), nullptr);
    REQUIRE(writer.ok());
    CHECK_THAT(writeInPieces(**writer, tampered).message(), ContainsSubstring("root does not hash"));
    CHECK_FALSE((*writer)->finish().ok());
  }
  CHECK(readFile(dir / "pointer") == "boot=a\nfallback=factory\ntries=confirmed\n");
  CHECK_FALSE(fs::exists(dir / "slot-b.squashfs"));
  CHECK_FALSE(fs::exists(dir / "slot-b.manifest.json"));
  for (const auto& e : fs::directory_iterator(dir.path())) CHECK(e.path().extension() != ".partial");
}

TEST_CASE("the manifest check refuses an image before any of its parts is written") {
  TempDir dir;
  SigningKey owner;
  const TestImage image;
  bool asked = false;
  auto writer = SlotWriter::begin(dir.path(), "factory", hex(image.digest), owner.sign(image.digest),
                                  owner.publicPem(), image.file.size(), [&](const keel::image::Manifest& m) {
                                    asked = true;
                                    CHECK(m.version.toString() == "1.0.0");
                                    return keel::failedPrecondition("older");
                                  });
  REQUIRE(writer.ok());
  CHECK(writeInPieces(**writer, image.file).code() == keel::StatusCode::kFailedPrecondition);
  CHECK(asked);
  CHECK(fs::is_empty(dir.path()));
}

TEST_CASE("an image longer or shorter than announced is refused") {
  TempDir dir;
  SigningKey owner;
  const TestImage image;
  const std::string sig = owner.sign(image.digest);
  {
    auto writer = SlotWriter::begin(dir.path(), "b", hex(image.digest), sig, owner.publicPem(), image.file.size(),
                                    nullptr);
    REQUIRE(writer.ok());
    REQUIRE((*writer)->write(image.file).isOk());
    CHECK((*writer)->write("z").code() == keel::StatusCode::kOutOfRange);
  }
  {
    auto writer = SlotWriter::begin(dir.path(), "b", hex(image.digest), sig, owner.publicPem(), image.file.size(),
                                    nullptr);
    REQUIRE(writer.ok());
    REQUIRE((*writer)->write(std::string_view(image.file).substr(0, 10)).isOk());
    CHECK_THAT((*writer)->finish().status().message(), ContainsSubstring("ended after 10 of"));
  }
  // An upgrade that did not finish leaves no partial file behind.
  for (const auto& e : fs::directory_iterator(dir.path())) CHECK(e.path().extension() != ".partial");
}

TEST_CASE("malformed hashes and keys are refused by name") {
  TempDir dir;
  SigningKey owner;
  CHECK_THAT(SlotWriter::begin(dir.path(), "a", "ABC", "", owner.publicPem(), 100, nullptr).status().message(),
             ContainsSubstring("64 lowercase hex digits"));
  const TestImage image;
  CHECK_THAT(SlotWriter::begin(dir.path(), "a", hex(image.digest), owner.sign(image.digest), "not a key", 100, nullptr)
                 .status()
                 .message(),
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
